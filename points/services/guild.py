"""Changing a guild's settings (docs/domain.md §2)."""

from __future__ import annotations

from typing import Literal

from django.conf import settings

from ..errors import InvalidInput, validate_key, validate_snowflake
from ..models import GuildSettings
from ..rules import SETTINGS, Action, Actor, require, setting_check
from ..usecase import use_case
from .accounts import audit_record, guild_settings_get_or_create

MSG_ROLE_KIND = "Roles are “creator” or “resolver”, changed with add, remove or clear."
MSG_ROLE_PICK = "Pick the role to add or remove."


@use_case()
def guild_settings_update(
    *,
    guild_id: int,
    actor: Actor,
    idempotency_key: str,
    values: dict[str, object] | None = None,
    announce_channel_id: int | Literal[False] | None = False,
    moderator_channel_id: int | Literal[False] | None = False,
    role_kind: str | None = None,
    role_action: str | None = None,
    role_id: int | None = None,
    creator_role_ids: list[int] | None = None,
    resolver_role_ids: list[int] | None = None,
) -> GuildSettings:
    """Change a guild's settings (docs/domain.md §2): `Action.SETTINGS` decides who may (Manage
    Server on Discord, `points.change_guildsettings` in the back office), the table of
    `points.rules.settings` which values. `values` maps setting names to new values;
    `announce_channel_id` (and `moderator_channel_id`, where disputes are reported) None clears
    the channel (False, the default, leaves it); a role is
    added to, removed from or cleared in the `creator`/`resolver` list (the bot), or a whole list
    replaced (the back office). Every value is checked before anything is written: all of it
    changes, or none. One `guild_settings_update` audit record with before/after snapshots, only
    when something changed."""
    validate_snowflake(guild_id, what="guild_id")
    current = GuildSettings.objects.filter(guild_id=guild_id).first() or GuildSettings(
        guild_id=guild_id, **settings.PM_GUILD_DEFAULTS
    )
    require(Action.SETTINGS, actor, current)
    validate_key(idempotency_key)
    values = dict(values or {})
    for name, value in values.items():
        setting_check(name, value)
    if role_kind not in (None, "creator", "resolver") or role_action not in (
        None,
        "add",
        "remove",
        "clear",
    ):
        raise InvalidInput(MSG_ROLE_KIND)
    if role_action in ("add", "remove"):
        if role_id is None:
            raise InvalidInput(MSG_ROLE_PICK)
        validate_snowflake(role_id, what="role_id")
    lists = {"creator_role_ids": creator_role_ids, "resolver_role_ids": resolver_role_ids}
    for ids in lists.values():
        for one in ids or []:
            validate_snowflake(one, what="role_id")
    for channel_id in (announce_channel_id, moderator_channel_id):
        if channel_id not in (False, None):
            validate_snowflake(channel_id, what="channel_id")

    guild_settings_get_or_create(guild_id=guild_id)
    gs = GuildSettings.objects.select_for_update().get(guild_id=guild_id)
    before = _settings_snapshot(gs)
    for name, value in values.items():
        setattr(gs, name, value)
    if announce_channel_id is not False:
        gs.announce_channel_id = announce_channel_id
    if moderator_channel_id is not False:
        gs.moderator_channel_id = moderator_channel_id
    for field, ids in lists.items():
        if ids is not None:
            setattr(gs, field, list(dict.fromkeys(int(i) for i in ids)))
    if role_kind and role_action:
        field = f"{role_kind}_role_ids"
        roles = [int(r) for r in getattr(gs, field) or []]
        if role_action == "clear":
            roles = []
        elif role_action == "add" and role_id not in roles:
            roles.append(int(role_id))  # type: ignore[arg-type]
        elif role_action == "remove":
            roles = [r for r in roles if r != role_id]
        setattr(gs, field, roles)
    gs.save()
    after = _settings_snapshot(gs)
    if after != before:
        audit_record(
            action="guild_settings_update",
            target_type="guild",
            target_id=guild_id,
            guild_id=guild_id,
            actor_id=actor.user_id,
            actor_user_id=actor.admin_user_id,
            idempotency_key=idempotency_key,
            before=before,
            after=after,
        )
    return gs


def _settings_snapshot(gs: GuildSettings) -> dict[str, object]:
    return {
        **{spec.name: getattr(gs, spec.name) for spec in SETTINGS},
        "announce_channel_id": str(gs.announce_channel_id) if gs.announce_channel_id else None,
        "moderator_channel_id": (str(gs.moderator_channel_id) if gs.moderator_channel_id else None),
        "creator_role_ids": [str(r) for r in gs.creator_role_ids or []],
        "resolver_role_ids": [str(r) for r in gs.resolver_role_ids or []],
    }
