"""What `betting` adds to other apps' back-office pages through their registration hooks, so
that neither admin imports the other: on a market's page (`markets.admin_hooks`) the positions
and trades inlines, the trades CSV and the moderator's own holdings; on a member's page
(`core.adminkit.member_section_register`) their positions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from core.adminkit import keyset_chunks, member_section_register, shares_cell, stream_csv
from core.directory import guild_fallback, member_fallback
from markets.admin_hooks import (
    MarketDownload,
    PaginatedMarketInline,
    market_download_register,
    market_inlines_register,
    own_holdings_register,
)
from markets.models import Market
from markets.services import format_shares
from points.selectors import guild_name_subquery, member_name_subquery

from .. import selectors
from ..models import Order, Position, Trade
from . import lists

# --- The market page's inlines -----------------------------------------------------------------


class MemberRowsInline(PaginatedMarketInline):
    """Members' rows in the market (positions, trades), with their names."""

    joins: tuple[str, ...] = ("outcome",)
    member_annotations = {"member_name": ("guild_id", "user_id")}

    @admin.display(description="shares")
    def shares_display(self, obj: Position | Trade) -> str:
        return shares_cell(obj.shares)


class PositionInline(MemberRowsInline):
    model = Position
    fields = (
        "member",
        "outcome_label",
        "shares_display",
        "points_spent",
        "points_received",
        "payout",
        "value",
    )
    readonly_fields = fields
    verbose_name_plural = "positions (largest stakes first)"
    list_url_name = "admin:betting_position_changelist"
    row_order = ("-points_spent", "id")

    @admin.display(description="value now")
    def value(self, obj: Position) -> str:
        return f"{selectors.position_value(self.market, self.outcomes, obj):,}"


class TradeInline(MemberRowsInline):
    model = Trade
    fields = (
        "id",
        "created_at",
        "member",
        "kind",
        "outcome_label",
        "amount",
        "fee",
        "shares_display",
        "price_move",
        "reversed_display",
    )
    readonly_fields = fields
    joins = ("outcome", "reversal")
    verbose_name_plural = "trades (newest first)"
    list_url_name = "admin:betting_trade_changelist"

    @admin.display(description="probability")
    def price_move(self, obj: Trade) -> str:
        return f"{obj.price_before_ppm / 10_000:.1f}% → {obj.price_after_ppm / 10_000:.1f}%"

    @admin.display(description="reversed")
    def reversed_display(self, obj: Trade) -> str:
        return lists.reversed_cell(obj)


class OrderInline(MemberRowsInline):
    """The market's limit orders (DOMAIN §4.7): resting first, then filled and released."""

    model = Order
    fields = (
        "id",
        "created_at",
        "member",
        "side",
        "outcome_label",
        "limit",
        "size_display",
        "waiting",
        "fills",
        "status",
        "expires_at",
    )
    readonly_fields = fields
    verbose_name_plural = "limit orders (waiting first)"
    list_url_name = "admin:betting_order_changelist"
    row_order = ("status", "-id")

    @admin.display(description="limit")
    def limit(self, obj: Order) -> str:
        return lists.order_limit(obj)

    @admin.display(description="size")
    def size_display(self, obj: Order) -> str:
        return lists.order_amount(obj, obj.size)

    @admin.display(description="waiting")
    def waiting(self, obj: Order) -> str:
        return lists.order_amount(obj, obj.remaining)


# --- The market's trades as CSV ------------------------------------------------------------------

TRADES_CSV_HEADER = (
    "trade_id",
    "created_at",
    "market_id",
    "guild_id",
    "guild_name",
    "user_id",
    "user_name",
    "kind",
    "outcome",
    "outcome_label",
    "amount",
    "fee",
    "micro_shares",
    "shares",
    "probability_before",
    "probability_after",
    "idempotency_key",
    "reversed_at",
)


def _trade_row(t: Trade) -> tuple[object, ...]:
    return (
        t.pk,
        t.created_at.isoformat(),
        t.market_id,
        t.guild_id,
        getattr(t, "guild_name", None) or guild_fallback(t.guild_id),
        t.user_id,
        getattr(t, "member_name", None) or member_fallback(t.user_id),
        t.kind,
        t.outcome.position + 1,
        t.outcome.label,
        t.amount,
        t.fee,
        t.shares,
        format_shares(t.shares),
        f"{t.price_before_ppm / 1_000_000:.6f}",
        f"{t.price_after_ppm / 1_000_000:.6f}",
        t.idempotency_key,
        _reversed_at(t),
    )


def _reversed_at(t: Trade) -> str:
    """When settlement reversed the trade (docs/domain.md §6.2), ISO 8601; empty if it was not."""
    mark = lists.reversal_of(t)
    return "" if mark is None else mark.reversed_at.isoformat()


def trades_csv(request: HttpRequest, market: Market) -> HttpResponseBase:
    """Every trade of one market, oldest first, streamed (the market admin has checked that the
    staff member may view the market)."""
    trades = (
        Trade.objects.filter(market=market)
        .select_related("outcome", "reversal")
        .annotate(
            member_name=member_name_subquery(guild_field="guild_id", user_field="user_id"),
            guild_name=guild_name_subquery(guild_field="guild_id"),
        )
    )
    return stream_csv(
        request,
        filename=f"market-{market.pk}-trades.csv",
        header=TRADES_CSV_HEADER,
        chunks=keyset_chunks(trades, newest_first=False),
        row=_trade_row,
    )


# --- The member page's positions -------------------------------------------------------------


def _member_positions(guild_id: int, user_id: int) -> dict[str, Any]:
    """The member page's positions (`admin/points/member.html`), valued by `position_value`."""
    portfolio = selectors.portfolio_get(guild_id=guild_id, user_id=user_id, limit=100)
    return {
        "portfolio": portfolio,
        "positions": [(p, shares_cell(p.shares)) for p in portfolio.positions],
    }


def _own_holdings(market_id: int, user_id: int) -> list[selectors.HoldingRow]:
    return selectors.holdings_in_market(market_id=market_id, user_id=user_id)


market_inlines_register(PositionInline, TradeInline, OrderInline)
market_download_register(
    MarketDownload(name="trades_csv", route="trades.csv", label="Trades CSV", view=trades_csv)
)
own_holdings_register(_own_holdings)
member_section_register(_member_positions)
