"""Drills through the bot harness (issue 12): Discord losing acknowledgements and replies,
answering 429 and 500, tokens expiring, DMs closed, a slow database, twenty deliveries of one
interaction, NUL and fuzzed unicode, and the cache (Redis) paused or stopped. Each asserts that
nothing was lost or doubled, that every interaction got its final answer, and that nothing
waited longer than its budget.

Run with `-s` to see the drill lines."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
from django.db import connection, transaction

from betting.models import Trade
from discordbot.interactions import MSG_ERROR, MSG_STILL_WORKING
from discordbot.models import PendingAnswer
from markets.models import Market
from points.audit import ledger_audit
from points.models import Transfer
from points.services import wallet_get_or_create
from tests.conftest import GUILD
from tests.discordbot.conftest import RateLimitClock, db, make_market
from tests.discordbot.fake_discord import INVALID_WEBHOOK_TOKEN, FakeDiscord
from tests.discordbot.harness import Harness, Members, message_text

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

ORIGINAL = r"/webhooks/\d+/[^/]+/messages/@original"
CALLBACK = r"/interactions/\d+/[^/]+/callback"


@pytest.fixture
def members() -> Members:
    return Members()


@pytest.fixture(autouse=True)
def ratelimit_clock(settings, monkeypatch) -> RateLimitClock:
    settings.DISCORD_RATELIMIT_NAMESPACE = uuid.uuid4().hex
    clock = RateLimitClock(1_800_000_000.0)
    monkeypatch.setattr("django_ratelimit.core.time", clock)
    return clock


@pytest.fixture
async def harness(request):
    """A bot against a fresh fake Discord, retrying undelivered answers quickly; fails the test
    past its budget of 401/403/429 answers (those it injects on purpose are not counted)."""
    marker = request.node.get_closest_marker("discord_invalid_budget")
    patience = request.node.get_closest_marker("discord_patience")  # see tests/discordbot
    stretched = {} if patience is None else {"answer_budget": float(patience.args[0])}
    fake = FakeDiscord(deadline=float(patience.args[0])) if patience else None
    h = await Harness.start(fake=fake, answer_retry_base=0.05, answer_retry_max=0.2, **stretched)
    try:
        yield h
    finally:
        await h.close()
    h.fake.assert_invalid_within(int(marker.args[0]) if marker else 0)


async def trades(h: Harness) -> int:
    return await db(h, lambda: Trade.objects.count())


async def pending(h: Harness, interaction_id: int) -> PendingAnswer | None:
    return await db(h, lambda: PendingAnswer.objects.filter(interaction_id=interaction_id).first())


def timed(drill, exchange) -> None:
    drill.longest_wait = max(drill.longest_wait, exchange.completion_seconds)


# --- Discord loses the acknowledgement or the reply ---------------------------------------------


async def test_lost_acknowledgement_still_trades_and_answers(harness, members, drill):
    """Discord took the acknowledgement but its answer was lost: discord.py's retry meets
    "already acknowledged" (40060), which is an acknowledgement: the bet is placed and shown."""
    market = await make_market(harness, creator=members.alice.id)
    harness.fake.lose("POST", CALLBACK, status=500)
    ex = await harness.send(
        harness.command(
            "bet", members.bob, market=str(market.id), outcome="1", amount=100, confirm=False
        )
    )
    timed(drill, ex)
    drill.acknowledged, drill.in_database = 1, await trades(harness)
    assert [r.response.get("code") for r in ex.callbacks if r.status == 400] == [40060]
    assert "You bought" in ex.text
    assert drill.in_database == 1
    assert await db(harness, lambda: ledger_audit().ok)
    assert drill.longest_wait < 10


async def test_lost_reply_is_delivered_again(harness, members, drill):
    """The edit with the answer is processed but its response never arrives (connection
    closed): the answer is kept and the edit retried; the member sees it, the trade counts once."""
    market = await make_market(harness, creator=members.alice.id)
    harness.fake.lose("PATCH", ORIGINAL, status=None)
    payload = harness.command(
        "bet", members.bob, market=str(market.id), outcome="1", amount=100, confirm=False
    )
    ex = await harness.send(payload)
    timed(drill, ex)
    kept = await pending(harness, int(payload["id"]))
    drill.acknowledged, drill.in_database = 1, await trades(harness)
    drill.notes.append(f"kept answer: {kept.state if kept else None}")
    assert len(harness.fake.lost) == 1
    assert "You bought" in ex.text
    assert kept is not None and kept.state == PendingAnswer.State.DELIVERED
    assert kept.attempts == 1 and kept.expires_at > kept.created_at
    assert drill.in_database == 1
    assert drill.longest_wait < 10


async def test_discord_429_on_every_edit_for_a_while(harness, members, drill):
    """Fifteen 429 answers in a row: the bot keeps the answer and retries with
    backoff until Discord takes it."""
    market = await make_market(harness, creator=members.alice.id)
    too_many = {"message": "You are being rate limited.", "retry_after": 0.01, "global": False}
    harness.fake.fail("PATCH", ORIGINAL, 429, too_many, times=15)
    payload = harness.command(
        "bet", members.bob, market=str(market.id), outcome="1", amount=100, confirm=False
    )
    ex = await harness.send(payload, timeout=60)
    timed(drill, ex)
    kept = await pending(harness, int(payload["id"]))
    drill.acknowledged, drill.in_database = 1, await trades(harness)
    assert "You bought" in ex.text
    assert kept.state == PendingAnswer.State.DELIVERED and kept.attempts >= 3
    assert drill.in_database == 1
    assert drill.longest_wait < 30


async def test_discord_500_on_the_edit(harness, members, drill):
    market = await make_market(harness, creator=members.alice.id)
    harness.fake.fail("PATCH", ORIGINAL, 500, {"message": "500: Internal Server Error"}, times=2)
    ex = await harness.send(
        harness.command(
            "bet", members.bob, market=str(market.id), outcome="1", amount=100, confirm=False
        ),
        timeout=60,
    )
    timed(drill, ex)
    drill.acknowledged, drill.in_database = 1, await trades(harness)
    assert "You bought" in ex.text
    assert drill.in_database == 1
    assert drill.longest_wait < 30


@pytest.mark.discord_invalid_budget(1)
async def test_expired_token_sends_the_answer_by_dm(harness, members, drill):
    market = await make_market(harness, creator=members.alice.id)
    harness.fake.fail("PATCH", ORIGINAL, 401, INVALID_WEBHOOK_TOKEN, times=1)
    payload = harness.command(
        "bet", members.bob, market=str(market.id), outcome="1", amount=100, confirm=False
    )
    ex = await harness.send(payload)
    timed(drill, ex)
    dms = harness.fake.dms(members.bob.id)
    kept = await pending(harness, int(payload["id"]))
    drill.acknowledged, drill.in_database = 1, await trades(harness)
    assert len(dms) == 1 and "Your /bet" in dms[0]["content"] and "You bought" in dms[0]["content"]
    assert kept.state == PendingAnswer.State.DM
    assert drill.in_database == 1


@pytest.mark.discord_invalid_budget(2)
async def test_dms_closed_shows_the_answer_in_the_next_reply(harness, members, drill):
    market = await make_market(harness, creator=members.alice.id)
    harness.fake.closed_dms.add(members.bob.id)
    harness.fake.fail("PATCH", ORIGINAL, 401, INVALID_WEBHOOK_TOKEN, times=1)
    payload = harness.command(
        "bet", members.bob, market=str(market.id), outcome="1", amount=100, confirm=False
    )
    await harness.send(payload)
    assert (await pending(harness, int(payload["id"]))).state == PendingAnswer.State.NEXT_REPLY

    later = await harness.send(harness.command("balance", members.bob))
    again = await harness.send(harness.command("balance", members.bob))
    drill.acknowledged, drill.in_database = 1, await trades(harness)
    assert later.text.startswith("Earlier: Your /bet") and "You bought" in later.text
    assert "Earlier" not in again.text  # shown once
    assert (await pending(harness, int(payload["id"]))).state == PendingAnswer.State.SHOWN


# --- Duplicate deliveries, rate limits, /daily replayed -----------------------------------------


# Twenty copies editing one original message can meet the webhook route's limit on a loaded
# machine; discord.py waits out those 429s (that is what they are for), so a few are allowed.
@pytest.mark.discord_invalid_budget(10)
async def test_twenty_deliveries_of_one_bet_count_and_act_once(harness, members, drill):
    market = await make_market(harness, creator=members.alice.id)
    payload = harness.command(
        "bet", members.bob, market=str(market.id), outcome="1", amount=100, confirm=False
    )
    exchanges = await harness.send_many([payload] * 20, timeout=120)
    drill.longest_wait = max(ex.completion_seconds for ex in exchanges)
    drill.acknowledged, drill.in_database = 1, await trades(harness)
    drill.doubled = drill.in_database - 1
    assert "You bought" in exchanges[0].text
    assert drill.in_database == 1
    # The twenty deliveries spent one of the five trades a minute: four more are allowed.
    for n in range(4):
        ex = await harness.send(
            harness.command(
                "bet", members.bob, market=str(market.id), outcome="1", amount=10, confirm=False
            )
        )
        assert "You bought" in ex.text, (n, ex.text)
    sixth = await harness.send(
        harness.command(
            "bet", members.bob, market=str(market.id), outcome="1", amount=10, confirm=False
        )
    )
    assert "at most 5 trades a minute" in sixth.text
    assert await trades(harness) == 5
    assert await db(harness, lambda: ledger_audit().ok)


async def test_a_replayed_daily_shows_the_original_result(harness, members, drill):
    payload = harness.command("daily", members.bob)
    first = await harness.send(payload)
    second = await harness.send(payload)
    bonuses = await db(harness, lambda: Transfer.objects.filter(code="daily_bonus").count())
    drill.acknowledged, drill.in_database = 1, bonuses
    assert "You claimed your daily" in first.text
    assert second.text == first.text  # not "You already claimed today's bonus"
    assert bonuses == 1


# --- A slow database: "still working", then the result ------------------------------------------


@pytest.mark.postgres
async def test_slow_database_says_still_working_then_answers(members, drill):
    """The market row is locked by another transaction for longer than the budget: the member
    reads "still working" within the budget, and the result once the lock is released."""
    h = await Harness.start(answer_budget=0.5, answer_retry_base=0.05)
    locked, release = threading.Event(), threading.Event()
    try:
        market = await make_market(h, creator=members.alice.id)

        problems: list[BaseException] = []

        def hold() -> None:
            try:
                with transaction.atomic():
                    Market.objects.select_for_update().get(pk=market.id)
                    locked.set()
                    release.wait(30)
            except BaseException as exc:  # reported below
                problems.append(exc)
            finally:
                connection.close()

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        assert await asyncio.to_thread(locked.wait, 10), problems
        payload = h.command(
            "bet", members.bob, market=str(market.id), outcome="1", amount=100, confirm=False
        )
        started = time.monotonic()
        ex = h.feed(payload)

        def shown() -> str:
            return message_text(ex.original) if ex.original else ""

        while MSG_STILL_WORKING not in shown() and time.monotonic() - started < 5:
            await asyncio.sleep(0.05)
        interim = time.monotonic() - started
        assert MSG_STILL_WORKING in ex.text
        release.set()
        await h.settle(timeout=30)
        holder.join(10)
        drill.longest_wait = interim
        drill.acknowledged, drill.in_database = 1, await trades(h)
        drill.notes.append(f'"still working" after {interim:.2f}s (budget 0.5s)')
        assert "You bought" in ex.text
        assert interim < 2.0
        assert drill.in_database == 1
    finally:
        release.set()
        await h.close()


# --- NUL and fuzzed unicode through the harness -------------------------------------------------

NASTY = [
    "Rain\x00?",
    "\x00",
    "Zero\u200bwidth?",
    "Bidi \u202eevil\u202c?",
    "Bell \x07 and escape \x1b[31m?",
    "Lone \ud800 surrogate?",
    "Non-character \uffff?",
    "Emoji 🏳️‍🌈 flags 🇺🇦?",
    "Combining e\u0301\u0301\u0301?",
    "A" * 5000,
    "Tab\tand\nnewline?",
    "Private \ue000 use?",
]


@pytest.mark.discord_patience(60)  # answers to bad input, not their timing: a loaded machine
async def test_nul_and_fuzzed_unicode_get_clear_answers(harness, members, drill):
    market = await make_market(harness, creator=members.alice.id)
    payloads = []
    for text in NASTY:
        payloads.append(
            harness.command(
                "market create", members.mod, question=text, outcomes="Yes|No", duration="1h"
            )
        )
        payloads.append(harness.command("tip", members.alice, member=members.bob, amount=text))
        payloads.append(
            harness.command("bet", members.bob, market=text, outcome="1", amount=10, confirm=False)
        )
    exchanges = []
    for payload in payloads:
        ex = await harness.send(payload)
        exchanges.append(ex)
        drill.longest_wait = max(drill.longest_wait, ex.completion_seconds)
    unanswered = [ex.payload for ex in exchanges if not ex.text]
    crashed = [ex.text for ex in exchanges if MSG_ERROR.split("(")[0] in ex.text]
    drill.acknowledged = len(exchanges) - len(unanswered)
    drill.lost = len(unanswered)
    drill.notes.append(f"{len(exchanges)} interactions, {len(crashed)} unhandled errors")
    assert not unanswered, [(p["data"]["name"], p["data"].get("options")) for p in unanswered]
    assert not crashed, crashed[:3]
    assert not any("\x00" in q for q in await db(
        harness, lambda: list(Market.objects.values_list("question", flat=True))
    ))  # fmt: skip
    assert await db(harness, lambda: ledger_audit().ok)
    assert market


# --- The cache (Redis) paused and stopped -------------------------------------------------------


@pytest.fixture
def private_cache(private_redis, settings):
    """The bot's cache (rate limits, delivery gate) on the private Redis, with the project's
    timeouts and outage behaviour."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": private_redis.url,
            "KEY_PREFIX": f"drill{uuid.uuid4().hex[:8]}",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
    settings.DJANGO_REDIS_IGNORE_EXCEPTIONS = True
    yield private_redis
    private_redis.resume()
    if not private_redis.ready():
        private_redis.start()


