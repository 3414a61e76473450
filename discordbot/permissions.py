"""Who may do what in a guild (DOMAIN §2), from the member Discord describes in the interaction
and the guild's `GuildSettings`. Pure functions: nothing here touches the database or Discord."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import discord

from points.errors import NotAllowed

MSG_CREATE_ROLE = "In this server only members with one of these roles can create markets: {roles}."
MSG_RESOLVE_ROLE = (
    "Only resolvers can vote on results here: members with one of these roles: {roles}."
)
MSG_RESOLVE_MANAGE = "Only members with the Manage Server permission can vote on results here."
MSG_MODERATOR = "Only moderators (Manage Server permission or a resolver role) can do that."
MSG_ADMIN = "Only members with the Manage Server permission can change the bot's settings."
MSG_FORCE = "Only members with the Manage Server permission can resolve a market directly."


@dataclass(frozen=True)
class Actor:
    """The member behind an interaction, as Discord described them."""

    user_id: int
    guild_id: int
    role_ids: frozenset[int]
    manage_guild: bool

    @classmethod
    def from_interaction(cls, interaction: discord.Interaction) -> Actor:
        user = interaction.user
        # The role ids Discord sent with the member, whether or not the guild's roles are
        # cached (`Member.roles` drops roles missing from the cache).
        raw = getattr(user, "_roles", None)
        ids = (
            [int(r) for r in raw] if raw is not None else [r.id for r in getattr(user, "roles", [])]
        )
        roles = frozenset(i for i in ids if i != interaction.guild_id)
        perms = interaction.permissions
        return cls(
            user_id=user.id,
            guild_id=interaction.guild_id or 0,
            role_ids=roles,
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


def is_resolver(policy: Policy, actor: Actor) -> bool:
    if policy.resolver_role_ids:
        return bool(policy.resolver_role_ids & actor.role_ids) or actor.manage_guild
    return actor.manage_guild


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


def require_resolver(policy: Policy, actor: Actor) -> None:
    """Resolvers are the roles in `resolver_role_ids`, else members with Manage Server."""
    if is_resolver(policy, actor):
        return
    if policy.resolver_role_ids:
        raise NotAllowed(MSG_RESOLVE_ROLE.format(roles=_roles(policy.resolver_role_ids)))
    raise NotAllowed(MSG_RESOLVE_MANAGE)


def require_moderator(policy: Policy, actor: Actor) -> None:
    if not is_moderator(policy, actor):
        raise NotAllowed(MSG_MODERATOR)


def require_admin(actor: Actor) -> None:
    if not actor.manage_guild:
        raise NotAllowed(MSG_ADMIN)
