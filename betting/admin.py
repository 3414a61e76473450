"""Positions and trades, read-only (issue 5): the full lists behind the market page's inlines,
filterable by market (`?market=<id>`) and member."""

from __future__ import annotations

from django.contrib import admin

from markets.admin import market_link
from markets.admin_views import format_shares
from points.admin import ReadOnlyAdmin, member_link

from .models import Position, Trade


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
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

    @admin.display(description="market", ordering="market_id")
    def market_column(self, obj: Position) -> str:
        return market_link(obj.market_id)

    @admin.display(description="member", ordering="user_id")
    def member(self, obj: Position) -> str:
        return member_link(obj.guild_id, obj.user_id)

    @admin.display(description="shares", ordering="shares")
    def shares_display(self, obj: Position) -> str:
        return format_shares(obj.shares)


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
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
    date_hierarchy = "created_at"

    @admin.display(description="market", ordering="market_id")
    def market_column(self, obj: Trade) -> str:
        return market_link(obj.market_id)

    @admin.display(description="member", ordering="user_id")
    def member(self, obj: Trade) -> str:
        return member_link(obj.guild_id, obj.user_id)

    @admin.display(description="shares", ordering="shares")
    def shares_display(self, obj: Trade) -> str:
        return format_shares(obj.shares)
