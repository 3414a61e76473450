"""What other apps add to the market's back-office page without `markets.admin` importing them:
the admins are independent interfaces, and `markets` never imports `betting` (docs/architecture.md,
"The contracts CI checks"). `betting.admin` registers its position and trade inlines, the trades
CSV and a moderator's own holdings here when Django's admin autodiscovery imports it, as
`betting` registers its `Holdings` for settlement (`markets/holdings.py`).

Registration happens at import; the market admin reads the registry per request (inlines, the
change page's links) or when the admin's URLs are built (downloads), both after autodiscovery."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from core.adminkit import PaginatedInline, ReadOnlyInline, member_link
from points.selectors import member_name_subquery

from .models import Market, Outcome

# --- Inlines -----------------------------------------------------------------------------------


class MarketInline(ReadOnlyInline):
    """An inline on the market's page. Remembers the market and its outcomes (in order) for the
    display methods; inline instances are created per request, so this is request-local."""

    market: Market = None  # type: ignore[assignment]  # set in get_formset before any use
    outcomes: list[Outcome] = []

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        if obj is not None and self.market is None:
            self.market = obj
            self.outcomes = list(Outcome.objects.filter(market=obj).order_by("position"))
        return super().get_formset(request, obj, **kwargs)

    @admin.display(description="member")
    def member(self, obj: Any) -> str:
        return member_link(obj.guild_id, obj.user_id, getattr(obj, "member_name", None))

    @admin.display(description="outcome")
    def outcome_label(self, obj: Any) -> str:
        return f"{obj.outcome.position + 1}. {obj.outcome.label}"


class PaginatedMarketInline(MarketInline, PaginatedInline):
    """A market inline that pages through its rows and links to the full list, filtered to the
    market (`?market=<id>`). Its rows come with `joins` selected, the members' names that
    `member_annotations` asks for (annotation → (guild field, user field); no query per row),
    in `row_order`."""

    joins: tuple[str, ...] = ()
    member_annotations: dict[str, tuple[str, str]] = {}
    row_order: tuple[str, ...] = ("-id",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = super().get_queryset(request)
        if self.joins:
            queryset = queryset.select_related(*self.joins)
        names = {
            name: member_name_subquery(guild_field=guild_field, user_field=user_field)
            for name, (guild_field, user_field) in self.member_annotations.items()
        }
        rows: QuerySet[Any] = queryset.annotate(**names).order_by(*self.row_order)
        return rows


_inlines: list[type[MarketInline]] = []


def market_inlines_register(*inlines: type[MarketInline]) -> None:
    """Show `inlines` on every market's page, after the market's own outcomes, votes and
    disputes and before its events."""
    _inlines.extend(i for i in inlines if i not in _inlines)


def market_inlines() -> list[type[MarketInline]]:
    return list(_inlines)


# --- Downloads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketDownload:
    """A file about one market, linked from its page: served at `<market>/<route>` under the
    URL name `admin:markets_market_<name>`, to staff who may view the market (the market admin
    checks; a market that does not exist is a 404 first)."""

    name: str
    route: str
    label: str
    view: Callable[[HttpRequest, Market], HttpResponseBase]


_downloads: list[MarketDownload] = []


def market_download_register(download: MarketDownload) -> None:
    if all(d.name != download.name for d in _downloads):
        _downloads.append(download)


def market_downloads() -> list[MarketDownload]:
    return list(_downloads)


# --- A moderator's own holdings (docs/domain.md §6.1) ------------------------------------------


class Holding(Protocol):
    """One member's stake on one outcome, as the decision pages list it."""

    @property
    def outcome(self) -> int: ...  # the outcome's position (0-based)
    @property
    def label(self) -> str: ...
    @property
    def shares(self) -> int: ...  # micro-shares
    @property
    def shares_text(self) -> str: ...
    @property
    def points_spent(self) -> int: ...
    @property
    def points_received(self) -> int: ...


HoldingsOf = Callable[[int, int], Sequence[Holding]]
"""(market id, Discord user id) → what that member holds in that market, by outcome."""

_holdings: list[HoldingsOf] = []


def own_holdings_register(holdings_of: HoldingsOf) -> None:
    _holdings[:] = [holdings_of]


def own_holdings(market_id: int, user_id: int) -> Sequence[Holding]:
    """What the registered app says `user_id` holds in the market; nothing when no app keeps
    positions."""
    return _holdings[0](market_id, user_id) if _holdings else ()
