"""The back office's "DRIP transfers" page (docs/drip.md): every transfer, read-only, and for an
in-doubt one a page where a moderator who checked DRIP decides **Confirm applied** or
**Reverse** (audited by the service; Django's `LogEntry` too). DRIP links are listed without
their API key: the form never contains it, not even encrypted."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core.adminkit import ConfirmForm, ReadOnlyAdmin, reason_field
from points.errors import DomainError

from . import services
from .admin_columns import GuildFilter, TransferColumns
from .models import DripLink, DripTransfer

APPLIED, REVERSE = "applied", "reverse"


class ResolveForm(ConfirmForm):
    decision = forms.ChoiceField(
        choices=[
            (APPLIED, "Confirm applied — DRIP shows the change"),
            (REVERSE, "Reverse — DRIP does not show the change"),
        ],
        widget=forms.RadioSelect,
    )
    reason = reason_field()


@admin.register(DripLink)
class DripLinkAdmin(ReadOnlyAdmin):
    list_display = (
        "guild_id",
        "realm_id",
        "realm_point_id",
        "deposit_limit_per_day",
        "withdraw_limit_per_day",
        "enabled",
        "last_error",
        "updated_at",
    )
    fields = (
        "guild_id",
        "realm_id",
        "realm_point_id",
        "api_key",
        "deposit_limit_per_day",
        "withdraw_limit_per_day",
        "enabled",
        "last_error",
        "linked_by",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="API key")
    def api_key(self, obj: DripLink) -> str:
        return "stored encrypted (never shown)" if obj.api_key_encrypted else "—"


@admin.register(DripTransfer)
class DripTransferAdmin(TransferColumns, ReadOnlyAdmin):
    list_display = (  # names, not ids, and short cells: it fits at 1366 px (issue 23)
        "id",
        "server",
        "member_name",
        "points",
        "status_badge",
        "tries",
        "error",
        "created",
        "decide",
    )
    list_filter = ("status", "direction", GuildFilter)
    search_fields = ("=id", "=user_id", "=guild_id", "batch_id", "request_id")
    ordering = ("-id",)
    # The in-doubt evidence (initiatorId, DRIP balance before and as re-checked) is on the
    # transfer's own page and the decision page; the list stays narrow enough for 1366 px.
    readonly_fields = [*(f.name for f in DripTransfer._meta.fields), "evidence"]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: DripTransfer) -> str:
        if obj.status == DripTransfer.Status.IN_DOUBT:
            return format_html("<strong>{}</strong>", "in doubt")
        return obj.get_status_display()

    @admin.display(description="DRIP evidence")
    def evidence(self, obj: DripTransfer) -> str:
        """For an in-doubt row: the initiatorId to look up in DRIP's activity log, and the
        member's DRIP balance before the send and as re-checked after."""
        if obj.status != DripTransfer.Status.IN_DOUBT and not obj.initiator_id:
            return ""
        before = "unknown" if obj.drip_balance_before is None else f"{obj.drip_balance_before:,}"
        return format_html(
            "initiatorId <code>{}</code>; balance before {}; {}",
            obj.initiator_id or "—",
            before,
            obj.recheck_note or "not re-checked yet",
        )

    @admin.display(description="")
    def decide(self, obj: DripTransfer) -> str:
        if obj.status != DripTransfer.Status.IN_DOUBT:
            return ""
        url = reverse("admin:drip_driptransfer_resolve", args=[obj.pk])
        return format_html('<a class="button" href="{}">Decide…</a>', url)

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("drip.resolve_driptransfer")

    def get_urls(self) -> list:
        urls = super().get_urls()
        view = self.admin_site.admin_view(self.resolve_view)
        return [path("<int:pk>/resolve/", view, name="drip_driptransfer_resolve"), *urls]

    def resolve_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_resolve_permission(request):
            raise PermissionDenied
        row = get_object_or_404(DripTransfer, pk=pk)
        changelist = reverse("admin:drip_driptransfer_changelist")
        form = ResolveForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            applied = form.cleaned_data["decision"] == APPLIED
            try:
                row = services.drip_transfer_resolve(
                    transfer_id=row.pk,
                    applied=applied,
                    reason=form.cleaned_data["reason"],
                    actor_user_id=request.user.pk,
                    idempotency_key=form.request_key(),
                )
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return HttpResponseRedirect(changelist)
            assert request.user.pk is not None  # the admin site lets only signed-in staff in
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=[row],
                action_flag=CHANGE,
                change_message=f"DRIP transfer {'confirmed applied' if applied else 'reversed'}: "
                f"{form.cleaned_data['reason']}",
                single_object=True,
            )
            self.message_user(
                request,
                f"DRIP transfer #{row.pk} is now {row.get_status_display()} ({row.resolution}).",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(changelist)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Decide DRIP transfer #{row.pk}",
            "row": row,
            "form": form,
            "changelist_url": changelist,
            "content_type": ContentType.objects.get_for_model(DripTransfer),
        }
        return TemplateResponse(request, "admin/drip/driptransfer/resolve.html", context)


def _text_safe_auth_admins() -> None:
    """Issue 27 item 5 asks every changelist to refuse a NUL with 400; Django's own User and
    Group admins are the two the project's admins do not define. They get the same mixin here,
    the last app to load its admin (the lead may move this beside `core.adminkit`)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from core.adminkit import TextSafeChangelistMixin

    for model in (get_user_model(), Group):
        current = admin.site._registry.get(model)
        if current is None or isinstance(current, TextSafeChangelistMixin):
            continue
        safe = type(
            f"TextSafe{type(current).__name__}", (TextSafeChangelistMixin, type(current)), {}
        )
        admin.site.unregister(model)
        admin.site.register(model, safe)


_text_safe_auth_admins()
