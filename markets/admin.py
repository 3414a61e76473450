"""Markets in the back office (issue 5). Markets are never edited by hand: their maths fields
change only through the market services, which the Resolve / Cancel and refund / Close now
confirmation pages and the Review proposal page call (`markets.admin_views`). Proposed results
and their disputes (docs/domain.md §6.1) have their own filter, columns and read-only lists.
The list renders in a constant number of queries whatever its length; the detail page pages
through large markets."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from betting.models import Position, Trade
from core.adminkit import (
    ActionPermissionMixin,
    ReadOnlyAdmin,
    TextSafeChangelistMixin,
    guild_label,
    market_link,
    member_link,
    shares_cell,
)
from points.errors import id_from_text
from points.models import Account
from points.selectors import (
    guild_name_subquery,
    guild_names,
    member_name_subquery,
    member_names,
)

from . import admin_views, selectors
from .models import Dispute, Market, MarketEvent, Outcome, ResolutionVote

STATUS_COLOURS: dict[str, str] = {
    Market.Status.OPEN: "#2e7d32",
    Market.Status.CLOSED: "#ef6c00",
    Market.Status.RESOLVING: "#6a1b9a",
    Market.Status.RESOLVED: "#1565c0",
    Market.Status.CANCELLED: "#757575",
}


def status_badge(status: str, label: str) -> str:
    return format_html(
        '<span style="background:{};color:#fff;padding:2px 8px;border-radius:10px;'
        'font-size:11px;font-weight:600;white-space:nowrap">{}</span>',
        STATUS_COLOURS.get(status, "#555"),
        label,
    )


# --- Read-only, paginated inlines ----------------------------------------------------------------


class PaginatedInlineFormSet(BaseInlineFormSet):
    """Shows one page of the related rows; the page number is the `<prefix>_page` query
    parameter, so each inline on the page turns independently."""

    per_page = 20
    request: HttpRequest | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.page_param = f"{self.prefix}_page"
        params = self.request.GET if self.request is not None else {}
        self.paginator = Paginator(self.queryset, self.per_page)  # type: ignore[arg-type]
        self.page = self.paginator.get_page(params.get(self.page_param))
        self.queryset = self.page.object_list  # type: ignore[assignment]

    def page_links(self) -> list[tuple[str, str | None]]:
        """(label, url) for the page numbers to show; url is None for the current page and
        the ellipses."""
        links: list[tuple[str, str | None]] = []
        assert self.request is not None
        for number in self.paginator.get_elided_page_range(self.page.number, on_ends=1):
            if number == self.page.number or number == Paginator.ELLIPSIS:
                links.append((str(number), None))
                continue
            query = self.request.GET.copy()
            query[self.page_param] = str(number)
            links.append((str(number), "?" + query.urlencode()))
        return links


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    max_num = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MarketInline(ReadOnlyInline):
    """Remembers the market and its outcomes for the display methods (inline instances are
    created per request, so this is request-local)."""

    market: Market = None  # type: ignore[assignment]  # set in get_formset before any use
    outcomes: list[Outcome] = []

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs) -> Any:
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


class PaginatedInline(MarketInline):
    formset = PaginatedInlineFormSet
    template = "admin/edit_inline/paginated_tabular.html"
    per_page = 20
    list_url_name: str | None = None
    """Admin changelist with every row of this inline, filtered to the market."""

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        formset.request = request
        formset.per_page = self.per_page
        formset.list_url = (
            f"{reverse(self.list_url_name)}?market={obj.pk}" if obj and self.list_url_name else None
        )
        return formset


class OutcomeInline(MarketInline):
    model = Outcome
    fields = ("position_number", "label", "pool_shares", "staked", "probability", "result")
    readonly_fields = fields
    verbose_name_plural = "outcomes (pools in shares; probabilities for display)"

    @admin.display(description="#")
    def position_number(self, obj: Outcome) -> int:
        return obj.position + 1

    @admin.display(description="pool (shares)")
    def pool_shares(self, obj: Outcome) -> str:
        return shares_cell(obj.pool)

    @admin.display(description="probability")
    def probability(self, obj: Outcome) -> str:
        probs = selectors.probabilities(self.market.mechanism, self.outcomes)
        return f"{probs[obj.position]:.1%}"

    @admin.display(description="result")
    def result(self, obj: Outcome) -> str:
        return "✔ winner" if self.market.winning_outcome_id == obj.pk else ""


class VoteInline(PaginatedInline):
    model = ResolutionVote
    fields = ("voter", "outcome_label", "created_at", "updated_at")
    readonly_fields = fields
    verbose_name_plural = "resolution votes"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("outcome")
            .annotate(
                voter_name=member_name_subquery(
                    guild_field="market__guild_id", user_field="voter_id"
                )
            )
            .order_by("id")
        )

    @admin.display(description="voter")
    def voter(self, obj: ResolutionVote) -> str:
        return member_link(self.market.guild_id, obj.voter_id, getattr(obj, "voter_name", None))


class DisputeInline(PaginatedInline):
    """Every dispute of every proposal of the market, newest first (docs/domain.md §6.1)."""

    model = Dispute
    fields = ("member", "proposal_round", "reason", "created_at")
    readonly_fields = fields
    verbose_name_plural = "disputes of proposed results (newest first)"
    list_url_name = "admin:markets_dispute_changelist"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_name=member_name_subquery(
                    guild_field="market__guild_id", user_field="user_id"
                )
            )
            .order_by("-id")
        )

    @admin.display(description="member")
    def member(self, obj: Dispute) -> str:
        return member_link(self.market.guild_id, obj.user_id, getattr(obj, "member_name", None))


class PositionInline(PaginatedInline):
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

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("outcome")
            .annotate(
                member_name=member_name_subquery(guild_field="guild_id", user_field="user_id")
            )
            .order_by("-points_spent", "id")
        )

    @admin.display(description="shares")
    def shares_display(self, obj: Position) -> str:
        return shares_cell(obj.shares)

    @admin.display(description="value now")
    def value(self, obj: Position) -> str:
        return f"{admin_views.position_value(self.market, self.outcomes, obj):,}"


class TradeInline(PaginatedInline):
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
    )
    readonly_fields = fields
    verbose_name_plural = "trades (newest first)"
    list_url_name = "admin:betting_trade_changelist"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("outcome")
            .annotate(
                member_name=member_name_subquery(guild_field="guild_id", user_field="user_id")
            )
            .order_by("-id")
        )

    @admin.display(description="shares")
    def shares_display(self, obj: Trade) -> str:
        return shares_cell(obj.shares)

    @admin.display(description="probability")
    def price_move(self, obj: Trade) -> str:
        return f"{obj.price_before_ppm / 10_000:.1f}% → {obj.price_after_ppm / 10_000:.1f}%"


class EventInline(PaginatedInline):
    model = MarketEvent
    fields = ("id", "created_at", "type", "actor", "request_key", "summary")
    readonly_fields = fields
    verbose_name_plural = "market events (newest first)"
    list_url_name = "admin:markets_marketevent_changelist"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                actor_name=member_name_subquery(guild_field="guild_id", user_field="actor_id")
            )
            .order_by("-id")
        )

    @admin.display(description="actor")
    def actor(self, obj: MarketEvent) -> str:
        if not obj.actor_id:
            return "system / admin"
        return member_link(obj.guild_id, obj.actor_id, getattr(obj, "actor_name", None))

    @admin.display(description="payload")
    def summary(self, obj: MarketEvent) -> str:
        return Truncator(json.dumps(obj.payload, sort_keys=True)).chars(160)


# --- The market admin --------------------------------------------------------------------------


class GuildFilter(admin.SimpleListFilter):
    """Servers by name (issue 13), the id in brackets only when two share a name."""

    title = "server"
    parameter_name = "guild_id"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        ids = Market.objects.order_by().values_list("guild_id", flat=True).distinct()[:100]
        names = guild_names(guild_ids=ids)
        return sorted(((str(g), name) for g, name in names.items()), key=lambda kv: kv[1])

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        guild_id = id_from_text(self.value())
        return queryset if guild_id is None else queryset.filter(guild_id=guild_id)


class ResolutionFilter(admin.SimpleListFilter):
    """Markets with a proposed result, by what they wait for (docs/domain.md §6.1)."""

    title = "proposed result"
    parameter_name = "proposal"
    DISPUTED, SECOND, WINDOW = "disputed", "second_resolver", "window"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (self.DISPUTED, "Disputed markets"),
            (self.SECOND, "Waiting for a second resolver"),
            (self.WINDOW, "In the dispute window"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        resolving = queryset.filter(status=Market.Status.RESOLVING)
        if self.value() == self.DISPUTED:
            return resolving.filter(disputed_at__isnull=False)
        if self.value() == self.SECOND:
            return resolving.filter(disputed_at__isnull=True, dispute_deadline__isnull=True)
        if self.value() == self.WINDOW:
            return resolving.filter(disputed_at__isnull=True, dispute_deadline__isnull=False)
        return queryset


DISPUTED_QUERY = f"?{ResolutionFilter.parameter_name}={ResolutionFilter.DISPUTED}"


@admin.register(Market)
class MarketAdmin(TextSafeChangelistMixin, ActionPermissionMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "guild",
        "short_question",
        "state",
        "volume_display",
        "traders",
        "leading_outcome",
        "proposal",
        "dispute_count",
    )
    list_display_links = ("id", "short_question")
    list_filter = (GuildFilter, "status", ResolutionFilter, "mechanism", "category")
    search_fields = ("question",)
    search_help_text = "Search the question, or a market number such as 42 or #42."
    ordering = ("-id",)
    list_per_page = 50
    list_max_show_all = 500
    actions = ["resolve_selected", "cancel_selected", "close_selected"]
    inlines = [
        OutcomeInline,
        VoteInline,
        DisputeInline,
        PositionInline,
        TradeInline,
        EventInline,
    ]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "question",
                    "description",
                    ("guild_id", "category"),
                    ("mechanism", "status_badge"),
                    "creator",
                    ("created_at", "closes_at", "closed_at"),
                    "closed_by",
                )
            },
        ),
        (
            "Trading",
            {
                "fields": (
                    ("liquidity", "fee_bps"),
                    ("volume", "trade_count", "trader_count"),
                    "collateral",
                )
            },
        ),
        (
            "Proposed result",
            {
                "fields": (
                    ("proposed_outcome", "proposer"),
                    ("proposed_at", "dispute_deadline", "disputed_at"),
                    "proposal_state",
                    "proposal_reason",
                    ("proposal_conflicted", "proposal_round"),
                ),
                "description": "Nothing is paid while a result is proposed; see docs/domain.md "
                "§6.1 and the disputes below.",
            },
        ),
        (
            "Settlement",
            {"fields": ("winning_outcome", "settled_at", "settled_by", "settle_reason")},
        ),
        ("Discord", {"fields": (("channel_id", "message_id"), "idempotency_key")}),
    )
    readonly_fields = (
        "status_badge",
        "creator",
        "closed_by",
        "settled_by",
        "collateral",
        "proposer",
        "proposal_state",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                guild_name=guild_name_subquery(guild_field="guild_id"),
                proposer_name=member_name_subquery(
                    guild_field="guild_id", user_field="proposed_by_id"
                ),
                disputes_total=Coalesce(
                    Subquery(
                        Dispute.objects.filter(market=OuterRef("pk"))
                        .order_by()
                        .values("market")
                        .annotate(n=Count("id"))
                        .values("n")[:1],
                        output_field=IntegerField(),
                    ),
                    0,
                ),
            )
            .prefetch_related(
                Prefetch(
                    "outcomes",
                    queryset=Outcome.objects.order_by("position"),
                    to_attr="ordered_outcomes",
                )
            )
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip().lstrip("#")
        results, may_have_duplicates = super().get_search_results(request, queryset, term)
        if (market_id := id_from_text(term)) is not None:
            results |= queryset.filter(pk=market_id)
        return results, may_have_duplicates

    # Markets change only through the services (DOMAIN §4–§6): view-only for everyone.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("markets.resolve_market")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("markets.cancel_market")

    def has_close_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("markets.close_market")

    # --- List columns -------------------------------------------------------------------------

    @admin.display(description="question", ordering="question")
    def short_question(self, obj: Market) -> str:
        # The mechanism and category ride under the question (they are filters too), so the
        # key columns (volume, traders, leading outcome) fit at 1366 px (issue 13).
        details = " · ".join(filter(None, [obj.get_mechanism_display(), obj.category]))
        return format_html(
            '{}<br><small class="quiet">{}</small>', Truncator(obj.question).chars(70), details
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Market) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="status · closes", ordering="closes_at")
    def state(self, obj: Market) -> str:
        """The status badge over the close time: one column, so the list fits 1366 px."""
        return format_html("{}<br><small>{}</small>", self.status_badge(obj), self.closing(obj))

    @admin.display(description="closes / closed", ordering="closes_at")
    def closing(self, obj: Market) -> str:
        word, at = ("closed", obj.closed_at) if obj.closed_at else ("closes", obj.closes_at)
        # The column may wrap between the word and the time, never inside the time.
        return format_html(
            '{} <span style="white-space:nowrap" title="{} UTC">{}</span>',
            word,
            f"{at:%Y-%m-%d %H:%M}",
            f"{at:%b %-d, %H:%M}",
        )

    @admin.display(description="volume", ordering="volume")
    def volume_display(self, obj: Market) -> str:
        return f"{obj.volume:,}"

    @admin.display(description="traders", ordering="trader_count")
    def traders(self, obj: Market) -> int:
        return obj.trader_count

    @admin.display(description="leading outcome")
    def leading_outcome(self, obj: Market) -> str:
        outcomes = getattr(obj, "ordered_outcomes", None)
        if outcomes is None:
            outcomes = list(obj.outcomes.order_by("position"))
        if obj.status == Market.Status.RESOLVED:
            winner = next((o for o in outcomes if o.pk == obj.winning_outcome_id), None)
            return format_html("✔ {}", winner.label if winner else "?")
        if obj.status == Market.Status.CANCELLED or not outcomes:
            return "—"
        probs = selectors.probabilities(obj.mechanism, outcomes)
        best = max(range(len(outcomes)), key=lambda i: (probs[i], -i))
        if sum(1 for p in probs if p == probs[best]) > 1:
            return "even"
        return f"{Truncator(outcomes[best].label).chars(22)} {probs[best]:.0%}"

    @admin.display(description="proposed result")
    def proposal(self, obj: Market) -> str:
        """“X” by whom, and when it pays out or that it is held (docs/domain.md §6.1)."""
        if obj.status != Market.Status.RESOLVING:
            return "—"
        outcomes = getattr(obj, "ordered_outcomes", None)
        if outcomes is None:
            outcomes = list(obj.outcomes.order_by("position"))
        proposed = next((o for o in outcomes if o.pk == obj.proposed_outcome_id), None)
        label = Truncator(proposed.label if proposed else "?").chars(22)
        by = ""
        if obj.proposed_by_id:
            name = getattr(obj, "proposer_name", None)
            by = format_html(" by {}", member_link(obj.guild_id, obj.proposed_by_id, name))
        return format_html(
            "“{}”{}<br><small>{}</small>",
            label,
            by,
            admin_views.proposal_state(obj),
        )

    @admin.display(description="disputes", ordering="disputes_total")
    def dispute_count(self, obj: Market) -> str:
        n = getattr(obj, "disputes_total", None)
        if n is None:
            n = obj.disputes.count()
        if not n:
            return "—"
        url = f"{reverse('admin:markets_dispute_changelist')}?market={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, n)

    # --- Detail fields ------------------------------------------------------------------------

    def _member(self, obj: Market, user_id: int) -> str:
        name = member_names(guild_id=obj.guild_id, user_ids=[user_id])[user_id]
        return member_link(obj.guild_id, user_id, name)

    @admin.display(description="server", ordering="guild_id")
    def guild(self, obj: Market) -> str:
        return guild_label(obj.guild_id, getattr(obj, "guild_name", None))

    @admin.display(description="creator")
    def creator(self, obj: Market) -> str:
        return self._member(obj, obj.creator_id)

    @admin.display(description="closed by")
    def closed_by(self, obj: Market) -> str:
        if obj.closed_by_id:
            return self._member(obj, obj.closed_by_id)
        return "—" if obj.closed_at is None else "scheduler or admin (see events)"

    @admin.display(description="settled by")
    def settled_by(self, obj: Market) -> str:
        if obj.settled_by_user_id:
            return f"admin {obj.settled_by_user}"
        if obj.settled_by_id:
            return self._member(obj, obj.settled_by_id)
        return "—" if obj.settled_at is None else "system"

    @admin.display(description="proposed by")
    def proposer(self, obj: Market) -> str:
        return self._member(obj, obj.proposed_by_id) if obj.proposed_by_id else "—"

    @admin.display(description="where it stands")
    def proposal_state(self, obj: Market) -> str:
        return admin_views.proposal_state(obj) or "—"

    @admin.display(description="collateral (escrow)")
    def collateral(self, obj: Market) -> str:
        balance = (
            Account.objects.filter(kind=Account.Kind.ESCROW, market=obj)
            .values_list("balance", flat=True)
            .first()
        )
        return "—" if balance is None else f"{balance:,} points"

    # --- Actions ------------------------------------------------------------------------------

    @admin.action(permissions=["resolve"], description="Resolve the selected market…")
    def resolve_selected(
        self, request: HttpRequest, queryset: QuerySet[Market]
    ) -> HttpResponse | None:
        ids = list(queryset.values_list("pk", flat=True)[:2])
        if len(ids) != 1:
            self.message_user(
                request, "Resolving needs exactly one market: select one.", messages.WARNING
            )
            return None
        return HttpResponseRedirect(reverse("admin:markets_market_resolve", args=[ids[0]]))

    @admin.action(permissions=["cancel"], description="Cancel and refund the selected markets…")
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Market]) -> HttpResponse:
        return self._bulk_redirect(request, queryset, "admin:markets_market_cancel")

    @admin.action(permissions=["close"], description="Close the selected markets now…")
    def close_selected(self, request: HttpRequest, queryset: QuerySet[Market]) -> HttpResponse:
        return self._bulk_redirect(request, queryset, "admin:markets_market_close")

    def _bulk_redirect(self, request: HttpRequest, queryset: QuerySet[Market], url_name: str):
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[: admin_views.MAX_BULK + 1])
        if len(ids) > admin_views.MAX_BULK:
            self.message_user(
                request,
                f"Select at most {admin_views.MAX_BULK} markets at once.",
                messages.WARNING,
            )
            return None
        return HttpResponseRedirect(f"{reverse(url_name)}?ids={','.join(map(str, ids))}")

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path(
                "<int:object_id>/resolve/",
                view(partial(admin_views.resolve_view, self)),
                name="markets_market_resolve",
            ),
            path(
                "<int:object_id>/review/",
                view(partial(admin_views.review_view, self)),
                name="markets_market_review",
            ),
            path(
                "cancel/",
                view(partial(admin_views.bulk_view, self, action=admin_views.CANCEL)),
                name="markets_market_cancel",
            ),
            path(
                "close/",
                view(partial(admin_views.bulk_view, self, action=admin_views.CLOSE)),
                name="markets_market_close",
            ),
            path(
                "<int:object_id>/trades.csv",
                view(partial(admin_views.trades_csv_view, self)),
                name="markets_market_trades_csv",
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The list, with a shortcut to the disputed markets that wait for moderators."""
        disputed = Market.objects.filter(
            status=Market.Status.RESOLVING, disputed_at__isnull=False
        ).count()
        extra = {"disputed_count": disputed, "disputed_url": DISPUTED_QUERY}
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        market_id = id_from_text(object_id)
        market = Market.objects.filter(pk=market_id).first() if market_id else None
        extra = {}
        if market is not None:
            pk = market.pk
            extra = {
                "can_resolve": self.has_resolve_permission(request)
                and market.status in admin_views.DECIDABLE,
                "can_review": self.has_resolve_permission(request)
                and market.status == Market.Status.RESOLVING,
                "review_url": reverse("admin:markets_market_review", args=[pk]),
                "can_cancel": self.has_cancel_permission(request) and not market.is_settled,
                "can_close": self.has_close_permission(request)
                and market.status == Market.Status.OPEN,
                "resolve_url": reverse("admin:markets_market_resolve", args=[pk]),
                "cancel_url": f"{reverse('admin:markets_market_cancel')}?ids={pk}",
                "close_url": f"{reverse('admin:markets_market_close')}?ids={pk}",
                "trades_csv_url": reverse("admin:markets_market_trades_csv", args=[pk]),
                "audit_url": f"{reverse('admin:points_auditevent_changelist')}"
                f"?target_type=market&target_id={pk}",
            }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})


