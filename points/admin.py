"""The ledger in the back office (issue 5). Accounts, transfers and audit events are read-only
(DOMAIN §3); balances change only through the adjust-balance page, which calls the points
services. Every member has a page with their wallet, positions and transfer history."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters, csrf_protect_m
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, Q, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core.adminkit import (
    ActionPermissionMixin,
    MemberNameSearchMixin,
    ReadOnlyAdmin,
    TextSafeChangelistMixin,
    guild_label,
    member_link,
    member_sections,
    member_url,
)
from core.directory import member_fallback

from . import selectors, services
from .admin_views import AdjustBalanceForm, keyset_chunks, stream_csv
from .errors import (
    MSG_DEDUCT_TOO_MUCH,
    MSG_INVALID_ID,
    DomainError,
    InsufficientPoints,
    id_from_text,
    validate_snowflake,
)
from .models import Account, AuditEvent, Guild, GuildSettings, Member, StaffLink, Transfer
from .rules import SETTINGS, Action, Actor, SettingSpec, setting_check
from .rules.permissions import ADMIN_PERMISSIONS

HISTORY_PAGE = 50


@admin.register(Account)
class AccountAdmin(MemberNameSearchMixin, ActionPermissionMixin, ReadOnlyAdmin):
    list_display = ("id", "guild", "kind", "holder", "balance", "created_at")
    list_filter = ("kind", "guild_id")
    search_fields = ("=owner_id", "=id", "=market__id")
    search_help_text = "Search a member's display name or username, a Discord id or an account id."
    list_select_related = ("market",)
    ordering = ("-id",)
    actions = ["adjust_balance"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_name=selectors.member_name_subquery(
                    guild_field="guild_id", user_field="owner_id"
                ),
                guild_name=selectors.guild_name_subquery(guild_field="guild_id"),
            )
        )

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
            url = reverse("admin:markets_market_change", args=[obj.market_id])
            return format_html('<a href="{}">market #{}</a>', url, obj.market_id)
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

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path(
                "member/<int:guild_id>/<int:user_id>/",
                view(self.member_view),
                name="points_member",
            ),
            path(
                "member/<int:guild_id>/<int:user_id>/adjust/",
                view(self.adjust_view),
                name="points_adjust",
            ),
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

    def member_view(self, request: HttpRequest, guild_id: int, user_id: int) -> HttpResponse:
        """A member's wallet, positions, transfer history and the audit trail about them."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        wallet = Account.objects.filter(
            guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id
        ).first()
        before = request.GET.get("before")
        before_id = id_from_text(before)
        history = selectors.transfers_for_user(
            guild_id=guild_id, user_id=user_id, limit=HISTORY_PAGE + 1, before_id=before_id
        )
        older = history[HISTORY_PAGE - 1].transfer_id if len(history) > HISTORY_PAGE else None
        audit = AuditEvent.objects.filter(
            guild_id=guild_id, target_type="wallet", target_id=str(user_id)
        ).select_related("actor_user")[:20]
        directory = selectors.member_get(guild_id=guild_id, user_id=user_id)
        name = selectors.member_names(guild_id=guild_id, user_ids=[user_id])[user_id]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Member: {name}",
            "member_name": name,
            "directory": directory,
            "guild_name": selectors.guild_names(guild_ids=[guild_id])[guild_id],
            "guild_id": guild_id,
            "user_id": user_id,
            "wallet": wallet,
            **member_sections(guild_id, user_id),
            "history": history[:HISTORY_PAGE],
            "older_before": older,
            "newest_url": request.path if before_id else None,
            "audit": audit,
            "can_adjust": self.has_adjust_permission(request),
            "adjust_url": reverse("admin:points_adjust", args=[guild_id, user_id]),
        }
        return TemplateResponse(request, "admin/points/member.html", context)

    def adjust_view(self, request: HttpRequest, guild_id: int, user_id: int) -> HttpResponse:
        """Grant or deduct points with a reason through `points_grant` / `points_deduct`; the
        service writes the audit event, this writes Django's `LogEntry`."""
        if not self.has_adjust_permission(request):
            raise PermissionDenied
        back = member_url(guild_id, user_id)
        name = selectors.member_names(guild_id=guild_id, user_ids=[user_id])[user_id]
        form = AdjustBalanceForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            key = form.request_key()
            if Transfer.objects.filter(idempotency_key=key).exists():
                self.message_user(
                    request, "This adjustment was already submitted; nothing more was done."
                )
                return HttpResponseRedirect(back)
            data = form.cleaned_data
            service = (
                services.points_grant
                if data["direction"] == AdjustBalanceForm.GRANT
                else services.points_deduct
            )
            try:
                transfer = service(
                    guild_id=guild_id,
                    user_id=user_id,
                    amount=data["amount"],
                    reason=data["reason"],
                    actor=Actor.from_user(request.user),
                    idempotency_key=key,
                )
            except InsufficientPoints as exc:
                # Only a deduction can overdraw: answer the moderator, not the member.
                balance = exc.details.get("balance", 0)
                self.message_user(
                    request, MSG_DEDUCT_TOO_MUCH.format(balance=balance), messages.ERROR
                )
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                wallet = Account.objects.get(
                    guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id
                )
                verb = "Granted" if transfer.code == Transfer.Code.GRANT else "Deducted"
                summary = f"{verb} {transfer.amount:,} points: {data['reason']}"
                self.log_change(request, wallet, summary)
                self.message_user(
                    request,
                    f"{summary}. New balance: {wallet.balance:,} points.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(back)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Adjust the balance of {name}",
            "member_name": name,
            "guild_name": selectors.guild_names(guild_ids=[guild_id])[guild_id],
            "form": form,
            "guild_id": guild_id,
            "user_id": user_id,
            "balance": selectors.balance_get(guild_id=guild_id, user_id=user_id),
            "member_url": back,
        }
        return TemplateResponse(request, "admin/points/account/adjust_balance.html", context)


