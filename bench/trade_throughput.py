"""Trades per second on ONE market with 1, 4 and 8 threads on PostgreSQL, next to pgbench's
TPC-B-like transactions per second on the same server in the same run (scale 1, so pgbench also
serialises on one hot row: its single branch, as our trades serialise on the market row).

    .venv/bin/python bench/trade_throughput.py [--seconds 5] [--threads 1 4 8]

Uses databases `pm_bench` and `pm_pgbench` on postgres://pm:pm@127.0.0.1:5432 (override with
BENCH_PG=postgres://user:pass@host:port); creates them if missing.
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
os.environ["DATABASE_URL"] = f"{PG}/pm_bench"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_TESTING", "1")
os.environ.pop("REDIS_URL", None)


def ensure_database(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def pgbench(clients: int, seconds: int) -> float:
    url = urlparse(f"{PG}/pm_pgbench")
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    base = ["-h", url.hostname, "-p", str(url.port or 5432), "-U", url.username]
    out = subprocess.run(
        [
            "pgbench",
            *base,
            "-n",
            "-c",
            str(clients),
            "-j",
            str(clients),
            "-T",
            str(seconds),
            "pm_pgbench",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def pgbench_init() -> None:
    url = urlparse(f"{PG}/pm_pgbench")
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    subprocess.run(
        [
            "pgbench",
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
            "pm_pgbench",
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()

    ensure_database("pm_bench")
    ensure_database("pm_pgbench")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from markets.services import market_create
    from points.audit import ledger_audit
    from points.services import guild_settings_get_or_create

    run = f"bench:{time.time_ns()}"
    guild = 700_000_000_000_000_001
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
    )
    pgbench_init()
    print(f"{'threads':>7} {'trades/s':>9} {'pgbench tps':>11} {'ratio':>6} {'refused':>7}")
    for n in args.threads:
        rate, refused = trades(n, args.seconds, market.pk, run)
        tps = pgbench(n, args.seconds)
        print(f"{n:>7} {rate:>9.1f} {tps:>11.1f} {rate / tps:>6.2f} {refused:>7}")
    print(ledger_audit().summary())


if __name__ == "__main__":
    main()
