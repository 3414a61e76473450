"""`/settings drip`, `/drip deposit`, `/drip withdraw` and `/drip balance` end to end: the bot
logged in against the fake Discord, talking to the fake DRIP over HTTP (docs/drip.md)."""

from __future__ import annotations

import asyncio
import time

import pytest
from cryptography.fernet import Fernet
from prometheus_client import REGISTRY

from core.leases import DRIP_WORKER, LeaseKeeper, lease_claim, lease_get, lease_release
from discordbot.permissions import MSG_ADMIN
from drip import crypto
from drip.client import breaker_state
from drip.crypto import MSG_KEY_UNAVAILABLE
from drip.errors import MSG_AUTH, MSG_NOT_LINKED, MSG_NOT_MEMBER, MSG_NOT_MEMBER_WITHDRAW
from drip.models import DripLink, DripTransfer
from drip.worker import DripWorker
from ops import health
from points import selectors as points_selectors
from points.models import Account, AuditEvent, Transfer
from tests.discordbot.fake_discord import FakeDiscord
from tests.discordbot.harness import DEFERRED, Harness, Member, Members

from .conftest import (
    API_KEY,
    POINT,
    REALM,
    START,
    assert_conserved,
    link_guild,
)

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def members() -> Members:
    return Members()


@pytest.fixture
async def harness(drip_client, request, ratelimit_clock):
    """The bot with the test's DRIP client. `@pytest.mark.discord_patience(s)` stretches the
    fake Discord's first-answer deadline and the bot's answer budget to `s`, as the harness of
    tests/discordbot does, for a test about an answer's words rather than its timing."""
    patience = request.node.get_closest_marker("discord_patience")
    stretched = {} if patience is None else {"answer_budget": float(patience.args[0])}
    fake = FakeDiscord(deadline=float(patience.args[0])) if patience else None
    h = await Harness.start(fake=fake, extra={"drip_client": drip_client}, **stretched)
    try:
        yield h
    finally:
        await h.close()


async def wallet(h: Harness, user_id: int) -> int | None:
    return await h.bot.db(points_selectors.balance_get, guild_id=h.guild_id, user_id=user_id)


async def test_settings_drip_links_the_realm_with_the_key_encrypted(harness, members, fake):
    ex = await harness.send(
        harness.command(
            "settings drip",
            members.mod,
            realm_id=REALM,
            api_key=API_KEY,
            realm_point_id=POINT,
            deposit_limit=2000,
        )
    )

    assert ex.response_type == DEFERRED and ex.ephemeral
    assert f"Linked DRIP realm `{REALM}` (currency `{POINT}`)" in ex.text
    assert "deposit 2,000 points, withdraw no limit" in ex.text
    assert API_KEY not in ex.text
    link = await harness.bot.db(DripLink.objects.get, guild_id=harness.guild_id)
    assert API_KEY not in link.api_key_encrypted
    assert crypto.secret_decrypt(link.api_key_encrypted) == API_KEY
    audit = await harness.bot.db(lambda: AuditEvent.objects.get(action="drip_link"))
    assert API_KEY not in str(audit.after) and audit.after["api_key"] == "replaced"
    for request in harness.fake.requests:
        assert API_KEY not in str(request.json)


async def test_settings_drip_needs_manage_server(harness, members, fake):
    ex = await harness.send(
        harness.command("settings drip", members.alice, realm_id=REALM, api_key=API_KEY)
    )
    assert ex.text == MSG_ADMIN
    assert await harness.bot.db(DripLink.objects.count) == 0


async def test_settings_drip_refuses_in_one_line_without_an_encryption_key(
    harness, members, fake, settings
):
    settings.PM_ENCRYPTION_KEY = ""
    ex = await harness.send(
        harness.command("settings drip", members.mod, realm_id=REALM, api_key=API_KEY)
    )
    assert ex.text == crypto.MSG_NO_ENCRYPTION_KEY
    assert "\n" not in ex.text
    assert await harness.bot.db(DripLink.objects.count) == 0


