"""1000 simultaneous `/bet` interactions through the offline Discord harness: the real bot, the
real services and database, a fake Discord on 127.0.0.1 that drops any first response later than
3 seconds. Prints p50/p99 of the first response (the defer Discord must see within 3 s) and of
completion (the final reply), and how many first responses came later than 3 s. Meanwhile
`--autocompletes` (30) members type in `/bet`'s market option, spread over the burst: prints how
many got no choices (target 0) and the p99 autocomplete latency from Discord's creation of the
interaction (its 3 s deadline).

    .venv/bin/python bench/discord_burst.py --db sqlite
    .venv/bin/python bench/discord_burst.py --db postgres [--workers 8]
    .venv/bin/python bench/discord_burst.py --db postgres --guilds 1

By default the 1000 bets come from 1000 members spread over 10 guilds, each guild betting on its
own market. `--guilds 1` puts all 1000 on one market: the worst case for row-lock contention,
which the bot's per-market batching (`discordbot.batching`) turns into a few transactions. A
guild's limit of commands a minute (DOMAIN §7) is its `requests_per_minute` setting: the run
raises it to the guild's share of the bets (as a big server's moderators would with `/settings`);
`--moderators` makes every member a moderator instead (exempt from rate limits).
`--latency` adds a delay to every fake Discord reply (Discord's
round trip from a real host is roughly 20–100 ms).

SQLite uses a fresh file in the temp directory; PostgreSQL uses database `pm_bench_discord` on
postgres://pm:pm@127.0.0.1:5432 (override with BENCH_PG, the name with BENCH_DISCORD_DB), dropped
and recreated each run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG = os.environ.get("BENCH_PG", "postgres://pm:pm@127.0.0.1:5432")
PG_NAME = os.environ.get("BENCH_DISCORD_DB", "pm_bench_discord")


def configure(db: str) -> str:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DJANGO_TESTING"] = "1"
    os.environ.pop("REDIS_URL", None)
    os.environ["LOG_LEVEL"] = "WARNING"
    if db == "sqlite":
        path = Path(tempfile.gettempdir()) / "pm_bench_discord.sqlite3"
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
        return str(path)
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PG_NAME}"')
    os.environ["DATABASE_URL"] = f"{PG}/{PG_NAME}"
    return os.environ["DATABASE_URL"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def reply_text(exchange) -> str:
    """The reply's text, or "" for an interaction Discord dropped (no reply at all)."""
    try:
        return exchange.text
    except AssertionError:
        return ""


