"""Trades per second on ONE market on PostgreSQL, next to pgbench's TPC-B-like transactions per
second on the same server in the same run (scale 1, so pgbench also serialises on one hot row: its
single branch, as our trades serialise on the market row).

    .venv/bin/python bench/trade_throughput.py [--seconds 5] [--threads 1 4 8]
    .venv/bin/python bench/trade_throughput.py --batched [--requests 1000] [--batch 100]

`--batched` (issue 16): the same `--requests` trade requests (buys and sales of 500 members) on
one market, applied one by one through `bet_place` / `shares_sell` and through `trades_apply` in
batches of `--batch`, each on its own fresh market, next to pgbench with 4 clients.

Uses databases `pm_bench` and `pm_pgbench` on postgres://pm:pm@127.0.0.1:5432 (override with
BENCH_PG=postgres://user:pass@host:port, the names with BENCH_DB and BENCH_PGBENCH_DB); creates
them if missing.
"""

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG = os.environ.get("BENCH_PG", "postgres://pm:pm@127.0.0.1:5432")
BENCH_DB = os.environ.get("BENCH_DB", "pm_bench")
PGBENCH_DB = os.environ.get("BENCH_PGBENCH_DB", "pm_pgbench")
os.environ["DATABASE_URL"] = f"{PG}/{BENCH_DB}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_TESTING", "1")
os.environ.pop("REDIS_URL", None)


def ensure_database(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def pgbench_binary() -> str:
    """`pgbench` from PATH, else from the PostgreSQL install (/usr/lib/postgresql/*/bin)."""
    import glob
    import shutil

    found = shutil.which("pgbench") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)), None
    )
    if found is None:
        raise SystemExit("pgbench not found on PATH nor under /usr/lib/postgresql/*/bin")
    return found