@pytest.mark.parametrize("fault", ["paused", "stopped"])
async def test_cache_outage_opens_limits_and_answers_everything(
    private_cache, members, drill, fault
):
    h = await Harness.start(answer_retry_base=0.05)
    try:
        market = await make_market(h, creator=members.alice.id)
        if fault == "paused":
            private_cache.pause()
        else:
            private_cache.stop()
        payloads, exchanges = [], []
        for _ in range(3):
            # Built just before it is sent: Discord's 3-second clock starts at the id.
            payload = h.command(
                "bet", members.bob, market=str(market.id), outcome="1", amount=10, confirm=False
            )
            payloads.append(payload)
            ex = await h.send(payload, timeout=60)
            exchanges.append(ex)
            drill.longest_wait = max(drill.longest_wait, ex.completion_seconds)
        # A re-delivery during the outage (its token still valid; its acknowledgement 40060).
        twice = await h.send(payloads[-1], timeout=60)
        drill.longest_wait = max(drill.longest_wait, twice.completion_seconds)
        drill.acknowledged = sum("You bought" in ex.text for ex in exchanges)
        drill.in_database = await trades(h)
        drill.doubled = drill.in_database - len(payloads)
        drill.notes.append(f"Redis {fault}")
        assert drill.acknowledged == drill.in_database == 3
        assert "You bought" in twice.text
        # Each cache call waits at most its 1 s socket timeout; an interaction makes a few.
        assert drill.longest_wait < 15
        assert await db(h, lambda: ledger_audit().ok)
    finally:
        if fault == "paused":
            private_cache.resume()
        await h.close()


