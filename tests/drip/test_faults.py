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
from django.urls import reverse

from drip import bridge, services
from drip.client import DripClient, breaker_new, breaker_state
from drip.errors import DripRefused
from drip.models import DripTransfer
from drip.worker import DripWorker
from points import selectors as points_selectors
from points.models import AuditEvent, Transfer

from .conftest import ALICE, BOB, CAROL, GUILD, MOD, REALM, START, assert_conserved

pytestmark = [pytest.mark.django_db(transaction=True)]

BASE_DIR = Path(django_settings.BASE_DIR)


async def _db(func, /, **kwargs):
    return await database_sync_to_async(func, thread_sensitive=False)(**kwargs)


def deposit(fake, breaker, user: int, amount: int, key: str | None = None):
    async def go():
        client = DripClient(base_url=fake.base_url, timeout=1.0, breaker=breaker)
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


def worker_pass(fake, breaker, **options):
    async def go():
        client = DripClient(base_url=fake.base_url, timeout=1.0, breaker=breaker)
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


def test_a_429_storm_delays_withdrawals_by_retry_after_and_each_arrives_once(fake, linked, breaker):
    initial = fake.total(REALM)
    for user in (ALICE, BOB, CAROL):
        withdraw(user, 100)
    fake.storm_next(3, retry_after=1)

    first = worker_pass(fake, breaker)
    assert first.released == 3 and first.confirmed == 0
    row = DripTransfer.objects.first()
    assert row.status == "pending" and row.error_code == "rate_limited"
    waited = (row.next_attempt_at - row.sent_at).total_seconds()
    assert 0.9 <= waited <= 1.5  # Retry-After, not the exponential backoff
    requests = len(fake.requests())
    assert worker_pass(fake, breaker).batches == []  # nothing due before Retry-After
    assert len(fake.requests()) == requests

    deadline = time.monotonic() + 10
    while statuses().get("confirmed", 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.3)
        worker_pass(fake, breaker)
    assert statuses() == {"confirmed": 3}
    assert [fake.balance(REALM, u) for u in (ALICE, BOB, CAROL)] == [START + 100] * 3
    assert breaker_state(breaker)["state"] == "closed"  # 429s are not an outage

    fake.storm_next(1, retry_after=5)
    with pytest.raises(DripRefused) as refused:
        deposit(fake, breaker, ALICE, 50)
    assert refused.value.code == "drip_rate_limited"
    assert "rate-limiting this server; nothing was moved. Try again <t:" in refused.value.message
    assert wallet(ALICE) == 900
    assert_conserved(fake, initial=initial)


def test_the_worker_stops_for_a_realm_whose_rate_limit_window_is_used_up(fake, linked, breaker):
    initial = fake.total(REALM)
    fake.rate_limit, fake.rate_window = 2, 1.5
    for user in (ALICE, BOB, CAROL):
        withdraw(user, 10)

    async def passes():
        client = DripClient(base_url=fake.base_url, timeout=1.0, breaker=breaker)
        worker = DripWorker(client=client, batch_max=1)
        try:
            first = await worker.run_once()
            assert first.confirmed == 2 and first.batches == [1, 1]
            assert (await worker.run_once()).batches == []  # the window is used up
            await asyncio.sleep(1.6)
            assert (await worker.run_once()).confirmed == 1
        finally:
            await client.close()

    asyncio.run(passes())
    assert all(r.status == 200 for r in fake.requests())  # not one request spent on a 429
    assert DripTransfer.objects.filter(attempts=1).count() == 3
    assert_conserved(fake, initial=initial)


# --- 2. 5xx runs and the breaker ---------------------------------------------------------------


def test_a_5xx_run_opens_the_breaker_and_half_open_recovery_closes_it(fake, linked, breaker):
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

    time.sleep(0.6)
    assert breaker_state(breaker)["state"] == "half_open"
    result = deposit(fake, breaker, ALICE, 10)  # the trial call succeeds
    assert result.transfer.status == "confirmed"
    assert breaker_state(breaker)["state"] == "closed"
    time.sleep(0.1)
    assert worker_pass(fake, breaker).confirmed == 1
    assert wallet(ALICE) == 1010 and fake.balance(REALM, ALICE) == START - 10
    assert fake.balance(REALM, BOB) == START + 250
    assert statuses() == {"failed": 4, "confirmed": 2}
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
    assert row.recheck_note.startswith("DRIP balance at ")
    assert f": {START - 700:,}; this transfer would have changed it by -700." in row.recheck_note

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

    for row in rows:
        decide(moderator_client, row.pk, "applied")
    assert statuses() == {"confirmed": 2}
    assert wallet(ALICE) == 700 and fake.balance(REALM, ALICE) == START + 300
    assert_conserved(fake, initial=initial)


def test_a_withdrawal_drip_never_applied_is_reversed_by_the_moderator(
    fake, linked, breaker, moderator_client
):
    initial = fake.total(REALM)
    row = withdraw(MOD, 450)
    fake.hang_next()

    assert worker_pass(fake, breaker).in_doubt == 1
    assert fake.balance(REALM, MOD) == START  # DRIP never applied it
    decide(moderator_client, row.pk, "reverse")

    row.refresh_from_db()
    assert row.status == "failed" and row.resolution == "moderator: reversed"
    assert wallet(MOD) == 1000  # the points came back
    correction = Transfer.objects.get(code="correction")
    assert correction.amount == 450 and correction.idempotency_key == f"drip:{row.pk}:reverse"
    assert_conserved(fake, initial=initial)


def test_a_batch_drip_refuses_whole_is_sent_member_by_member(fake, linked, breaker):
    initial = fake.total(REALM)
    stranger = 999_999_999_999_999_777  # not in the realm: DRIP fails the whole batch
    fake.atomic_batches = True
    rows = {u: withdraw(u, a) for u, a in ((ALICE, 100), (stranger, 50), (BOB, 70))}

    report = worker_pass(fake, breaker)

    assert (report.confirmed, report.failed) == (2, 1)
    assert [r.status for r in fake.requests("PATCH")] == [404, 200, 200, 404]  # by member id
    assert fake.balance(REALM, ALICE) == START + 100 and fake.balance(REALM, BOB) == START + 70
    refused = DripTransfer.objects.get(pk=rows[stranger].pk)
    assert refused.status == "failed" and refused.resolution == "refused by DRIP"
    assert wallet(stranger) == 1000  # reversed
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
    decide(moderator_client, row.pk, "applied")
    assert wallet(BOB) == 1250
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

    for row in rows:
        decide(moderator_client, row.pk, "applied")
    assert_conserved(fake, initial=initial)


# --- 5. 200 withdrawals while DRIP is down ---------------------------------------------------


def test_200_withdrawals_queued_while_drip_is_down_arrive_in_batches_of_100(fake, linked):
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
    time.sleep(0.6)
    report = worker_pass(fake, breaker)
    assert report.confirmed == 200 and report.batches == [100, 100]
    assert fake.applied_batches == [100, 100]
    assert all(r.updates <= 100 for r in fake.requests("PATCH"))
    assert statuses() == {"confirmed": 200}
    assert [fake.balance(REALM, u) for u in users] == [1 + i % 7 for i in range(200)]
    assert_conserved(fake, initial=initial)
