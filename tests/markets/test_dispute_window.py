"""A proposed result's life through the services, against real PostgreSQL (docs/domain.md §6.1):
the scheduler settles an undisputed proposal exactly once at its deadline (two schedulers
racing), a dispute holds it for moderators who change it, undo starts a new round, cancel while
resolving refunds everyone, a late dispute is refused, and with no window a conflicted creator's
proposal waits for a second resolver. Payouts are checked against numbers computed here from
`markets.amm`; the ledger audit runs mid-way and after each test (tests/conftest.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from betting import services as betting_services
from markets import amm, services
from markets.amm import SHARE_SCALE
from markets.errors import MarketStateError
from markets.models import Dispute, Market, MarketEvent, ResolutionVote
from points.audit import ledger_audit
from points.errors import NotAllowed
from points.models import Account, Transfer
from points.rules import Actor
from points.selectors import balance_get
from points.services import guild_settings_get_or_create, guild_settings_update
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD
from tests.markets.test_concurrency import run_threads

MOD2 = MOD + 1
STARTING = 1000
LIQUIDITY = 1000
WINDOW = 60
moderator = Actor.member(MOD, manage_guild=True)
second_moderator = Actor.member(MOD2, manage_guild=True)


def audit_passes() -> None:
    report = ledger_audit()
    assert report.ok, report.violations


def rules(**values: object) -> None:
    """The guild's settings, through the service Manage Server uses."""
    guild_settings_get_or_create(guild_id=GUILD)
    guild_settings_update(
        guild_id=GUILD,
        actor=Actor.member(MOD, manage_guild=True),
        idempotency_key=f"settings:{sorted(values.items())}",
        values={
            "starting_balance": STARTING,
            "fee_bps": 0,
            "default_liquidity": LIQUIDITY,
            "min_resolution_votes": 2,
            **values,
        },
    )


def closed_market(bets: dict[int, tuple[int, int]]) -> tuple[Market, dict[int, int]]:
    """An amm Yes/No market created by ALICE, `bets` (member → (outcome, points)) placed in
    order, then closed. Returns the market and each member's micro-shares, checked against the
    market maker's arithmetic."""
    market = services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Will it rain tomorrow?",
        outcomes=["Yes", "No"],
        duration="1d",
        idempotency_key="create",
    )
    pools = amm.initial_pools(2, LIQUIDITY)
    shares: dict[int, int] = {}
    for user, (outcome, points) in bets.items():
        trade = betting_services.bet_place(
            market_id=market.pk,
            user_id=user,
            outcome=outcome,
            amount=points,
            idempotency_key=f"bet:{user}",
        )
        expected = amm.buy(pools, outcome, points)
        assert trade.shares == expected.shares
        pools = expected.pools
        shares[user] = expected.shares
    services.market_close(market_id=market.pk, actor=moderator, idempotency_key="close")
    return market, shares


def propose(market: Market, outcome: int, now: dt.datetime, actor: Actor = moderator) -> Market:
    return services.market_propose(
        market_id=market.pk,
        outcome=outcome,
        actor=actor,
        reason="the weather service says so",
        idempotency_key=f"propose:{market.pk}:{now.isoformat()}:{actor.user_id}",
        now=now,
    )


def payouts(market: Market) -> dict[int, int]:
    rows = Transfer.objects.filter(market_id=market.pk, code=Transfer.Code.PAYOUT)
    paid: dict[int, int] = {}
    for owner, amount in rows.values_list("destination__owner_id", "amount"):
        paid[owner] = paid.get(owner, 0) + amount
    return paid


def escrow_of(market: Market) -> int:
    return Account.objects.get(kind=Account.Kind.ESCROW, market=market).balance


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_undisputed_proposal_settles_exactly_once_at_the_deadline_with_two_schedulers_racing():
    rules(dispute_window_minutes=WINDOW)
    market, shares = closed_market({BOB: (0, 100), CAROL: (1, 50)})
    t0 = timezone.now()
    market = propose(market, 0, t0)
    deadline = t0 + dt.timedelta(minutes=WINDOW)
    assert (market.status, market.dispute_deadline) == ("resolving", deadline)
    assert escrow_of(market) == LIQUIDITY + 150  # nothing moves while resolving (L4)
    audit_passes()

    early = services.markets_tick(now=deadline - dt.timedelta(seconds=1))
    assert market.pk not in early.settled

    outcomes, _ = run_threads(2, lambda i: services.markets_tick(now=deadline))
    assert not outcomes.errors, outcomes.errors
    settled = [r.settled.count(market.pk) for r in outcomes.results.values()]
    assert sorted(settled) == [0, 1], settled  # exactly one scheduler settled it

    market.refresh_from_db()
    assert market.status == "resolved" and market.winning_outcome.position == 0
    assert payouts(market) == {BOB: shares[BOB] // SHARE_SCALE}
    assert balance_get(guild_id=GUILD, user_id=BOB) == STARTING - 100 + shares[BOB] // SHARE_SCALE
    assert balance_get(guild_id=GUILD, user_id=CAROL) == STARTING - 50
    assert escrow_of(market) == 0
    resolved = MarketEvent.objects.get(market=market, type=MarketEvent.Type.RESOLVED)
    assert resolved.payload["was_proposed"] is True
    assert resolved.payload["changed_from"] is None and resolved.payload["disputed"] is False
    assert services.markets_tick(now=deadline + dt.timedelta(hours=1)).settled == []


@pytest.mark.django_db
def test_disputed_proposal_waits_then_a_moderator_changes_it_and_it_settles_once():
    rules(dispute_window_minutes=WINDOW)
    market, shares = closed_market({BOB: (0, 100), CAROL: (1, 80)})
    t0 = timezone.now()
    propose(market, 0, t0)
    dispute = services.market_dispute(
        market_id=market.pk,
        actor=Actor.member(CAROL),
        reason="It did not rain here",
        idempotency_key="dispute:carol",
        now=t0 + dt.timedelta(minutes=5),
    )
    assert (dispute.user_id, dispute.proposal_round) == (CAROL, 1)
    audit_passes()
    # Disputed: the scheduler leaves it for moderators within the dispute hold (48 hours by
    # default, docs/domain.md §6.1), reminding them once past its half.
    report = services.markets_tick(now=t0 + dt.timedelta(hours=47))
    assert market.pk not in report.settled and market.pk not in report.refunded
    assert report.reminded == [market.pk] and report.expired == []
    again = services.markets_tick(now=t0 + dt.timedelta(hours=47, minutes=30))
    assert again.reminded == []  # once per proposal
    market.refresh_from_db()
    assert market.status == "resolving" and market.disputed_at is not None

    kwargs = dict(
        market_id=market.pk,
        actor=second_moderator,
        outcome=1,
        reason="the station recorded no rain",
        idempotency_key="confirm:changed",
    )
    market = services.market_proposal_confirm(**kwargs)
    assert market.status == "resolved" and market.winning_outcome.position == 1
    assert payouts(market) == {CAROL: shares[CAROL] // SHARE_SCALE}
    assert balance_get(guild_id=GUILD, user_id=BOB) == STARTING - 100
    resolved = MarketEvent.objects.get(market=market, type=MarketEvent.Type.RESOLVED)
    assert resolved.payload["changed_from"] == "Yes" and resolved.payload["disputed"] is True
    assert "changed from “Yes” to “No”" in resolved.payload["reason"]

    # A replay answers with the same market and pays nothing twice; a tick changes nothing.
    assert services.market_proposal_confirm(**kwargs).pk == market.pk
    assert services.markets_tick(now=t0 + dt.timedelta(days=31)).settled == []
    assert payouts(market) == {CAROL: shares[CAROL] // SHARE_SCALE}
    assert MarketEvent.objects.filter(market=market, type=MarketEvent.Type.RESOLVED).count() == 1


@pytest.mark.django_db
def test_undo_clears_votes_and_a_new_proposal_is_a_new_round():
    rules(dispute_window_minutes=WINDOW, resolution_mode="vote")
    market, shares = closed_market({BOB: (0, 100), CAROL: (1, 60)})
    t0 = timezone.now()
    for voter in (moderator, second_moderator):
        services.resolution_vote_cast(
            market_id=market.pk,
            actor=voter,
            outcome=0,
            idempotency_key=f"v1:{voter.user_id}",
            now=t0,
        )
    market.refresh_from_db()
    assert (market.status, market.proposal_round, market.proposed_outcome.position) == (
        "resolving",
        1,
        0,
    )
    services.market_dispute(
        market_id=market.pk,
        actor=Actor.member(CAROL),
        reason="wrong",
        idempotency_key="d1",
        now=t0,
    )

    market = services.market_proposal_undo(
        market_id=market.pk, actor=moderator, reason="proposed too early", idempotency_key="undo"
    )
    assert market.status == "closed" and market.proposed_outcome is None
    assert market.dispute_deadline is None and market.disputed_at is None
    assert not ResolutionVote.objects.filter(market=market).exists()
    undone = MarketEvent.objects.get(market=market, type=MarketEvent.Type.UNDONE)
    assert undone.payload["round"] == 1 and undone.payload["disputes"] == 1
    audit_passes()

    # New votes, a new proposal, a new round: round 1's dispute does not hold it.
    t1 = t0 + dt.timedelta(hours=2)
    for voter in (moderator, second_moderator):
        services.resolution_vote_cast(
            market_id=market.pk,
            actor=voter,
            outcome=1,
            idempotency_key=f"v2:{voter.user_id}",
            now=t1,
        )
    market.refresh_from_db()
    assert (market.status, market.proposal_round, market.disputed_at) == ("resolving", 2, None)
    assert Dispute.objects.filter(market=market, proposal_round=2).count() == 0
    # CAROL disputed round 1; she may dispute round 2 as well (one dispute per proposal).
    services.market_dispute(
        market_id=market.pk,
        actor=Actor.member(CAROL),
        reason="still wrong",
        idempotency_key="d2",
        now=t1,
    )
    services.market_proposal_undo(
        market_id=market.pk, actor=moderator, reason="again", idempotency_key="undo2"
    )
    t2 = t1 + dt.timedelta(hours=1)
    propose(market, 1, t2)
    report = services.markets_tick(now=t2 + dt.timedelta(minutes=WINDOW))
    assert report.settled == [market.pk]
    market.refresh_from_db()
    assert market.status == "resolved" and market.winning_outcome.position == 1
    assert payouts(market) == {CAROL: shares[CAROL] // SHARE_SCALE}


@pytest.mark.django_db
def test_cancel_while_resolving_refunds_everyone():
    rules(dispute_window_minutes=WINDOW)
    market, _ = closed_market({BOB: (0, 100), CAROL: (1, 70), ALICE: (0, 30)})
    t0 = timezone.now()
    propose(market, 0, t0)
    services.market_dispute(
        market_id=market.pk, actor=Actor.member(CAROL), reason="no", idempotency_key="d", now=t0
    )
    market = services.market_cancel(
        market_id=market.pk,
        actor=moderator,
        reason="the question was ambiguous",
        idempotency_key="x",
    )
    assert market.status == "cancelled" and market.proposed_outcome is None
    for user in (ALICE, BOB, CAROL):
        assert balance_get(guild_id=GUILD, user_id=user) == STARTING  # fee 0: all spent back
    assert escrow_of(market) == 0
    assert payouts(market) == {}
    report = services.markets_tick(now=t0 + dt.timedelta(days=30))
    assert market.pk not in report.settled + report.refunded


@pytest.mark.django_db
def test_a_dispute_at_or_after_the_deadline_is_refused_and_the_tick_settles_it():
    rules(dispute_window_minutes=WINDOW)
    market, shares = closed_market({BOB: (0, 100), CAROL: (1, 70)})
    t0 = timezone.now()
    propose(market, 0, t0)
    deadline = t0 + dt.timedelta(minutes=WINDOW)
    for late in (deadline, deadline + dt.timedelta(hours=3)):
        with pytest.raises(MarketStateError, match=r"dispute window of market .* ended"):
            services.market_dispute(
                market_id=market.pk,
                actor=Actor.member(CAROL),
                reason="too late?",
                idempotency_key=f"late:{late.isoformat()}",
                now=late,
            )
    market.refresh_from_db()
    assert market.disputed_at is None and not Dispute.objects.filter(market=market).exists()
    assert services.markets_tick(now=deadline).settled == [market.pk]
    assert payouts(market) == {BOB: shares[BOB] // SHARE_SCALE}


@pytest.mark.django_db
def test_no_window_conflicted_creator_waits_for_a_second_resolver():
    rules(dispute_window_minutes=0, resolution_mode="creator", conflict_of_interest=True)
    market, shares = closed_market({ALICE: (0, 100), BOB: (1, 40)})
    t0 = timezone.now()
    market = propose(market, 0, t0, actor=Actor.member(ALICE))
    assert market.status == "resolving" and market.dispute_deadline is None
    assert market.proposal_conflicted is True and market.proposed_by_id == ALICE
    proposed = MarketEvent.objects.get(market=market, type=MarketEvent.Type.PROPOSED)
    assert proposed.payload["conflicted"] is True and proposed.payload["deadline"] is None
    audit_passes()

    # No deadline: the scheduler never settles it (nor auto-refunds it).
    report = services.markets_tick(now=t0 + dt.timedelta(days=30))
    assert market.pk not in report.settled + report.refunded
    # The proposer cannot confirm it, even as a moderator; and gets told why.
    with pytest.raises(NotAllowed, match="another resolver must confirm it"):
        services.market_proposal_confirm(
            market_id=market.pk,
            actor=Actor.member(ALICE, manage_guild=True),
            reason="I checked",
            idempotency_key="self",
        )
    # A second resolver can.
    market = services.market_proposal_confirm(
        market_id=market.pk, actor=moderator, reason="checked", idempotency_key="second"
    )
    assert market.status == "resolved" and market.winning_outcome.position == 0
    assert payouts(market) == {ALICE: shares[ALICE] // SHARE_SCALE}
    assert market.settled_by_id == MOD
