"""Positions and trades, read-only (issue 5): the full lists behind the market page's inlines,
filterable by market (`?market=<id>`) and member."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin
from django.db.models import Exists, Q, QuerySet
from django.http import HttpRequest

from core.adminkit import (
    MemberNameSearchMixin,
    ReadOnlyAdmin,
    market_link,
    member_link,
    shares_cell,
)
from points.selectors import member_name_matches, member_name_subquery

from ..models import Order, Position, Trade, TradeReversal


def reversal_of(trade: Trade) -> TradeReversal | None:
    """The trade's reversal mark (docs/domain.md §6.2), if settlement reversed it; select
    `reversal` with the trades so that a list of them costs no query per row."""
    try:
        return trade.reversal
    except TradeReversal.DoesNotExist:
        return None


def reversed_cell(trade: Trade) -> str:
    """When settlement reversed `trade`, or "—"."""
    mark = reversal_of(trade)
    return "—" if mark is None else f"{mark.reversed_at:%Y-%m-%d %H:%M:%S} UTC"


class MemberRowsAdmin(MemberNameSearchMixin, ReadOnlyAdmin):
    """A list of one member's rows in one market each (a position, a trade), searchable by the
    member's name."""

    list_select_related: ClassVar[tuple[str, ...]] = ("outcome",)
    ordering = ("-id",)
    search_help_text = "Search a member's name or Discord id, or a market number."

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = (
            super()
            .get_queryset(request)
            .annotate(
                member_name=member_name_subquery(guild_field="guild_id", user_field="user_id")
            )
        )
        return queryset

    def member_name_filter(self, text: str) -> Q | Exists:
        return member_name_matches(text=text, guild_field="guild_id", user_field="user_id")

    @admin.display(description="market", ordering="market_id")
    def market_column(self, obj: Position | Trade) -> str:
        return market_link(obj.market_id)

    @admin.display(description="member", ordering="user_id")
    def member(self, obj: Position | Trade) -> str:
        return member_link(obj.guild_id, obj.user_id, getattr(obj, "member_name", None))

    @admin.display(description="shares", ordering="shares")
    def shares_display(self, obj: Position | Trade) -> str:
        return shares_cell(obj.shares)


@admin.register(Position)
class PositionAdmin(MemberRowsAdmin):
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


@admin.register(Trade)
class TradeAdmin(MemberRowsAdmin):
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
        "reversed_display",
        "idempotency_key",
    )
    list_select_related = ("outcome", "reversal")
    list_filter = ("kind", "guild_id")
    search_fields = ("=user_id", "=market__id", "idempotency_key")
    date_hierarchy = "created_at"

    @admin.display(description="reversed")
    def reversed_display(self, obj: Trade) -> str:
        return reversed_cell(obj)


@admin.register(Order)
class OrderAdmin(MemberRowsAdmin):
    """Limit orders (DOMAIN §4.7): resting, filled and released, read-only."""

    list_display = (
        "id",
        "created_at",
        "market_column",
        "member",
        "side",
        "outcome",
        "limit_display",
        "size_display",
        "remaining_display",
        "fills",
        "status",
        "expires_at",
    )
    list_filter = ("status", "side", "guild_id")
    search_fields = ("=user_id", "=market__id", "idempotency_key")
    date_hierarchy = "created_at"

    @admin.display(description="limit", ordering="limit_ppm")
    def limit_display(self, obj: Order) -> str:
        return order_limit(obj)

    @admin.display(description="size")
    def size_display(self, obj: Order) -> str:
        return order_amount(obj, obj.size)

    @admin.display(description="waiting")
    def remaining_display(self, obj: Order) -> str:
        return order_amount(obj, obj.remaining)


def order_limit(order: Order) -> str:
    """ "≤ 40.0 %" for a buy order, "≥ 80.0 %" for a sell order."""
    return f"{'≤' if order.side == Order.Side.BUY else '≥'} {order.limit_ppm / 10_000:.1f} %"


def order_amount(order: Order, value: int) -> str:
    """Points for a buy order's budget, shares for a sell order's reservation."""
    return f"{value:,} pts" if order.side == Order.Side.BUY else shares_cell(value)
