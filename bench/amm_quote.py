"""µs per quote of the exact-integer market maker (DOMAIN §4), for 2 and 10 outcomes.

Baseline in the same run: the textbook float formula for the same buy (what the exact maths
replaces), so the figure reads as "exactness costs N× a float quote".

    .venv/bin/python bench/amm_quote.py [--smoke]
"""

import argparse
import sys
import timeit

import _common  # first: puts the project on sys.path

from markets import amm


def float_buy(pools: list[float], i: int, x: float) -> float:
    others = 1.0
    for j, p in enumerate(pools):
        if j != i:
            others *= p / (p + x)
    return pools[i] + x - pools[i] * others


def measure(n: int, scale: float) -> int:
    pools = [1000 * amm.SHARE_SCALE + 7919 * k for k in range(n)]
    fpools = [float(p) for p in pools]
    bought = amm.buy(pools, 0, 250)
    held = bought.shares
    # Selling at once what 250 points bought never pays back more than 250 (rounding is kept).
    assert amm.sell(bought.pools, 0, held).points <= 250, "a round trip made points"
    cases = {
        "buy": (lambda: amm.buy(pools, 0, 100), lambda: float_buy(fpools, 0, 1e8)),
        "sell": (lambda: amm.sell(pools, 0, held), lambda: float_buy(fpools, 0, -1e8)),
        "prices": (lambda: amm.prices_ppm(pools), lambda: [1 / p for p in fpools]),
    }
    for op, (exact, baseline) in cases.items():
        number = max(1, int((2000 if op == "sell" else 20000) * scale))
        repeat = 5 if scale >= 1 else 1
        t_exact = min(timeit.repeat(exact, number=number, repeat=repeat)) / number * 1e6
        t_base = min(timeit.repeat(baseline, number=number, repeat=repeat)) / number * 1e6
        print(f"{n:>8} {op:<10} {t_exact:>9.2f} {t_base:>9.2f} {t_exact / t_base:>6.1f}")
        _common.record(
            f"amm_quote.{op}.{n}_outcomes",
            t_exact,
            "µs",
            baseline=t_base,
            baseline_name="float formula",
        )
    return 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="toy size: checks, no timing")
    args = parser.parse_args()
    print(f"{'outcomes':>8} {'op':<10} {'exact µs':>9} {'float µs':>9} {'ratio':>6}")
    figures = sum(measure(n, 0.01 if args.smoke else 1.0) for n in (2, 10))
    if args.smoke:
        return _common.smoke_line("amm_quote", True, f"{figures} quotes timed, sale ≤ buy cost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
