"""Who may do what (docs/domain.md §6.1's table), for every (actor kind × action): a member, the
market's creator, a resolver-role member, Manage Server, a back-office user with no permission
or with each Django permission (and a superuser), and the system. `points.rules.allowed` must
give the table's answer, and the core service of each action the same answer: success, or
`NotAllowed` with the very message `allowed` gave.

`PERMISSION_TABLE` (module level) is the table as data, written from the docs and not from the
code, so the bot's and the back office's tests can check their faces give the same answers:

    from tests.points.test_rules import PERMISSION_TABLE, actor_for, guild_rules
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.conf import settings

from betting import services as betting_services
from betting.seasons import season_close
from markets import services
from markets.models import Market
from points.errors import NotAllowed
from points.models import GuildSettings, Season
from points.rules import SYSTEM, Action, Actor, allowed
from points.rules.permissions import MSG_DISPUTE
from points.seasons import season_configure, season_posted, season_repost
from points.services import guild_settings_update, points_deduct, points_grant

GUILD = 444_444_444_444_444_401
CREATOR_ROLE = 555_555_555_555_555_501
RESOLVER_ROLE = 555_555_555_555_555_502
MEMBER = 666_666_666_666_666_601
CREATOR = 666_666_666_666_666_602
RESOLVER = 666_666_666_666_666_603
ADMIN = 666_666_666_666_666_604
OUTSIDER = 666_666_666_666_666_605

# --- the table, as the docs give it ------------------------------------------------------------

GUILDS = {
    # No roles named: anyone creates, Manage Server resolves.
    "open": {"resolution_mode": "vote", "creator_role_ids": [], "resolver_role_ids": []},
    # Creator and resolver roles named, resolvers vote.
    "roles": {
        "resolution_mode": "vote",
        "creator_role_ids": [CREATOR_ROLE],
        "resolver_role_ids": [RESOLVER_ROLE],
    },
    # The same roles, the creator proposes.
    "creator_mode": {
        "resolution_mode": "creator",
        "creator_role_ids": [CREATOR_ROLE],
        "resolver_role_ids": [RESOLVER_ROLE],
    },
}
DISCORD_KINDS = ["member", "creator", "resolver", "manage"]
"""A member with no roles; the market's creator (with the creator role); a member with the
resolver role; a member with Manage Server."""
PERMISSIONS = [
    "markets.add_market",
    "markets.close_market",
    "markets.resolve_market",
    "markets.cancel_market",
    "points.adjust_balance",
    "points.change_guildsettings",
    "points.announce_season",
]
STAFF_KINDS = ["staff", *(f"staff+{perm}" for perm in PERMISSIONS), "superuser"]
ALL_KINDS = [*DISCORD_KINDS, *STAFF_KINDS, "system"]

_everyone = set(DISCORD_KINDS)
_moderators = {"open": {"manage"}, "roles": {"resolver", "manage"}}
_moderators["creator_mode"] = _moderators["roles"]

# Discord: which kinds may, in each guild (the "Discord member" column).
DISCORD_RULE: dict[Action, dict[str, set[str]]] = {
    Action.CREATE: {"open": _everyone, "roles": {"creator", "manage"}},
    Action.CHOOSE_LIQUIDITY: _moderators,
    Action.CLOSE: {g: {"creator", *m} for g, m in _moderators.items()},
    Action.VOTE: {"open": {"manage"}, "roles": {"resolver", "manage"}, "creator_mode": set()},
    Action.PROPOSE: {**_moderators, "creator_mode": {"creator", "resolver", "manage"}},
    Action.DISPUTE: {"open": _everyone, "roles": _everyone},  # who traded: the service's check
    Action.CONFIRM: _moderators,
    Action.RESOLVE: {"open": {"manage"}, "roles": {"manage"}},
    Action.CANCEL: _moderators,
    Action.ADJUST: {"open": {"manage"}, "roles": {"manage"}},
    Action.SETTINGS: {"open": {"manage"}, "roles": {"manage"}},
    Action.ANNOUNCE_SEASON: _moderators,
}
# The back office: the Django permission that grants each action ("back office permission").
STAFF_RULE: dict[Action, str | None] = {
    Action.CREATE: "markets.add_market",
    Action.CHOOSE_LIQUIDITY: "markets.add_market",
    Action.CLOSE: "markets.close_market",
    Action.VOTE: None,
    Action.PROPOSE: None,
    Action.DISPUTE: None,
    Action.CONFIRM: "markets.resolve_market",
    Action.RESOLVE: "markets.resolve_market",
    Action.CANCEL: "markets.cancel_market",
    Action.ADJUST: "points.adjust_balance",
    Action.SETTINGS: "points.change_guildsettings",
    Action.ANNOUNCE_SEASON: "points.announce_season",
}
SYSTEM_NEVER = {Action.VOTE, Action.PROPOSE, Action.DISPUTE}
"""The system (scheduler, commands) does everything else."""


@dataclass(frozen=True)
class Expectation:
    action: Action
    kind: str
    guild: str
    allowed: bool

    @property
    def id(self) -> str:
        verdict = "may" if self.allowed else "may-not"
        return f"{self.guild}-{self.kind}-{verdict}-{self.action.value}"


def _expected(action: Action, kind: str, guild: str) -> bool:
    if kind == "system":
        return action not in SYSTEM_NEVER
    if kind in STAFF_KINDS:
        perm = STAFF_RULE[action]
        return perm is not None and (kind == "superuser" or kind == f"staff+{perm}")
    rule = DISCORD_RULE[action]
    return kind in rule.get(guild, rule.get("roles", set()))


PERMISSION_TABLE: list[Expectation] = [
    Expectation(action, kind, guild, _expected(action, kind, guild))
    for action, guild, kind in itertools.product(Action, GUILDS, ALL_KINDS)
    # Back-office users and the system answer alike in every guild: one guild is enough.
    if kind in DISCORD_KINDS or guild == "roles"
]
"""Every (action × actor kind × guild) with the answer of docs/domain.md §6.1's table."""


