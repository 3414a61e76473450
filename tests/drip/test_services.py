"""Bridge services without the network: the clearing account in the ledger, idempotency, the
state machine's guards, limits under concurrency, and input validation (docs/drip.md)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from drip import services
from drip.models import DripTransfer
from points.errors import IdempotencyConflict, InvalidInput
from points.models import Account, Transfer
from points.rules import SYSTEM

from .conftest import ALICE, BOB, GUILD, link_guild

pytestmark = [pytest.mark.django_db(transaction=True)]


def key() -> str:
    return f"t:{uuid.uuid4().hex}"


def test_the_clearing_account_is_an_issuer_that_may_go_negative(linked):
    row = services.drip_deposit_begin(
        guild_id=GUILD, user_id=ALICE, amount=300, idempotency_key=key()
    )
    services.drip_deposit_settle(transfer_id=row.pk, balance_after=4700)
    services.drip_deposit_settle(transfer_id=row.pk, balance_after=4700)  # settled once

    clearing = Account.objects.get(guild_id=GUILD, kind="drip")
    assert clearing.balance == -300
    assert Account.objects.get(kind="wallet", owner_id=ALICE).balance == 1300
    assert Transfer.objects.filter(code="drip_deposit").count() == 1
    assert str(clearing) == f"DRIP clearing @ {GUILD}"
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.create(guild_id=GUILD, kind="drip")  # one per guild
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(kind="wallet").update(balance=-1)  # wallets still never negative


def test_a_repeated_withdrawal_key_moves_nothing_twice(linked):
    k = key()
    first = services.drip_withdraw_request(
        guild_id=GUILD, user_id=BOB, amount=50, idempotency_key=k
    )
    again = services.drip_withdraw_request(
        guild_id=GUILD, user_id=BOB, amount=50, idempotency_key=k
    )
    assert first.pk == again.pk
    assert Account.objects.get(kind="wallet", owner_id=BOB).balance == 950
    with pytest.raises(IdempotencyConflict):
        services.drip_withdraw_request(guild_id=GUILD, user_id=BOB, amount=51, idempotency_key=k)


def test_only_rows_left_sending_too_long_become_in_doubt(linked):
    old = services.drip_deposit_begin(
        guild_id=GUILD, user_id=ALICE, amount=5, idempotency_key=key()
    )
    new = services.drip_deposit_begin(guild_id=GUILD, user_id=BOB, amount=5, idempotency_key=key())
    DripTransfer.objects.filter(pk=old.pk).update(sent_at=timezone.now() - dt.timedelta(minutes=5))

    flagged = services.drip_transfers_stale_flag(older_than_seconds=120)

    assert [r.pk for r in flagged] == [old.pk]
    assert DripTransfer.objects.get(pk=new.pk).status == "sending"
    services.drip_transfers_fail(transfer_ids=[new.pk], error_code="x", message="test")
    services.drip_transfer_resolve(
        transfer_id=old.pk, applied=False, reason="Not in DRIP.", idempotency_key=key()
    )
    assert set(DripTransfer.objects.values_list("status", flat=True)) == {"failed"}


@pytest.mark.postgres
def test_concurrent_withdrawals_cannot_both_pass_the_daily_limit(fake):
    link_guild(withdraw_limit_per_day=100)
    services.drip_withdraw_request(guild_id=GUILD, user_id=ALICE, amount=1, idempotency_key=key())
    barrier = threading.Barrier(2)
    results: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            services.drip_withdraw_request(
                guild_id=GUILD, user_id=ALICE, amount=60, idempotency_key=key()
            )
            results.append("ok")
        except Exception as exc:
            results.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["DripLimitReached", "ok"]
    assert Account.objects.get(kind="wallet", owner_id=ALICE).balance == 1000 - 61


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"realm_id": "has space"}, "A DRIP realm id is 24 characters 0–9 and a–f"),
        ({"realm_id": "realm-test-1"}, "A DRIP realm id is 24 characters 0–9 and a–f"),
        ({"realm_id": "64b7f0c2a1d3e4f5a6b7c8d"}, "A DRIP realm id is 24 characters 0–9 and a–f"),
        ({"realm_point_id": "bad/point"}, "A DRIP realm point (currency) id"),
        ({"api_key": "short"}, "A DRIP API key is 8–500 characters"),
        ({"api_key": "has a space in it"}, "A DRIP API key is 8–500 characters"),
        ({"deposit_limit_per_day": -1}, "A daily limit is a whole number"),
    ],
)
def test_link_input_is_validated_with_what_is_allowed(fake, options, message):
    with pytest.raises(InvalidInput) as refused:
        link_guild(**options)
    assert refused.value.message.startswith(message)


def test_relinking_may_keep_the_stored_key(fake):
    first = link_guild()
    again = link_guild(api_key=None, deposit_limit_per_day=10)
    assert again.api_key_encrypted == first.api_key_encrypted
    assert again.deposit_limit_per_day == 10
    with pytest.raises(InvalidInput, match="needs its API key"):
        link_guild(guild_id=GUILD + 1, api_key=None)


def test_payouts_and_refunds_go_to_drip_automatically_when_the_guild_chose_it(fake, breaker):
    from betting.services import bet_place
    from markets.services import market_cancel, market_create

    from .conftest import CAROL, REALM, START, assert_conserved
    from .test_faults import worker_pass

    link_guild()
    market = market_create(
        guild_id=GUILD,
        creator_id=CAROL,
        question="Will the bridge hold?",
        outcomes=["Yes", "No"],
        duration="1d",
        mechanism="parimutuel",
        category=None,
        idempotency_key=key(),
    )
    bet_place(market_id=market.pk, user_id=ALICE, outcome=0, amount=100, idempotency_key=key())
    bet_place(market_id=market.pk, user_id=BOB, outcome=1, amount=200, idempotency_key=key())
    link_guild(api_key=None, auto_withdraw_payouts=True)  # only payouts from now on
    initial = fake.total(REALM)
    market_cancel(market_id=market.pk, reason="Test refund.", idempotency_key=key(), actor=SYSTEM)
    services.drip_withdraw_request(guild_id=GUILD, user_id=BOB, amount=1000, idempotency_key=key())

    report = worker_pass(fake, breaker)
    assert report.auto_queued == 1  # Bob already took his refund out himself
    assert fake.balance(REALM, ALICE) == START + 100
    assert fake.balance(REALM, BOB) == START + 1000
    assert Account.objects.get(kind="wallet", owner_id=ALICE).balance == 900
    assert worker_pass(fake, breaker).auto_queued == 0  # each payout once
    auto = DripTransfer.objects.get(idempotency_key__startswith="drip:auto:")
    assert (auto.user_id, auto.amount, auto.status) == (ALICE, 100, "confirmed")
    assert_conserved(fake, initial=initial)