# --- Know before you say, through the bot -------------------------------------------------------


async def test_unknown_commit_outcome_says_checking_then_the_verified_result(
    through_proxy, members, drill
):
    """The bet commits, the acknowledgement is lost, and the database cannot be asked at once
    (frozen): the member reads "checking" — never "nothing was changed" — and, once the
    database answers, the verified result; the bet counts once."""
    from points.errors import MSG_OUTCOME_UNKNOWN

    h = await Harness.start(answer_budget=60, answer_retry_base=0.2, answer_retry_max=1.0)
    try:
        market = await make_market(h, creator=members.alice.id)
        # The quote shown before a trade opens Bob's wallet (its own commit): open it first,
        # so the acknowledgement lost is the bet's.
        await db(h, lambda: wallet_get_or_create(guild_id=GUILD, user_id=members.bob.id))
        through_proxy.drop_next_commit_ack(then_freeze=True)
        payload = h.command(
            "bet", members.bob, market=str(market.id), outcome="1", amount=100, confirm=False
        )
        started = time.monotonic()
        ex = h.feed(payload)

        def shown() -> str:
            return message_text(ex.original) if ex.original else ""

        while MSG_OUTCOME_UNKNOWN not in shown() and time.monotonic() - started < 20:
            await asyncio.sleep(0.05)
        checking = time.monotonic() - started
        assert MSG_OUTCOME_UNKNOWN in shown(), shown()
        assert "Nothing was changed" not in shown()
        through_proxy.thaw()
        await h.settle(timeout=60)
        drill.longest_wait = checking
        # This interaction's trades (by its key), not every row: a straggler of an earlier drill
        # on the shared test database must not count here.
        key = f"discord:{payload['id']}"
        drill.acknowledged = 1
        drill.in_database = await db(h, lambda: Trade.objects.filter(idempotency_key=key).count())
        drill.doubled = drill.in_database - 1
        drill.notes.append(f'"checking" after {checking:.1f}s, then the verified result')
        assert through_proxy.commit_acks_dropped == 1
        assert "You bought" in ex.text
        assert drill.in_database == 1
        assert await db(h, lambda: ledger_audit().ok)
    finally:
        through_proxy.thaw()
        await h.close()