def guild_rules(guild: str) -> dict[str, object]:
    """The `GuildSettings` values of one of the table's guilds (conflict of interest off, so
    only permissions decide; a 60-minute window, so a proposal waits to be disputed)."""
    return {
        **settings.PM_GUILD_DEFAULTS,
        **GUILDS[guild],
        "conflict_of_interest": False,
        "dispute_window_minutes": 60,
        "min_resolution_votes": 2,
        "fee_bps": 0,
    }


def actor_for(kind: str, django_user_model: type | None = None) -> Actor:
    """The actor of a kind; back-office kinds need the user model (a real user and its
    permissions, through `Actor.from_user`)."""
    discord = {
        "member": Actor.member(MEMBER),
        "creator": Actor.member(CREATOR, role_ids=[CREATOR_ROLE]),
        "resolver": Actor.member(RESOLVER, role_ids=[RESOLVER_ROLE]),
        "manage": Actor.member(ADMIN, manage_guild=True),
        "system": SYSTEM,
    }
    if kind in discord:
        return discord[kind]
    from django.contrib.auth.models import Permission

    assert django_user_model is not None
    user = django_user_model.objects.create_user(
        kind.replace("+", "_").replace(".", "_"), is_staff=True, is_superuser=kind == "superuser"
    )
    if kind.startswith("staff+"):
        app, codename = kind.removeprefix("staff+").split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    return Actor.from_user(django_user_model.objects.get(pk=user.pk))


# --- the rules ---------------------------------------------------------------------------------


def _settings(guild: str) -> GuildSettings:
    return GuildSettings(guild_id=GUILD, **guild_rules(guild))


class _MarketLike:
    pk = 42
    creator_id = CREATOR