@pytest.mark.discord_patience(60)  # the refusal's words, not its timing: a loaded machine
async def test_settings_drip_explains_a_bad_realm_id(harness, members, fake):
    assert harness.fake.deadline == 60 and harness.bot.config.answer_budget == 60
    ex = await harness.send(
        harness.command("settings drip", members.mod, realm_id="no spaces!", api_key=API_KEY)
    )
    assert ex.text.startswith("A DRIP realm id is 24 characters 0–9 and a–f")


async def test_deposit_debits_drip_first_then_credits_the_wallet(harness, members, fake, linked):
    initial = fake.total(REALM)
    ex = await harness.send(harness.command("drip deposit", members.alice, amount=1500))

    assert ex.ephemeral
    assert ex.text == (
        "Moved **1,500 points** from DRIP to your wallet here. Wallet: 2,500 points; "
        "DRIP: 3,500 points."
    )
    assert fake.balance(REALM, members.alice.id) == START - 1500
    assert await wallet(harness, members.alice.id) == 2500
    row = await harness.bot.db(DripTransfer.objects.get)
    assert (row.status, row.direction, row.drip_balance_after) == ("confirmed", "deposit", 3500)
    codes = await harness.bot.db(
        lambda: list(Transfer.objects.order_by("pk").values_list("code", flat=True))
    )
    assert codes == ["starting_balance", "drip_deposit"]

    # The same interaction delivered again moves nothing twice.
    again = await harness.send(ex.payload | {"token": ex.payload["token"] + "x"})
    assert "is Confirmed: done" in again.text or "Moved **1,500 points**" in again.text
    assert fake.balance(REALM, members.alice.id) == START - 1500
    assert len(fake.requests("PATCH")) == 1
    await harness.bot.db(assert_conserved, fake=fake, initial=initial)


@pytest.mark.parametrize(
    ("who", "amount", "expected"),
    [
        ("stranger", 10, MSG_NOT_MEMBER),
        ("alice", START + 1, "DRIP says you have 5,000 and need 5,001"),
    ],
)
async def test_deposit_refusals_move_nothing(harness, members, fake, linked, who, amount, expected):
    user = Member(999_999_999_999_999_123, "stranger") if who == "stranger" else members.alice
    ex = await harness.send(harness.command("drip deposit", user, amount=amount))

    assert expected in ex.text and ex.ephemeral
    assert await wallet(harness, user.id) in (None, 1000)  # nothing moved here
    # Refused up front from DRIP's member search: no transfer row, no write sent.
    assert await harness.bot.db(DripTransfer.objects.count) == 0
    assert fake.requests("PATCH") == []
    await harness.bot.db(assert_conserved, fake=fake, initial=fake.total(REALM))


async def test_a_wrong_key_is_reported_for_moderators(harness, members, fake):
    await harness.bot.db(link_guild, api_key="drip-live-revoked-key-123")
    ex = await harness.send(harness.command("drip deposit", members.alice, amount=10))

    assert ex.text == MSG_AUTH  # member words; the details are for moderators
    assert "HTTP" not in ex.text and "PM_ENCRYPTION_KEY" not in ex.text
    link = await harness.bot.db(DripLink.objects.get)
    assert "HTTP 401" in link.last_error


async def test_commands_without_a_linked_realm_say_how_to_link(harness, members, fake):
    for name in ("drip deposit", "drip withdraw"):
        ex = await harness.send(harness.command(name, members.alice, amount=5))
        assert ex.text == MSG_NOT_LINKED
    ex = await harness.send(harness.command("drip balance", members.alice))
    assert ex.text == MSG_NOT_LINKED