def pgbench(clients: int, seconds: int) -> float:
    url = urlparse(f"{PG}/{PGBENCH_DB}")
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    base = ["-h", url.hostname, "-p", str(url.port or 5432), "-U", url.username]
    out = subprocess.run(
        [
            pgbench_binary(),
            *base,
            "-n",
            "-c",
            str(clients),
            "-j",
            str(clients),
            "-T",
            str(seconds),
            PGBENCH_DB,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def pgbench_init() -> None:
    url = urlparse(f"{PG}/{PGBENCH_DB}")
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    subprocess.run(
        [
            pgbench_binary(),
            "-h",
            url.hostname,
            "-p",
            str(url.port or 5432),
            "-U",
            url.username,
            "-i",
            "-q",
            "-s",
            "1",
            PGBENCH_DB,
        ],
        env=env,
        capture_output=True,
        check=True,
    )


def trades(threads: int, seconds: float, market_id: int, run: str) -> tuple[float, int]:
    from django.db import connection

    from betting.services import bet_place, shares_sell

    barrier = threading.Barrier(threads + 1)
    counts = [0] * threads
    errors = [0] * threads
    reasons: dict[str, int] = {}
    stop_at = [0.0]

    def worker(k: int) -> None:
        user = 800_000_000_000_000_000 + k
        try:
            barrier.wait()
            i = 0
            while time.perf_counter() < stop_at[0]:
                i += 1
                key = f"{run}:{threads}:{k}:{i}"
                try:
                    if i % 4 == 0:
                        shares_sell(
                            market_id=market_id,
                            user_id=user,
                            outcome=k % 3,
                            shares=3_000_000,
                            idempotency_key=key,
                        )
                    else:
                        bet_place(
                            market_id=market_id,
                            user_id=user,
                            outcome=k % 3,
                            amount=2,
                            idempotency_key=key,
                        )
                    counts[k] += 1
                except Exception as exc:
                    errors[k] += 1
                    name = type(exc).__name__
                    reasons[name] = reasons.get(name, 0) + 1
        finally:
            connection.close()

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    if reasons:
        print(f"        refused with {threads} threads: {reasons}")
    return sum(counts) / elapsed, sum(errors)


MEMBERS = 500


def batch_requests(run: str, n: int) -> list:
    """`n` requests of `MEMBERS` members: buys, and from the second round on one request in
    four sells 3 shares of what its member bought a round earlier."""
    from betting.services import TradeRequest

    requests = []
    for i in range(n):
        user = 810_000_000_000_000_000 + i % MEMBERS
        key = f"{run}:{i}"
        if i >= MEMBERS and i % 4 == 3:
            requests.append(
                TradeRequest(
                    kind="sell", user_id=user, outcome=i % 3, idempotency_key=key, shares=3_000_000
                )
            )
        else:
            requests.append(
                TradeRequest(kind="buy", user_id=user, outcome=i % 3, idempotency_key=key, amount=2)
            )
    return requests


def batched_run(make_market, run: str, n: int, batch: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from betting.services import bet_place, shares_sell, trades_apply
    from core.errors import DomainError

    one_market = make_market(f"{run}:one")
    requests = batch_requests(f"{run}:one", n)
    refused = 0
    start = time.perf_counter()
    for r in requests:
        try:
            if r.kind == "buy":
                bet_place(
                    market_id=one_market.pk,
                    user_id=r.user_id,
                    outcome=r.outcome,
                    amount=r.amount,
                    idempotency_key=r.idempotency_key,
                )
            else:
                shares_sell(
                    market_id=one_market.pk,
                    user_id=r.user_id,
                    outcome=r.outcome,
                    shares=r.shares,
                    idempotency_key=r.idempotency_key,
                )
        except DomainError:
            refused += 1
    one_rate = n / (time.perf_counter() - start)

    batch_market = make_market(f"{run}:batch")
    requests = batch_requests(f"{run}:batch", n)
    batch_refused = 0
    queries = 0
    start = time.perf_counter()
    for k in range(0, n, batch):
        with CaptureQueriesContext(connection) as captured:
            results = trades_apply(market_id=batch_market.pk, requests=requests[k : k + batch])
        queries = max(queries, len(captured))
        batch_refused += sum(isinstance(r, DomainError) for r in results)
    batch_rate = n / (time.perf_counter() - start)
    tps = pgbench(4, 5)
    print(f"{n} requests on one market ({MEMBERS} members, buys and sales)")
    print(f"{'mode':>22} {'trades/s':>9} {'refused':>8} {'vs pgbench':>10}")
    print(f"{'one by one':>22} {one_rate:>9.1f} {refused:>8} {one_rate / tps:>10.2f}")
    print(
        f"{f'batches of {batch}':>22} {batch_rate:>9.1f} {batch_refused:>8} "
        f"{batch_rate / tps:>10.2f}"
    )
    print(f"{'pgbench TPC-B, 4 clients':>22} {tps:>9.1f}")
    print(f"queries per batch of {batch}: {queries}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--batched", action="store_true", help="the group-commit comparison")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()

    ensure_database(BENCH_DB)
    ensure_database(PGBENCH_DB)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from markets.services import market_create
    from points.audit import ledger_audit
    from points.services import guild_settings_get_or_create

    run = f"bench:{time.time_ns()}"
    guild = 700_000_000_000_000_001
    from points.rules import SYSTEM

    gs = guild_settings_get_or_create(guild_id=guild)
    gs.starting_balance = 10**9
    gs.save()
    market = market_create(
        guild_id=guild,
        creator_id=guild,
        question="Benchmark market",
        outcomes=["A", "B", "C"],
        duration="30d",
        liquidity=100_000,
        idempotency_key=f"{run}:market",
        actor=SYSTEM,
    )
    pgbench_init()
    if args.batched:
        from points.services import wallet_get_or_create

        for i in range(MEMBERS):  # members who already have a wallet, as in a real rush
            wallet_get_or_create(guild_id=guild, user_id=810_000_000_000_000_000 + i)

        def make_market(key: str):
            return market_create(
                guild_id=guild,
                creator_id=guild,
                question="Benchmark market",
                outcomes=["A", "B", "C"],
                duration="30d",
                liquidity=100_000,
                idempotency_key=key,
                actor=SYSTEM,
            )

        batched_run(make_market, run, args.requests, args.batch)
        print(ledger_audit().summary())
        return
    print(f"{'threads':>7} {'trades/s':>9} {'pgbench tps':>11} {'ratio':>6} {'refused':>7}")
    for n in args.threads:
        rate, refused = trades(n, args.seconds, market.pk, run)
        tps = pgbench(n, args.seconds)
        print(f"{n:>7} {rate:>9.1f} {tps:>11.1f} {rate / tps:>6.2f} {refused:>7}")
    print(ledger_audit().summary())


if __name__ == "__main__":
    main()