def test_the_table_covers_every_action_and_kind():
    assert {e.action for e in PERMISSION_TABLE} == set(Action)
    assert {e.kind for e in PERMISSION_TABLE} == set(ALL_KINDS)
    assert len(PERMISSION_TABLE) == len(Action) * (
        len(DISCORD_KINDS) * len(GUILDS) + len(STAFF_KINDS) + 1
    )


@pytest.mark.parametrize("row", PERMISSION_TABLE, ids=lambda e: e.id)
def test_rules_give_the_tables_answer(row: Expectation, django_user_model, db):
    actor = actor_for(row.kind, django_user_model)
    refusal = allowed(row.action, actor, _settings(row.guild), _MarketLike())
    assert (refusal is None) == row.allowed, refusal
    if refusal is not None:
        assert refusal.strip() and "{" not in refusal  # a finished sentence, nothing left over
        perm = STAFF_RULE[row.action]
        if row.kind in STAFF_KINDS and perm:
            assert perm in refusal  # names the permission that is missing
        if row.kind in STAFF_KINDS and not perm:
            assert "Only Discord members" in refusal
        if row.kind in ("member", "creator", "resolver"):
            words = refusal.lower()
            assert "only" in words or "resolves by" in words  # says who may


# --- the services give the same answer ---------------------------------------------------------


class World:
    """A guild of the table with a market in the state each action needs. Everyone of the
    Discord kinds traded in it (so may dispute)."""

    def __init__(self, guild: str) -> None:
        GuildSettings.objects.create(guild_id=GUILD, **guild_rules(guild))
        self.count = itertools.count()
        self.moderator = Actor.member(ADMIN, manage_guild=True)

    def key(self) -> str:
        return f"k{next(self.count)}"

    def market(self, status: str = "open") -> Market:
        market = services.market_create(
            guild_id=GUILD,
            creator_id=CREATOR,
            question=f"Question {next(self.count)}?",
            outcomes=["Yes", "No"],
            duration="1d",
            idempotency_key=self.key(),
            actor=self.moderator,
        )
        for user in (MEMBER, CREATOR, RESOLVER, ADMIN):
            betting_services.bet_place(
                market_id=market.pk, user_id=user, outcome=0, amount=10, idempotency_key=self.key()
            )
        if status in ("closed", "resolving"):
            services.market_close(
                market_id=market.pk, actor=self.moderator, idempotency_key=self.key()
            )
        if status == "resolving":
            services.market_propose(
                market_id=market.pk, outcome=0, actor=self.moderator, idempotency_key=self.key()
            )
        market.refresh_from_db()
        assert market.status == status
        return market

    def closed_season(self) -> Season:
        """Season 1, closed by the clock and its table posted (docs/domain.md §10)."""
        season_configure(guild_id=GUILD, actor=SYSTEM, idempotency_key=self.key(), length="month")
        season = Season.objects.get(guild_id=GUILD, number=1)
        season_close(season.pk, season.ends_at)
        season_posted(season_id=season.pk, rewarded=[])
        return season


Call = tuple["Market | None", Callable[[], object]]


