"""The fault matrix of issue 15 (docs/drip.md): each case ends with the ledger audit clean (the
autouse fixture) and local + DRIP totals conserved (`assert_conserved`): the clearing account
mirrors confirmed deposits − confirmed withdrawals, and DRIP's total moved by the opposite.

1. 429 storms: the worker waits for `Retry-After`; everything arrives exactly once.
2. A run of 5xx opens the breaker; half-open recovery closes it.
3. A timeout where DRIP applied the change → in doubt → a moderator decides; no double move.
4. A worker killed (a real subprocess, SIGKILL) between send and confirm: the restart flags the
   rows in doubt and never sends them again.
5. 200 withdrawals queued while DRIP is down: all delivered in batches of ≤ 100 once it is back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.db import connection
from django.db.models import F
from django.urls import reverse

from drip import bridge, services
from drip.client import DripClient, breaker_new, breaker_state
from drip.errors import MSG_UNREADABLE, DripRefused
from drip.models import DripTransfer
from drip.ratelimit import RealmLimiter
from drip.worker import DripWorker
from points import selectors as points_selectors
from points.models import AuditEvent, Transfer

from .conftest import (
    ALICE,
    API_KEY,
    BOB,
    CAROL,
    GUILD,
    MOD,
    REALM,
    START,
    assert_conserved,
    assert_journal_matches,
)

pytestmark = [pytest.mark.django_db(transaction=True)]

BASE_DIR = Path(django_settings.BASE_DIR)


async def _db(func, /, **kwargs):
    return await database_sync_to_async(func, thread_sensitive=False)(**kwargs)


def limiter(clock=None) -> RealmLimiter | None:
    """The realm limiter on the test's clock (`WallClock`), or the default one on real time."""
    return RealmLimiter(clock=clock) if clock is not None else None


def deposit(fake, breaker, user: int, amount: int, key: str | None = None, *, clock=None):
    async def go():
        client = DripClient(
            base_url=fake.base_url, timeout=1.0, breaker=breaker, limiter=limiter(clock)
        )
        try:
            return await bridge.deposit(
                db=_db,
                client=client,
                guild_id=GUILD,
                user_id=user,
                amount=amount,
                idempotency_key=key or f"test:{uuid.uuid4().hex}",
            )
        finally:
            await client.close()

    return asyncio.run(go())


def worker_pass(fake, breaker, *, clock=None, **options):
    async def go():
        client = DripClient(
            base_url=fake.base_url, timeout=1.0, breaker=breaker, limiter=limiter(clock)
        )
        try:
            return await DripWorker(client=client, retry_base=0.05, **options).run_once()
        finally:
            await client.close()

    return asyncio.run(go())


def withdraw(user: int, amount: int) -> DripTransfer:
    return services.drip_withdraw_request(
        guild_id=GUILD, user_id=user, amount=amount, idempotency_key=f"test:{uuid.uuid4().hex}"
    )


def wallet(user: int) -> int | None:
    return points_selectors.balance_get(guild_id=GUILD, user_id=user)


def statuses() -> dict[str, int]:
    out: dict[str, int] = {}
    for status in DripTransfer.objects.values_list("status", flat=True):
        out[status] = out.get(status, 0) + 1
    return out


@pytest.fixture
def moderator_client(client, plain_http):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("drip-mod", password="x" * 20, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="drip",
            codename__in=["view_driptransfer", "resolve_driptransfer"],
        )
    )
    client.force_login(user)
    return client


def decide(http, row_id: int, decision: str, *, request_id: str | None = None):
    url = reverse("admin:drip_driptransfer_resolve", args=[row_id])
    page = http.get(url)
    assert page.status_code == 200
    request_id = request_id or str(page.context["form"].initial["request_id"])
    response = http.post(
        url, {"request_id": request_id, "decision": decision, "reason": "Checked in DRIP."}
    )
    assert response.status_code == 302
    return request_id


# --- 1. 429 storms ------------------------------------------------------------------------------


