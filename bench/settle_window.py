"""What the dispute window costs at settlement (docs/domain.md §6.1), on PostgreSQL.

    .venv/bin/python bench/settle_window.py [--markets 30] [--traders 200] [--smoke]

Three ways a market with `--traders` positions ends, each on its own `--markets` fresh markets:
- baseline: a moderator resolves it directly (`market_resolve`, one transaction, pays out);
- window 0: enough resolver votes agree and it pays at once (vote → proposal → resolve in one
  transaction, as before the window existed);
- window: the votes propose it, and later ONE scheduler tick (`markets_tick`) settles every
  proposal whose window ended (the cost measured is the tick's, per market).
Prints milliseconds per market and the ratio to the baseline, then runs the ledger audit.

Runs on a fresh database `<base>_bench_settle` beside BENCH_DATABASE_URL / DATABASE_URL
(bench/_common.py).
"""

import argparse
import datetime as dt
import statistics
import sys
import time

import _common


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", type=int, default=30)
    parser.add_argument("--traders", type=int, default=200)
    parser.add_argument("--smoke", action="store_true", help="toy size: 2 markets × 10 traders")
    args = parser.parse_args()
    if args.smoke:
        args.markets, args.traders = 2, 10

    _common.django_setup(_common.fresh_database("settle"))
    from django.utils import timezone

    from betting.services import TradeRequest, trades_apply
    from markets import services
    from points.audit import ledger_audit
    from points.models import GuildSettings
    from points.rules import SYSTEM, Actor
    from points.services import guild_settings_get_or_create, wallet_get_or_create

    run = time.time_ns()
    mods = [Actor.member(820_000_000_000_000_000 + i, manage_guild=True) for i in range(2)]
    traders = [830_000_000_000_000_000 + i for i in range(args.traders)]

    def guild(window: int, index: int) -> int:
        guild_id = 710_000_000_000_000_000 + (run % 10**9) * 10 + index
        gs = guild_settings_get_or_create(guild_id=guild_id)
        GuildSettings.objects.filter(pk=gs.pk).update(
            starting_balance=10**9, dispute_window_minutes=window, min_resolution_votes=2
        )
        for user in traders:
            wallet_get_or_create(guild_id=guild_id, user_id=user)
        return guild_id

    def closed_market(guild_id: int, key: str) -> int:
        market = services.market_create(
            guild_id=guild_id,
            creator_id=guild_id,
            question="Benchmark: will it settle?",
            outcomes=["Yes", "No", "Maybe"],
            duration="30d",
            liquidity=10_000,
            idempotency_key=f"{key}:create",
            actor=SYSTEM,
        )
        requests = [
            TradeRequest(
                kind="buy",
                user_id=user,
                outcome=i % 3,
                amount=10 + i % 50,
                idempotency_key=f"{key}:bet:{i}",
            )
            for i, user in enumerate(traders)
        ]
        trades_apply(market_id=market.pk, requests=requests)
        services.market_close(market_id=market.pk, actor=SYSTEM, idempotency_key=f"{key}:close")
        return market.pk

    def vote(market_id: int, key: str) -> None:
        for mod in mods:
            services.resolution_vote_cast(
                market_id=market_id, actor=mod, outcome=0, idempotency_key=f"{key}:v{mod.user_id}"
            )

    results: dict[str, list[float]] = {}

    g = guild(0, 0)
    ids = [closed_market(g, f"b{run}:{i}") for i in range(args.markets)]
    for i, market_id in enumerate(ids):
        start = time.perf_counter()
        services.market_resolve(
            market_id=market_id,
            outcome=0,
            actor=mods[0],
            reason="bench",
            idempotency_key=f"b{run}:{i}:resolve",
        )
        results.setdefault("moderator resolves directly", []).append(time.perf_counter() - start)

    g = guild(0, 1)
    ids = [closed_market(g, f"z{run}:{i}") for i in range(args.markets)]
    for i, market_id in enumerate(ids):
        start = time.perf_counter()
        vote(market_id, f"z{run}:{i}")
        results.setdefault("votes, window 0 (pay at once)", []).append(time.perf_counter() - start)

    g = guild(60, 2)
    ids = [closed_market(g, f"w{run}:{i}") for i in range(args.markets)]
    proposing = []
    for i, market_id in enumerate(ids):
        start = time.perf_counter()
        vote(market_id, f"w{run}:{i}")
        proposing.append(time.perf_counter() - start)
    results["votes, 60-min window (propose)"] = proposing
    start = time.perf_counter()
    report = services.markets_tick(now=timezone.now() + dt.timedelta(minutes=61))
    tick = time.perf_counter() - start
    assert sorted(report.settled) == sorted(ids), report
    per_market = tick / len(ids)
    results["scheduler tick settles (per market)"] = [per_market]

    base = statistics.median(results["moderator resolves directly"])
    print(f"{args.markets} markets per row, {args.traders} positions each, PostgreSQL")
    print(f"{'':>38} {'ms/market':>10} {'× direct':>9}")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:>38} {median * 1000:>10.1f} {median / base:>9.2f}")
    window_total = statistics.median(proposing) + per_market
    label = "window total (propose + tick)"
    print(f"{label:>38} {window_total * 1000:>10.1f} {window_total / base:>9.2f}")
    audit = ledger_audit()
    print(audit.summary())
    names = {
        "votes, window 0 (pay at once)": "votes_window0",
        "votes, 60-min window (propose)": "propose",
        "scheduler tick settles (per market)": "tick",
    }
    size = {"markets": args.markets, "positions": args.traders}
    for name, values in results.items():
        if name in names:
            _common.record(
                f"settle_window.{names[name]}",
                statistics.median(values) * 1000,
                "ms/market",
                baseline=base * 1000,
                baseline_name="moderator resolves directly",
                **size,
            )
    _common.record(
        "settle_window.window_total",
        window_total * 1000,
        "ms/market",
        baseline=base * 1000,
        baseline_name="moderator resolves directly",
        **size,
    )
    if args.smoke:
        settled = 3 * args.markets
        return _common.smoke_line(
            "settle_window",
            audit.ok,
            f"{settled} markets settled three ways, ledger audit {'ok' if audit.ok else 'FAILED'}",
        )
    return 0 if audit.ok else 1


if __name__ == "__main__":
    sys.exit(main())
