"""A rush of simultaneous `/bet` interactions through the offline Discord harness: the real bot,
the real services and database, a fake Discord on 127.0.0.1 that drops any first response later
than 3 seconds. Prints p50/p99 of the first response (the defer Discord must see within 3 s) and
of completion (the final reply), how many first responses came later than 3 s, and the database
round trips per interaction. Meanwhile `--autocompletes` (30) members type in `/bet`'s market
option, spread over the rush: prints how many got no choices (target 0) and the p99 autocomplete
latency from Discord's creation of the interaction (its 3 s deadline).

    .venv/bin/python bench/discord_burst.py --guilds 1                # 1,000 on ONE market
    .venv/bin/python bench/discord_burst.py --guilds 1 --quote        # quotes, then Confirm
    .venv/bin/python bench/discord_burst.py --markets 10 --per-market 100
    .venv/bin/python bench/discord_burst.py --markets 100 --per-market 10
    .venv/bin/python bench/discord_burst.py --guilds 1 --redis        # cache/limits on Redis
    .venv/bin/python bench/discord_burst.py --db sqlite               # no PostgreSQL needed

Shape: `--markets N --per-market M` bets on N markets spread over `--guilds` guilds (default
10; never more guilds than markets); without `--markets`, one market per guild and `--bets`
(1,000) shared among them, so `--guilds 1` puts all 1,000 on one market: the worst case for
row-lock contention, which the bot's per-market batching (`discordbot.batching`) turns into a
few transactions. Every bettor is a different member; `--new-members K` (default: all) of them
have never used the bot (no wallet yet), the others got their wallet before the rush.

`--one-step` (default) bets with `confirm:false` (trade at once within the slippage limit);
`--quote` sends `/bet` (a quote with Confirm / Cancel) for every member, then every member
clicks Confirm: quote and confirm are measured apart. The quote run raises the guilds' slippage
limit to its maximum (50 %) so a Confirm trades rather than meets a price moved by the rush.

Baseline in the same run: before the rush, the same members send as many `/benchping`s, a
trivial command the bench adds to the bot's tree that answers "pong" through the same
`respond` path as `/bet` (gate, rate limits, acknowledgement, reply) without any database
work: the bot's own overhead per interaction.

Queries: every statement the bot's database threads send during the rush (an execute wrapper
on each connection), and every new connection, divided by the interactions of the rush.

A guild's limit of commands a minute (DOMAIN §7) is its `requests_per_minute` setting: the run
raises it to what its share of the interactions needs (as a big server's moderators would with
`/settings`); `--moderators` makes every member a moderator instead (exempt from rate limits).
`--latency` adds a delay to every fake Discord reply (Discord's round trip from a real host is
roughly 20–100 ms).

PostgreSQL: a fresh `<base>_bench_discord` beside BENCH_DATABASE_URL / DATABASE_URL; SQLite: a
fresh file in the temp directory; Redis (`--redis`): BENCH_REDIS_URL / REDIS_URL under a key
prefix of the run's own (bench/_common.py). `--smoke`: 2 markets × 10 members, fails when an
interaction is lost or the ledger audit is unclean, never on time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import _common
from _common import percentile

BASE_GUILD = 700_000_000_000_000_000
BASE_MEMBER = 800_000_000_000_000_000


def configure(args) -> str:
    redis = None
    if args.redis:
        redis = _common.redis_url()
        if redis is None:
            raise _common.BenchError("--redis needs BENCH_REDIS_URL or REDIS_URL")
    if args.db == "sqlite":
        path = Path(tempfile.gettempdir()) / f"pm_bench_discord_{_common.RUN}.sqlite3"
        url = f"sqlite:///{path}"
    else:
        url = _common.fresh_database("discord")
    _common.django_setup(url, redis=redis)
    return url


def reply_text(exchange) -> str:
    """The reply's text, or "" for an interaction Discord dropped (no reply at all)."""
    try:
        return exchange.text
    except AssertionError:
        return ""


class QueryCounter:
    """Statements and new connections of every thread's connection (Django's execute wrapper,
    installed on each connection as it connects)."""

    def __init__(self) -> None:
        self._queries = itertools.count()
        self._connections = itertools.count()

    def install(self) -> None:
        from django.db.backends.signals import connection_created

        connection_created.connect(self._connected, weak=False)

    def _connected(self, sender, connection, **kwargs) -> None:
        next(self._connections)
        if self._wrap not in connection.execute_wrappers:
            connection.execute_wrappers.append(self._wrap)

    def _wrap(self, execute, sql, params, many, context):
        next(self._queries)
        return execute(sql, params, many, context)

    def snapshot(self) -> tuple[int, int]:
        # itertools.count has no peek: read its repr ("count(N)"), atomic under the GIL.
        q = int(repr(self._queries)[6:-1])
        c = int(repr(self._connections)[6:-1])
        return q, c


@dataclass
class Phase:
    """One wave of interactions and what Discord saw of it."""

    name: str
    exchanges: list = field(default_factory=list)
    wall: float = 0.0
    queries: int = 0
    connections: int = 0
    extra: int = 0  # interactions in the window besides the wave (autocompletes)
    typed: list = field(default_factory=list)

    @property
    def first(self) -> list[float]:
        return [f for ex in self.exchanges if (f := ex.first_response_seconds) is not None]

    @property
    def missing(self) -> int:
        return sum(1 for ex in self.exchanges if ex.first_response_seconds is None)

    @property
    def completion(self) -> list[float]:
        return [ex.completion_seconds for ex in self.exchanges]

    @property
    def late(self) -> int:
        return sum(1 for f in self.first if f > 3.0) + self.missing

    @property
    def per_interaction(self) -> float:
        return self.queries / max(1, len(self.exchanges) + self.extra)

    def texts(self) -> list[str]:
        return [reply_text(ex) for ex in self.exchanges]

    def show(self) -> None:
        n = len(self.exchanges)
        first, completion = self.first, self.completion
        print(f"{self.name}: {n} interactions in {self.wall:.2f} s ({n / self.wall:.0f}/s)")
        if first:
            print(
                f"  first response       p50 {percentile(first, 50) * 1000:7.1f} ms   "
                f"p99 {percentile(first, 99) * 1000:7.1f} ms   max {max(first) * 1000:7.1f} ms"
            )
        print(
            f"  completion           p50 {percentile(completion, 50):7.2f} s    "
            f"p99 {percentile(completion, 99):7.2f} s    max {max(completion):7.2f} s   "
            f"mean {statistics.mean(completion):.2f} s"
        )
        print(f"  first response > 3 s {self.late:8d}   (no response at all: {self.missing})")
        print(
            f"  database             {self.queries} queries, {self.connections} new connections: "
            f"{self.per_interaction:.2f} queries per interaction"
        )


async def wave(h, counter: QueryCounter, name: str, payloads: list[dict], during=None) -> Phase:
    """Send `payloads` at once and wait until the bot is idle; `during` runs meanwhile (typed
    autocompletes) and returns its exchanges."""
    phase = Phase(name)
    q0, c0 = counter.snapshot()
    started = time.monotonic()
    sent = asyncio.ensure_future(h.send_many(payloads, timeout=1800))
    typed = await during() if during else []
    phase.exchanges = await sent
    await h.settle(timeout=120)
    phase.wall = time.monotonic() - started
    q1, c1 = counter.snapshot()
    phase.queries, phase.connections, phase.extra = q1 - q0, c1 - c0, len(typed)
    phase.typed = list(typed)
    return phase


def classify(texts: list[str]) -> dict[str, int]:
    kinds = {"traded": 0, "price moved": 0, "quoted": 0, "pong": 0, "other": 0, "no answer": 0}
    for text in texts:
        if not text:
            kinds["no answer"] += 1
        elif "You bought" in text:
            kinds["traded"] += 1
        elif text.startswith("The price moved"):
            kinds["price moved"] += 1
        elif text.startswith("**Quote**"):
            kinds["quoted"] += 1
        elif text == "pong":
            kinds["pong"] += 1
        else:
            kinds["other"] += 1
    return kinds


def add_ping(bot) -> None:
    """`/benchping`: the bot's own overhead, through the same `respond` as every command."""
    from discord import app_commands

    from discordbot.interactions import Reply, respond

    @app_commands.command(name="benchping", description="Benchmark: answers pong")
    @app_commands.guild_only()
    async def benchping(interaction) -> None:
        async def body() -> Reply:
            return Reply(content="pong")

        await respond(interaction, body, action="benchping")

    bot.tree.add_command(benchping)


async def burst(args) -> int:
    from django.db import connection

    from betting.models import Trade
    from markets.services import market_create
    from points.audit import ledger_audit
    from points.models import GuildSettings
    from points.rules import SYSTEM
    from points.services import guild_settings_get_or_create, wallet_get_or_create
    from tests.discordbot.fake_discord import FakeDiscord
    from tests.discordbot.harness import MOD_PERMISSIONS, Harness, Member

    counter = QueryCounter()
    counter.install()
    fake = FakeDiscord(latency=args.latency)
    config = {"db_workers": args.workers} if args.workers else {}
    h = await Harness.start(fake=fake, **config)
    add_ping(h.bot)
    total = args.markets * args.per_market
    guilds = [BASE_GUILD + g for g in range(args.guilds)]
    # Interactions a guild takes in a minute: pings, bets (or quotes and confirms), typing.
    share = -(-total // args.guilds) * (3 if args.quote else 2) + args.autocompletes + 10

    def setup_guild(guild_id: int) -> None:
        guild_settings_get_or_create(guild_id=guild_id)
        changes = {"requests_per_minute": min(100_000, max(100, share))}
        if args.quote:
            changes["slippage_bps"] = 5000
        GuildSettings.objects.filter(guild_id=guild_id).update(**changes)

    for guild in guilds:
        await h.bot.db(setup_guild, guild_id=guild)
    markets: list[tuple[int, int]] = []  # (guild, market id)
    for k in range(args.markets):
        guild = guilds[k % len(guilds)]
        market = await h.bot.db(
            market_create,
            guild_id=guild,
            creator_id=guild,
            question=f"Benchmark market {k}",
            outcomes=["A", "B", "C"],
            duration="30d",
            liquidity=100_000,
            idempotency_key=f"bench:market:{k}",
            actor=SYSTEM,
        )
        markets.append((guild, market.pk))
    for guild in guilds:
        await h.bot.policies.load(guild)

    perms = MOD_PERMISSIONS if args.moderators else Member(0).permissions
    bettors = []  # (guild, market id, member)
    for i in range(total):
        guild, market_id = markets[i // args.per_market]
        bettors.append((guild, market_id, Member(BASE_MEMBER + i, f"m{i}", perms)))
    known = total - min(total, args.new_members if args.new_members is not None else total)

    def open_wallets() -> None:
        for guild, _, member in bettors[:known]:
            wallet_get_or_create(guild_id=guild, user_id=member.id)

    if known:
        await h.bot.db(open_wallets)

    def payloads(make) -> list[dict]:
        out = []
        for guild, market_id, member in bettors:
            h.guild_id = guild
            out.append(make(guild, market_id, member))
        return out

    print(
        f"{total} bets: {args.markets} market(s) × {args.per_market} in {args.guilds} guild(s), "
        f"{total - known} new member(s), {'quote then Confirm' if args.quote else 'one-step'}, "
        f"{connection.vendor}, cache {'Redis' if args.redis else 'in-process'}, "
        f"{h.bot.config.db_workers} database thread(s), fake Discord latency "
        f"{args.latency * 1000:.0f} ms"
    )

    ping = await wave(
        h,
        counter,
        "baseline /benchping",
        payloads(lambda g, m, member: h.command("benchping", member)),
    )

    async def typing() -> list:
        typed = []
        h.guild_id = guilds[0]
        for i in range(args.autocompletes):
            await asyncio.sleep(args.autocomplete_every)
            member = Member(BASE_MEMBER + 10_000_000 + i, f"typist{i}")
            typed.append(h.feed(h.autocomplete("bet", member, "market", market="Benchmark")))
        return typed

    def bet(guild, market_id, member) -> dict:
        options = {"market": str(market_id), "outcome": str(member.id % 3 + 1), "amount": 10}
        if not args.quote:
            options["confirm"] = False
        return h.command("bet", member, **options)

    phases = []
    name = "quotes" if args.quote else "one-step /bet"
    rush = await wave(h, counter, name, payloads(bet), typing)
    phases.append(rush)
    if args.quote:
        replies = {ex.payload["member"]["user"]["id"]: ex for ex in rush.exchanges}

        def click(guild, market_id, member) -> dict:
            return h.click(replies[str(member.id)].reply, member, label="Confirm")

        quoted = classify(rush.texts())["quoted"]
        if quoted == total:
            phases.append(await wave(h, counter, "Confirm clicks", payloads(click)))
        else:
            print(f"only {quoted} of {total} quotes came back: no Confirm wave")
    typed = rush.typed
    choices = [
        len(ex.callback.json["data"]["choices"]) if ex.callback is not None else 0 for ex in typed
    ]
    empty = sum(1 for n in choices if n == 0)
    typed_age = [ex.first_response_age for ex in typed if ex.first_response_age is not None]

    trades = await h.bot.db(lambda: Trade.objects.count())
    audit = await h.bot.db(ledger_audit)
    sizes = list(h.bot.trades.batch_sizes)
    await h.close()

    for phase in [ping, *phases]:
        phase.show()
    final = phases[-1]
    kinds = classify(final.texts())
    print(
        f"answers              {', '.join(f'{k} {v}' for k, v in kinds.items() if v)}   "
        f"trades: {trades}"
    )
    odd = [t for t in final.texts() if t and classify([t])["other"]]
    for text in odd[:3]:
        print(f"  e.g. {text[:160]!r}")
    if typed:
        print(
            f"autocomplete         {len(typed)} typed during the rush: {empty} empty   "
            f"p50 {percentile(typed_age, 50) * 1000:7.1f} ms   "
            f"p99 {percentile(typed_age, 99) * 1000:7.1f} ms (from creation)"
        )
    if sizes:
        print(
            f"trade batches        {len(sizes):8d}   mean size {statistics.mean(sizes):.1f}   "
            f"largest {max(sizes)}"
        )
    print(f"ledger audit         {'ok' if audit.ok else 'FAILED: ' + str(audit.violations[:3])}")

    shape = f"{args.markets}x{args.per_market}" + ("_quote" if args.quote else "")
    shape += "_redis" if args.redis else ""
    shape += "" if known == 0 else f"_{total - known}new"
    size = {"bets": total, "markets": args.markets, "guilds": args.guilds, "db": args.db}
    ping_p99 = percentile(ping.completion, 99)
    for phase in phases:
        key = "confirm" if phase.name == "Confirm clicks" else "quote" if args.quote else "bet"
        # lost: dropped by Discord (no first response within 3 s), so never answered
        extra = {**size, "lost": classify(phase.texts())["no answer"]}
        _common.record(
            f"discord_burst.{shape}.{key}.completion_p99",
            percentile(phase.completion, 99),
            "s",
            baseline=ping_p99,
            baseline_name="/benchping completion p99",
            p50=round(percentile(phase.completion, 50), 3),
            interactions_per_s=round(len(phase.exchanges) / phase.wall, 1),
            **extra,
        )
        _common.record(
            f"discord_burst.{shape}.{key}.first_response_p99",
            percentile(phase.first, 99),
            "s",
            baseline=percentile(ping.first, 99),
            baseline_name="/benchping first response p99",
            late=phase.late,
            **extra,
        )
        _common.record(
            f"discord_burst.{shape}.{key}.queries_per_interaction",
            phase.per_interaction,
            "queries",
            baseline=ping.per_interaction,
            baseline_name="/benchping queries per interaction",
            connections=phase.connections,
            **extra,
        )
    if typed:
        _common.record(
            f"discord_burst.{shape}.autocomplete_p99",
            percentile(typed_age, 99),
            "s",
            baseline=percentile([ex.first_response_age for ex in ping.exchanges], 99),
            baseline_name="/benchping first response p99 from creation",
            empty=empty,
            **size,
        )

    lost = sum(classify(p.texts())["no answer"] for p in [ping, *phases])
    answered = kinds["traded"] + kinds["price moved"]
    every_one = answered == total and trades == kinds["traded"] and lost == 0
    ok = every_one and audit.ok and classify(ping.texts())["pong"] == total
    if args.smoke:
        return _common.smoke_line(
            f"discord_burst {shape}",
            ok and empty == 0,
            f"{total} bets answered {answered}/{total} ({kinds['traded']} traded), "
            f"{lost} lost, {empty} empty autocompletes, "
            f"{final.per_interaction:.1f} queries/interaction, "
            f"ledger audit {'ok' if audit.ok else 'FAILED'}",
        )
    return 0 if ok and empty == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--bets", type=int, default=1000)
    parser.add_argument("--guilds", type=int, default=10)
    parser.add_argument("--markets", type=int, help="markets (default: one per guild)")
    parser.add_argument("--per-market", type=int, help="bets per market (default: --bets shared)")
    parser.add_argument(
        "--new-members", type=int, help="members with no wallet yet (default: every member)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--one-step", action="store_true", help="confirm:false (the default)")
    mode.add_argument("--quote", action="store_true", help="quote, then a Confirm click")
    parser.add_argument("--redis", action="store_true", help="cache and rate limits on Redis")
    parser.add_argument("--moderators", action="store_true")
    parser.add_argument("--workers", type=int, default=0, help="Database threads (default: auto)")
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds per fake reply")
    parser.add_argument(
        "--autocompletes", type=int, default=30, help="Autocompletes typed during the rush"
    )
    parser.add_argument(
        "--autocomplete-every", type=float, default=0.1, help="Seconds between them"
    )
    parser.add_argument("--smoke", action="store_true", help="toy size: 2 markets × 10 members")
    args = parser.parse_args()
    if args.smoke:
        args.markets = args.markets or 2
        args.per_market = args.per_market or 10
        args.autocompletes, args.autocomplete_every = 3, 0.02
    if args.markets is None:
        args.markets = args.guilds
    if args.per_market is None:
        args.per_market = args.bets // args.markets
    args.guilds = max(1, min(args.guilds, args.markets))
    for name in ("bets", "markets", "per_market", "guilds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    where = configure(args)
    print(f"database: {where}")
    return asyncio.run(burst(args))


if __name__ == "__main__":
    sys.exit(main())
