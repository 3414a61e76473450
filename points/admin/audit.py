"""The audit log, read-only: who did what, when and why, filterable, and exported as CSV with the
current filters."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path
from django.utils.html import format_html
from django.utils.text import Truncator

from core.adminkit import (
    ReadOnlyAdmin,
    guild_label,
    keyset_chunks,
    market_link,
    member_link,
    stream_csv,
)
from core.directory import member_fallback

from .. import selectors
from ..errors import id_from_text
from ..models import AuditEvent


class ActorKindFilter(admin.SimpleListFilter):
    title = "actor"
    parameter_name = "actor"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("admin", "Admin user"), ("discord", "Discord member"), ("system", "System")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "admin":
            return queryset.filter(actor_user__isnull=False)
        if self.value() == "discord":
            return queryset.filter(actor_user__isnull=True, actor_discord_id__isnull=False)
        if self.value() == "system":
            return queryset.filter(actor_user__isnull=True, actor_discord_id__isnull=True)
        return queryset


AUDIT_CSV_HEADER = (
    "id",
    "created_at",
    "guild_id",
    "actor_kind",
    "actor_discord_id",
    "actor_name",
    "actor_user",
    "action",
    "target_type",
    "target_id",
    "reason",
    "idempotency_key",
    "before",
    "after",
)


def _audit_csv_row(e: AuditEvent) -> tuple[object, ...]:
    kind = "admin" if e.actor_user_id else "discord" if e.actor_discord_id else "system"
    return (
        e.pk,
        e.created_at.isoformat(),
        e.guild_id,
        kind,
        e.actor_discord_id,
        (getattr(e, "actor_name", None) or member_fallback(e.actor_discord_id))
        if e.actor_discord_id
        else "",
        str(e.actor_user) if e.actor_user_id else "",
        e.action,
        e.target_type,
        e.target_id,
        e.reason,
        e.idempotency_key,
        json.dumps(e.before, sort_keys=True),
        json.dumps(e.after, sort_keys=True),
    )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Who did what, when and why. The export streams the rows the current filters select."""

    list_display = (  # short cells, so the list fits at 1366 px beside its filters
        "id",
        "when",
        "action",
        "target",
        "actor",
        "reason_short",
        "server",
    )
    list_filter = ("action", "target_type", ActorKindFilter, "guild_id", "created_at")
    search_fields = (
        "target_id",
        "reason",
        "idempotency_key",
        "=actor_discord_id",
        "actor_user__username",
    )
    list_select_related = ("actor_user",)
    date_hierarchy = "created_at"
    readonly_fields = ("before_pretty", "after_pretty")
    fields = (
        "created_at",
        "guild_id",
        "actor_discord_id",
        "actor_user",
        "action",
        "target_type",
        "target_id",
        "reason",
        "idempotency_key",
        "before_pretty",
        "after_pretty",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = (
            super()
            .get_queryset(request)
            .annotate(
                actor_name=selectors.member_name_subquery(
                    guild_field="guild_id", user_field="actor_discord_id"
                ),
                guild_name=selectors.guild_name_subquery(guild_field="guild_id"),
            )
        )
        return queryset

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        """Name the members the page's wallet targets are (one directory query per server on
        the page; `target_id` is text, so no join)."""
        changelist = super().get_changelist_instance(request)
        wanted: dict[int, set[int]] = {}
        for event in changelist.result_list:
            user_id = id_from_text(event.target_id) if event.target_type == "wallet" else None
            if user_id and event.guild_id:
                wanted.setdefault(event.guild_id, set()).add(user_id)
        names: dict[tuple[int, int | None], str] = {
            (guild_id, user_id): name
            for guild_id, users in wanted.items()
            for user_id, name in selectors.member_names(guild_id=guild_id, user_ids=users).items()
        }
        for event in changelist.result_list:
            event.target_name = names.get((event.guild_id, id_from_text(event.target_id)))
        return changelist

    @admin.display(description="actor")
    def actor(self, obj: AuditEvent) -> str:
        if obj.actor_user:
            return obj.actor_user.get_username()
        if obj.actor_discord_id and obj.guild_id:
            return member_link(obj.guild_id, obj.actor_discord_id, getattr(obj, "actor_name", None))
        return obj.actor_label

    @admin.display(description="target", ordering="target_id")
    def target(self, obj: AuditEvent) -> str:
        if obj.target_type == "market" and (market_id := id_from_text(obj.target_id)):
            return market_link(market_id, f"market #{obj.target_id}")
        if obj.target_type == "wallet" and id_from_text(obj.target_id) and obj.guild_id:
            return member_link(obj.guild_id, int(obj.target_id), getattr(obj, "target_name", None))
        return f"{obj.target_type}:{obj.target_id}"

    @admin.display(description="reason", ordering="reason")
    def reason_short(self, obj: AuditEvent) -> str:
        """One line of at most 30 characters, so the list fits at 1366 px; the whole reason in
        the tooltip and on the event's page."""
        if not obj.reason:
            return "—"
        short = Truncator(" ".join(obj.reason.split())).chars(30)
        return format_html(
            '<span title="{}" style="white-space: nowrap">{}</span>', obj.reason, short
        )

    @admin.display(description="when", ordering="created_at")
    def when(self, obj: AuditEvent) -> str:
        return format_html(
            '<span style="white-space: nowrap">{}</span>', f"{obj.created_at:%Y-%m-%d %H:%M}"
        )

    @admin.display(description="server", ordering="guild_id")
    def server(self, obj: AuditEvent) -> str:
        return guild_label(obj.guild_id, getattr(obj, "guild_name", None))

    @admin.display(description="before")
    def before_pretty(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.before, indent=2, sort_keys=True))

    @admin.display(description="after")
    def after_pretty(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.after, indent=2, sort_keys=True))

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_view),
                name="points_auditevent_export",
            ),
            *super().get_urls(),
        ]

    def export_view(self, request: HttpRequest) -> HttpResponseBase:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            raise Http404("Those filters are not valid.") from None
        queryset = changelist.get_queryset(request).select_related("actor_user")
        return stream_csv(
            request,
            filename="audit-log.csv",
            header=AUDIT_CSV_HEADER,
            chunks=keyset_chunks(queryset),
            row=_audit_csv_row,
        )