def _account_cell(account: Account, name: str | None) -> str:
    if account.kind == Account.Kind.WALLET:
        return member_link(account.guild_id, account.owner_id, name)
    if account.kind == Account.Kind.ESCROW:
        url = reverse("admin:markets_market_change", args=[account.market_id])
        return format_html('<a href="{}">escrow of market #{}</a>', url, account.market_id)
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

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
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


class ActorKindFilter(admin.SimpleListFilter):
    title = "actor"
    parameter_name = "actor"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("admin", "Admin user"), ("discord", "Discord member"), ("system", "System")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
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


def _audit_csv_row(e: AuditEvent) -> tuple:
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

    list_display = (
        "id",
        "created_at",
        "action",
        "target",
        "actor",
        "reason",
        "guild_id",
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

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                actor_name=selectors.member_name_subquery(
                    guild_field="guild_id", user_field="actor_discord_id"
                )
            )
        )

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
        if obj.target_type == "market" and id_from_text(obj.target_id):
            url = reverse("admin:markets_market_change", args=[obj.target_id])
            return format_html('<a href="{}">market #{}</a>', url, obj.target_id)
        if obj.target_type == "wallet" and id_from_text(obj.target_id) and obj.guild_id:
            return member_link(obj.guild_id, int(obj.target_id), getattr(obj, "target_name", None))
        return f"{obj.target_type}:{obj.target_id}"

    @admin.display(description="before")
    def before_pretty(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.before, indent=2, sort_keys=True))

    @admin.display(description="after")
    def after_pretty(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.after, indent=2, sort_keys=True))

    def get_urls(self) -> list:
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


MSG_ROLE_IDS = (
    "Enter a list of Discord role ids (positive whole numbers), e.g. [123456789012345678], "
    "or [] for none."
)


def _setting_field(spec: SettingSpec, model_field: Any) -> forms.Field:
    """A form field for one setting of the table: any value outside it is a field error in the
    words of `setting_check`, as `/settings` and the service say it."""

    def check(value: object) -> None:
        try:
            setting_check(spec.name, value)
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None

    common: dict[str, Any] = {
        "label": spec.title[:1].upper() + spec.title[1:],
        "help_text": model_field.help_text or spec.message,
        "validators": [check],
    }
    if spec.kind == "bool":
        return forms.BooleanField(required=False, **common)
    messages = {"required": spec.message, "invalid": spec.message, "invalid_choice": spec.message}
    if spec.kind == "choice":
        return forms.ChoiceField(choices=spec.choices, error_messages=messages, **common)
    return forms.IntegerField(error_messages=messages, **common)


