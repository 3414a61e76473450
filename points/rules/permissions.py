"""Who may do what in a guild (docs/domain.md §2, §6.1), as pure functions of an `Actor` and the
guild's `GuildSettings`.

An `Actor` is whoever asks: a Discord member as the interaction describes them (user id, role
ids, Manage Server), a back-office user (their Django permissions), or the system (the scheduler,
management commands). The core services call `require(action, actor, settings, ...)` before they
change anything; interfaces may call `allowed` first to hide a button, never instead."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import NotAllowed


class Action(enum.StrEnum):
    CREATE = "create"
    CHOOSE_LIQUIDITY = "choose_liquidity"
    CLOSE = "close"
    VOTE = "vote"
    PROPOSE = "propose"
    DISPUTE = "dispute"
    CONFIRM = "confirm"
    """Confirm or change a proposed result before its window ends, or undo it."""
    RESOLVE = "resolve"
    """Resolve directly ("force"), overruling votes and proposals."""
    CANCEL = "cancel"
    ADJUST = "adjust"
    SETTINGS = "settings"
    ANNOUNCE_SEASON = "announce_season"
    """Post a season's final table again (docs/domain.md §10)."""


# The Django permission that lets a back-office user do each action (the admin's groups).
ADMIN_PERMISSIONS: dict[Action, str] = {
    Action.CREATE: "markets.add_market",
    Action.CHOOSE_LIQUIDITY: "markets.add_market",
    Action.CLOSE: "markets.close_market",
    Action.CONFIRM: "markets.resolve_market",
    Action.RESOLVE: "markets.resolve_market",
    Action.CANCEL: "markets.cancel_market",
    Action.ADJUST: "points.adjust_balance",
    Action.SETTINGS: "points.change_guildsettings",
    Action.ANNOUNCE_SEASON: "points.announce_season",
}


class _User(Protocol):
    @property
    def pk(self) -> Any: ...

    @property
    def is_active(self) -> bool: ...

    def has_perm(self, perm: str, obj: Any = ...) -> bool: ...


@dataclass(frozen=True)
class Actor:
    """Whoever asks for a change. `user_id` is their Discord id (None for a back-office user or
    the system); `admin_user_id` the Django user's id; `admin_perms` the Django permissions that
    matter here ("markets.resolve_market", …)."""

    user_id: int | None = None
    role_ids: frozenset[int] = frozenset()
    manage_guild: bool = False
    admin_user_id: int | None = None
    admin_perms: frozenset[str] = field(default_factory=frozenset)
    system: bool = False

    @classmethod
    def member(
        cls, user_id: int, *, role_ids: Iterable[int] = (), manage_guild: bool = False
    ) -> Actor:
        """A Discord member (roles and Manage Server as the interaction reported them)."""
        return cls(user_id=user_id, role_ids=frozenset(role_ids), manage_guild=manage_guild)

    @classmethod
    def from_user(cls, user: _User) -> Actor:
        """A back-office user, with the permissions of their groups."""
        perms = frozenset(p for p in set(ADMIN_PERMISSIONS.values()) if user.has_perm(p))
        return cls(admin_user_id=user.pk, admin_perms=perms if user.is_active else frozenset())

    @property
    def is_admin_user(self) -> bool:
        return self.admin_user_id is not None

    def __str__(self) -> str:
        if self.system:
            return "the system"
        if self.admin_user_id is not None:
            return f"admin user #{self.admin_user_id}"
        return f"<@{self.user_id}>"


SYSTEM = Actor(system=True)


class _Settings(Protocol):
    creator_role_ids: Any
    resolver_role_ids: Any
    resolution_mode: str
    min_resolution_votes: int
    dispute_window_minutes: int
    conflict_of_interest: bool


class _Market(Protocol):
    pk: Any
    creator_id: int


def _ids(values: Iterable[object] | None) -> frozenset[int]:
    out = set()
    for v in values or []:
        try:
            out.add(int(v))  # type: ignore[call-overload]
        except (TypeError, ValueError):
            continue
    return frozenset(out)


def _roles(ids: Iterable[int]) -> str:
    return ", ".join(f"<@&{i}>" for i in sorted(ids))


