"""The bot's side of who may do what (DOMAIN §2): the `Actor` an interaction describes, and quick
checks on a cached `Policy` that let the bot refuse before opening a modal. The rules themselves
live in `points.rules` and the core services enforce them; nothing here is the last word."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import discord

from points.errors import NotAllowed
from points.rules import Actor
from points.rules import permissions as rules_permissions

# The same words the services refuse with (`points.rules`): the bot only says them sooner.
MSG_CREATE_ROLE = rules_permissions.MSG_CREATE_ROLE
MSG_ADMIN = rules_permissions.MSG_SETTINGS


def actor_from_interaction(interaction: discord.Interaction) -> Actor:
    """The member behind an interaction, as Discord described them (`points.rules.Actor`)."""
    user = interaction.user
    # The role ids Discord sent with the member, whether or not the guild's roles are
    # cached (`Member.roles` drops roles missing from the cache).
    raw = getattr(user, "_roles", None)
    ids = [int(r) for r in raw] if raw is not None else [r.id for r in getattr(user, "roles", [])]
    perms = interaction.permissions
    return Actor.member(
        user.id,
        role_ids=(i for i in ids if i != interaction.guild_id),
        manage_guild=bool(perms.manage_guild or perms.administrator),
    )


@dataclass(frozen=True)
class Policy:
    """The parts of `GuildSettings` that decide permissions (cacheable, immutable)."""

    creator_role_ids: frozenset[int] = frozenset()
    resolver_role_ids: frozenset[int] = frozenset()
    requests_per_minute: int = 100
    """The guild's own limit of commands a minute (DOMAIN §7, a guild setting)."""

    @classmethod
    def from_settings(cls, settings: object | None) -> Policy:
        if settings is None:
            return cls()
        return cls(
            creator_role_ids=_ids(getattr(settings, "creator_role_ids", [])),
            resolver_role_ids=_ids(getattr(settings, "resolver_role_ids", [])),
            requests_per_minute=getattr(settings, "requests_per_minute", 100) or 100,
        )


def _ids(values: Iterable[object] | None) -> frozenset[int]:
    out = set()
    for v in values or []:
        try:
            out.add(int(v))
        except (TypeError, ValueError):
            continue
    return frozenset(out)


def _roles(ids: Iterable[int]) -> str:
    return ", ".join(f"<@&{i}>" for i in sorted(ids))


def is_moderator(policy: Policy | None, actor: Actor) -> bool:
    """Manage Server, or a resolver role when the guild named some."""
    if actor.manage_guild:
        return True
    return policy is not None and bool(policy.resolver_role_ids & actor.role_ids)


def require_creator(policy: Policy, actor: Actor) -> None:
    """Empty `creator_role_ids` lets every member create (DOMAIN §2)."""
    if not policy.creator_role_ids or actor.manage_guild:
        return
    if not policy.creator_role_ids & actor.role_ids:
        raise NotAllowed(MSG_CREATE_ROLE.format(roles=_roles(policy.creator_role_ids)))


def require_admin(actor: Actor) -> None:
    if not actor.manage_guild:
        raise NotAllowed(MSG_ADMIN)