class GuildSettingsForm(forms.ModelForm):
    """Every setting of the table in `points/rules/settings.py` is checked by the table, with its
    words. Role lists hold Discord role ids (ints, as the bot's settings command stores them).
    Any other JSON — a string with a NUL, which PostgreSQL's jsonb refuses, a nested object — is
    a form error, not a 500."""

    class Meta:
        model = GuildSettings
        fields = (
            "guild_id",
            *(spec.name for spec in SETTINGS),
            "creator_role_ids",
            "resolver_role_ids",
            "announce_channel_id",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for spec in SETTINGS:
            if spec.name in self.fields:
                self.fields[spec.name] = _setting_field(
                    spec, GuildSettings._meta.get_field(spec.name)
                )

    def _snowflake(self, name: str) -> int | None:
        value = self.cleaned_data.get(name)
        if value is not None and not 0 < value < 2**63:
            raise forms.ValidationError(MSG_INVALID_ID)
        return value

    def clean_guild_id(self) -> int | None:
        return self._snowflake("guild_id")

    def clean_announce_channel_id(self) -> int | None:
        return self._snowflake("announce_channel_id")

    def _role_ids(self, name: str) -> list[int]:
        value = self.cleaned_data.get(name) or []
        if not isinstance(value, list):
            raise forms.ValidationError(MSG_ROLE_IDS)
        ids = [
            item if isinstance(item, int) and not isinstance(item, bool) else id_from_text(item)
            for item in value
        ]
        if any(not isinstance(i, int) or not 0 < i < 2**63 for i in ids):
            raise forms.ValidationError(MSG_ROLE_IDS)
        return [i for i in ids if i is not None]

    def clean_creator_role_ids(self) -> list[int]:
        return self._role_ids("creator_role_ids")

    def clean_resolver_role_ids(self) -> list[int]:
        return self._role_ids("resolver_role_ids")


@admin.register(GuildSettings)
class GuildSettingsAdmin(TextSafeChangelistMixin, admin.ModelAdmin):
    """A guild's settings. A change goes through `services.guild_settings_update`, as `/settings`
    does: the same rules (`Action.SETTINGS`: `points.change_guildsettings`), the same table, and
    the same `guild_settings_update` audit record, with the staff user as actor.

    Adding a row is allowed, so staff can prepare a server before the bot joins it: it goes
    through the same service, which creates the row from `PM_GUILD_DEFAULTS` (as first use does)
    and then applies and audits the values typed. It needs the change permission too."""

    form = GuildSettingsForm
    list_display = (
        "guild_id",
        "starting_balance",
        "daily_bonus",
        "max_bet",
        "default_liquidity",
        "fee_bps",
        "min_resolution_votes",
        "auto_refund_hours",
        "resolution_mode",
        "dispute_window_minutes",
        "conflict_of_interest",
    )
    search_fields = ("=guild_id",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # The primary key: editing it would save a second guild's row, not move this one.
        return ("guild_id",) if obj is not None else ()

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {**settings.PM_GUILD_DEFAULTS, **super().get_changeform_initial_data(request)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and request.user.has_perm(
            ADMIN_PERMISSIONS[Action.SETTINGS]
        )

    @csrf_protect_m
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponseBase:
        # Not inside the admin's usual transaction: the save is the service's own durable one.
        return self._changeform_view(  # type: ignore[attr-defined]
            request, object_id, form_url, extra_context
        )

    def save_model(
        self, request: HttpRequest, obj: GuildSettings, form: forms.ModelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        services.guild_settings_update(
            guild_id=obj.guild_id,
            actor=Actor.from_user(request.user),
            idempotency_key=f"admin:{uuid.uuid4()}",
            values={spec.name: data[spec.name] for spec in SETTINGS if spec.name in data},
            announce_channel_id=data.get("announce_channel_id"),
            creator_role_ids=data.get("creator_role_ids"),
            resolver_role_ids=data.get("resolver_role_ids"),
        )
        obj.refresh_from_db()


@admin.register(Member)
class MemberAdmin(ReadOnlyAdmin):
    """The directory (issue 13): who is who, searchable by name; each row opens the member's
    page (wallet, positions, history)."""

    list_display = ("name", "username", "user_id", "server", "last_seen", "forgotten")
    list_display_links = None  # the name links to the member's page, not to a change form
    list_filter = ("forgotten", "guild_id")
    search_fields = ("display_name", "username", "=user_id")
    search_help_text = "Search a display name, a username or a Discord id."
    ordering = ("-last_seen",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(guild_name=selectors.guild_name_subquery(guild_field="guild_id"))
        )

    @admin.display(description="name", ordering="display_name")
    def name(self, obj: Member) -> str:
        return member_link(obj.guild_id, obj.user_id, str(obj))

    @admin.display(description="server", ordering="guild_id")
    def server(self, obj: Member) -> str:
        return guild_label(obj.guild_id, getattr(obj, "guild_name", None))


@admin.register(Guild)
class GuildAdmin(ReadOnlyAdmin):
    list_display = ("name", "id", "last_seen")
    search_fields = ("name", "=id")
    ordering = ("name",)


# --- Staff accounts linked to Discord members (docs/domain.md §6.1) ---------------------------

MSG_STAFF_DISCORD_ID = (
    "“{text}” is not a Discord user id. A user id is a number of 17 to 19 digits: in Discord, "
    "turn on Settings › Advanced › Developer Mode, then right-click the member and choose "
    "Copy User ID."
)
MSG_STAFF_DISCORD_ID_TAKEN = (
    "Discord user id {discord_id} is already linked to the staff account “{user}”; one Discord "
    "member can be linked to one staff account only."
)
_MENTION = re.compile(r"<@!?(\d+)>")


class StaffLinkForm(forms.ModelForm):
    """The Discord id as text, so a pasted mention (`<@123…>`) works and anything else gets a
    message that says what an id looks like and where to copy it."""

    discord_user_id = forms.CharField(
        label="Discord user id",
        max_length=40,
        strip=True,
        help_text="17–19 digits (Developer Mode on, right-click the member, Copy User ID); a "
        "pasted mention such as <@222222222222222201> works too.",
    )

    class Meta:
        model = StaffLink
        fields = ("user", "discord_user_id")

    def clean_discord_user_id(self) -> int:
        text = self.cleaned_data["discord_user_id"]
        mention = _MENTION.fullmatch(text)
        digits = mention.group(1) if mention else text
        value = id_from_text(digits)
        if value is None or len(digits) < 17:
            raise forms.ValidationError(MSG_STAFF_DISCORD_ID.format(text=text[:40]))
        try:
            validate_snowflake(value, what="discord_user_id")
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None
        taken = (
            StaffLink.objects.filter(discord_user_id=value)
            .exclude(pk=self.instance.pk)
            .select_related("user")
            .first()
        )
        if taken is not None:
            raise forms.ValidationError(
                MSG_STAFF_DISCORD_ID_TAKEN.format(discord_id=value, user=taken.user)
            )
        return value


@admin.register(StaffLink)
class StaffLinkAdmin(TextSafeChangelistMixin, admin.ModelAdmin):
    """Which Discord member each back-office account is, so the decision pages can show a
    moderator their own position in a market. Superusers manage the links; staff with the view
    permission (Moderators, Viewers) may read them."""

    form = StaffLinkForm
    list_display = ("user", "discord_user_id", "is_superuser_account")
    search_fields = ("user__username", "=discord_user_id")
    search_help_text = "Search a username or a Discord id."
    ordering = ("user__username",)
    list_select_related = ("user",)

    @admin.display(description="superuser", boolean=True)
    def is_superuser_account(self, obj: StaffLink) -> bool:
        return obj.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser
