"""Outcome known at (docs/domain.md §6.2): the trades after `known_at` are reversed, latest first,
inside the settling transaction, on every settling path; each test ends in the ledger audit."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from betting import services as betting
from betting.models import Position, Trade, TradeReversal
from markets import services
from markets.amm import SHARE_SCALE
from markets.errors import InvalidMarketInput
from markets.models import Market, MarketEvent
from points.errors import IdempotencyConflict
from points.models import Account, AuditEvent, Transfer
from points.rules import Actor
from points.services import guild_settings_get_or_create, points_tip
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD

pytestmark = pytest.mark.django_db

DAN, EVE, FAY = CAROL + 11, CAROL + 12, CAROL + 13
STAFF = Actor.member(MOD, manage_guild=True)


def create(mechanism: str = "amm", key: str = "m", liquidity: int | None = None) -> Market:
    return services.market_create(
        guild_id=GUILD,
        creator_id=CAROL,
        question="Who wins the final?",
        outcomes=["Yes", "No"],
        duration="1d",
        mechanism=mechanism,
        liquidity=liquidity,
        idempotency_key=key,
        actor=STAFF if liquidity else None,
    )


def buy(market: Market, user: int, outcome: int, amount: int, key: str) -> Trade:
    return betting.bet_place(
        market_id=market.pk, user_id=user, outcome=outcome, amount=amount, idempotency_key=key
    )


def close(market: Market) -> None:
    services.market_close(market_id=market.pk, actor=STAFF, idempotency_key=f"close{market.pk}")


def balance(user: int) -> int:
    return Account.objects.get(guild_id=GUILD, kind="wallet", owner_id=user).balance


def escrow(market: Market) -> int:
    return Account.objects.get(kind="escrow", market=market).balance


def pools(market: Market) -> list[int]:
    return [o.pool for o in market.outcomes.order_by("position")]


def resolve(market: Market, outcome: int, known_at: dt.datetime | None, key: str = "r") -> Market:
    return services.market_resolve(
        market_id=market.pk,
        outcome=outcome,
        actor=STAFF,
        reason="The final whistle",
        idempotency_key=key,
        known_at=known_at,
    )


def test_the_worked_example_of_section_6_2():
    """docs/domain.md §6.2's table, to the micro-share: a reversed sale with a shortfall, a
    reversed buy with its fee, and the payout a market without the late trades makes."""
    gs = guild_settings_get_or_create(guild_id=GUILD)
    gs.fee_bps = 100
    gs.save()
    market = create(liquidity=100)
    ann = buy(market, ALICE, 0, 50, "ann")
    assert (ann.fee, ann.shares) == (1, 81_885_906)
    buy(market, CAROL, 1, 30, "cat")
    before = pools(market)
    assert before == [96_114_094, 104_043_014]
    known_at = timezone.now()
    bob = buy(market, BOB, 0, 200, "bob")
    sale = betting.shares_sell(market_id=market.pk, user_id=ALICE, outcome=0, idempotency_key="s")
    assert (sale.amount, sale.fee) == (71, 1)
    points_tip(guild_id=GUILD, from_user_id=ALICE, to_user_id=DAN, amount=1000, idempotency_key="t")
    assert balance(ALICE) == 20 and escrow(market) == 305
    treasury_before = Account.objects.get(guild_id=GUILD, kind="treasury").balance
    close(market)

    resolve(market, 0, known_at)

    assert Trade.objects.filter(market=market, reversal__isnull=False).count() == 2
    reversal = {
        (t.idempotency_key, t.code, t.amount, t.source.kind, t.destination.kind)
        for t in Transfer.objects.filter(code__startswith="reversal").select_related(
            "source", "destination"
        )
    }
    m = market.pk
    assert reversal == {
        (f"reversal:{m}:fees", "reversal", 3, "treasury", "escrow"),  # Bob's 2, Ann's 1
        (f"reversal:{m}:{ALICE}:shortfall", "reversal_shortfall", 50, "treasury", "escrow"),
        (f"reversal:{m}:{ALICE}", "reversal", 20, "wallet", "escrow"),
        (f"reversal:{m}:{BOB}", "reversal", 200, "escrow", "wallet"),
    }
    bob_transfer = Transfer.objects.get(idempotency_key=f"reversal:{m}:{BOB}")
    assert [mark.trade for mark in bob_transfer.reversed_trades.all()] == [bob]
    assert TradeReversal.objects.get(trade=sale).transfer.amount == 20
    assert not TradeReversal.objects.filter(trade=ann).exists()
    assert balance(BOB) == 1000  # his whole 200 back, fee included
    assert balance(ALICE) == 20 - 20 + 81  # gave back what she held, then won 81
    market.refresh_from_db()
    assert pools(market) == before and market.known_at == known_at
    ann_position = Position.objects.get(market=market, user_id=ALICE)
    assert (ann_position.shares, ann_position.payout) == (81_885_906, 81)
    assert Position.objects.get(market=market, user_id=BOB).shares == 0
    # Bob's 2 and Ann's fee 1 and shortfall 50 came from the treasury; 97 returned to it.
    treasury = Account.objects.get(guild_id=GUILD, kind="treasury").balance
    assert treasury == treasury_before - 2 - 1 - 50 + 97
    event = MarketEvent.objects.get(market=market, type="market_resolved")
    assert event.payload["reversed"] == 2 and event.payload["known_at"] == known_at.isoformat()
    assert event.payload["reversed_members"] == {str(ALICE): -20, str(BOB): 200}
    assert event.payload["reversal_shortfall"] == 50
    shortfall = AuditEvent.objects.get(action="reversal_shortfall")
    assert shortfall.after == {"shortfall": {str(ALICE): 50}}


def test_pool_stakes_after_known_at_are_refunded_before_the_split():
    market = create("parimutuel")
    buy(market, DAN, 0, 100, "d")
    buy(market, EVE, 1, 50, "e")
    known_at = timezone.now()
    buy(market, FAY, 0, 300, "f")
    close(market)
    resolve(market, 0, known_at)
    assert balance(FAY) == 1000 and balance(DAN) == 1000 - 100 + 150 and balance(EVE) == 950
    assert [o.staked for o in market.outcomes.order_by("position")] == [100, 50]


def test_without_known_at_or_with_no_late_trade_nothing_is_reversed():
    market = create()
    buy(market, ALICE, 0, 100, "a")
    known_at = timezone.now()
    close(market)
    resolve(market, 0, known_at)
    assert not Transfer.objects.filter(code="reversal").exists()
    event = MarketEvent.objects.get(market=market, type="market_resolved")
    assert event.payload["reversed"] == 0


@pytest.mark.parametrize(
    ("shift", "bound"),
    [("future", "now"), ("before_open", "opened"), ("after_close", "closed"), ("naive", None)],
)
def test_known_at_outside_the_market_span_is_refused_with_the_span(shift, bound):
    market = create()
    buy(market, ALICE, 0, 100, "a")
    close(market)
    market.refresh_from_db()
    assert market.closed_at is not None
    known_at = {
        "future": timezone.now() + dt.timedelta(hours=1),
        "before_open": market.created_at - dt.timedelta(seconds=1),
        "after_close": market.closed_at + dt.timedelta(microseconds=1),
        "naive": dt.datetime(2026, 1, 1),
    }[shift]
    with pytest.raises(InvalidMarketInput) as refused:
        resolve(market, 0, known_at)
    message = str(refused.value)
    if bound is None:
        assert "moment in time" in message
    else:
        assert refused.value.details["bound"] == bound
        assert "opening" in message and "closing" in message
    assert Market.objects.get(pk=market.pk).status == "closed"


def test_a_proposal_carries_known_at_confirm_may_change_it_undo_forgets_it():
    gs = guild_settings_get_or_create(guild_id=GUILD)
    gs.dispute_window_minutes = 60
    gs.save()
    market = create()
    buy(market, ALICE, 0, 100, "a")
    early = timezone.now()
    buy(market, BOB, 0, 100, "b1")
    late = timezone.now()
    buy(market, BOB, 1, 40, "b2")
    close(market)
    services.market_propose(
        market_id=market.pk, outcome=0, actor=STAFF, idempotency_key="p", known_at=late
    )
    market.refresh_from_db()
    assert market.status == "resolving" and market.known_at == late
    proposed = MarketEvent.objects.get(market=market, type="resolution_proposed")
    assert proposed.payload["known_at"] == late.isoformat() and proposed.payload["reversible"] == 1
    with pytest.raises(IdempotencyConflict):
        services.market_propose(
            market_id=market.pk, outcome=0, actor=STAFF, idempotency_key="p", known_at=early
        )
    services.market_proposal_undo(
        market_id=market.pk, actor=STAFF, reason="wrong", idempotency_key="u"
    )
    market.refresh_from_db()
    assert market.known_at is None
    services.market_propose(
        market_id=market.pk, outcome=0, actor=STAFF, idempotency_key="p2", known_at=late
    )
    services.market_proposal_confirm(
        market_id=market.pk, actor=STAFF, reason="earlier", idempotency_key="c", known_at=early
    )
    assert balance(BOB) == 1000  # both of Bob's trades came after `early`
    assert Trade.objects.filter(reversal__isnull=False).count() == 2


def test_an_undisputed_proposal_settles_with_its_known_at():
    gs = guild_settings_get_or_create(guild_id=GUILD)
    gs.dispute_window_minutes = 1
    gs.save()
    market = create()
    buy(market, ALICE, 0, 100, "a")
    known_at = timezone.now()
    buy(market, BOB, 0, 100, "b")
    close(market)
    services.market_propose(
        market_id=market.pk, outcome=0, actor=STAFF, idempotency_key="p", known_at=known_at
    )
    services.markets_tick(now=timezone.now() + dt.timedelta(minutes=2))
    market.refresh_from_db()
    assert market.status == "resolved" and balance(BOB) == 1000


def test_agreeing_votes_propose_the_latest_known_at_they_stated():
    gs = guild_settings_get_or_create(guild_id=GUILD)
    gs.min_resolution_votes = 2
    gs.save()
    market = create()
    buy(market, ALICE, 0, 100, "a")
    first = timezone.now()
    buy(market, BOB, 0, 100, "b1")
    second = timezone.now()
    buy(market, BOB, 0, 50, "b2")
    close(market)
    for voter, known_at in ((DAN, first), (EVE, second)):
        services.resolution_vote_cast(
            market_id=market.pk,
            actor=Actor.member(voter, manage_guild=True),
            outcome=0,
            idempotency_key=f"v{voter}",
            known_at=known_at,
        )
    market.refresh_from_db()
    assert market.status == "resolved" and market.known_at == second
    assert Trade.objects.filter(reversal__isnull=False).count() == 1
    bob = Position.objects.get(market=market, user_id=BOB)
    assert bob.points_spent == 100 and bob.payout == bob.shares // SHARE_SCALE
