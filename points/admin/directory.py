"""The member and server directory (issue 13), and the staff accounts linked to Discord members
(docs/domain.md §6.1)."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from core.adminkit import (
    AnyModelForm,
    ReadOnlyAdmin,
    TextSafeChangelistMixin,
    guild_label,
    member_link,
)
from core.errors import DomainError

from .. import selectors
from ..errors import id_from_text, validate_snowflake
from ..models import Guild, Member, StaffLink


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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = (
            super()
            .get_queryset(request)
            .annotate(guild_name=selectors.guild_name_subquery(guild_field="guild_id"))
        )
        return queryset

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


class StaffLinkForm(AnyModelForm):
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
class StaffLinkAdmin(TextSafeChangelistMixin):
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