async def burst(args) -> int:
    from django.db import connection

    from betting.models import Trade
    from markets.services import market_create
    from points.audit import ledger_audit
    from points.models import GuildSettings
    from points.rules import SYSTEM
    from points.services import guild_settings_get_or_create
    from tests.discordbot.fake_discord import FakeDiscord
    from tests.discordbot.harness import MOD_PERMISSIONS, Harness, Member

    fake = FakeDiscord(latency=args.latency)
    config = {"db_workers": args.workers} if args.workers else {}
    h = await Harness.start(fake=fake, **config)
    base_guild = 700_000_000_000_000_000
    per_guild = args.bets // args.guilds
    markets = {}
    for g in range(args.guilds):
        guild = base_guild + g
        market = await h.bot.db(
            market_create,
            guild_id=guild,
            creator_id=guild,
            question=f"Benchmark market {g}",
            outcomes=["A", "B", "C"],
            duration="30d",
            liquidity=100_000,
            idempotency_key=f"bench:market:{g}",
            actor=SYSTEM,
        )
        markets[guild] = market.pk
        if per_guild > 100:

            def raise_limit(guild_id: int = guild) -> None:
                guild_settings_get_or_create(guild_id=guild_id)
                GuildSettings.objects.filter(guild_id=guild_id).update(
                    requests_per_minute=per_guild
                )

            await h.bot.db(raise_limit)
        await h.bot.policies.load(guild)
    payloads = []
    for i in range(args.bets):
        guild = base_guild + min(i // per_guild, args.guilds - 1)
        h.guild_id = guild
        perms = MOD_PERMISSIONS if args.moderators else Member(0).permissions
        member = Member(800_000_000_000_000_000 + i, f"m{i}", perms)
        payloads.append(
            h.command(
                "bet",
                member,
                market=str(markets[guild]),
                outcome=str(i % 3 + 1),
                amount=10,
                confirm=False,
            )
        )
    vendor = connection.vendor
    print(
        f"{args.bets} bets from {args.bets} members in {args.guilds} guild(s), {vendor}, "
        f"{h.bot.config.db_workers} database thread(s), fake Discord latency "
        f"{args.latency * 1000:.0f} ms"
    )
    started = time.monotonic()
    bets = asyncio.ensure_future(h.send_many(payloads, timeout=1800))
    typed = []
    h.guild_id = base_guild
    for i in range(args.autocompletes):
        await asyncio.sleep(args.autocomplete_every)
        member = Member(810_000_000_000_000_000 + i, f"typist{i}")
        typed.append(h.feed(h.autocomplete("bet", member, "market", market="Benchmark")))
    exchanges = await bets
    await h.settle(timeout=60)
    wall = time.monotonic() - started
    choices = [
        len(ex.callback.json["data"]["choices"]) if ex.callback is not None else 0 for ex in typed
    ]
    empty = sum(1 for n in choices if n == 0)
    typed_age = [ex.first_response_age for ex in typed if ex.first_response_age is not None]

    first = [ex.first_response_seconds for ex in exchanges]
    missing = sum(1 for f in first if f is None)
    first_ok = [f for f in first if f is not None]
    completion = [ex.completion_seconds for ex in exchanges]
    late = sum(1 for f in first_ok if f > 3.0) + missing
    refused = sum(1 for ex in exchanges if ex.rejected)
    bought = sum(1 for ex in exchanges if "You bought" in reply_text(ex))
    trades = await h.bot.db(lambda: Trade.objects.count())
    audit = await h.bot.db(ledger_audit)
    await h.close()

    print(f"wall time            {wall:8.2f} s  ({len(exchanges) / wall:.0f} interactions/s)")
    print(
        f"first response       p50 {percentile(first_ok, 50) * 1000:7.1f} ms   "
        f"p99 {percentile(first_ok, 99) * 1000:7.1f} ms   max {max(first_ok) * 1000:7.1f} ms"
    )
    print(
        f"completion           p50 {percentile(completion, 50):7.2f} s    "
        f"p99 {percentile(completion, 99):7.2f} s    max {max(completion):7.2f} s"
    )
    print(f"first response > 3 s {late:8d}   (no response at all: {missing})")
    print(f"refused by Discord   {refused:8d}   replies 'You bought': {bought}   trades: {trades}")
    if typed:
        print(
            f"autocomplete         {len(typed)} typed during the burst: {empty} empty   "
            f"p50 {percentile(typed_age, 50) * 1000:7.1f} ms   "
            f"p99 {percentile(typed_age, 99) * 1000:7.1f} ms (from creation)"
        )
    print(f"ledger audit         {'ok' if audit.ok else 'FAILED: ' + str(audit.violations[:3])}")
    print(f"mean completion      {statistics.mean(completion):8.2f} s")
    sizes = h.bot.trades.batch_sizes
    if sizes:
        print(
            f"trade batches        {len(sizes):8d}   mean size {statistics.mean(sizes):.1f}   "
            f"largest {max(sizes)}"
        )
    return 0 if late == 0 and empty == 0 and audit.ok and trades == args.bets else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--bets", type=int, default=1000)
    parser.add_argument("--guilds", type=int, default=10)
    parser.add_argument("--moderators", action="store_true")
    parser.add_argument("--workers", type=int, default=0, help="Database threads (default: auto)")
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds per fake reply")
    parser.add_argument(
        "--autocompletes", type=int, default=30, help="Autocompletes typed during the burst"
    )
    parser.add_argument(
        "--autocomplete-every", type=float, default=0.1, help="Seconds between them"
    )
    args = parser.parse_args()

    where = configure(args.db)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"database: {where}")
    return asyncio.run(burst(args))


if __name__ == "__main__":
    sys.exit(main())