def is_resolver(gs: _Settings, actor: Actor) -> bool:
    """Resolvers: members with one of `resolver_role_ids`, else (no roles named) members with
    Manage Server; Manage Server always counts."""
    if actor.user_id is None:
        return False
    return actor.manage_guild or bool(_ids(gs.resolver_role_ids) & actor.role_ids)


def is_moderator(gs: _Settings | None, actor: Actor) -> bool:
    """Moderators on Discord: Manage Server, or a resolver role when the guild named some."""
    if actor.user_id is None:
        return False
    if actor.manage_guild:
        return True
    return gs is not None and bool(_ids(gs.resolver_role_ids) & actor.role_ids)


MSG_CREATE_ROLE = "In this server only members with one of these roles can create markets: {roles}."
MSG_LIQUIDITY = (
    "Only moderators can choose a market's liquidity; leave it empty to use this server's default."
)
MSG_CLOSE = (
    "Only the creator of market #{market} or a moderator (Manage Server or a resolver role) can "
    "close it early; it closes by itself at its closing time."
)
MSG_VOTE_ROLE = (
    "Only resolvers can vote on results here: members with one of these roles: {roles}, or "
    "Manage Server."
)
MSG_VOTE_MANAGE = "Only members with the Manage Server permission can vote on results here."
MSG_VOTE_CREATOR_MODE = (
    "This server resolves by creator: <@{creator}> proposes the result of market #{market}; "
    "moderators can overrule with `/market resolve … force:True`. Admins choose the mode with "
    "`/settings resolution`."
)
MSG_PROPOSE = (
    "Only the creator of market #{market} (<@{creator}>) or a moderator can propose its result."
)
MSG_PROPOSE_VOTE_MODE = (
    "This server resolves by vote: resolvers vote with `/market resolve`; only moderators "
    "propose a result directly."
)
MSG_DISPUTE = "Only members who traded in market #{market} can dispute its proposed result."
MSG_CONFIRM = (
    "Only moderators (Manage Server or a resolver role) can confirm, change or undo a proposed "
    "result."
)
MSG_RESOLVE = "Only members with the Manage Server permission can resolve a market directly."
MSG_CANCEL = "Only moderators (Manage Server or a resolver role) can cancel and refund a market."
MSG_ADJUST = "Only server admins (Manage Server) and back-office staff can grant or deduct points."
MSG_SETTINGS = "Only members with the Manage Server permission can change the bot's settings."
MSG_ANNOUNCE_SEASON = (
    "Only moderators (Manage Server or a resolver role) can have a season's final table posted "
    "again."
)
MSG_ADMIN_PERMISSION = "Your back-office account lacks the “{perm}” permission."
MSG_SYSTEM_ONLY = "That is not something the system does on its own."
MSG_DISCORD_ONLY = (
    "Only Discord members can {what}, on Discord; the back office has no permission for it."
)
DISCORD_ONLY: dict[Action, str] = {
    Action.VOTE: "vote on a market's result",
    Action.PROPOSE: "propose a market's result",
    Action.DISPUTE: "dispute a proposed result",
}
"""Actions no back-office permission grants (docs/domain.md §6.1's table: "—"); the system
does none of them either."""


def _create(actor: Actor, gs: _Settings, market: _Market | None) -> str | None:
    roles = _ids(gs.creator_role_ids)
    if not roles or actor.manage_guild or roles & actor.role_ids:
        return None
    return MSG_CREATE_ROLE.format(roles=_roles(roles))


def _liquidity(actor: Actor, gs: _Settings, market: _Market | None) -> str | None:
    return None if is_moderator(gs, actor) else MSG_LIQUIDITY


def _close(actor: Actor, gs: _Settings, market: _Market | None) -> str | None:
    if market is not None and actor.user_id == market.creator_id:
        return None
    if is_moderator(gs, actor):
        return None
    return MSG_CLOSE.format(market=getattr(market, "pk", "?"))


def _vote(actor: Actor, gs: _Settings, market: _Market | None) -> str | None:
    if gs.resolution_mode == "creator":
        return MSG_VOTE_CREATOR_MODE.format(
            creator=getattr(market, "creator_id", "?"), market=getattr(market, "pk", "?")
        )
    if is_resolver(gs, actor):
        return None
    roles = _ids(gs.resolver_role_ids)
    return MSG_VOTE_ROLE.format(roles=_roles(roles)) if roles else MSG_VOTE_MANAGE