def time_passes(seconds: float, clock) -> None:
    """`seconds` pass for the worker without the test waiting for them: the realm limiter's
    clock moves, and every pending row's next attempt comes that much closer (the worker reads
    "now" once per pass and compares it with `next_attempt_at`)."""
    clock.advance(seconds)
    DripTransfer.objects.filter(next_attempt_at__isnull=False).update(
        next_attempt_at=F("next_attempt_at") - dt.timedelta(seconds=seconds)
    )


def test_a_429_storm_delays_withdrawals_by_retry_after_and_each_arrives_once(
    fake, linked, breaker, wall_clock
):
    """Retry-After is long (30 s) and the time passes on the test's word, so neither a loaded
    machine (a pass that takes longer than Retry-After) nor a quick one decides the outcome."""
    initial = fake.total(REALM)
    for user in (ALICE, BOB, CAROL):
        withdraw(user, 100)
    fake.storm_next(3, retry_after=30)

    first = worker_pass(fake, breaker, clock=wall_clock)
    assert first.released == 3 and first.confirmed == 0
    row = DripTransfer.objects.first()
    assert row.status == "pending" and row.error_code == "rate_limited"
    waited = (row.next_attempt_at - row.sent_at).total_seconds()
    assert 30 <= waited <= 40  # Retry-After, not the exponential backoff (0.05 s here)
    requests = len(fake.requests())
    assert worker_pass(fake, breaker, clock=wall_clock).batches == []  # nothing due yet
    time_passes(25, wall_clock)
    assert worker_pass(fake, breaker, clock=wall_clock).batches == []  # still nothing due
    assert len(fake.requests()) == requests

    passes = 0
    while statuses().get("confirmed", 0) < 3 and passes < 6:  # the storm's other two 429s
        time_passes(15 if passes == 0 else 31, wall_clock)
        worker_pass(fake, breaker, clock=wall_clock)
        passes += 1
    assert statuses() == {"confirmed": 3}
    assert passes == 3  # each 429 cost one Retry-After, no more and no fewer
    assert [fake.balance(REALM, u) for u in (ALICE, BOB, CAROL)] == [START + 100] * 3
    assert breaker_state(breaker)["state"] == "closed"  # 429s are not an outage

    fake.storm_next(1, retry_after=5)
    with pytest.raises(DripRefused) as refused:
        deposit(fake, breaker, ALICE, 50, clock=wall_clock)
    assert refused.value.code == "drip_rate_limited"
    assert "rate-limiting this server; nothing was moved. Try again <t:" in refused.value.message
    assert wallet(ALICE) == 900
    assert assert_journal_matches(fake, initial=initial) == {"confirmed": 3}
    assert_conserved(fake, initial=initial)


def test_a_used_up_window_resumes_at_its_reset_shared_by_bot_and_worker(
    fake, linked, breaker, wall_clock
):
    """DRIP answers `X-RateLimit-Remaining: 0` with `X-RateLimit-Reset` as a UNIX timestamp:
    the worker waits until that time (the window, not decades) and the bot's requests wait in
    the same realm's block (Redis). Only DRIP's header blocks here (our own count, tested in
    test_ratelimit.py, has room); the window runs on a clock the test moves, never on time."""
    initial = fake.total(REALM)
    fake.clock = wall_clock
    fake.rate_limit, fake.rate_window = 5, 60.0
    for user in (ALICE, BOB, CAROL):
        withdraw(user, 10)

    async def passes():
        bot = DripClient(
            base_url=fake.base_url,
            timeout=1.0,
            breaker=breaker,
            limiter=RealmLimiter(clock=wall_clock),
        )
        client = DripClient(
            base_url=fake.base_url,
            timeout=1.0,
            breaker=breaker,
            limiter=RealmLimiter(clock=wall_clock),
        )
        worker = DripWorker(client=client, batch_max=1)
        try:
            assert await bot.balances(realm_id=REALM, api_key=API_KEY, user_ids=[MOD])
            first = await worker.run_once()  # 4 requests left: 2 × (search + batch)
            assert first.confirmed == 2 and first.batches == [1, 1]
            # The window's reset, a UNIX time read as such: the 60 s window, never decades
            # (nor the one-hour cap a header that cannot be a UNIX time gets).
            assert worker.client.rate_exhausted(REALM) == 60
            assert bot.rate_exhausted(REALM) == 60  # the bot's limiter sees the same block
            with pytest.raises(DripRefused) as refused:
                await bridge.drip_balance(db=_db, client=bot, guild_id=GUILD, user_id=ALICE)
            assert refused.value.code == "drip_rate_limited"
            wall_clock.advance(59)
            assert (await worker.run_once()).batches == []  # claims nothing meanwhile
            wall_clock.advance(1)
            assert (await worker.run_once()).confirmed == 1  # resumed at the reset
        finally:
            await bot.close()
            await client.close()

    sent_before = len(fake.requests())
    asyncio.run(passes())
    assert all(r.status == 200 for r in fake.requests())  # not one request spent on a 429
    assert len(fake.requests()) - sent_before == 1 + 4 + 2
    assert DripTransfer.objects.filter(attempts=1).count() == 3
    assert assert_journal_matches(fake, initial=initial) == {"confirmed": 3}
    assert_conserved(fake, initial=initial)


# --- 2. 5xx runs and the breaker ---------------------------------------------------------------


def test_a_5xx_run_opens_the_breaker_and_half_open_recovery_closes_it(
    fake, linked, breaker, breaker_clock, monkeypatch
):
    monkeypatch.setattr("drip.client.READ_ATTEMPTS", 1)  # one failure per search
    initial = fake.total(REALM)
    withdraw(BOB, 250)
    fake.fail_next(502, times=5)
    for _ in range(4):
        with pytest.raises(DripRefused) as refused:
            deposit(fake, breaker, ALICE, 10)
        assert refused.value.code == "drip_unavailable"
    report = worker_pass(fake, breaker)  # the fifth failure: the withdrawal batch
    assert report.released == 1
    assert breaker_state(breaker)["state"] == "open"
    sent = len(fake.requests())

    with pytest.raises(DripRefused) as refused:
        deposit(fake, breaker, ALICE, 10)
    assert refused.value.code == "drip_unavailable"
    assert worker_pass(fake, breaker).breaker_open
    assert len(fake.requests()) == sent  # nothing was sent while open
    assert DripTransfer.objects.get(direction="withdraw").status == "pending"

    breaker_clock.advance(0.6)
    assert breaker_state(breaker)["state"] == "half_open"
    result = deposit(fake, breaker, ALICE, 10)  # the trial call succeeds
    assert result.transfer.status == "confirmed"
    assert breaker_state(breaker)["state"] == "closed"
    time.sleep(0.1)
    assert worker_pass(fake, breaker).confirmed == 1
    assert wallet(ALICE) == 1010 and fake.balance(REALM, ALICE) == START - 10
    assert fake.balance(REALM, BOB) == START + 250
    assert statuses() == {"confirmed": 2}  # the refused deposits never made a row
    assert_journal_matches(fake, initial=initial)
    assert_conserved(fake, initial=initial)


# --- 3. Timeouts where DRIP applied the change ------------------------------------------------


def test_a_deposit_drip_applied_but_never_answered_waits_for_a_moderator(
    fake, linked, breaker, moderator_client
):
    initial = fake.total(REALM)
    fake.lose_next(mode="hang")
    with pytest.raises(DripRefused) as refused:
        deposit(fake, breaker, CAROL, 700)
    row = DripTransfer.objects.get()
    assert refused.value.code == "drip_in_doubt"
    assert f"a moderator will check DRIP (transfer #{row.pk})" in refused.value.message
    assert row.status == "in_doubt"
    assert fake.balance(REALM, CAROL) == START - 700  # DRIP took it
    assert wallet(CAROL) == 1000  # nothing credited on a maybe

    worker_pass(fake, breaker, stale_seconds=0)
    assert len(fake.requests("PATCH")) == 1  # never sent again
    row.refresh_from_db()
    assert row.initiator_id == f"pm-drip-{row.pk}" and row.drip_balance_before == START
    assert row.recheck_note.startswith(f"Look for initiatorId pm-drip-{row.pk} in DRIP's")
    assert f"DRIP balance before: {START:,}; at " in row.recheck_note
    assert f": {START - 700:,}; this transfer would have changed it by -700." in row.recheck_note
    assert assert_journal_matches(fake, initial=initial) == {"in_doubt": 1}

    key = decide(moderator_client, row.pk, "applied")
    assert wallet(CAROL) == 1700
    decide(moderator_client, row.pk, "applied", request_id=key)  # a double submit
    decide_again = moderator_client.post(
        reverse("admin:drip_driptransfer_resolve", args=[row.pk]),
        {"request_id": str(uuid.uuid4()), "decision": "reverse", "reason": "changed my mind"},
    )
    assert decide_again.status_code == 302
    assert wallet(CAROL) == 1700
    assert Transfer.objects.filter(code="drip_deposit").count() == 1
    event = AuditEvent.objects.get(action="drip_confirm_applied")
    assert event.target_id == str(row.pk) and event.reason == "Checked in DRIP."
    assert_conserved(fake, initial=initial)


def test_a_withdrawal_batch_whose_answer_was_lost_is_never_resent(
    fake, linked, breaker, moderator_client
):
    initial = fake.total(REALM)
    rows = [withdraw(u, 300) for u in (ALICE, BOB)]
    fake.lose_next(mode="drop")

    report = worker_pass(fake, breaker)
    assert report.in_doubt == 2
    assert fake.balance(REALM, ALICE) == START + 300  # applied, answer lost
    for _ in range(3):
        worker_pass(fake, breaker, stale_seconds=0)
    assert len(fake.requests("PATCH")) == 1
    assert wallet(ALICE) == 700 and wallet(BOB) == 700  # still in the clearing account
    assert assert_journal_matches(fake, initial=initial) == {"in_doubt": 2}

    for row in rows:
        decide(moderator_client, row.pk, "applied")
    assert statuses() == {"confirmed": 2}
    assert_journal_matches(fake, initial=initial)
    assert wallet(ALICE) == 700 and fake.balance(REALM, ALICE) == START + 300
    assert_conserved(fake, initial=initial)


def test_a_withdrawal_drip_never_applied_is_reversed_by_the_moderator(
    fake, linked, breaker, moderator_client
):
    initial = fake.total(REALM)
    row = withdraw(MOD, 450)
    fake.hang_next(method="PATCH")

    assert worker_pass(fake, breaker).in_doubt == 1
    assert fake.balance(REALM, MOD) == START  # DRIP never applied it
    assert assert_journal_matches(fake, initial=initial) == {"in_doubt": 1}
    decide(moderator_client, row.pk, "reverse")

    row.refresh_from_db()
    assert row.status == "failed" and row.resolution == "moderator: reversed"
    assert wallet(MOD) == 1000  # the points came back
    correction = Transfer.objects.get(code="correction")
    assert correction.amount == 450 and correction.idempotency_key == f"drip:{row.pk}:reverse"
    assert assert_journal_matches(fake, initial=initial) == {"failed": 1}
    assert_conserved(fake, initial=initial)


def test_a_whole_batch_400_is_halved_until_the_bad_update_is_alone(fake, linked, breaker):
    initial = fake.total(REALM)
    users = [10**17 + i for i in range(8)]
    for user in users:
        fake.member(REALM, user, 0)
    bad = users[5]
    fake.refuse(REALM, bad)  # DRIP refuses this credential's updates
    fake.atomic_batches = True  # one bad update fails the whole batch: 400, nothing applied
    rows = {u: withdraw(u, 10 + i) for i, u in enumerate(users)}

    report = worker_pass(fake, breaker)

    assert (report.confirmed, report.failed) == (7, 1)
    statuses_sent = [r.status for r in fake.requests("PATCH")]
    assert statuses_sent.count(400) == 4 and statuses_sent.count(200) == 3  # 8 → 4 → 2 → 1
    refused = DripTransfer.objects.get(pk=rows[bad].pk)
    assert refused.status == "failed" and refused.error_message == "credential is locked"
    assert wallet(bad) == 1000  # reversed
    assert all(fake.balance(REALM, u) == 10 + i for i, u in enumerate(users) if u != bad)
    assert assert_journal_matches(fake, initial=initial) == {"confirmed": 7, "failed": 1}
    assert_conserved(fake, initial=initial)


