"""A rush on a primary with a hot standby (issue 24, `core.replicas`): a private PostgreSQL
primary and a streaming standby made with `pg_basebackup -R` (`tests/faults/servers.py`),
`DATABASE_REPLICA_URLS` naming the standby, and the real bot (the offline Discord harness, as
bench/discord_burst.py) taking `--bets` (1,000) one-step `/bet`s at once over `--markets` (10)
markets, while `--autocompletes` (30) members type in `/bet`'s market option and
`--dashboard` (50) dashboard page loads read the dashboard's lag-tolerant selectors (the newest
events, a market's recent trades, the leaderboard) from `--viewers` (4) threads. Each member
sends `/portfolio` as soon as their bet's answer arrives.

    .venv/bin/python bench/replica_rush.py            # 1,000 bets, 30 autocompletes, 50 reads
    .venv/bin/python bench/replica_rush.py --smoke    # 40 bets, 3 autocompletes, 5 reads

Prints:

- read-only queries: every statement outside a transaction that is a SELECT (on the primary) or
  any statement on the standby, by phase (`rush`: until the last bet is answered, `/portfolio`s
  included; `tail`: the `/portfolio`s after it) and in all: the share that went to the standby
  (issue 24's target: ≥ 90 %; the recorded figure is the share in all). The router's own
  bookkeeping (a replica's replay position and lag, the primary's WAL position after a write)
  is counted apart. Also the share of lag-tolerant reads (the ones the router may send away)
  that went to it — the rest waited on the primary for the member's own write, or the standby
  was behind — and the tables the read-only queries left on the primary read first (reads no
  selector marks lag-tolerant);
- read-your-writes: members whose bet answer says "You bought" (target: all) and whose
  `/portfolio`, sent right after that answer, lists the market they bet on (target: all);
- the standby's replay lag at the end, and the ledger audit (on the primary).

Fails (exit 1) when a bet or a `/portfolio` the bot acknowledged goes unanswered, an answer and
its trade disagree (lost), a `/portfolio` misses its member's trade, an answered autocomplete is
empty, the standby took no read, or the audit is unclean; never on speed or on the share (the
smoke run's toy sizes make it meaningless). Interactions Discord dropped (no first response
within `--deadline`, 3 s as Discord; the smoke run allows 30 s) are counted and printed, not
failed: on a loaded machine a rush of 1,000 at once loses some, each with no effect. `--why`
names the code behind the read-only queries left on the primary. Needs PostgreSQL's server
binaries (`/usr/lib/postgresql/*/bin`, as `tests/faults/`); nothing touches the shared servers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import _common

BASE_GUILD = 720_000_000_000_000_000
BASE_MEMBER = 830_000_000_000_000_000
BOOKKEEPING = ("pg_last_wal_replay_lsn", "pg_last_xact_replay_timestamp", "pg_current_wal_lsn")


class ReadCounter:
    """Statements by phase, database alias and kind: `read` (a SELECT outside a transaction on
    the primary, anything on a replica), `tolerant` (inside a lag-tolerant selector), `book`
    (the router's bookkeeping), `write` (the rest)."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.on_primary: Counter = Counter()
        """Read-only queries that stayed on the primary, by the table they read first."""
        self.phase = "setup"
        self.why = False
        self.callers: Counter = Counter()
        """(table, the project's function that read it) of reads left on the primary (`--why`)."""
        self._lock = threading.Lock()

    def install(self) -> None:
        from django.db.backends.signals import connection_created

        connection_created.connect(self._connected, weak=False)

    def _connected(self, sender, connection, **kwargs) -> None:
        if self._wrap not in connection.execute_wrappers:
            connection.execute_wrappers.append(self._wrap)

    def _wrap(self, execute, sql, params, many, context):
        from core import replicas

        connection = context["connection"]
        replica = connection.alias != "default"
        text = sql.lstrip()[:200]
        if any(name in text for name in BOOKKEEPING):
            kind = "book"
        elif replica or (not connection.in_atomic_block and text[:6].upper() == "SELECT"):
            kind = "read"
        else:
            kind = "write"
        where = "replica" if replica else "primary"
        with self._lock:
            self.counts[(self.phase, where, kind)] += 1
            if kind == "read" and not replica and self.phase in ("rush", "tail"):
                self.on_primary[table(sql)] += 1
                if self.why:
                    self.callers[(table(sql), caller())] += 1
            if kind == "read" and replicas._tolerant.get():
                self.counts[(self.phase, where, "tolerant")] += 1
        return execute(sql, params, many, context)

    def share(self, phase: str, kind: str = "read") -> tuple[int, int]:
        on_replica = self.counts[(phase, "replica", kind)]
        return on_replica, on_replica + self.counts[(phase, "primary", kind)]


def caller() -> str:
    """The innermost function of the project's own apps on the stack (not bench/, not Django)."""
    import traceback

    root = str(_common.ROOT)
    for frame in reversed(traceback.extract_stack()[:-3]):
        path = frame.filename
        if path.startswith(root) and "/.venv/" not in path and "/bench/" not in path:
            return f"{Path(path).relative_to(root)}:{frame.name}"
    return "?"


def table(sql: str) -> str:
    match = re.search(r'\bFROM\s+"?(\w+)"?', sql, re.IGNORECASE)
    return match.group(1) if match else sql[:40]


def servers(args):
    """The private primary (database `pm`) and its standby's server object (started later)."""
    import psycopg

    from tests.faults.servers import PrivatePostgres, postgres_bin

    bin_dir = postgres_bin()
    if bin_dir is None:
        raise _common.BenchError(
            "PostgreSQL's server binaries are missing (/usr/lib/postgresql/*/bin/postgres): "
            "apt-get install postgresql"
        )
    primary = PrivatePostgres(bin_dir).init().start()
    with psycopg.connect(primary.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE pm")
    return primary, PrivatePostgres(bin_dir)


def url(server) -> str:
    return f"postgres://postgres@127.0.0.1:{server.port}/pm"


async def rush(args, counter: ReadCounter, standby) -> int:
    from django.db import close_old_connections
    from processes import answer

    from betting.models import Trade
    from core import replicas
    from dashboard.selectors import events_latest, trades_recent
    from markets.services import market_create
    from points.audit import ledger_audit
    from points.models import GuildSettings
    from points.rules import SYSTEM
    from points.selectors import leaderboard
    from points.services import guild_settings_get_or_create
    from tests.discordbot.fake_discord import FakeDiscord
    from tests.discordbot.harness import Harness, Member

    fake = FakeDiscord(latency=args.latency, deadline=args.deadline)
    h = await Harness.start(fake=fake)
    guilds = [BASE_GUILD + g for g in range(args.guilds)]

    def setup() -> list[tuple[int, int]]:
        for guild in guilds:
            guild_settings_get_or_create(guild_id=guild)
            GuildSettings.objects.filter(guild_id=guild).update(requests_per_minute=100_000)
        return [
            (
                guilds[k % len(guilds)],
                market_create(
                    guild_id=guilds[k % len(guilds)],
                    creator_id=guilds[0],
                    question=f"Replica market #{k}#",
                    outcomes=["A", "B", "C"],
                    duration="30d",
                    liquidity=100_000,
                    idempotency_key=f"bench:replica:{k}",
                    actor=SYSTEM,
                ).pk,
            )
            for k in range(args.markets)
        ]

    markets = await h.bot.db(setup)
    for guild in guilds:
        await h.bot.policies.load(guild)
    await asyncio.to_thread(wait_caught_up, standby)
    replicas._status.clear()
    print(
        f"{args.bets} one-step /bet at once over {args.markets} markets in {args.guilds} guilds, "
        f"{args.autocompletes} autocompletes, {args.dashboard} dashboard page loads from "
        f"{args.viewers} threads, then each member's /portfolio right after their answer; "
        f"primary and standby on 127.0.0.1 (streaming), fake Discord latency "
        f"{args.latency * 1000:.0f} ms"
    )

    bettors = [
        (i, *markets[i % len(markets)], Member(BASE_MEMBER + i, f"m{i}")) for i in range(args.bets)
    ]
    bets: dict[int, object] = {}
    portfolios: dict[int, object] = {}
    counter.phase = "rush"
    started = time.monotonic()
    for i, guild, market_id, member in bettors:
        h.guild_id = guild
        payload = h.command(
            "bet", member, market=str(market_id), outcome=str(i % 3 + 1), amount=10, confirm=False
        )
        bets[i] = h.feed(payload)

    async def typing() -> list:
        typed = []
        for k in range(args.autocompletes):
            await asyncio.sleep(args.spread / max(1, args.autocompletes))
            h.guild_id = guilds[k % len(guilds)]
            member = Member(BASE_MEMBER + 10_000_000 + k, f"typist{k}")
            typed.append(h.feed(h.autocomplete("bet", member, "market", market="Replica")))
        return typed

    def viewer(which: list[int]) -> int:
        pages = 0
        try:
            for n in which:
                time.sleep(args.spread / max(1, args.dashboard) * args.viewers)
                guild, market_id = markets[n % len(markets)]
                events_latest(limit=30)
                trades_recent(market_id=market_id, limit=25)
                leaderboard(guild_id=guild, limit=10)
                pages += 1
        finally:
            close_old_connections()
        return pages

    async def follow() -> None:
        """Each member's /portfolio as soon as their bet is answered."""
        waiting = dict(bets)
        while waiting:
            await asyncio.sleep(0.05)
            for i in [i for i, ex in waiting.items() if dropped(fake, ex)]:
                del waiting[i]  # Discord dropped it: "This interaction failed", no /portfolio
            for i in [i for i, ex in waiting.items() if answer(fake, ex.token)]:
                del waiting[i]
                _, guild, _, member = bettors[i]
                h.guild_id = guild
                portfolios[i] = h.feed(h.command("portfolio", member))
            if time.monotonic() - started > args.timeout:
                return

    loads = [list(range(v, args.dashboard, args.viewers)) for v in range(args.viewers)]
    views = [asyncio.to_thread(viewer, which) for which in loads]
    results = await asyncio.gather(typing(), follow(), *views)
    typed = results[0]
    pages = sum(results[2:])
    counter.phase = "tail"  # what still runs after the last bet's answer: /portfolios
    await h.settle(timeout=args.timeout)
    wall = time.monotonic() - started
    counter.phase = "after"

    lag = await asyncio.to_thread(standby_lag, standby)
    traded = await h.bot.db(lambda: dict(Trade.objects.values_list("idempotency_key", "user_id")))
    audit = await h.bot.db(ledger_audit)
    await h.close()

    bought = shown = unanswered = lost = missed = bet_dropped = folio_dropped = 0
    misses: list[str] = []
    for i, _guild, market_id, _member in bettors:
        text = answer(fake, bets[i].token)
        k = next(k for k, (_, m) in enumerate(markets) if m == market_id)
        has_trade = f"discord:{bets[i].payload['id']}" in traded
        if not text:
            if dropped(fake, bets[i]):
                bet_dropped += 1
                lost += has_trade  # an effect with no answer
            else:
                unanswered += 1
            continue
        bought += "You bought" in text
        lost += ("You bought" in text) != has_trade
        ex = portfolios.get(i)
        listing = answer(fake, ex.token) if ex is not None else ""
        if ex is not None and not listing and dropped(fake, ex):
            folio_dropped += 1
        elif not listing:
            unanswered += 1
        elif has_trade and f"#{k}#" not in listing:
            missed += 1
            if len(misses) < 3:
                misses.append(listing[:200])
        else:
            shown += 1
    typed_dropped = sum(1 for ex in typed if dropped(fake, ex))
    empty = sum(1 for ex in typed if not dropped(fake, ex) and not answer_choices(ex))

    print(f"rush: {args.bets} bets and their /portfolios in {wall:.1f} s; {pages} dashboard pages")
    for phase in ("rush", "tail"):
        on, total = counter.share(phase)
        tol_on, tol_total = counter.share(phase, "tolerant")
        book = (
            counter.counts[(phase, "primary", "book")] + counter.counts[(phase, "replica", "book")]
        )
        print(
            f"  {phase:<5} read-only queries {total:6d}: {on:6d} on the standby "
            f"({percent(on, total)}); lag-tolerant {tol_on}/{tol_total} "
            f"({percent(tol_on, tol_total)}); router bookkeeping {book}; writes' statements "
            f"{counter.counts[(phase, 'primary', 'write')]}"
        )
    on, total = (sum(x) for x in zip(counter.share("rush"), counter.share("tail"), strict=True))
    print(f"  all   read-only queries {total:6d}: {on:6d} on the standby ({percent(on, total)})")
    top = ", ".join(f"{name} {n}" for name, n in counter.on_primary.most_common(4))
    print(f"  read-only queries left on the primary, by table: {top}")
    for (name, where), n in counter.callers.most_common(8):
        print(f"    {n:6d} {name:<24} {where}")
    answered = args.bets - bet_dropped - unanswered
    print(
        f"bets                       {answered}/{args.bets} answered, {bought} 'You bought' with "
        f"its trade; {bet_dropped} dropped by Discord (no first response within "
        f"{args.deadline:g} s: 'interaction failed'); {unanswered} unanswered; {lost} lost"
    )
    print(
        f"/portfolio right after     {shown} list the member's trade, {missed} miss it, "
        f"{folio_dropped} dropped by Discord"
    )
    for text in misses:
        print(f"  e.g. {text!r}")
    print(
        f"autocomplete               {len(typed)} typed during the rush: {empty} empty, "
        f"{typed_dropped} dropped by Discord"
    )
    print(f"standby replay lag at end  {lag}")
    print(
        f"ledger audit               {'ok' if audit.ok else 'FAILED: ' + str(audit.violations[:3])}"
    )

    rush_on, rush_total = counter.share("rush")
    _common.record(
        "replica_rush.read_share_on_standby",
        100.0 * on / max(1, total),
        "%",
        baseline=90.0,
        baseline_name="issue 24's target",
        reads=total,
        rush_share=round(100.0 * rush_on / max(1, rush_total), 1),
        bets=args.bets,
    )
    ok = lost == 0 and unanswered == 0 and missed == 0 and empty == 0 and on > 0 and audit.ok
    if args.smoke:
        return _common.smoke_line(
            "replica_rush",
            ok,
            f"{args.bets} bets: {bought} answered with their trade, {shown} /portfolio right "
            f"after show it, {missed} miss it, {unanswered} unanswered, {lost} lost, "
            f"{bet_dropped + folio_dropped} dropped by Discord, {empty} empty autocompletes; "
            f"{on}/{total} read-only queries on the standby ({percent(on, total)}, toy size); "
            f"ledger audit {'ok' if audit.ok else 'FAILED'}",
        )
    return 0 if ok else 1


def dropped(fake, exchange) -> bool:
    """Discord dropped the interaction: no first response within its deadline (the member sees
    "This interaction failed")."""
    state = fake.interactions[exchange.token]
    return state.callback_type is None and fake.now() - state.created_at > fake.deadline + 0.5


def answer_choices(exchange) -> list:
    callback = exchange.callback
    return callback.json["data"]["choices"] if callback is not None else []


def percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "—"


def wait_caught_up(standby, timeout: float = 60) -> None:
    import psycopg
    from django.db import connections

    from core import replicas

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()::text")
            (primary,) = cursor.fetchone()
        with psycopg.connect(standby.dsn("pm"), autocommit=True) as conn:
            (replayed,) = conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
        if replicas.lsn_int(replayed) >= replicas.lsn_int(primary):
            return
        time.sleep(0.05)
    raise _common.BenchError("the standby did not catch up with the primary")


def standby_lag(standby) -> str:
    import psycopg

    with psycopg.connect(standby.dsn("pm"), autocommit=True) as conn:
        received, replayed = conn.execute(
            "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text"
        ).fetchone()
    return f"received {received}, replayed {replayed}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bets", type=int, default=1000)
    parser.add_argument("--markets", type=int, default=10)
    parser.add_argument("--guilds", type=int, default=5)
    parser.add_argument("--autocompletes", type=int, default=30)
    parser.add_argument("--dashboard", type=int, default=50, help="dashboard page loads")
    parser.add_argument("--viewers", type=int, default=4, help="threads loading them")
    parser.add_argument("--spread", type=float, default=3.0, help="seconds they are spread over")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per fake reply")
    parser.add_argument("--deadline", type=float, default=3.0, help="Discord's first response")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--why", action="store_true", help="name the code behind the reads left on the primary"
    )
    parser.add_argument("--smoke", action="store_true", help="toy size: 40 bets")
    args = parser.parse_args()
    if args.smoke:
        args.bets, args.markets, args.guilds = 40, 4, 2
        args.autocompletes, args.dashboard, args.viewers, args.spread = 3, 5, 1, 0.5
        args.deadline = 30.0  # a loaded CI machine must not fail it on time
    for name in ("bets", "markets", "guilds", "viewers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    args.guilds = min(args.guilds, args.markets)

    primary, standby = servers(args)
    try:
        os.environ["DATABASE_REPLICA_URLS"] = url(standby)
        counter = ReadCounter()
        counter.why = args.why
        _common.django_setup(url(primary))  # migrates the primary
        counter.install()
        standby.standby_from(primary).start()
        print(f"primary {url(primary)}, standby {url(standby)} (pg_basebackup -R, streaming)")
        return asyncio.run(rush(args, counter, standby))
    finally:
        from django.db import connections

        connections.close_all()
        standby.cleanup()
        primary.cleanup()


if __name__ == "__main__":
    sys.exit(main())
