"""What reversing the trades after "known at" costs at settlement (docs/domain.md §6.2), on
PostgreSQL.

    .venv/bin/python bench/settle_known_at.py [--markets 5] [--traders 200] [--late 1000]
        [--shape rush|sell-all] [--smoke]

Pairs of identical markets: `--traders` members each buy once before "known at" (spread over
three outcomes), then `--late` trades follow in rounds over the members, all with a 1 % fee. One
market of each pair is resolved plainly on Yes (`market_resolve`, nothing reversed: the
baseline), its twin with `known_at` before the late trades, so all `--late` of them are reversed.
Prints milliseconds per settlement, the members each settlement paid, and the ratio to the plain
settlement of the same market, then runs the ledger audit. The issue's bar: under 2 × with 1,000
reversed trades.

Shapes of the late trades:
- `rush` (the default): what §6.2 is for — members buy the outcome that is already known (Yes);
  every fifth round sells ten shares of it back. The plain settlement pays every late buyer.
- `sell-all`: every fifth round sells all the Yes its member holds (the early Yes holders
  included), so nobody holds Yes in the end and the plain settlement pays no one: the cheapest
  settlement there is, kept as the harshest baseline (the only shape before 2026-12-08).
`--traders 1000` (one late trade each) makes both settlements pay about 1,000 members.

Runs on a fresh database `<base>_bench_knownat` beside BENCH_DATABASE_URL / DATABASE_URL
(bench/_common.py).
"""

import argparse
import statistics
import sys
import time

import _common


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", type=int, default=5)
    parser.add_argument("--traders", type=int, default=200)
    parser.add_argument("--late", type=int, default=1000)
    parser.add_argument("--shape", choices=["rush", "sell-all"], default="rush")
    parser.add_argument("--smoke", action="store_true", help="toy size: 1 pair, 10 traders")
    args = parser.parse_args()
    if args.smoke:
        args.markets, args.traders, args.late = 1, 10, 50

    _common.django_setup(_common.fresh_database("knownat"))
    from django.utils import timezone

    from betting.models import Position, Trade
    from betting.services import TradeRequest, trades_apply
    from markets import services
    from markets.amm import SHARE_SCALE
    from points.audit import ledger_audit
    from points.models import GuildSettings
    from points.rules import SYSTEM, Actor
    from points.services import guild_settings_get_or_create, wallet_get_or_create

    run = time.time_ns()
    mod = Actor.member(820_000_000_000_000_001, manage_guild=True)
    traders = [840_000_000_000_000_000 + i for i in range(args.traders)]
    guild_id = 720_000_000_000_000_000 + run % 10**9
    gs = guild_settings_get_or_create(guild_id=guild_id)
    GuildSettings.objects.filter(pk=gs.pk).update(starting_balance=10**9, fee_bps=100)
    for user in traders:
        wallet_get_or_create(guild_id=guild_id, user_id=user)

    def market(key: str) -> tuple[int, object]:
        """A closed market and the moment between its early and its late trades."""
        created = services.market_create(
            guild_id=guild_id,
            creator_id=guild_id,
            question="Benchmark: was it known?",
            outcomes=["Yes", "No", "Maybe"],
            duration="30d",
            liquidity=10_000,
            idempotency_key=f"{key}:create",
            actor=SYSTEM,
        )
        early = [
            TradeRequest("buy", user, i % 3, amount=10 + i % 50, idempotency_key=f"{key}:e{i}")
            for i, user in enumerate(traders)
        ]
        trades_apply(market_id=created.pk, requests=early)
        known_at = timezone.now()
        late = []
        for i in range(args.late):
            user = traders[i % len(traders)]
            if (i // len(traders)) % 5 == 4:  # every fifth round sells
                shares = None if args.shape == "sell-all" else 10 * SHARE_SCALE
                late.append(
                    TradeRequest("sell", user, 0, shares=shares, idempotency_key=f"{key}:l{i}")
                )
            else:
                late.append(TradeRequest("buy", user, 0, amount=20, idempotency_key=f"{key}:l{i}"))
        for start in range(0, len(late), 250):
            trades_apply(market_id=created.pk, requests=late[start : start + 250])
        services.market_close(market_id=created.pk, actor=SYSTEM, idempotency_key=f"{key}:close")
        return created.pk, known_at

    plain: list[float] = []
    reversing: list[float] = []
    reversed_count = 0
    paid = {"plain": 0, "known": 0}
    for i in range(args.markets):
        pair = [market(f"k{run}:{i}:{side}") for side in ("plain", "known")]
        for (market_id, known_at), timings in zip(pair, (plain, reversing), strict=True):
            stated = None if timings is plain else known_at
            start = time.perf_counter()
            services.market_resolve(
                market_id=market_id,
                outcome=0,
                actor=mod,
                reason="bench",
                idempotency_key=f"k{run}:{market_id}:resolve",
                known_at=stated,
            )
            timings.append(time.perf_counter() - start)
        reversed_count = Trade.objects.filter(market_id=pair[1][0], reversal__isnull=False).count()
        assert reversed_count == Trade.objects.filter(market_id=pair[1][0]).count() - len(traders)
        for side, (market_id, _) in zip(("plain", "known"), pair, strict=True):
            paid[side] = Position.objects.filter(market_id=market_id, payout__gt=0).count()

    base, value = statistics.median(plain), statistics.median(reversing)
    print(
        f"{args.markets} pairs of markets, {args.traders} early trades, "
        f"{reversed_count} reversed trades (the late ones that succeeded), shape {args.shape}, "
        "PostgreSQL"
    )
    print(f"{'':>34} {'ms/market':>10} {'× plain':>8} {'paid':>6}")
    print(f"{'plain settlement (baseline)':>34} {base * 1000:>10.1f} {1:>8.2f} {paid['plain']:>6}")
    print(
        f"{'settlement reversing late trades':>34} {value * 1000:>10.1f} {value / base:>8.2f} "
        f"{paid['known']:>6}"
    )
    audit = ledger_audit()
    print(audit.summary())
    _common.record(
        # Several shapes in one `make bench`: the name says which.
        f"settle_known_at.{args.shape.replace('-', '_')}.{args.traders}_traders_{args.late}_late",
        value * 1000,
        "ms/market",
        baseline=base * 1000,
        baseline_name="plain settlement of the same market",
        markets=args.markets,
        traders=args.traders,
        reversed=reversed_count,
        paid_plain=paid["plain"],
        paid_reversing=paid["known"],
    )
    if args.smoke:
        return _common.smoke_line(
            "settle_known_at",
            audit.ok,
            f"{2 * args.markets} markets settled, {reversed_count} trades reversed, "
            f"ledger audit {'ok' if audit.ok else 'FAILED'}",
        )
    return 0 if audit.ok else 1


if __name__ == "__main__":
    sys.exit(main())
