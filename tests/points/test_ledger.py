"""The ledger's one posting path (`points.ledger`, issue 20 §1)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from betting.models import Trade
from betting.services import TradeRequest, trades_apply
from points import ledger, services
from points.errors import InsufficientPoints
from points.models import Account, Transfer
from tests.conftest import ALICE, BOB, CAROL, GUILD
from tests.factories import MarketFactory, MemberFactory

pytestmark = pytest.mark.django_db


class LedgerDown(Exception):
    pass


def _refuse(*args: object, **kwargs: object) -> list[Transfer]:
    raise LedgerDown("the one posting path")


def test_every_balance_change_goes_through_post_many(monkeypatch):
    """With `post_many` broken, neither a single transfer (a tip) nor a batch of trades can
    move a point: there is no second way to write the ledger."""
    MemberFactory(user_id=ALICE)
    MemberFactory(user_id=BOB)
    market = MarketFactory()
    transfers = Transfer.objects.count()
    monkeypatch.setattr(ledger, "post_many", _refuse)

    with pytest.raises(LedgerDown):
        services.points_tip(
            guild_id=GUILD, from_user_id=ALICE, to_user_id=BOB, amount=5, idempotency_key="tip"
        )
    requests = [
        TradeRequest(kind="buy", user_id=user, outcome=0, idempotency_key=f"b{user}", amount=10)
        for user in (ALICE, BOB, CAROL)  # CAROL has no wallet yet: her starting balance too
    ]
    with pytest.raises(LedgerDown):
        trades_apply(market_id=market.pk, requests=requests)

    assert Transfer.objects.count() == transfers and not Trade.objects.exists()
    assert not Account.objects.filter(owner_id=CAROL).exists()
    monkeypatch.undo()
    results = trades_apply(market_id=market.pk, requests=requests)
    assert all(isinstance(r, Trade) for r in results)


def test_post_many_checks_the_locked_balances_and_writes_nothing_on_a_refusal():
    MemberFactory(user_id=ALICE)
    MemberFactory(user_id=BOB)
    with transaction.atomic():
        members = services.members_prepare(guild_id=GUILD, user_ids=[ALICE, BOB])
        locked = ledger.accounts_lock(members.account_ids)
        alice, bob = (locked[members.wallets[u].pk] for u in (ALICE, BOB))
        legs = [
            ledger.Leg(alice, bob, 600, Transfer.Code.TIP, "t1"),
            ledger.Leg(alice, bob, 600, Transfer.Code.TIP, "t2"),
        ]
        before = Transfer.objects.count()
        with pytest.raises(InsufficientPoints, match="you have 1,000 and need 1,200"):
            ledger.post_many(legs, locked)
        assert Transfer.objects.count() == before and alice.balance == 1000
        with CaptureQueriesContext(connection) as posted:
            ledger.post_many(legs[:1], locked)
        assert len(posted) == 2  # the transfers in one statement, the balances in another
    assert Account.objects.get(pk=alice.pk).balance == 400 == alice.balance
    assert Account.objects.get(pk=bob.pk).balance == 1600 == bob.balance


def test_wallets_open_opens_the_missing_wallets_at_once_and_owes_their_starting_balance():
    MemberFactory(user_id=ALICE)
    with transaction.atomic():
        with CaptureQueriesContext(connection) as opening:
            opened = ledger.wallets_open(GUILD, [CAROL, ALICE, BOB], starting_balance=250)
        assert opened.created == {BOB, CAROL}
        assert sorted(opened.starting_legs) == [BOB, CAROL]
        assert {leg.amount for leg in opened.starting_legs.values()} == {250}
        assert opened.starting_legs[BOB].idempotency_key == f"start:{GUILD}:{BOB}"
        # existing wallets, one insert for both new ones, the treasury
        assert len(opening) == 3
        again = ledger.wallets_open(GUILD, [BOB, CAROL])
        assert again.created == set() and again.starting_legs == {}
        assert again.wallets[BOB] == opened.wallets[BOB]
        assert opened.treasury is not None
        locked = ledger.accounts_lock([opened.treasury.pk, *opened.wallets.values()])
        ledger.post_many(list(opened.starting_legs.values()), locked)
    assert services.wallet_get_or_create(guild_id=GUILD, user_id=BOB).balance == 250


def test_a_journal_stages_all_of_a_group_or_none():
    MemberFactory(user_id=ALICE)
    MemberFactory(user_id=BOB)
    with transaction.atomic():
        members = services.members_prepare(guild_id=GUILD, user_ids=[ALICE, BOB])
        locked = ledger.accounts_lock(members.account_ids)
        alice, bob = (locked[members.wallets[u].pk] for u in (ALICE, BOB))
        journal = ledger.Journal(locked)
        journal.stage([ledger.Leg(alice, bob, 700, Transfer.Code.TIP, "j1")])
        with pytest.raises(InsufficientPoints):
            journal.stage(
                [
                    ledger.Leg(bob, alice, 100, Transfer.Code.TIP, "j2"),
                    ledger.Leg(alice, bob, 500, Transfer.Code.TIP, "j3"),
                ]
            )
        assert (journal.balance(alice.pk), journal.balance(bob.pk)) == (300, 1700)
        assert alice.balance == 1000  # nothing written or moved before `post`
        journal.post()
    assert Account.objects.get(pk=alice.pk).balance == 300
    assert Transfer.objects.filter(idempotency_key__in=["j1", "j2", "j3"]).count() == 1
