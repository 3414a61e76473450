"""Nothing untrue under faults (issue 27): the real bot, through raw payloads and the strict fake
Discord, against a private PostgreSQL (directly or through the fault proxy). Every drill ends by
reading what each member was finally shown and comparing it with what the database holds:

- *truth*: told "You bought" and the trade is there, or told a refusal and nothing is there;
- *error*: told "Something went wrong";
- *unanswered*: nothing, the "thinking" placeholder, or only an interim ("checking", "still
  working", "restarting") as the last word;
- *untrue*: told a trade that is not there, or a refusal for a trade that is.

Each asserts truth for every member. Run with `-s` to see the drill lines (the tallies)."""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import threading
import time
import uuid

import pytest
from django.db import connection, transaction

from betting.models import Trade
from discordbot import ratelimit
from markets.models import Market
from points.audit import ledger_audit
from points.models import GuildSettings
from points.services import wallet_get_or_create
from tests.conftest import GUILD
from tests.discordbot.conftest import RateLimitClock, db, make_market
from tests.discordbot.fake_discord import RESET
from tests.discordbot.harness import Exchange, Harness, Member, message_text

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CALLBACK = r"/interactions/\d+/[^/]+/callback"
ERROR = "Something went wrong"
INTERIM = ("Still working on it", "I'm still checking", "restarting")
BOUGHT = "You bought"


@pytest.fixture(autouse=True)
def ratelimit_clock(settings, monkeypatch) -> RateLimitClock:
    settings.DISCORD_RATELIMIT_NAMESPACE = uuid.uuid4().hex
    clock = RateLimitClock(1_800_000_000.0)
    monkeypatch.setattr("django_ratelimit.core.time", clock)
    return clock


def crowd(n: int, base: int = 555_555_555_555_555_000) -> list[Member]:
    return [Member(base + i, f"m{i}") for i in range(n)]


def shown(ex: Exchange) -> str:
    """What the member reads last for this interaction ("" when nothing was shown)."""
    try:
        return ex.text
    except (AssertionError, KeyError):
        return ""


def key_of(ex: Exchange) -> str:
    return f"discord:{ex.payload['id']}"


def verdict(text: str, committed: bool) -> str:
    if ERROR in text:
        return "error"
    if not text or any(part in text for part in INTERIM):
        return "unanswered"
    return "truth" if (BOUGHT in text) == committed else "untrue"


async def tally(h: Harness, exchanges: list[Exchange], drill, proxy=None) -> collections.Counter:
    if proxy is not None:  # the database must answer before it can be compared
        await asyncio.sleep(max(0.0, proxy.refused_until - time.monotonic()) + 0.2)
    keys = [key_of(ex) for ex in exchanges]
    committed = set(
        await db(
            h,
            lambda: list(
                Trade.objects.filter(idempotency_key__in=keys).values_list(
                    "idempotency_key", flat=True
                )
            ),
        )
    )
    counts: collections.Counter = collections.Counter()
    examples: dict[str, str] = {}
    refusals: collections.Counter = collections.Counter()
    for ex, key in zip(exchanges, keys, strict=True):
        text = shown(ex)
        kind = verdict(text, key in committed)
        counts[kind] += 1
        examples.setdefault(kind, text[:120])
        if kind == "truth" and BOUGHT not in text:  # a true refusal: which one
            refusals[text[:60]] += 1
    drill.acknowledged = sum(BOUGHT in shown(ex) for ex in exchanges)
    drill.in_database = len(committed)
    drill.notes.append(
        f"{len(exchanges)} members: told the truth {counts['truth']}, told an error "
        f"{counts['error']}, unanswered {counts['unanswered']}, untrue {counts['untrue']}"
    )
    drill.notes.extend(f"{kind}: {text!r}" for kind, text in examples.items() if kind != "truth")
    drill.notes.extend(f"refused {n}: {text!r}" for text, n in refusals.most_common())
    return counts


def assert_truthful(counts: collections.Counter, members: int) -> None:
    assert counts["truth"] == members, dict(counts)


async def open_wallets(h: Harness, people: list[Member]) -> None:
    def open_all() -> None:
        for m in people:
            wallet_get_or_create(guild_id=GUILD, user_id=m.id)

    await db(h, open_all)


async def spend_trades(who: Member, n: int) -> None:
    """`n` of the member's trades this minute spent before the drill (DOMAIN §7)."""
    for _ in range(n):
        limited = await asyncio.to_thread(
            ratelimit.check, guild_id=GUILD, user_id=who.id, rules=(ratelimit.USER_TRADES,)
        )
        assert limited is None


async def rush_settings(h: Harness) -> None:
    """A rush moves the price well past each member's quote, and a big server raises its
    command limit: slippage opened wide and the limit raised, as in `tests/discordbot/
    test_rush.py` — the restart drill is about the restart, not about true refusals."""

    def update() -> None:
        GuildSettings.objects.filter(guild_id=GUILD).update(
            slippage_bps=5000, requests_per_minute=10 * RUSH
        )

    await db(h, update)
    await h.bot.policies.load(GUILD)


def bet(h: Harness, who: Member, market_id: int, amount: int = 10) -> dict:
    return h.command("bet", who, market=str(market_id), outcome="1", amount=amount, confirm=False)


def silences(h: Harness, ex: Exchange) -> float:
    """The longest time the member's message stood unchanged between the acknowledgement and
    the final answer (the gaps between the bot's requests for this interaction)."""
    times = sorted(r.at for r in ex.requests if r.status and r.status < 300)
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


# --- 1. A lost COMMIT acknowledgement, then a short outage -------------------------------------


@pytest.mark.parametrize("outage", [1.5, 6.0])
async def test_lost_commit_ack_then_outage_single_bet(through_proxy, drill, outage):
    """The proxy lets COMMIT through, cuts both sockets and refuses connections for `outage`
    seconds: the member reads "checking", then the verified trade — never an error. The member
    has spent four of their five trades a minute: after the unknown outcome only the key is
    looked up and the trade asked again by it; running the command again (its quote, its
    trade count) would tell them "too fast" about a trade that went through."""
    h = await Harness.start(answer_retry_base=0.2, answer_retry_max=1.0)
    try:
        (member,) = crowd(1)
        market = await make_market(h, creator=member.id + 1)
        await open_wallets(h, [member])
        await spend_trades(member, ratelimit.USER_TRADES.limit - 1)
        through_proxy.drop_next_commit_ack(then_refuse=outage)
        ex = await h.send(bet(h, member, market.id), timeout=120)
        counts = await tally(h, [ex], drill, through_proxy)
        drill.longest_wait = ex.completion_seconds
        assert through_proxy.commit_acks_dropped == 1
        assert_truthful(counts, 1)
        assert await db(h, lambda: ledger_audit().ok)
    finally:
        await h.close()


@pytest.mark.parametrize("outage", [1.5, 6.0])
async def test_lost_commit_ack_then_outage_batch_of_49(through_proxy, drill, outage):
    """The same fault on a group commit of 49 members' bets (a lone bet ahead of them holds the
    market while they queue): every one of the 50 reads the verified result (each with one
    trade left this minute, as in the single-bet drill)."""
    h = await Harness.start(answer_retry_base=0.2, answer_retry_max=1.0)
    locked, release = threading.Event(), threading.Event()
    problems: list[BaseException] = []
    try:
        people = crowd(50)
        market = await make_market(h, creator=people[0].id + 1000)
        await open_wallets(h, people)
        for m in people:
            await spend_trades(m, ratelimit.USER_TRADES.limit - 1)
        # Wide slippage limits: the 49 quotes were all taken before the lone bet moved the
        # price, and the drill is about the lost acknowledgement, not about refusals.
        await db(h, lambda: GuildSettings.objects.filter(guild_id=GUILD).update(slippage_bps=5000))

        def hold() -> None:  # the market row locked, then released without a COMMIT
            try:
                with transaction.atomic():
                    Market.objects.select_for_update().get(pk=market.id)
                    locked.set()
                    release.wait(30)
                    transaction.set_rollback(True)
            except BaseException as exc:  # reported below
                problems.append(exc)
            finally:
                connection.close()

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        assert await asyncio.to_thread(locked.wait, 10), problems
        baseline = asyncio.all_tasks()
        exchanges = [h.feed(bet(h, people[0], market.id))]
        batcher = h.bot.trades
        deadline = time.monotonic() + 8
        while batcher.batch_sizes != [1] and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert batcher.batch_sizes == [1], batcher.batch_sizes
        exchanges += [h.feed(bet(h, m, market.id)) for m in people[1:]]
        while len(batcher._waiting.get(market.id, [])) < 49 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert len(batcher._waiting.get(market.id, [])) == 49, "the 49 did not queue in time"
        through_proxy.drop_next_commit_ack(then_refuse=outage, after=1)
        release.set()
        await h.settle(baseline, timeout=180)
        holder.join(10)
        counts = await tally(h, exchanges, drill, through_proxy)
        drill.longest_wait = max(ex.completion_seconds for ex in exchanges)
        drill.notes.append(f"batches {batcher.batch_sizes[:4]}")
        assert not problems, problems
        assert through_proxy.commit_acks_dropped == 1
        assert batcher.batch_sizes[:2] == [1, 49]
        assert_truthful(counts, 50)
        assert await db(h, lambda: ledger_audit().ok)
    finally:
        release.set()
        await h.close()


