"""Accounts, read-only (DOMAIN §3): wallets, market escrows, the treasury; the action that opens a
wallet's adjust-balance page, and the member pages' URLs (`member_pages`)."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import Exists, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from core.adminkit import (
    ActionPermissionMixin,
    MemberNameSearchMixin,
    ReadOnlyAdmin,
    guild_label,
    market_link,
    member_link,
    member_url,
)

from .. import selectors
from ..models import Account
from . import member_pages


@admin.register(Account)
class AccountAdmin(MemberNameSearchMixin, ActionPermissionMixin, ReadOnlyAdmin):
    list_display = ("id", "guild", "kind", "holder", "balance", "created_at")
    list_filter = ("kind", "guild_id")
    search_fields = ("=owner_id", "=id", "=market__id")
    search_help_text = "Search a member's display name or username, a Discord id or an account id."
    list_select_related = ("market",)
    ordering = ("-id",)
    actions = ["adjust_balance"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = (
            super()
            .get_queryset(request)
            .annotate(
                member_name=selectors.member_name_subquery(
                    guild_field="guild_id", user_field="owner_id"
                ),
                guild_name=selectors.guild_name_subquery(guild_field="guild_id"),
            )
        )
        return queryset

    def member_name_filter(self, text: str) -> Q | Exists:
        return selectors.member_name_matches(
            text=text, guild_field="guild_id", user_field="owner_id"
        )

    @admin.display(description="server", ordering="guild_id")
    def guild(self, obj: Account) -> str:
        return guild_label(obj.guild_id, getattr(obj, "guild_name", None))

    @admin.display(description="holder")
    def holder(self, obj: Account) -> str:
        if obj.kind == Account.Kind.WALLET:
            return member_link(obj.guild_id, obj.owner_id, getattr(obj, "member_name", None))
        if obj.kind == Account.Kind.ESCROW:
            return market_link(obj.market_id, f"market #{obj.market_id}")
        if obj.kind == Account.Kind.DRIP:
            return "DRIP clearing"
        circulating = -obj.balance
        return format_html(
            '<span title="{}">treasury · points in circulation: {}</span>',
            "The treasury issues every point (starting balances, daily bonuses, grants) and "
            "takes back deductions and fees, so its balance is minus the points members and "
            "markets hold.",
            f"{circulating:,}",
        )

    def has_adjust_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("points.adjust_balance")

    @admin.action(permissions=["adjust"], description="Adjust balance of the selected wallet…")
    def adjust_balance(
        self, request: HttpRequest, queryset: QuerySet[Account]
    ) -> HttpResponse | None:
        wallets = list(queryset[:2])
        if len(wallets) != 1 or wallets[0].kind != Account.Kind.WALLET:
            self.message_user(
                request, "Select exactly one wallet to adjust its balance.", messages.WARNING
            )
            return None
        w = wallets[0]
        return HttpResponseRedirect(reverse("admin:points_adjust", args=[w.guild_id, w.owner_id]))

    def get_urls(self) -> list[URLPattern]:
        """A member's page and its adjust-balance page (`member_pages`)."""
        view = self.admin_site.admin_view
        member_page = view(partial(member_pages.member_view, self))
        adjust_page = view(partial(member_pages.adjust_view, self))
        member = "member/<int:guild_id>/<int:user_id>/"
        return [
            path(member, member_page, name="points_member"),
            path(f"{member}adjust/", adjust_page, name="points_adjust"),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        account = Account.objects.filter(pk=unquote(object_id)).first()
        extra: dict[str, str | None] = {"member_url": None}
        if account is not None and account.kind == Account.Kind.WALLET and account.owner_id:
            extra["member_url"] = member_url(account.guild_id, account.owner_id)
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})