async def test_withdraw_debits_at_once_and_the_worker_delivers(
    harness, members, fake, linked, drip_client
):
    initial = fake.total(REALM)
    ex = await harness.send(harness.command("drip withdraw", members.bob, amount=400))

    assert "**400 points** left your wallet and are on their way to DRIP" in ex.text
    assert await wallet(harness, members.bob.id) == 600
    balance = await harness.send(harness.command("drip balance", members.bob))
    assert "Here: **600 points**." in balance.text
    assert "DRIP: **5,000 points**." in balance.text
    assert "On the way to DRIP: 400 points." in balance.text

    report = await DripWorker(client=drip_client).run_once()
    assert report.confirmed == 1 and report.batches == [1]
    assert fake.balance(REALM, members.bob.id) == START + 400
    row = await harness.bot.db(DripTransfer.objects.get)
    assert row.status == "confirmed" and row.drip_balance_after == START + 400
    overdraw = await harness.send(harness.command("drip withdraw", members.bob, amount=601))
    assert overdraw.text == "You don't have enough points: you have 600 and need 601."
    await harness.bot.db(assert_conserved, fake=fake, initial=initial)
    clearing = await harness.bot.db(Account.objects.get, kind="drip")
    assert clearing.balance == 400  # more went to DRIP than came from it: allowed


async def test_daily_limits_apply_per_member(harness, members, fake):
    await harness.bot.db(link_guild, deposit_limit_per_day=1000, withdraw_limit_per_day=300)
    first = await harness.send(harness.command("drip deposit", members.alice, amount=800))
    second = await harness.send(harness.command("drip deposit", members.alice, amount=201))
    other = await harness.send(harness.command("drip deposit", members.bob, amount=1000))
    withdraw = await harness.send(harness.command("drip withdraw", members.alice, amount=301))

    assert first.text.startswith("Moved **800 points**")
    assert second.text.startswith(
        "That passes this server's DRIP deposit limit of 1,000 points per member per day: "
        "200 left today"
    )
    assert other.text.startswith("Moved **1,000 points**")
    assert "withdraw limit of 300 points" in withdraw.text
    assert fake.balance(REALM, members.alice.id) == START - 800


async def test_an_open_breaker_answers_deposits_at_once_and_shows_in_health_and_metrics(
    harness, members, fake, linked, drip_client, monkeypatch
):
    monkeypatch.setattr("drip.client.READ_ATTEMPTS", 1)  # one failure per deposit's search
    fake.fail_next(500, times=5)
    for _ in range(5):
        ex = await harness.send(harness.command("drip deposit", members.mod, amount=1))
        assert ex.text.startswith("DRIP is unavailable right now; nothing was moved.")
    assert breaker_state(drip_client.breaker)["state"] == "open"
    sent = len(fake.requests())

    started = time.monotonic()
    ex = await harness.send(harness.command("drip deposit", members.mod, amount=1))
    assert time.monotonic() - started < 1.0
    assert ex.text.startswith("DRIP is unavailable right now; nothing was moved. Try again <t:")
    assert len(fake.requests()) == sent
    assert await harness.bot.db(DripTransfer.objects.filter(status="sending").count) == 0

    body, status = await harness.bot.db(health.probe, name="external")
    checks = {c["name"]: c for c in body["checks"]}
    assert status == 200 and checks["drip"]["status"] == "degraded"
    assert checks["drip"]["details"]["circuit"]["state"] == "open"
    assert REGISTRY.get_sample_value("pm_drip_circuit_state") == 2
    assert REGISTRY.get_sample_value("pm_drip_circuit_refusals_total") >= 1
    await harness.bot.db(assert_conserved, fake=fake, initial=fake.total(REALM))