def _calls(world: World, action: Action, actor: Actor) -> list[Call]:
    """The core services that do `action`, each with the market it acts on (in the state it
    needs)."""
    k = world.key
    if action in (Action.CREATE, Action.CHOOSE_LIQUIDITY):
        liquidity = 500 if action == Action.CHOOSE_LIQUIDITY else None
        return [
            (
                None,
                lambda: services.market_create(
                    guild_id=GUILD,
                    creator_id=actor.user_id or CREATOR,
                    question="A new question?",
                    outcomes=["Yes", "No"],
                    duration="1d",
                    liquidity=liquidity,
                    idempotency_key=k(),
                    actor=actor,
                ),
            )
        ]
    if action == Action.CLOSE:
        m = world.market("open")
        return [
            (m, lambda: services.market_close(market_id=m.pk, actor=actor, idempotency_key=k()))
        ]
    if action == Action.VOTE:
        m = world.market("closed")
        return [
            (
                m,
                lambda: services.resolution_vote_cast(
                    market_id=m.pk, actor=actor, outcome=0, idempotency_key=k()
                ),
            )
        ]
    if action == Action.PROPOSE:
        m = world.market("closed")
        return [
            (
                m,
                lambda: services.market_propose(
                    market_id=m.pk, outcome=0, actor=actor, idempotency_key=k()
                ),
            )
        ]
    if action == Action.DISPUTE:
        m = world.market("resolving")
        return [
            (
                m,
                lambda: services.market_dispute(
                    market_id=m.pk, actor=actor, reason="wrong", idempotency_key=k()
                ),
            )
        ]
    if action == Action.CONFIRM:
        confirmed, undone = world.market("resolving"), world.market("resolving")
        return [
            (
                confirmed,
                lambda: services.market_proposal_confirm(
                    market_id=confirmed.pk, actor=actor, reason="ok", idempotency_key=k()
                ),
            ),
            (
                undone,
                lambda: services.market_proposal_undo(
                    market_id=undone.pk, actor=actor, reason="too early", idempotency_key=k()
                ),
            ),
        ]
    if action == Action.RESOLVE:
        return [
            (
                m,
                lambda m=m: services.market_resolve(
                    market_id=m.pk, outcome=1, actor=actor, reason="final", idempotency_key=k()
                ),
            )
            for m in (world.market("closed"), world.market("resolving"))
        ]
    if action == Action.CANCEL:
        return [
            (
                m,
                lambda m=m: services.market_cancel(
                    market_id=m.pk, actor=actor, reason="void", idempotency_key=k()
                ),
            )
            for m in (world.market("open"), world.market("resolving"))
        ]
    if action == Action.ADJUST:
        return [
            (
                None,
                lambda call=call: call(
                    guild_id=GUILD,
                    user_id=MEMBER,
                    amount=1,
                    reason="correction",
                    actor=actor,
                    idempotency_key=k(),
                ),
            )
            for call in (points_grant, points_deduct)
        ]
    if action == Action.ANNOUNCE_SEASON:
        season = world.closed_season()
        return [
            (
                None,
                lambda: season_repost(
                    season_id=season.pk, actor=actor, reason="deleted", idempotency_key=k()
                ),
            )
        ]
    assert action == Action.SETTINGS
    return [
        (
            None,
            lambda: guild_settings_update(
                guild_id=GUILD, actor=actor, idempotency_key=k(), values={"fee_bps": 10}
            ),
        )
    ]


@pytest.mark.parametrize("row", PERMISSION_TABLE, ids=lambda e: e.id)
def test_services_give_the_same_answer(row: Expectation, django_user_model, db):
    world = World(row.guild)
    actor = actor_for(row.kind, django_user_model)
    gs = GuildSettings.objects.get(guild_id=GUILD)
    for market, call in _calls(world, row.action, actor):
        refusal = allowed(row.action, actor, gs, market)
        if row.action == Action.CHOOSE_LIQUIDITY:
            # Choosing the liquidity is part of creating: the service asks both, creation first.
            refusal = allowed(Action.CREATE, actor, gs) or refusal
        may = row.allowed
        if row.action == Action.CHOOSE_LIQUIDITY:
            may = may and _expected(Action.CREATE, row.kind, row.guild)
        assert (refusal is None) == may
        if refusal is None:
            call()
            continue
        with pytest.raises(NotAllowed) as refused:
            call()
        assert refused.value.message == refusal


def test_a_member_who_never_traded_may_not_dispute(db):
    """The rules cannot see positions; the dispute service can, and says who may."""
    world = World("roles")
    market = world.market("resolving")
    with pytest.raises(NotAllowed) as refused:
        services.market_dispute(
            market_id=market.pk, actor=Actor.member(OUTSIDER), reason="no", idempotency_key="d"
        )
    assert refused.value.message == MSG_DISPUTE.format(market=market.pk)
