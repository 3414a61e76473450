"""The bot's side of who may do what (DOMAIN §2): the `Actor` an interaction describes, and quick
checks on a cached `Policy` that let the bot refuse before opening a modal. The rules themselves
live in `points.rules` and the core services enforce them; nothing here is the last word."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import discord

from points.rules import Action, Actor, require
from points.rules import is_moderator as rules_is_moderator
from points.rules import permissions as rules_permissions

from . import dpy_private

# The same words the services refuse with (`points.rules`): the bot only says them sooner.
MSG_CREATE_ROLE = rules_permissions.MSG_CREATE_ROLE
MSG_ADMIN = rules_permissions.MSG_SETTINGS


def actor_from_interaction(interaction: discord.Interaction) -> Actor:
    """The member behind an interaction, as Discord described them (`points.rules.Actor`)."""
    user = interaction.user
    ids = dpy_private.member_role_ids(user)
    if ids is None:
        ids = [r.id for r in getattr(user, "roles", [])]
    perms = interaction.permissions
    return Actor.member(
        user.id,
        role_ids=(i for i in ids if i != interaction.guild_id),
        manage_guild=bool(perms.manage_guild or perms.administrator),
    )


@dataclass(frozen=True)
class Policy:
    """The parts of `GuildSettings` that decide permissions (cacheable, immutable). The rules'
    settings protocol (`points.rules.permissions._Settings`) declares plain attributes, which
    mypy reads as writable, so passing this frozen copy needs an ignore until they are
    read-only properties there."""

    creator_role_ids: frozenset[int] = frozenset()
    resolver_role_ids: frozenset[int] = frozenset()
    requests_per_minute: int = 100
    """The guild's own limit of commands a minute (DOMAIN §7, a guild setting)."""
    # The rest of what `points.rules` reads, so the bot asks the rules themselves.
    resolution_mode: str = "vote"
    min_resolution_votes: int = 2
    dispute_window_minutes: int = 60
    conflict_of_interest: bool = True
    max_bet: int = 1_000_000
    """The guild's max bet (DOMAIN §7): the amount forms say and check it."""
    quick_amounts: tuple[int, ...] = (10, 100, 1000)
    """The one-click amounts under a market message (issue 26, a guild setting)."""

    @classmethod
    def from_settings(cls, settings: object | None) -> Policy:
        if settings is None:
            return cls()
        return cls(
            creator_role_ids=_ids(getattr(settings, "creator_role_ids", [])),
            resolver_role_ids=_ids(getattr(settings, "resolver_role_ids", [])),
            requests_per_minute=getattr(settings, "requests_per_minute", 100) or 100,
            resolution_mode=getattr(settings, "resolution_mode", "vote"),
            min_resolution_votes=getattr(settings, "min_resolution_votes", 2),
            dispute_window_minutes=getattr(settings, "dispute_window_minutes", 60),
            conflict_of_interest=getattr(settings, "conflict_of_interest", True),
            max_bet=getattr(settings, "max_bet", 1_000_000) or 1_000_000,
            quick_amounts=tuple(getattr(settings, "quick_amounts", None) or (10, 100, 1000)),
        )


def _ids(values: Iterable[Any] | None) -> frozenset[int]:
    out = set()
    for v in values or []:
        try:
            out.add(int(v))
        except (TypeError, ValueError):
            continue
    return frozenset(out)


def is_moderator(policy: Policy | None, actor: Actor) -> bool:
    """Manage Server, or a resolver role when the guild named some (`points.rules`)."""
    return rules_is_moderator(policy, actor)  # type: ignore[arg-type]  # see `Policy`


def require_creator(policy: Policy, actor: Actor) -> None:
    """Refuse before the create form opens, with the service's words (`points.rules`)."""
    require(Action.CREATE, actor, policy)  # type: ignore[arg-type]  # see `Policy`


def require_admin(actor: Actor) -> None:
    """Refuse a settings change before any work, with the service's words (`points.rules`)."""
    require(Action.SETTINGS, actor, Policy())  # type: ignore[arg-type]  # see `Policy`