# --- 2. The acknowledgement took effect, its connection broke ----------------------------------


@pytest.mark.parametrize("fault", ["closed", "reset"])
async def test_acknowledgement_applied_but_connection_broke(through_proxy, drill, fault):
    """Discord shows "thinking…" but the bot reads a transport error on the callback: it
    goes on, trades, and answers by editing the original."""
    h = await Harness.start(answer_retry_base=0.05, answer_retry_max=0.2)
    try:
        (member,) = crowd(1, base=555_555_555_555_556_000)
        market = await make_market(h, creator=member.id + 1)
        await open_wallets(h, [member])
        h.fake.lose("POST", CALLBACK, status=None if fault == "closed" else RESET)
        ex = await h.send(bet(h, member, market.id), timeout=60)
        counts = await tally(h, [ex], drill)
        drill.longest_wait = ex.completion_seconds
        assert len(h.fake.lost) == 1
        assert_truthful(counts, 1)
        assert BOUGHT in shown(ex)
    finally:
        await h.close()


# --- 3. A 2–3 s database restart during a rush -------------------------------------------------

RUSH = int(os.environ.get("PM_DRILL_RUSH", "40"))
"""Members in the rush; the issue's drill had 300 (`PM_DRILL_RUSH=300`), too heavy for every
run of the suite."""
RUSH_SECONDS = 4.0
"""The rush's arrivals spread over this long, the restart beginning an eighth of the way in:
most arrive during the outage, as in the issue."""


@pytest.mark.parametrize("pause", [2.0, 3.0])  # outages of about 2.2 s and 3.2 s, as in the issue
async def test_database_restart_during_a_rush(on_private_postgres, drill, pause):
    """PostgreSQL stops (fast shutdown) and starts again while `RUSH` members bet: those who
    arrive during the outage read "the database is restarting — retrying", then their trade;
    nobody reads an error."""
    server = on_private_postgres
    h = await Harness.start(answer_retry_base=0.2, answer_retry_max=1.0)
    try:
        people = crowd(RUSH, base=555_555_555_555_557_000)
        market = await make_market(h, creator=people[0].id + 1000)
        await open_wallets(h, people)
        await rush_settings(h)
        outage: dict[str, float] = {}

        def restart() -> None:
            outage["down"] = time.monotonic()
            server.stop()
            time.sleep(pause)
            server.start()
            outage["up"] = time.monotonic()

        baseline = asyncio.all_tasks()
        exchanges: list[Exchange] = []
        restarting = None
        for i, m in enumerate(people):
            if i == RUSH // 8:
                restarting = asyncio.ensure_future(asyncio.to_thread(restart))
            exchanges.append(h.feed(bet(h, m, market.id)))
            await asyncio.sleep(RUSH_SECONDS / RUSH)
        await restarting
        await h.settle(baseline, timeout=180)
        counts = await tally(h, exchanges, drill)
        told_restarting = sum(
            any("restarting" in message_text(r.json or {}) for r in ex.requests if r.json)
            for ex in exchanges
        )
        drill.longest_wait = max(ex.completion_seconds for ex in exchanges)
        drill.notes.append(
            f"outage {outage['up'] - outage['down']:.1f}s; {told_restarting} told restarting"
        )
        assert_truthful(counts, RUSH)
        assert drill.in_database == RUSH  # the restart cost nobody their trade
        assert told_restarting > 0  # those who met the outage were told what was happening
        assert await db(h, lambda: ledger_audit().ok)
    finally:
        if not server.ready():
            server.start()
        await h.close()


# --- 4. A frozen database (30 s) ----------------------------------------------------------------

FROZEN_SECONDS = 30
FROZEN_MEMBERS = 40


async def test_frozen_database_every_member_gets_the_true_result(through_proxy, drill):
    """The database stops answering for 30 s while 40 members bet (more calls than the bot's 8
    database threads): each reads "still working" within the budget, hears again at least
    every ~10 s, and reads the true result once the database answers."""
    h = await Harness.start(answer_retry_base=0.2, answer_retry_max=1.0)
    try:
        people = crowd(FROZEN_MEMBERS, base=555_555_555_555_558_000)
        market = await make_market(h, creator=people[0].id + 1000)
        await open_wallets(h, people)
        baseline = asyncio.all_tasks()
        through_proxy.freeze()
        frozen_at = time.monotonic()
        exchanges = []
        for m in people:
            exchanges.append(h.feed(bet(h, m, market.id)))
            await asyncio.sleep(0.05)
        await asyncio.sleep(max(0.0, FROZEN_SECONDS - (time.monotonic() - frozen_at)))
        through_proxy.thaw()
        await h.settle(baseline, timeout=240)
        counts = await tally(h, exchanges, drill)
        longest_silence = max(silences(h, ex) for ex in exchanges)
        drill.longest_wait = max(ex.completion_seconds for ex in exchanges)
        drill.notes.append(f"longest silence {longest_silence:.1f}s")
        assert_truthful(counts, FROZEN_MEMBERS)
        assert longest_silence <= 13.0
        assert await db(h, lambda: ledger_audit().ok)
    finally:
        through_proxy.thaw()
        await h.close()


# --- 6. Twenty deliveries of one interaction: one edit -----------------------------------------


async def test_twenty_deliveries_edit_the_answer_once(on_private_postgres, drill):
    """Twenty deliveries of one interaction: one trade, one edit showing it. A re-delivery whose
    answer is already shown does not edit it again (twenty identical edits kept the token's
    edit bucket busy for seconds)."""
    h = await Harness.start(answer_retry_base=0.05, answer_retry_max=0.2)
    try:
        (member,) = crowd(1, base=555_555_555_555_559_000)
        market = await make_market(h, creator=member.id + 1)
        await open_wallets(h, [member])
        payload = bet(h, member, market.id)
        exchanges = await h.send_many([payload] * 20, timeout=120)
        edits = [r for r in exchanges[0].requests if r.method == "PATCH" and r.status == 200]
        counts = await tally(h, exchanges[:1], drill)
        drill.longest_wait = max(ex.completion_seconds for ex in exchanges)
        drill.notes.append(f"20 deliveries, {len(edits)} edits of the answer")
        assert_truthful(counts, 1)
        assert (
            await db(h, lambda: Trade.objects.filter(idempotency_key=key_of(exchanges[0])).count())
            == 1
        )
        assert len(edits) == 1, [message_text(r.json or {})[:60] for r in edits][:3]
    finally:
        await h.close()


# --- 3. What counts as "the database is restarting" ---------------------------------------------


def test_a_refused_or_timed_out_connection_is_transient(private_postgres, transactional_db):
    """psycopg's errors for a connection that could not be made, or that the server's side
    dropped, carry no SQLSTATE; they are transient all the same (issue 27), and an error from a
    working server is not."""
    from django.db import OperationalError, ProgrammingError

    from points.db import connection_failed, is_transient

    from .conftest import django_database
    from .proxy import FaultProxy
    from .servers import free_port

    def error_of(work) -> Exception:
        try:
            work()
        except Exception as exc:  # returned for classification
            return exc
        finally:
            connection.close()
        raise AssertionError("no error")

    with django_database(host="127.0.0.1", port=free_port()):  # nothing listens there
        refused = error_of(connection.ensure_connection)
    with FaultProxy("127.0.0.1", private_postgres.port) as proxy:
        proxy.freeze()  # accepted, never answered: connect_timeout
        with django_database(host="127.0.0.1", port=proxy.port):
            timed_out = error_of(connection.ensure_connection)
        proxy.thaw()
    # Connected, then the server's side goes away mid-session (a restart's fast shutdown, CI at
    # 76561e6): "server closed the connection unexpectedly", no SQLSTATE.
    with (
        FaultProxy("127.0.0.1", private_postgres.port) as proxy,
        django_database(host="127.0.0.1", port=proxy.port),
    ):
        connection.ensure_connection()
        proxy.drop_connections()
        lost = error_of(lambda: connection.cursor().execute("SELECT 1"))
    with django_database(host="127.0.0.1", port=private_postgres.port):
        wrong = error_of(lambda: connection.cursor().execute("SELECT * FROM no_such_table"))
    assert (
        isinstance(refused, OperationalError) and getattr(refused.__cause__, "sqlstate", 0) is None
    )
    assert connection_failed(refused) and is_transient(refused), refused
    assert isinstance(timed_out, OperationalError)
    assert connection_failed(timed_out) and is_transient(timed_out), timed_out
    assert isinstance(lost, OperationalError) and getattr(lost.__cause__, "sqlstate", 0) is None
    assert is_transient(lost) and not connection_failed(lost), lost
    assert isinstance(wrong, ProgrammingError) and not is_transient(wrong)
