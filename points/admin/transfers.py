"""Transfers, read-only (DOMAIN §3): the ledger's every movement, searchable by member."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Exists, Q, QuerySet
from django.http import HttpRequest

from core.adminkit import MemberNameSearchMixin, ReadOnlyAdmin, market_link, member_link

from .. import selectors
from ..models import Account, Transfer


def _account_cell(account: Account, name: str | None) -> str:
    if account.kind == Account.Kind.WALLET:
        return member_link(account.guild_id, account.owner_id, name)
    if account.kind == Account.Kind.ESCROW:
        return market_link(account.market_id, f"escrow of market #{account.market_id}")
    return "treasury"


@admin.register(Transfer)
class TransferAdmin(MemberNameSearchMixin, ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "code",
        "amount",
        "source_cell",
        "destination_cell",
        "market",
        "actor",
        "memo",
        "idempotency_key",
    )
    list_filter = ("code", "guild_id")
    search_fields = ("=source__owner_id", "=destination__owner_id", "idempotency_key", "=id")
    search_help_text = "Search a member's name or Discord id, an idempotency key or a transfer id."
    list_select_related = ("source", "destination", "actor_user")
    ordering = ("-id",)
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = (
            super()
            .get_queryset(request)
            .annotate(
                source_name=selectors.member_name_subquery(
                    guild_field="source__guild_id", user_field="source__owner_id"
                ),
                destination_name=selectors.member_name_subquery(
                    guild_field="destination__guild_id", user_field="destination__owner_id"
                ),
                actor_name=selectors.member_name_subquery(
                    guild_field="guild_id", user_field="actor_id"
                ),
            )
        )
        return queryset

    def member_name_filter(self, text: str) -> Q | Exists:
        return selectors.member_name_matches(
            text=text, guild_field="guild_id", user_field="source__owner_id"
        ) | selectors.member_name_matches(
            text=text, guild_field="guild_id", user_field="destination__owner_id"
        )

    @admin.display(description="from", ordering="source_id")
    def source_cell(self, obj: Transfer) -> str:
        return _account_cell(obj.source, getattr(obj, "source_name", None))

    @admin.display(description="to", ordering="destination_id")
    def destination_cell(self, obj: Transfer) -> str:
        return _account_cell(obj.destination, getattr(obj, "destination_name", None))

    @admin.display(description="actor")
    def actor(self, obj: Transfer) -> str:
        if obj.actor_user_id:
            return str(obj.actor_user)
        if obj.actor_id:
            return member_link(obj.guild_id, obj.actor_id, getattr(obj, "actor_name", None))
        return "—"