@admin.register(MarketEvent)
class MarketEventAdmin(ReadOnlyAdmin):
    """The outbox, read-only: what the bot and the dashboard were told, in order."""

    list_display = (
        "id",
        "created_at",
        "guild_id",
        "market_link",
        "type",
        "actor_id",
        "request_key",
    )
    list_filter = ("type", "guild_id")
    search_fields = ("=market__id", "request_key", "idempotency_key")
    ordering = ("-id",)

    @admin.display(description="market", ordering="market_id")
    def market_link(self, obj: MarketEvent) -> str:
        return market_link(obj.market_id)


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    """Members' disputes of proposed results (docs/domain.md §6.1), read-only: moderators decide
    them on the market's Review proposal page."""

    list_display = ("id", "created_at", "market_link", "member", "proposal_round", "short_reason")
    search_fields = ("=market__id", "reason")
    search_help_text = "Search a market number or the text of a reason."
    ordering = ("-id",)
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("market")
            .annotate(
                member_name=member_name_subquery(
                    guild_field="market__guild_id", user_field="user_id"
                )
            )
        )

    @admin.display(description="market", ordering="market_id")
    def market_link(self, obj: Dispute) -> str:
        return market_link(
            obj.market_id, f"#{obj.market_id} {Truncator(obj.market.question).chars(50)}"
        )

    @admin.display(description="member")
    def member(self, obj: Dispute) -> str:
        return member_link(obj.market.guild_id, obj.user_id, getattr(obj, "member_name", None))

    @admin.display(description="reason", ordering="reason")
    def short_reason(self, obj: Dispute) -> str:
        return Truncator(obj.reason).chars(120)