def test_a_deposit_drip_applied_but_the_database_lost_is_recovered_not_lost(
    fake, linked, breaker, moderator_client
):
    """The database connection drops right after DRIP confirmed the debit (the runner the bot
    passes in fails that one call, as a lost connection would)."""
    from django.db import OperationalError

    initial = fake.total(REALM)

    async def db_losing_the_settle(func, /, **kwargs):
        if func is services.drip_deposit_settle:
            raise OperationalError("server closed the connection unexpectedly")
        return await _db(func, **kwargs)

    async def go():
        client = DripClient(base_url=fake.base_url, timeout=1.0, breaker=breaker)
        try:
            await bridge.deposit(
                db=db_losing_the_settle,
                client=client,
                guild_id=GUILD,
                user_id=BOB,
                amount=250,
                idempotency_key=f"test:{uuid.uuid4().hex}",
            )
        finally:
            await client.close()

    with pytest.raises(DripRefused) as refused:
        asyncio.run(go())
    row = DripTransfer.objects.get()
    assert refused.value.code == "drip_unrecorded"
    assert f"a moderator will confirm transfer #{row.pk}" in refused.value.message
    assert row.status == "sending" and fake.balance(REALM, BOB) == START - 250

    worker_pass(fake, breaker, stale_seconds=0)
    row.refresh_from_db()
    assert row.status == "in_doubt" and f"{START - 250:,}" in row.recheck_note
    assert assert_journal_matches(fake, initial=initial) == {"in_doubt": 1}
    decide(moderator_client, row.pk, "applied")
    assert wallet(BOB) == 1250
    assert assert_journal_matches(fake, initial=initial) == {"confirmed": 1}
    assert_conserved(fake, initial=initial)


# --- 4. A worker killed between send and confirm ----------------------------------------------


def _worker_env(fake, **extra: str) -> dict[str, str]:
    db = connection.settings_dict
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_", "DJANGO_SET"))
    }
    env.update(
        DATABASE_URL=(
            f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        ),
        DJANGO_TESTING="1",
        DJANGO_SETTINGS_MODULE="config.settings",
        DRIP_API_BASE=fake.base_url,
        PM_ENCRYPTION_KEY=django_settings.PM_ENCRYPTION_KEY,
        DRIP_TIMEOUT_SECONDS="60",
        LOG_JSON="1",
    )
    env.update(extra)
    return env