def _propose(actor: Actor, gs: _Settings, market: _Market | None) -> str | None:
    if is_moderator(gs, actor):
        return None
    creator_mode = gs.resolution_mode == "creator"
    if creator_mode and market is not None and actor.user_id == market.creator_id:
        return None
    if not creator_mode:
        return _vote(actor, gs, market) or MSG_PROPOSE_VOTE_MODE
    return MSG_PROPOSE.format(
        market=getattr(market, "pk", "?"), creator=getattr(market, "creator_id", "?")
    )


def _dispute(actor: Actor, gs: _Settings, market: _Market | None) -> str | None:
    return None  # who traded is checked by the service, which can see positions


def _moderator(message: str) -> Callable[[Actor, _Settings, _Market | None], str | None]:
    def rule(actor: Actor, gs: _Settings, market: _Market | None) -> str | None:
        return None if is_moderator(gs, actor) else message

    return rule


def _manage(message: str) -> Callable[[Actor, _Settings, _Market | None], str | None]:
    def rule(actor: Actor, gs: _Settings, market: _Market | None) -> str | None:
        return None if actor.manage_guild else message

    return rule


_RULES: dict[Action, Callable[[Actor, _Settings, _Market | None], str | None]] = {
    Action.CREATE: _create,
    Action.CHOOSE_LIQUIDITY: _liquidity,
    Action.CLOSE: _close,
    Action.VOTE: _vote,
    Action.PROPOSE: _propose,
    Action.DISPUTE: _dispute,
    Action.CONFIRM: _moderator(MSG_CONFIRM),
    Action.RESOLVE: _manage(MSG_RESOLVE),
    Action.CANCEL: _moderator(MSG_CANCEL),
    Action.ADJUST: _manage(MSG_ADJUST),
    Action.SETTINGS: _manage(MSG_SETTINGS),
    Action.ANNOUNCE_SEASON: _moderator(MSG_ANNOUNCE_SEASON),
}


def allowed(
    action: Action, actor: Actor, gs: _Settings, market: _Market | None = None
) -> str | None:
    """None if `actor` may do `action` (on `market`) in the guild of `gs`, else the refusal, in
    words that say who may. The system may do everything but vote, propose or dispute."""
    if actor.system:
        return MSG_SYSTEM_ONLY if action in DISCORD_ONLY else None
    if actor.is_admin_user:
        perm = ADMIN_PERMISSIONS.get(action)
        if perm is None:
            return MSG_DISCORD_ONLY.format(what=DISCORD_ONLY[action])
        return None if perm in actor.admin_perms else MSG_ADMIN_PERMISSION.format(perm=perm)
    if actor.user_id is None:
        return MSG_SYSTEM_ONLY
    return _RULES[action](actor, gs, market)


def require(action: Action, actor: Actor, gs: _Settings, market: _Market | None = None) -> None:
    """Raise `NotAllowed` with the refusal unless `actor` may do `action`."""
    refusal = allowed(action, actor, gs, market)
    if refusal is not None:
        raise NotAllowed(refusal, details={"action": action.value})


def resolution_how(gs: _Settings, *, creator_id: int | None = None) -> str:
    """One sentence saying who resolves a market in this guild and how (docs/domain.md §6.1)."""
    window = gs.dispute_window_minutes
    if gs.resolution_mode == "creator":
        who = f"<@{creator_id}> (the creator)" if creator_id else "The creator"
        how = f"{who} proposes the result with `/market resolve`"
    else:
        roles = _ids(gs.resolver_role_ids)
        resolvers = (
            f"members with {_roles(roles)} or Manage Server"
            if roles
            else ("members with Manage Server")
        )
        needed = gs.min_resolution_votes
        how = (
            f"{needed} resolver{'s' if needed != 1 else ''} ({resolvers}) vote for the same "
            "outcome with `/market resolve`"
        )
    if window:
        then = f"; it pays out after a {_minutes(window)} dispute window"
    else:
        then = "; it pays out at once"
    return (
        f"{how}{then}. A moderator with Manage Server can also resolve directly with "
        "`/market resolve … force:True`."
    )


def _minutes(n: int) -> str:
    if n % 60 == 0:
        hours = n // 60
        return f"{hours}-hour"
    return f"{n}-minute"
