"""The market outbox and the members' disputes, read-only lists."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.text import Truncator

from core.adminkit import ReadOnlyAdmin, market_link, member_link
from points.selectors import member_name_subquery

from ..models import Dispute, MarketEvent


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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = (
            super()
            .get_queryset(request)
            .select_related("market")
            .annotate(
                member_name=member_name_subquery(
                    guild_field="market__guild_id", user_field="user_id"
                )
            )
        )
        return queryset

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