@pytest.mark.postgres
def test_a_worker_killed_between_send_and_confirm_is_flagged_never_resent(
    fake, linked, moderator_client
):
    initial = fake.total(REALM)
    rows = [withdraw(u, 120) for u in (ALICE, CAROL)]
    fake.hang_seconds = 120
    fake.lose_next(mode="hang")

    worker = subprocess.Popen(
        [sys.executable, "manage.py", "run_drip_worker", "--interval", "0.2"],
        cwd=BASE_DIR,
        env=_worker_env(fake),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not fake.applied_batches and time.monotonic() < deadline:
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            time.sleep(0.1)
        assert fake.applied_batches == [2], "the worker never sent its batch"
        assert statuses() == {"sending": 2}
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    assert fake.balance(REALM, ALICE) == START + 120  # DRIP applied it; nobody recorded that

    restart = subprocess.run(
        [sys.executable, "manage.py", "run_drip_worker", "--once"],
        cwd=BASE_DIR,
        env=_worker_env(fake, DRIP_SENDING_STALE_SECONDS="0", DRIP_TIMEOUT_SECONDS="5"),
        capture_output=True,
        timeout=60,
    )
    assert restart.returncode == 0, restart.stderr.decode()[-2000:]
    assert statuses() == {"in_doubt": 2}
    assert len(fake.requests("PATCH")) == 1  # never re-sent
    flagged = DripTransfer.objects.get(pk=rows[0].pk)
    assert flagged.error_code == "stale"
    assert f"{START + 120:,}" in flagged.recheck_note and "+120" in flagged.recheck_note

    assert assert_journal_matches(fake, initial=initial) == {"in_doubt": 2}
    for row in rows:
        decide(moderator_client, row.pk, "applied")
    assert_journal_matches(fake, initial=initial)
    assert_conserved(fake, initial=initial)


# --- 5. 200 withdrawals while DRIP is down ---------------------------------------------------


def test_200_withdrawals_queued_while_drip_is_down_arrive_in_batches_of_100(
    fake, linked, breaker_clock, monkeypatch
):
    monkeypatch.setattr("drip.client.READ_ATTEMPTS", 1)  # one failure per pass
    breaker = breaker_new(failure_threshold=5, recovery_timeout=0.5)
    users = [10**17 + i for i in range(200)]
    for user in users:
        fake.member(REALM, user, 0)
    initial = fake.total(REALM)
    fake.down = True
    for i, user in enumerate(users):
        withdraw(user, 1 + i % 7)
    assert all(wallet(u) == 1000 - (1 + i % 7) for i, u in enumerate(users[:5]))

    for _ in range(5):
        worker_pass(fake, breaker)
        DripTransfer.objects.update(next_attempt_at=None)  # skip the backoff wait
    assert breaker_state(breaker)["state"] == "open"
    assert worker_pass(fake, breaker).breaker_open
    assert statuses() == {"pending": 200}
    assert fake.applied_batches == []

    fake.down = False
    breaker_clock.advance(0.6)
    report = worker_pass(fake, breaker)
    assert report.confirmed == 200 and report.batches == [100, 100]
    assert fake.applied_batches == [100, 100]
    assert all(r.updates <= 100 for r in fake.requests("PATCH"))
    assert statuses() == {"confirmed": 200}
    assert [fake.balance(REALM, u) for u in users] == [1 + i % 7 for i in range(200)]
    assert assert_journal_matches(fake, initial=initial) == {"confirmed": 200}
    assert_conserved(fake, initial=initial)


# --- 6. Applied, then answered 5xx: a write is applied until proven otherwise -----------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_deposit_applied_then_answered_5xx_is_in_doubt_never_failed(
    fake, linked, breaker, moderator_client, status
):
    initial = fake.total(REALM)
    fake.apply_then_fail(status)
    with pytest.raises(DripRefused) as refused:
        deposit(fake, breaker, CAROL, 300)
    row = DripTransfer.objects.get()
    assert refused.value.code == "drip_in_doubt" and row.status == "in_doubt"
    assert "nothing was moved" not in refused.value.message.lower()
    assert "DRIP answered with an error after the request reached it" in refused.value.message
    assert fake.balance(REALM, CAROL) == START - 300 and wallet(CAROL) == 1000
    for _ in range(3):
        worker_pass(fake, breaker, stale_seconds=0)
    assert len(fake.requests("PATCH")) == 1  # never re-sent, never reversed
    assert assert_journal_matches(fake, initial=initial) == {"in_doubt": 1}

    decide(moderator_client, row.pk, "applied")  # DRIP's log shows pm-drip-<id>
    assert wallet(CAROL) == 1300
    assert_journal_matches(fake, initial=initial)
    assert_conserved(fake, initial=initial)


def test_a_deposit_answered_with_an_unreadable_body_is_told_as_such(fake, linked, breaker):
    initial = fake.total(REALM)
    fake.garble_next()
    with pytest.raises(DripRefused) as refused:
        deposit(fake, breaker, BOB, 20)
    assert "DRIP answered but its answer could not be read — we are checking" in (
        refused.value.message
    )
    assert "did not answer in time" not in refused.value.message
    assert assert_journal_matches(fake, initial=initial) == {"in_doubt": 1}


def test_an_unreadable_search_is_told_as_such_and_moves_nothing(fake, linked, breaker):
    """A read may be retried (three attempts); still unreadable, the member reads what
    happened, not "DRIP did not answer in time"."""
    initial = fake.total(REALM)
    fake.garble_next(3, reads=True)
    with pytest.raises(DripRefused) as refused:
        deposit(fake, breaker, BOB, 20)
    assert refused.value.code == "drip_unreadable"
    assert refused.value.message == MSG_UNREADABLE
    assert "did not answer in time" not in refused.value.message
    assert len(fake.requests("GET")) == 3 and fake.requests("PATCH") == []
    assert DripTransfer.objects.count() == 0
    assert assert_journal_matches(fake, initial=initial) == {}
    assert_conserved(fake, initial=initial)


