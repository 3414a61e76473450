"""The DRIP transfers list's columns that name people and servers (issue 23 item 11): the
member's and the server's names from the directory, as the other back-office lists show them
(`core.adminkit.member_link` / `guild_label`), in one query for the page, and short cells so
the list fits a 1366-px screen."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.text import Truncator

from core import adminkit
from core.adminkit import AnyModelAdmin, guild_label, member_link
from points.selectors import guild_name_subquery, guild_names, member_name_subquery

from .models import DripTransfer


class TransferColumns(AnyModelAdmin):
    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = (
            super()
            .get_queryset(request)
            .annotate(
                guild_name=guild_name_subquery(guild_field="guild_id"),
                member_name=member_name_subquery(guild_field="guild_id", user_field="user_id"),
            )
        )
        return queryset

    @admin.display(description="server", ordering="guild_id")
    def server(self, obj: DripTransfer) -> str:
        return guild_label(obj.guild_id, getattr(obj, "guild_name", None))

    @admin.display(description="member", ordering="user_id")
    def member_name(self, obj: DripTransfer) -> str:
        return member_link(obj.guild_id, obj.user_id, getattr(obj, "member_name", None))

    @admin.display(description="points", ordering="amount")
    def points(self, obj: DripTransfer) -> str:
        """The amount and its direction in one cell ("512 to DRIP"), one column fewer."""
        way = "to" if obj.direction == DripTransfer.Direction.WITHDRAW else "from"
        return format_html(
            '<span style="white-space: nowrap">{} {} DRIP</span>', f"{obj.amount:,}", way
        )

    @admin.display(description="error", ordering="error_code")
    def error(self, obj: DripTransfer) -> str:
        if not obj.error_code:
            return "—"
        return format_html(
            '<span title="{}">{}</span>',
            obj.error_message or obj.error_code,
            Truncator(obj.error_code).chars(16),
        )

    @admin.display(description="tries", ordering="attempts")
    def tries(self, obj: DripTransfer) -> int:
        return obj.attempts

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: DripTransfer) -> str:
        return format_html(
            '<span title="{} UTC" style="white-space: nowrap">{}</span>',
            f"{obj.created_at:%Y-%m-%d %H:%M:%S}",
            f"{obj.created_at:%m-%d %H:%M}",
        )


class GuildFilter(adminkit.GuildFilter):
    """Servers by name, not by 18-digit id (as the market list's filter)."""

    model = DripTransfer

    def guild_names(self, guild_ids: Iterable[int]) -> dict[int, str]:
        return guild_names(guild_ids=guild_ids)
