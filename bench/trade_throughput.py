"""Trades per second on ONE market on PostgreSQL, next to pgbench's TPC-B-like transactions per
second on the same server in the same run (scale 1, so pgbench also serialises on one hot row: its
single branch, as our trades serialise on the market row).

    .venv/bin/python bench/trade_throughput.py [--seconds 5] [--threads 1 4 8]
    .venv/bin/python bench/trade_throughput.py --batched [--requests 1000] [--batch 100]
        [--resting-orders 500] [--rounds 3]

`--batched` (issue 16): the same `--requests` trade requests (buys and sales of 500 members) on
one market, applied one by one through `bet_place` / `shares_sell` and through `trades_apply` in
batches of `--batch`, each on its own fresh market, next to pgbench with 4 clients.
`--resting-orders N` (issue 25, DOMAIN §4.7) first leaves N limit orders on both markets (half
buys, half sells, from N other members, none fillable when placed, limits just around the price)
so every trade runs a pass over them and some fill: group commit must stay set-based.
The batches run `--rounds` times (3), each round on a fresh market followed by its own pgbench
run; the figures recorded are those of the round with the median ratio (a single round of a
second or so moved by ±20 % from one run to the next on a 2-core machine), and each round's line
says how many batches ran twice (resting orders whose owners the first run had not loaded,
docs/architecture.md).

Runs on a fresh database `<base>_bench_trades`, and pgbench on `<base>_bench_pgbench` (created
if missing, initialised each run), beside BENCH_DATABASE_URL / DATABASE_URL (bench/_common.py).
`--smoke`: toy size, checks the ledger audit, no timing.
"""

import argparse
import re
import statistics
import subprocess
import sys
import threading
import time

import _common