def test_a_batch_of_50_applied_then_answered_502_is_never_resent(fake, linked, breaker):
    initial = fake.total(REALM)
    users = [10**17 + i for i in range(50)]
    for user in users:
        fake.member(REALM, user, 0)
    rows = [withdraw(u, 49) for u in users]
    fake.apply_then_fail(502)

    report = worker_pass(fake, breaker)
    assert report.in_doubt == 50 and report.released == 0
    for _ in range(3):
        worker_pass(fake, breaker, stale_seconds=0)
    assert len(fake.requests("PATCH")) == 1 and fake.applied_batches == [50]
    assert fake.total(REALM) == initial + 50 * 49  # applied once: not +2,450 twice
    assert assert_journal_matches(fake, initial=initial) == {"in_doubt": 50}
    row = DripTransfer.objects.get(pk=rows[0].pk)
    assert row.initiator_id.startswith("pm-drip-batch-") and row.drip_balance_before == 0
    assert row.initiator_id in row.recheck_note and "before: 0;" in row.recheck_note

    for r in rows:  # a moderator checks DRIP's log for that initiatorId and confirms
        services.drip_transfer_resolve(
            transfer_id=r.pk, applied=True, reason="In DRIP's log.", idempotency_key=f"m:{r.pk}"
        )
    assert_journal_matches(fake, initial=initial)
    assert_conserved(fake, initial=initial)


# --- 7. Search mapping and ghost credentials -------------------------------------------------


def test_search_maps_discord_ids_through_oauth_account_id(fake, linked, breaker):
    async def look():
        client = DripClient(base_url=fake.base_url, timeout=1.0, breaker=breaker)
        try:
            return [
                await bridge.drip_balance(db=_db, client=client, guild_id=GUILD, user_id=u)
                for u in (ALICE, 999_999_999_999_999_555)
            ]
        finally:
            await client.close()

    initial = fake.total(REALM)
    assert asyncio.run(look()) == [START, None]
    (record,) = [r for r in fake.requests("GET")][:1]
    assert record.query["type"] == "discord-id" and record.query["values"] == str(ALICE)
    assert assert_journal_matches(fake, initial=initial) == {}  # a read moves nothing


def test_a_member_who_left_before_the_send_gets_no_ghost_credit(fake, linked, breaker):
    initial = fake.total(REALM)
    row = withdraw(BOB, 80)
    fake.leave(REALM, BOB)  # BOB's Discord id is no longer a member's credential
    initial = fake.total(REALM)

    report = worker_pass(fake, breaker)
    assert report.failed == 1 and fake.requests("PATCH") == []
    assert fake.ghost(REALM, BOB) is None  # never credited onto a credential nobody sees
    row.refresh_from_db()
    assert row.status == "failed" and "join the realm first" in row.error_message
    assert wallet(BOB) == 1000
    assert assert_journal_matches(fake, initial=initial) == {"failed": 1}


def test_a_ghost_credential_is_no_member_for_deposits_or_withdrawals(fake, linked, breaker):
    """Someone whose Discord id only has a ghost credential (points credited before they
    joined) is told to join the realm first, both ways; nothing is written to DRIP."""
    ghost = 999_999_999_999_999_777
    fake.ghost_hold(REALM, ghost, 500)
    initial = fake.total(REALM)

    with pytest.raises(DripRefused) as refused:
        deposit(fake, breaker, ghost, 100)  # not "not enough DRIP points"
    assert refused.value.code == "drip_not_member"
    assert "Join the realm first" in refused.value.message

    async def ask_to_withdraw():
        client = DripClient(base_url=fake.base_url, timeout=1.0, breaker=breaker)
        try:
            return await bridge.withdraw(
                db=_db,
                client=client,
                guild_id=GUILD,
                user_id=ghost,
                amount=100,
                idempotency_key=f"test:{uuid.uuid4().hex}",
            )
        finally:
            await client.close()

    with pytest.raises(DripRefused) as refused:
        asyncio.run(ask_to_withdraw())
    assert refused.value.code == "drip_not_member"
    assert "so it has nowhere to send points. Join the realm first" in refused.value.message
    assert fake.requests("PATCH") == [] and fake.ghost(REALM, ghost) == 500
    assert DripTransfer.objects.count() == 0
    assert assert_journal_matches(fake, initial=initial) == {}
    assert_conserved(fake, initial=initial)
