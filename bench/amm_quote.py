"""µs per quote of the exact-integer market maker (DOMAIN §4), for 2 and 10 outcomes.

Baseline in the same run: the textbook float formula for the same buy (what the exact maths
replaces), so the figure reads as "exactness costs N× a float quote".

    .venv/bin/python bench/amm_quote.py
"""

import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from markets import amm


def float_buy(pools: list[float], i: int, x: float) -> float:
    others = 1.0
    for j, p in enumerate(pools):
        if j != i:
            others *= p / (p + x)
    return pools[i] + x - pools[i] * others


def measure(n: int) -> None:
    pools = [1000 * amm.SHARE_SCALE + 7919 * k for k in range(n)]
    fpools = [float(p) for p in pools]
    held = amm.buy(pools, 0, 250).shares
    cases = {
        "buy": (lambda: amm.buy(pools, 0, 100), lambda: float_buy(fpools, 0, 1e8)),
        "sell": (lambda: amm.sell(pools, 0, held), lambda: float_buy(fpools, 0, -1e8)),
        "prices": (lambda: amm.prices_ppm(pools), lambda: [1 / p for p in fpools]),
    }
    for op, (exact, baseline) in cases.items():
        number = 2000 if op == "sell" else 20000
        t_exact = min(timeit.repeat(exact, number=number, repeat=5)) / number * 1e6
        t_base = min(timeit.repeat(baseline, number=number, repeat=5)) / number * 1e6
        print(f"{n:>8} {op:<10} {t_exact:>9.2f} {t_base:>9.2f} {t_exact / t_base:>6.1f}")


def main() -> None:
    print(f"{'outcomes':>8} {'op':<10} {'exact µs':>9} {'float µs':>9} {'ratio':>6}")
    for n in (2, 10):
        measure(n)


if __name__ == "__main__":
    main()