async def test_a_withdrawal_drip_refuses_comes_back_with_a_dm(
    harness, members, fake, linked, drip_client
):
    initial = fake.total(REALM)
    stranger = Member(999_999_999_999_999_321, "stranger")  # leaves the realm meanwhile
    quiet = Member(999_999_999_999_999_322, "quiet")
    for who in (stranger, quiet):
        fake.member(REALM, who.id, 0)
        await harness.send(harness.command("drip withdraw", who, amount=100))
        fake.leave(REALM, who.id)
    await harness.send(harness.command("notifications", quiet, state="off"))
    assert await wallet(harness, stranger.id) == 900
    initial = fake.total(REALM)

    report = await DripWorker(client=drip_client).run_once()
    assert report.failed == 2 and report.batches == []  # refused after the member search
    assert fake.requests("PATCH") == []
    assert await wallet(harness, stranger.id) == 1000  # reversed with a correction
    cog = harness.bot.get_cog("Drip")
    assert await cog.notify_reversals() == 1
    assert await cog.notify_reversals() == 0  # once

    (dm,) = [m["content"] for m in harness.fake.dms(stranger.id)]
    row = await harness.bot.db(DripTransfer.objects.get, user_id=stranger.id)
    assert dm == (
        f"Your withdrawal of **100 points** to DRIP (transfer #{row.pk}) did not go through: "
        "DRIP does not know you in this server's realm (join the realm first). The points are "
        "back in your wallet."
    )
    assert harness.fake.dms(quiet.id) == []
    await harness.bot.db(assert_conserved, fake=fake, initial=initial)


async def test_a_withdrawal_to_someone_outside_the_realm_is_refused_up_front(
    harness, members, fake, linked
):
    stranger = Member(999_999_999_999_999_331, "stranger")
    ex = await harness.send(harness.command("drip withdraw", stranger, amount=100))

    assert ex.text == MSG_NOT_MEMBER_WITHDRAW
    assert "Join the realm first" in ex.text
    assert await wallet(harness, stranger.id) in (None, 1000)
    assert await harness.bot.db(DripTransfer.objects.count) == 0
    assert fake.requests("PATCH") == [] and fake.ghost(REALM, stranger.id) is None


async def test_balance_finds_a_member_by_their_discord_credential(harness, members, fake, linked):
    ex = await harness.send(harness.command("drip balance", members.alice))
    assert "DRIP: **5,000 points**." in ex.text
    stranger = Member(999_999_999_999_999_332, "stranger")
    ex = await harness.send(harness.command("drip balance", stranger))
    assert "you are not a member of this server's realm yet" in ex.text


async def test_members_never_read_host_set_up_text(harness, members, fake, linked, settings):
    settings.PM_ENCRYPTION_KEY = Fernet.generate_key().decode()  # the stored key is now lost
    for name, options in (("drip deposit", {"amount": 5}), ("drip withdraw", {"amount": 5})):
        ex = await harness.send(harness.command(name, members.alice, **options))
        assert ex.text == MSG_KEY_UNAVAILABLE
        assert "PM_ENCRYPTION_KEY" not in ex.text and "/settings drip" not in ex.text
    link = await harness.bot.db(DripLink.objects.get)
    assert "can't be decrypted with PM_ENCRYPTION_KEY" in link.last_error  # for moderators


async def test_only_the_holder_of_the_drip_worker_lease_sends(
    harness, members, fake, linked, drip_client
):
    """Issue 24 item 1: a second worker is a standby. While another process holds the lease the
    queued withdrawal waits; once that holder is gone (its lease released here; expired after a
    crash), this worker takes the lease and sends it, once."""
    await harness.send(harness.command("drip withdraw", members.bob, amount=400))
    await harness.bot.db(lease_claim, name=DRIP_WORKER, holder="other-process", seconds=60)
    lease = LeaseKeeper(DRIP_WORKER, holder="this-process", seconds=5, renew=0.05)
    stop = asyncio.Event()
    worker = asyncio.create_task(
        DripWorker(client=drip_client).run_forever(interval=0.05, stop=stop, lease=lease)
    )
    try:
        await asyncio.sleep(0.5)
        row = await harness.bot.db(DripTransfer.objects.get)
        assert row.status == "pending" and not lease.held
        await harness.bot.db(lease_release, name=DRIP_WORKER, holder="other-process")
        for _ in range(100):
            row = await harness.bot.db(DripTransfer.objects.get)
            if row.status == "confirmed":
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await worker
    assert row.status == "confirmed"
    assert fake.balance(REALM, members.bob.id) == START + 400
    state = await harness.bot.db(lease_get, name=DRIP_WORKER)
    assert state.holder == "" and state.epoch == 2  # taken, then given up on stop
