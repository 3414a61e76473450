"""A server's settings in the back office: the same rules, table and audit record as `/settings`
(`services.guild_settings_update`)."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.utils.text import Truncator
from django.views.decorators.csrf import csrf_protect

from core.adminkit import AnyModelForm, TextSafeChangelistMixin, guild_label
from core.errors import DomainError

from .. import services
from ..errors import MSG_INVALID_ID, id_from_text
from ..models import GuildSettings
from ..rules import SETTINGS, Action, Actor, SettingSpec, amounts_parse, setting_check
from ..rules.permissions import ADMIN_PERMISSIONS
from ..selectors import guild_name_subquery, guild_names

MSG_ROLE_IDS = (
    "Enter Discord role ids separated by commas or spaces, e.g. "
    "123456789012345678, 223456789012345678 (in Discord: Server Settings › Roles › a role, then "
    "Copy Role ID); leave it empty for none."
)
MSG_NOT_A_ROLE = "“{token}” is not a role id. "
ROLE_HELP = {
    "creator_role_ids": "Only members with one of these roles (or Manage Server) may create "
    "markets. Empty: every member may.",
    "resolver_role_ids": "Members with one of these roles vote on results and count as "
    "moderators on Discord; members with Manage Server always do. Empty: Manage Server only.",
}
CHANNEL_HELP = {
    "announce_channel_id": "The channel where the bot announces new markets and results "
    "(in Discord: the channel's menu › Copy Channel ID). Empty: the channel where each market "
    "was created.",
}
ROLE_LABELS = {
    "creator_role_ids": "Roles that may create markets",
    "resolver_role_ids": "Resolver roles",
}
CHANNEL_LABELS = {
    "announce_channel_id": "Announcement channel id",
    "moderator_channel_id": "Moderators' channel id",
}
_ROLE_SEPARATORS = re.compile(r"[\s,]+")


def role_ids_text(ids: object) -> str:
    """A stored role list as the form shows it: "123…, 456…" (empty for none)."""
    return ", ".join(str(i) for i in ids) if isinstance(ids, list) else ""


def role_ids_parse(text: str) -> list[int]:
    """Role ids typed as the form shows them: separated by commas or spaces (a JSON list such as
    `[123, "456"]`, the form's earlier format, is still read). Anything else is a
    `ValidationError` naming what is wrong."""
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            raise forms.ValidationError(MSG_ROLE_IDS) from None
        if not isinstance(value, list):
            raise forms.ValidationError(MSG_ROLE_IDS)
        items: list[object] = value
    else:
        items = [token for token in _ROLE_SEPARATORS.split(text) if token]
    ids: list[int] = []
    for item in items:
        if isinstance(item, bool):
            one = None
        elif isinstance(item, int):
            one = item
        else:
            one = id_from_text(item) if isinstance(item, str) else None
        if one is None or not 0 < one < 2**63:
            shown = Truncator(str(item) if isinstance(item, str) else json.dumps(item)).chars(30)
            raise forms.ValidationError(MSG_NOT_A_ROLE.format(token=shown) + MSG_ROLE_IDS)
        ids.append(one)
    return list(dict.fromkeys(ids))


class AmountsField(forms.CharField):
    """A list of amounts (issue 26's quick amounts), typed and shown as “10, 100, 1,000”."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        self.setting = name
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("["):
            try:
                value = json.loads(value)
            except ValueError:
                return value
        if isinstance(value, list):
            return ", ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in value)
        return value

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip().startswith("["):
            with contextlib.suppress(ValueError):  # else: refused below, in the table's words
                value = json.loads(value)
        if isinstance(value, list):
            return value
        try:
            return amounts_parse(self.setting, str(value or ""))
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None


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
    if spec.kind == "amounts":
        return AmountsField(spec.name, error_messages=messages, **common)
    if spec.kind == "zone":
        return forms.CharField(max_length=64, error_messages=messages, **common)
    return forms.IntegerField(error_messages=messages, **common)


class GuildSettingsForm(AnyModelForm):
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
            "moderator_channel_id",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for spec in SETTINGS:
            if spec.name in self.fields:
                self.fields[spec.name] = _setting_field(
                    spec, GuildSettings._meta.get_field(spec.name)
                )
        # Role lists: typed and shown as "123…, 456…", not as JSON.
        for name, label in ROLE_LABELS.items():
            self.fields[name] = forms.CharField(
                label=label,
                required=False,
                help_text=ROLE_HELP[name],
                widget=forms.TextInput(attrs={"class": "vTextField", "style": "width: 40em"}),
            )
            self.initial[name] = role_ids_text(self.initial.get(name))
        # Channel ids: 17 to 19 digits, in a box wide enough to read them whole.
        for name, label in CHANNEL_LABELS.items():
            model_help = getattr(GuildSettings._meta.get_field(name), "help_text", "")
            self.fields[name] = forms.IntegerField(
                label=label,
                required=False,
                help_text=CHANNEL_HELP.get(name) or model_help,
                error_messages={"invalid": MSG_INVALID_ID},
                widget=forms.TextInput(attrs={"inputmode": "numeric", "style": "width: 22ch"}),
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

    def clean_moderator_channel_id(self) -> int | None:
        return self._snowflake("moderator_channel_id")

    def _role_ids(self, name: str) -> list[int]:
        return role_ids_parse(self.cleaned_data.get(name) or "")

    def clean_creator_role_ids(self) -> list[int]:
        return self._role_ids("creator_role_ids")

    def clean_resolver_role_ids(self) -> list[int]:
        return self._role_ids("resolver_role_ids")


@admin.register(GuildSettings)
class GuildSettingsAdmin(TextSafeChangelistMixin):
    """A guild's settings. A change goes through `services.guild_settings_update`, as `/settings`
    does: the same rules (`Action.SETTINGS`: `points.change_guildsettings`), the same table, and
    the same `guild_settings_update` audit record, with the staff user as actor.

    Adding a row is allowed, so staff can prepare a server before the bot joins it: it goes
    through the same service, which creates the row from `PM_GUILD_DEFAULTS` (as first use does)
    and then applies and audits the values typed. It needs the change permission too."""

    form = GuildSettingsForm
    list_display = (
        "server",
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = (
            super().get_queryset(request).annotate(guild_name=guild_name_subquery(guild_field="pk"))
        )
        return queryset

    @admin.display(description="server", ordering="guild_id")
    def server(self, obj: GuildSettings) -> str:
        return guild_label(obj.guild_id, getattr(obj, "guild_name", None))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """No Delete: a deleted row would come back from `PM_GUILD_DEFAULTS` at the server's next
        command, silently undoing every setting, and no audit record would say who did it. To
        reset a setting, type its value."""
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # The primary key: editing it would save a second guild's row, not move this one.
        return ("guild_id",) if obj is not None else ()

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {**settings.PM_GUILD_DEFAULTS, **super().get_changeform_initial_data(request)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and request.user.has_perm(
            ADMIN_PERMISSIONS[Action.SETTINGS]
        )

    @method_decorator(csrf_protect)  # the admin's own `csrf_protect_m`, typed
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The page is titled with the server's name (the directory's), not "Guild 1111…".
        guild_id = id_from_text(object_id) if object_id is not None else None
        if guild_id is not None:
            name = guild_names(guild_ids=[guild_id])[guild_id]
            extra_context = {
                "title": f"Settings of {name}",
                "subtitle": f"Discord server id {guild_id}",
                **(extra_context or {}),
            }
        # Not inside the admin's usual transaction: the save is the service's own durable one.
        response: HttpResponse = self._changeform_view(  # type: ignore[attr-defined]
            request, object_id, form_url, extra_context
        )
        return response

    def save_model(
        self, request: HttpRequest, obj: GuildSettings, form: AnyModelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        services.guild_settings_update(
            guild_id=obj.guild_id,
            actor=Actor.from_user(request.user),
            idempotency_key=f"admin:{uuid.uuid4()}",
            values={spec.name: data[spec.name] for spec in SETTINGS if spec.name in data},
            announce_channel_id=data.get("announce_channel_id"),
            moderator_channel_id=data.get("moderator_channel_id"),
            creator_role_ids=data.get("creator_role_ids"),
            resolver_role_ids=data.get("resolver_role_ids"),
        )
        obj.refresh_from_db()
