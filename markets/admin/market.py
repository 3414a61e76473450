"""The market admin (issue 5): the list, a market's page with its inlines, and the actions that
open the confirmation pages (`decide`, `bulk`). Markets are never edited by hand: their maths
fields change only through the market services those pages call."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path, reverse

from core.adminkit import ActionPermissionMixin, TextSafeChangelistMixin
from points.errors import id_from_text
from points.selectors import guild_name_subquery, member_name_subquery

from ..admin_hooks import MarketDownload, market_downloads, market_inlines
from ..models import Dispute, Market, Outcome
from . import bulk, decide
from .columns import DISPUTED_QUERY, GuildFilter, MarketColumns, ResolutionFilter
from .forms import MAX_BULK
from .inlines import DisputeInline, EventInline, OutcomeInline, VoteInline
from .pages import DECIDABLE, market_or_404


@admin.register(Market)
class MarketAdmin(MarketColumns, TextSafeChangelistMixin, ActionPermissionMixin):
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
    inlines = [OutcomeInline, VoteInline, DisputeInline, EventInline]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "question",
                    "description",
                    ("guild", "category"),
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
                    ("proposer_conflict", "proposal_round"),
                ),
                "description": "Nothing is paid while a result is proposed: members may dispute "
                "it until the deadline, and moderators confirm, change or undo it (the disputes "
                "are below).",
            },
        ),
        (
            "Settlement",
            {"fields": ("winning_outcome", "settled_at", "settled_by", "settle_reason")},
        ),
        ("Discord", {"fields": (("channel_id", "message_id"), "idempotency_key")}),
    )
    readonly_fields = (
        "guild",
        "status_badge",
        "creator",
        "closed_by",
        "settled_by",
        "collateral",
        "proposer",
        "proposal_state",
        "proposer_conflict",
    )

    def get_fieldsets(self, request: HttpRequest, obj: Market | None = None) -> Any:
        """The "Proposed result" box only while a result is proposed, and "Settlement" only once
        settled: an empty box of dashes reads as if something were pending (issue 23)."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        hidden = set()
        if obj.proposed_outcome_id is None:
            hidden.add("Proposed result")
        if not obj.is_settled:
            hidden.add("Settlement")
        return [(name, opts) for name, opts in fieldsets if name not in hidden]

    def get_inlines(self, request: HttpRequest, obj: Market | None) -> list[type[Any]]:
        """The market's own inlines, with the other apps' (`betting`: positions and trades)
        before its events."""
        return [OutcomeInline, VoteInline, DisputeInline, *market_inlines(), EventInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = (
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
        return queryset

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
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
    def cancel_selected(
        self, request: HttpRequest, queryset: QuerySet[Market]
    ) -> HttpResponse | None:
        return self._bulk_redirect(request, queryset, "admin:markets_market_cancel")

    @admin.action(permissions=["close"], description="Close the selected markets now…")
    def close_selected(
        self, request: HttpRequest, queryset: QuerySet[Market]
    ) -> HttpResponse | None:
        return self._bulk_redirect(request, queryset, "admin:markets_market_close")

    def _bulk_redirect(
        self, request: HttpRequest, queryset: QuerySet[Market], url_name: str
    ) -> HttpResponse | None:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[: MAX_BULK + 1])
        if len(ids) > MAX_BULK:
            self.message_user(
                request,
                f"Select at most {MAX_BULK} markets at once.",
                messages.WARNING,
            )
            return None
        return HttpResponseRedirect(f"{reverse(url_name)}?ids={','.join(map(str, ids))}")

    def get_urls(self) -> list[URLPattern]:
        """The decision pages and the other apps' downloads, as `admin:markets_market_<name>`."""
        pages: list[tuple[str, str, Callable[..., HttpResponseBase]]] = [
            ("resolve", "<int:object_id>/resolve/", partial(decide.resolve_view, self)),
            ("review", "<int:object_id>/review/", partial(decide.review_view, self)),
            ("cancel", "cancel/", partial(bulk.bulk_view, self, action=bulk.CANCEL)),
            ("close", "close/", partial(bulk.bulk_view, self, action=bulk.CLOSE)),
        ]
        pages += [
            (d.name, f"<int:object_id>/{d.route}", partial(self.download_view, d))
            for d in market_downloads()
        ]
        view = self.admin_site.admin_view
        own = [
            path(route, view(page), name=f"markets_market_{name}") for name, route, page in pages
        ]
        return own + super().get_urls()

    def download_view(
        self, download: MarketDownload, request: HttpRequest, object_id: int
    ) -> HttpResponseBase:
        """A file another app offers about one market (`markets.admin_hooks`), for staff who
        may view the market."""
        market = market_or_404(object_id)
        if not self.has_view_permission(request, market):
            raise PermissionDenied
        return download.view(request, market)

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
                "can_resolve": self.has_resolve_permission(request) and market.status in DECIDABLE,
                "can_review": self.has_resolve_permission(request)
                and market.status == Market.Status.RESOLVING,
                "review_url": reverse("admin:markets_market_review", args=[pk]),
                "can_cancel": self.has_cancel_permission(request) and not market.is_settled,
                "can_close": self.has_close_permission(request)
                and market.status == Market.Status.OPEN,
                "resolve_url": reverse("admin:markets_market_resolve", args=[pk]),
                "cancel_url": f"{reverse('admin:markets_market_cancel')}?ids={pk}",
                "close_url": f"{reverse('admin:markets_market_close')}?ids={pk}",
                "downloads": [
                    (d.label, reverse(f"admin:markets_market_{d.name}", args=[pk]))
                    for d in market_downloads()
                ],
                "audit_url": f"{reverse('admin:points_auditevent_changelist')}"
                f"?target_type=market&target_id={pk}",
            }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})
