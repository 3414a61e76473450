"""The conflict-of-interest rule through the core services (docs/domain.md §6.1): a resolver who
holds shares (amm) or a stake (pari-mutuel) cannot vote (deciding or not), propose, confirm or
change a proposal, or force a result from Discord, and is told why (a vote and a force for the
same reason); the creator in creator mode may propose but takes no shortcut; with the rule off
every one of these is allowed."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from betting import services as betting_services
from markets import services
from markets.errors import MSG_CONFLICT_PROPOSE, MSG_CONFLICT_VOTE
from markets.models import Market, ResolutionVote
from points.errors import NotAllowed
from points.rules import Actor
from points.services import guild_settings_get_or_create, guild_settings_update
from tests.conftest import ALICE, BOB, GUILD, MOD

pytestmark = pytest.mark.django_db

MOD2 = MOD + 1
HOLDER = MOD  # a moderator (Manage Server) who trades
holder = Actor.member(HOLDER, manage_guild=True)
other = Actor.member(MOD2, manage_guild=True)
MECHANISMS = ["amm", "parimutuel"]
BECAUSE = "You hold a position in market"
RULE = "this server's conflict-of-interest rule"


def rules(**values: object) -> None:
    guild_settings_get_or_create(guild_id=GUILD)
    guild_settings_update(
        guild_id=GUILD,
        actor=Actor.member(MOD2, manage_guild=True),
        idempotency_key=f"settings:{sorted(values.items())}",
        values={"min_resolution_votes": 2, "fee_bps": 0, **values},
    )


def closed_market(mechanism: str, holders: tuple[int, ...] = (HOLDER,)) -> Market:
    """A Yes/No market created by ALICE; BOB and `holders` bet on Yes; closed."""
    market = services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Will it snow?",
        outcomes=["Yes", "No"],
        duration="1d",
        mechanism=mechanism,
        idempotency_key="create",
    )
    for user in (BOB, *holders):
        betting_services.bet_place(
            market_id=market.pk, user_id=user, outcome=0, amount=50, idempotency_key=f"b:{user}"
        )
    services.market_close(market_id=market.pk, actor=other, idempotency_key="close")
    return market


def vote(market: Market, actor: Actor, outcome: int = 0) -> ResolutionVote:
    return services.resolution_vote_cast(
        market_id=market.pk,
        actor=actor,
        outcome=outcome,
        idempotency_key=f"vote:{actor.user_id}:{outcome}",
    )


def propose(market: Market, actor: Actor, outcome: int = 0) -> Market:
    return services.market_propose(
        market_id=market.pk, outcome=outcome, actor=actor, idempotency_key=f"p:{actor.user_id}"
    )


def confirm(market: Market, actor: Actor, outcome: int | None = None) -> Market:
    return services.market_proposal_confirm(
        market_id=market.pk,
        actor=actor,
        outcome=outcome,
        reason="checked",
        idempotency_key=f"c:{actor.user_id}:{outcome}",
    )


def force(market: Market, actor: Actor, outcome: int = 1) -> Market:
    return services.market_resolve(
        market_id=market.pk,
        outcome=outcome,
        actor=actor,
        reason="overruled",
        idempotency_key=f"f:{actor.user_id}",
    )


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_holder_cannot_cast_the_deciding_vote_and_nothing_is_recorded(mechanism):
    rules(resolution_mode="vote", conflict_of_interest=True, dispute_window_minutes=0)
    market = closed_market(mechanism)
    vote(market, other)
    with pytest.raises(NotAllowed) as refused:
        vote(market, holder)
    assert refused.value.message == MSG_CONFLICT_VOTE.format(market_id=market.pk)
    assert RULE in refused.value.message and "another resolver" in refused.value.message
    market.refresh_from_db()
    assert market.status == "closed"
    assert list(
        ResolutionVote.objects.filter(market=market).values_list("voter_id", flat=True)
    ) == [MOD2]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_holder_cannot_cast_even_a_vote_that_decides_nothing(mechanism):
    """A counted vote is half a decision: refused for the same reason as `force` (issue 23)."""
    rules(resolution_mode="vote", conflict_of_interest=True, dispute_window_minutes=0)
    market = closed_market(mechanism)
    with pytest.raises(NotAllowed) as refused:
        vote(market, holder)  # the first vote: it would decide nothing
    assert refused.value.message == MSG_CONFLICT_PROPOSE.format(market_id=market.pk)
    assert not ResolutionVote.objects.filter(market=market).exists()
    vote(market, other)  # resolvers without a position decide
    vote(market, Actor.member(MOD2 + 1, manage_guild=True))
    market.refresh_from_db()
    assert market.status == "resolved" and market.winning_outcome.position == 0


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("mode", ["vote", "creator"])
def test_a_holder_cannot_propose_confirm_change_or_force_and_is_told_why(mechanism, mode):
    rules(resolution_mode=mode, conflict_of_interest=True, dispute_window_minutes=60)
    market = closed_market(mechanism)
    why = MSG_CONFLICT_PROPOSE.format(market_id=market.pk)
    assert BECAUSE in why and RULE in why
    with pytest.raises(NotAllowed) as refused:
        propose(market, holder)
    assert refused.value.message == why
    propose(market, other)  # someone without a position may
    for attempt in (
        lambda: confirm(market, holder),
        lambda: confirm(market, holder, outcome=1),
        lambda: force(market, holder),
    ):
        with pytest.raises(NotAllowed) as refused:
            attempt()
        assert refused.value.message == why
    market.refresh_from_db()
    assert market.status == "resolving" and market.proposed_outcome.position == 0
    # A moderator who holds nothing confirms a change.
    market = confirm(market, Actor.member(MOD2 + 1, manage_guild=True), outcome=1)
    assert market.status == "resolved" and market.winning_outcome.position == 1


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_selling_everything_ends_the_conflict(mechanism):
    """Conflict is about holding now (amm: shares; a pool stake cannot be sold)."""
    rules(resolution_mode="vote", conflict_of_interest=True, dispute_window_minutes=0)
    if mechanism == "parimutuel":
        market = closed_market(mechanism)
        with pytest.raises(NotAllowed):
            force(market, holder)
        return
    market = services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Will it snow?",
        outcomes=["Yes", "No"],
        duration="1d",
        idempotency_key="create",
    )
    betting_services.bet_place(
        market_id=market.pk, user_id=HOLDER, outcome=0, amount=50, idempotency_key="b"
    )
    betting_services.shares_sell(
        market_id=market.pk, user_id=HOLDER, outcome=0, shares=None, idempotency_key="s"
    )
    services.market_close(market_id=market.pk, actor=other, idempotency_key="close")
    assert force(market, holder).status == "resolved"


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("window", [0, 60])
def test_the_creator_in_creator_mode_may_propose_but_takes_no_shortcut(mechanism, window):
    rules(resolution_mode="creator", conflict_of_interest=True, dispute_window_minutes=window)
    market = closed_market(mechanism, holders=(ALICE,))
    now = timezone.now()
    market = services.market_propose(
        market_id=market.pk,
        outcome=0,
        actor=Actor.member(ALICE),
        idempotency_key="creator",
        now=now,
    )
    # Not paid at once even with no window: it waits for the window or a second resolver.
    assert market.status == "resolving" and market.proposal_conflicted is True
    expected_deadline = now + dt.timedelta(minutes=window) if window else None
    assert market.dispute_deadline == expected_deadline
    # The creator, even with Manage Server, cannot confirm their own proposal.
    with pytest.raises(NotAllowed, match="another resolver must confirm it"):
        confirm(market, Actor.member(ALICE, manage_guild=True))
    if window:
        report = services.markets_tick(now=expected_deadline)
        assert report.settled == [market.pk]  # the whole window passed, undisputed
    else:
        confirm(market, other)  # a second resolver
    market.refresh_from_db()
    assert market.status == "resolved" and market.winning_outcome.position == 0


def test_a_creator_without_a_position_is_paid_at_once_with_no_window():
    rules(resolution_mode="creator", conflict_of_interest=True, dispute_window_minutes=0)
    market = closed_market("amm", holders=())
    market = propose(market, Actor.member(ALICE))
    assert market.status == "resolved"


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_with_the_rule_off_holders_may_do_everything(mechanism):
    rules(resolution_mode="vote", conflict_of_interest=False, dispute_window_minutes=60)
    market = closed_market(mechanism, holders=(HOLDER, ALICE))
    vote(market, other)
    vote(market, holder)  # the deciding vote
    market.refresh_from_db()
    assert market.status == "resolving" and market.proposal_conflicted is False
    assert confirm(market, holder, outcome=1).winning_outcome.position == 1

    market2 = services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Will it hail?",
        outcomes=["Yes", "No"],
        duration="1d",
        mechanism=mechanism,
        idempotency_key="create2",
    )
    betting_services.bet_place(
        market_id=market2.pk, user_id=HOLDER, outcome=0, amount=50, idempotency_key="b2"
    )
    betting_services.bet_place(
        market_id=market2.pk, user_id=ALICE, outcome=0, amount=50, idempotency_key="b3"
    )
    services.market_close(market_id=market2.pk, actor=other, idempotency_key="close2")
    assert propose(market2, holder).status == "resolving"
    assert force(market2, holder).status == "resolved"

    # Creator mode, no window, rule off: the holding creator's proposal pays at once.
    rules(resolution_mode="creator", conflict_of_interest=False, dispute_window_minutes=0)
    market3 = services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Will it thunder?",
        outcomes=["Yes", "No"],
        duration="1d",
        mechanism=mechanism,
        idempotency_key="create3",
    )
    betting_services.bet_place(
        market_id=market3.pk, user_id=ALICE, outcome=0, amount=50, idempotency_key="b4"
    )
    services.market_close(market_id=market3.pk, actor=other, idempotency_key="close3")
    assert propose(market3, Actor.member(ALICE)).status == "resolved"


def test_back_office_users_are_not_judged_by_discord_positions(django_user_model):
    """The back office cannot know a staff member's Discord positions for certain: the rule
    applies to Discord members (docs/domain.md §6.1)."""
    from django.contrib.auth.models import Permission

    rules(resolution_mode="vote", conflict_of_interest=True, dispute_window_minutes=0)
    market = closed_market("amm")
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="resolve_market"))
    staff = django_user_model.objects.get(pk=staff.pk)
    assert force(market, Actor.from_user(staff)).status == "resolved"