def pgbench(clients: int, seconds: int) -> float:
    url = _common.database_url("pgbench")
    args, env = _common.pg_args(url)
    out = subprocess.run(
        [
            _common.pgbench_binary(),
            *args,
            "-n",
            "-c",
            str(clients),
            "-j",
            str(clients),
            "-T",
            str(seconds),
            url.rsplit("/", 1)[1],
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def pgbench_init() -> None:
    url = _common.ensure_database("pgbench")
    args, env = _common.pg_args(url)
    subprocess.run(
        [_common.pgbench_binary(), *args, "-i", "-q", "-s", "1", url.rsplit("/", 1)[1]],
        env=env,
        capture_output=True,
        check=True,
    )


def trades(threads: int, seconds: float, market_id: int, run: str) -> tuple[float, int, int]:
    """Trades per second, refusals (a `DomainError`: e.g. a sale with nothing left to sell)
    and failures (any other exception: a defect, which fails the run)."""
    from django.db import connection

    from betting.services import bet_place, shares_sell
    from core.errors import DomainError

    barrier = threading.Barrier(threads + 1)
    counts = [0] * threads
    errors = [0] * threads
    failures = [0] * threads
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
                except DomainError as exc:
                    errors[k] += 1
                    reasons[exc.code] = reasons.get(exc.code, 0) + 1
                except Exception as exc:
                    failures[k] += 1
                    name = f"FAILED {type(exc).__name__}: {str(exc)[:120]}"
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
        print(f"        refused or failed with {threads} threads: {reasons}")
    return sum(counts) / elapsed, sum(errors), sum(failures)


MEMBERS = 500
ORDER_OWNERS = 830_000_000_000_000_000


def orders_rest(market, count: int, run: str) -> None:
    """`count` limit orders on `market`, one per member: each buys 30 points of an outcome, then
    even members leave a buy order and odd ones a sell order of those shares, limits 0–1 %
    beyond the price of the moment (so nothing fills at once, and trades make them fill)."""
    from betting.services import bet_place, order_place
    from markets import amm
    from markets.models import Outcome

    for k in range(count):
        user, outcome = ORDER_OWNERS + k, k % 3
        bet_place(
            market_id=market.pk,
            user_id=user,
            outcome=outcome,
            amount=30,
            idempotency_key=f"{run}:seed:{k}",
        )
        pools = list(
            Outcome.objects.filter(market=market)
            .order_by("position")
            .values_list("pool", flat=True)
        )
        price = amm.prices_ppm(pools)[outcome]
        gap = 1 + (k // 2 % 50) * 200
        order_place(
            market_id=market.pk,
            user_id=user,
            outcome=outcome,
            side="buy" if k % 2 == 0 else "sell",
            limit_ppm=price - gap if k % 2 == 0 else price + gap,
            budget=50 if k % 2 == 0 else None,
            idempotency_key=f"{run}:order:{k}",
        )


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


def batched_run(
    make_market,
    run: str,
    n: int,
    batch: int,
    seconds: int,
    resting: int = 0,
    one: bool = True,
    rounds: int = 3,
) -> bool:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from betting.models import Trade
    from betting.services import bet_place, shares_sell, trades_apply
    from core.errors import DomainError

    one_market = make_market(f"{run}:one")
    if one:
        orders_rest(one_market, resting, f"{run}:one")
    requests = batch_requests(f"{run}:one", n) if one else []
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
    one_rate = len(requests) / (time.perf_counter() - start)

    from betting.services.batch import Batch

    second_runs = [0]
    restore = Batch._restore

    def counted(self, *args, **kwargs):  # how many batches ran twice (resting orders)
        second_runs[0] += 1
        return restore(self, *args, **kwargs)

    Batch._restore = counted
    print(f"{n} requests on one market ({MEMBERS} members, buys and sales), {rounds} rounds")
    if resting:
        print(f"{resting} resting limit orders on each market")
    rates, baselines = [], []
    answered = batch_refused = queries = 0
    for round_ in range(rounds):
        batch_market = make_market(f"{run}:batch:{round_}")
        orders_rest(batch_market, resting, f"{run}:batch:{round_}")
        before = Trade.objects.filter(market=batch_market, order__isnull=False).count()
        requests = batch_requests(f"{run}:batch:{round_}", n)
        batch_refused = answered = 0
        second_runs[0] = 0
        start = time.perf_counter()
        for k in range(0, n, batch):
            with CaptureQueriesContext(connection) as captured:
                results = trades_apply(market_id=batch_market.pk, requests=requests[k : k + batch])
            queries = max(queries, len(captured))
            batch_refused += sum(isinstance(r, DomainError) for r in results)
            answered += len(results)
        rate = n / (time.perf_counter() - start)
        fills = Trade.objects.filter(market=batch_market, order__isnull=False).count() - before
        tps = pgbench(4, seconds)
        rates.append(rate)
        baselines.append(tps)
        print(
            f"  round {round_ + 1}: batches {rate:.1f} trades/s, pgbench {tps:.1f} tps, "
            f"{rate / tps:.2f} x; {fills} fills, {second_runs[0]} of {n // batch} batches "
            "ran twice"
        )
    Batch._restore = restore
    # The round whose ratio is the median (its batches and its own pgbench run side by side).
    ratios = [r / b for r, b in zip(rates, baselines, strict=True)]
    middle = ratios.index(statistics.median_low(ratios))
    batch_rate, tps = rates[middle], baselines[middle]
    print(f"{'mode':>22} {'trades/s':>9} {'refused':>8} {'vs pgbench':>10}  (median round)")
    if one:  # --skip-one-by-one: no row and no record, rather than a rate of 0
        print(f"{'one by one':>22} {one_rate:>9.1f} {refused:>8} {one_rate / tps:>10.2f}")
    print(
        f"{f'batches of {batch}':>22} {batch_rate:>9.1f} {batch_refused:>8} "
        f"{batch_rate / tps:>10.2f}"
    )
    print(f"{'pgbench TPC-B, 4 clients':>22} {tps:>9.1f}")
    print(f"queries per batch of {batch}: {queries}")
    base = {"baseline": tps, "baseline_name": "pgbench TPC-B, 4 clients", "requests": n}
    suffix = f".resting_{resting}" if resting else ""
    if one:
        _common.record(f"trade_throughput.one_by_one{suffix}", one_rate, "trades/s", **base)
    _common.record(
        f"trade_throughput.trades_apply{suffix}", batch_rate, "trades/s", batch=batch, **base
    )
    _common.record(f"trade_throughput.queries_per_batch{suffix}", queries, "queries", batch=batch)
    return answered == n and (refused == batch_refused or not one)


def main() -> int:
    global MEMBERS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--batched", action="store_true", help="the group-commit comparison")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--members", type=int, default=MEMBERS, help="members (--batched)")
    parser.add_argument(
        "--resting-orders", type=int, default=0, help="limit orders on the market (--batched)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="batched rounds, each on a fresh market then pgbench; the median round is recorded",
    )
    parser.add_argument(
        "--skip-one-by-one", action="store_true", help="only the batches (a loaded machine)"
    )
    parser.add_argument("--smoke", action="store_true", help="toy size: checks, no timing")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.threads, args.requests, args.batch, args.members = 1, [2], 60, 10, 20
        args.rounds = 1
    MEMBERS = args.members

    _common.django_setup(_common.fresh_database("trades"))
    from markets.services import market_create
    from points.audit import ledger_audit
    from points.rules import SYSTEM
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

        same = batched_run(
            make_market,
            run,
            args.requests,
            args.batch,
            args.seconds,
            args.resting_orders,
            one=not args.skip_one_by_one,
            rounds=args.rounds,
        )
        audit = ledger_audit()
        print(audit.summary())
        if args.smoke:
            return _common.smoke_line(
                "trade_throughput --batched",
                audit.ok and same,
                f"{args.requests} requests one by one and in batches of {args.batch}: "
                f"{'the same refusals' if same else 'DIFFERENT refusals or a lost answer'}, "
                f"ledger audit {'ok' if audit.ok else 'FAILED'}",
            )
        return 0 if audit.ok else 1
    print(f"{'threads':>7} {'trades/s':>9} {'pgbench tps':>11} {'ratio':>6} {'refused':>7}")
    total = 0.0
    failed = 0
    for n in args.threads:
        rate, refused, failures = trades(n, args.seconds, market.pk, run)
        failed += failures
        tps = pgbench(n, args.seconds)
        total += rate
        print(f"{n:>7} {rate:>9.1f} {tps:>11.1f} {rate / tps:>6.2f} {refused:>7}")
        _common.record(
            f"trade_throughput.threads_{n}",
            rate,
            "trades/s",
            baseline=tps,
            baseline_name=f"pgbench TPC-B, {n} clients",
            refused=refused,
        )
    audit = ledger_audit()
    print(audit.summary())
    if args.smoke:
        return _common.smoke_line(
            "trade_throughput",
            audit.ok and total > 0 and failed == 0,
            f"threads {args.threads}: trades committed, {failed} failed (not refused), "
            f"ledger audit {'ok' if audit.ok else 'FAILED'}",
        )
    if failed:
        print(f"{failed} trades failed with an exception that is not a refusal")
    return 0 if audit.ok and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
