"""ms per price-chart PNG (issue 13), for markets with 2 and 10 outcomes and ~1000 trades.

The histories come from the real market maker (`markets.amm`, DOMAIN §4) and the real pool rule
(DOMAIN §5) driven by random trades, so the lines look like a market's. Baseline in the same run:
an empty figure of the same size saved as PNG (what matplotlib costs before any of our lines,
text and legend), so the figure reads as "our chart costs N× a blank PNG". Also prints the cost
of importing matplotlib, paid once per process.

    .venv/bin/python bench/chart_render.py [--renders 50] [--save docs/screenshots] [--smoke]

`--save DIR` also writes `chart-amm.png` (2 outcomes) and `chart-parimutuel.png` (a 10-outcome pool
with long unicode names) for the docs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import random
import sys
import time
from pathlib import Path

import _common

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_TESTING", "1")

started = time.perf_counter()
import matplotlib.figure  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402

IMPORT_MS = (time.perf_counter() - started) * 1000

import django  # noqa: E402

django.setup()

from discordbot import charts  # noqa: E402
from markets import amm  # noqa: E402

T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


def amm_history(labels: list[str], trades: int, seed: int) -> charts.ChartData:
    rng = random.Random(seed)
    n = len(labels)
    pools = amm.initial_pools(n, 1000)
    at = T0
    points = [(at, [float(p) for p in amm.prices(pools)])]
    favourite = 0
    for k in range(trades):
        if k % 150 == 0:
            favourite = rng.randrange(n)
        outcome = favourite if rng.random() < 0.55 else rng.randrange(n)
        pools = amm.buy(pools, outcome, rng.randint(5, 60)).pools
        at += dt.timedelta(seconds=rng.randint(30, 900))
        points.append((at, [float(p) for p in amm.prices(pools)]))
    return charts.ChartData(
        title="#42 Will the new bridge open before the end of the year?",
        labels=labels,
        points=points,
        end=at + dt.timedelta(hours=3),
    )


def pool_history(labels: list[str], trades: int, seed: int) -> charts.ChartData:
    rng = random.Random(seed)
    n = len(labels)
    staked = [0] * n
    at = T0
    points = [(at, [1 / n] * n)]
    for _ in range(trades):
        staked[min(n - 1, int(rng.expovariate(0.45)))] += rng.randint(10, 200)
        at += dt.timedelta(seconds=rng.randint(5, 240))
        points.append((at, [float(p) for p in amm.parimutuel_probabilities(staked)]))
    return charts.ChartData(
        title="#43 🏆 Who wins the community cup this season?",
        labels=labels,
        points=points,
        end=at + dt.timedelta(minutes=30),
        mechanism="parimutuel",
    )


def blank_png() -> bytes:
    fig = matplotlib.figure.Figure(figsize=(8, 5), dpi=100, facecolor=charts.BACKGROUND)
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def timings(func, renders: int) -> tuple[list[float], list[float]]:
    """Sorted wall-clock and CPU milliseconds per call. On a shared machine the wall clock
    includes waiting for a core; the CPU time is what one render costs."""
    func()  # warm-up: fonts and caches load on the first call of a process
    wall, cpu = [], []
    for _ in range(renders):
        t, c = time.perf_counter(), time.process_time()
        func()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return sorted(wall), sorted(cpu)


def p(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


TEN = [
    "Team Aurora 🌅",
    "Les Éclaireurs de Saint-Étienne-du-Rouvray",
    "東京ドラゴンズ",
    "Nordic Wolves",
    "The Very Long Team Name That Somebody Typed Because Discord Allowed A Hundred Chars",
    "Red Pandas",
    "Ωmega Σquad",
    "Los Halcones",
    "Blue Jays",
    "Nobody — refunds",
]


POOL = "10 long unicode, pool"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=50)
    parser.add_argument(
        "--save", type=Path, help="write chart-amm.png and chart-parimutuel.png here"
    )
    parser.add_argument("--smoke", action="store_true", help="toy size: 2 renders, no timing")
    args = parser.parse_args()
    if args.smoke:
        args.renders = 2

    cases = {
        "2 outcomes, amm": amm_history(["Yes, before December 31", "No"], 1000, 1),
        "10 outcomes, amm": amm_history([f"Outcome {i + 1}" for i in range(10)], 1000, 2),
        POOL: pool_history(TEN, 1000, 3),
    }
    base, base_cpu = timings(blank_png, args.renders)
    print(f"import matplotlib: {IMPORT_MS:.0f} ms (once per process)")
    print(
        f"{'case':<24} {'p50 ms':>7} {'p99 ms':>7} {'x blank':>8} "
        f"{'CPU p50':>8} {'CPU p99':>8} {'PNG KiB':>8}"
    )
    rows = [("blank 800x500 (base)", base, base_cpu, len(blank_png()))]
    for name, data in cases.items():
        wall, cpu = timings(lambda data=data: charts.render_png(data), args.renders)
        rows.append((name, wall, cpu, len(charts.render_png(data))))
    for name, wall, cpu, size in rows:
        print(
            f"{name:<24} {p(wall, 0.5):>7.1f} {p(wall, 0.99):>7.1f} "
            f"{p(wall, 0.5) / p(base, 0.5):>8.1f} {p(cpu, 0.5):>8.1f} {p(cpu, 0.99):>8.1f} "
            f"{size / 1024:>8.0f}"
        )
        if name != rows[0][0]:
            _common.record(
                f"chart_render.{name}",
                p(wall, 0.5),
                "ms",
                baseline=p(base, 0.5),
                baseline_name="blank 800x500 PNG",
                cpu_ms=round(p(cpu, 0.5), 2),
                p99_ms=round(p(wall, 0.99), 2),
            )
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        (args.save / "chart-amm.png").write_bytes(charts.render_png(cases["2 outcomes, amm"]))
        (args.save / "chart-parimutuel.png").write_bytes(
            charts.render_png(cases["10 long unicode, pool"])
        )
        print(f"wrote {args.save / 'chart-amm.png'} and {args.save / 'chart-parimutuel.png'}")
    if args.smoke:
        pngs = [charts.render_png(data) for data in cases.values()]
        ok = all(png.startswith(b"\x89PNG") and len(png) > 10_000 for png in pngs)
        sizes = ", ".join(f"{len(png) // 1024} KiB" for png in pngs)
        return _common.smoke_line("chart_render", ok, f"{len(pngs)} charts rendered ({sizes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
