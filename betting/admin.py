"""Positions and trades, read-only (issue 5): the full lists behind the market page's inlines,
filterable by market (`?market=<id>`) and member."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Exists, Q, QuerySet
from django.http import HttpRequest

from core.adminkit import (
    MemberNameSearchMixin,
    ReadOnlyAdmin,
    market_link,
    member_link,
    member_section_register,
    shares_cell,
)
from points.selectors import member_name_matches, member_name_subquery

from . import selectors
from .models import Position, Trade


def _member_positions(guild_id: int, user_id: int) -> dict[str, Any]:
    """The member page's positions (`admin/points/member.html`), valued by `position_value`."""
    portfolio = selectors.portfolio_get(guild_id=guild_id, user_id=user_id, limit=100)
    return {
        "portfolio": portfolio,
        "positions": [(p, shares_cell(p.shares)) for p in portfolio.positions],
    }


member_section_register(_member_positions)


@admin.register(Position)
class PositionAdmin(MemberNameSearchMixin, ReadOnlyAdmin):
    list_display = (
        "id",
        "market_column",
        "member",
        "outcome",
        "shares_display",
        "points_spent",
        "points_received",
        "payout",
        "updated_at",
    )
    list_filter = ("guild_id",)
    search_fields = ("=user_id", "=market__id")
    list_select_related = ("outcome",)
    ordering = ("-id",)
    search_help_text = "Search a member's name or Discord id, or a market number."

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_name=member_name_subquery(guild_field="guild_id", user_field="user_id")
            )
        )

    def member_name_filter(self, text: str) -> Q | Exists:
        return member_name_matches(text=text, guild_field="guild_id", user_field="user_id")

    @admin.display(description="market", ordering="market_id")
    def market_column(self, obj: Position) -> str:
        return market_link(obj.market_id)

    @admin.display(description="member", ordering="user_id")
    def member(self, obj: Position) -> str:
        return member_link(obj.guild_id, obj.user_id, getattr(obj, "member_name", None))

    @admin.display(description="shares", ordering="shares")
    def shares_display(self, obj: Position) -> str:
        return shares_cell(obj.shares)


@admin.register(Trade)
class TradeAdmin(MemberNameSearchMixin, ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "market_column",
        "member",
        "kind",
        "outcome",
        "amount",
        "fee",
        "shares_display",
        "idempotency_key",
    )
    list_filter = ("kind", "guild_id")
    search_fields = ("=user_id", "=market__id", "idempotency_key")
    list_select_related = ("outcome",)
    ordering = ("-id",)
    search_help_text = "Search a member's name or Discord id, or a market number."

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_name=member_name_subquery(guild_field="guild_id", user_field="user_id")
            )
        )

    def member_name_filter(self, text: str) -> Q | Exists:
        return member_name_matches(text=text, guild_field="guild_id", user_field="user_id")

    date_hierarchy = "created_at"

    @admin.display(description="market", ordering="market_id")
    def market_column(self, obj: Trade) -> str:
        return market_link(obj.market_id)

    @admin.display(description="member", ordering="user_id")
    def member(self, obj: Trade) -> str:
        return member_link(obj.guild_id, obj.user_id, getattr(obj, "member_name", None))

    @admin.display(description="shares", ordering="shares")
    def shares_display(self, obj: Trade) -> str:
        return shares_cell(obj.shares)
