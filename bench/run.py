"""Run every benchmark in bench/: `make bench` (full size) and `make bench-smoke` (toy size).

    .venv/bin/python bench/run.py            # full size: bench/results/<commit>.jsonl + a table
    .venv/bin/python bench/run.py --smoke    # toy size, seconds each: fails on a crash, a lost
                                             # delivery or interaction, an unclean ledger audit
    .venv/bin/python bench/run.py --markdown bench/results/<commit>.jsonl   # the docs' table

Full size writes one JSON line per figure (bench/_common.py `record`) to
bench/results/<commit>.jsonl (replaced when the same commit runs again) and prints them as a
table. Smoke prints each benchmark's SMOKE line (and all of them again at the end) and fails when
one fails, crashes or exits without its SMOKE line; it never looks at time.
Every script in bench/ must be listed in RUNS (a new benchmark without an entry fails both).
Database and Redis: see bench/_common.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _common

HERE = _common.ROOT / "bench"

RUNS: dict[str, tuple[list[list[str]], list[list[str]]]] = {
    # script: (full-size argument lists, smoke argument lists)
    "amm_quote.py": ([[]], [["--smoke"]]),
    "chart_render.py": ([[]], [["--smoke"]]),
    "settle_window.py": ([[]], [["--smoke"]]),
    "settle_known_at.py": ([[], ["--shape", "sell-all"], ["--traders", "1000"]], [["--smoke"]]),
    "trade_throughput.py": (
        [[], ["--batched"], ["--batched", "--resting-orders", "500"]],  # issue 25's bar: ≥ 1 ×
        [["--smoke"], ["--smoke", "--batched", "--resting-orders", "10"]],
    ),
    "ws_latency.py": ([[]], [["--smoke"]]),
    "processes.py": ([[]], [["--smoke"]]),
    "replica_rush.py": ([[]], [["--smoke"]]),
    # 10 minutes with three faults (issue 21); the smoke: 200 members for 1.5 minutes.
    "soak.py": ([[]], [["--smoke"]]),
    "discord_burst.py": (
        [
            ["--guilds", "1"],  # 1,000 one-step bets on one market, every member new
            ["--guilds", "1", "--quote"],
            ["--markets", "10", "--per-market", "100"],
            ["--markets", "100", "--per-market", "10"],
            ["--guilds", "1", "--redis"],
        ],
        [["--smoke"], ["--smoke", "--quote", "--redis"]],
    ),
}
NEEDS_REDIS = {"--redis"}


def scripts() -> list[str]:
    return sorted(
        p.name for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name != "run.py"
    )


def table(path) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    if not rows:
        return
    width = max(len(r["name"]) for r in rows)
    print(f"\n{'figure':<{width}} {'value':>10} {'unit':<10} {'baseline':>10} {'ratio':>8} load")
    for r in rows:
        base = "" if r["baseline"] is None else f"{r['baseline']:>10g}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:>8.2f}"
        print(
            f"{r['name']:<{width}} {r['value']:>10g} {r['unit']:<10} {base:>10} {ratio:>8} "
            f"{r['load']}"
        )
    print(f"\n{len(rows)} figures in {path.relative_to(_common.ROOT)} (commit {rows[0]['commit']})")


def markdown(path: Path) -> None:
    """The results as docs/performance.md's "Current figures" table."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    print("| figure | value | baseline | ratio | load | command |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        base = "—" if r["baseline"] is None else f"{r['baseline']:g} ({r['baseline_name']})"
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lost = f" ({r['lost']} of {r['bets']} lost)" if r.get("lost") else ""
        if r.get("expected") and r.get("delivered", 0) < r["expected"]:
            lost = f" ({r['expected'] - r['delivered']} of {r['expected']} not delivered)"
        print(
            f"| `{r['name']}` | {r['value']:g} {r['unit']}{lost} | {base} | {ratio} | {r['load']} "
            f"| `{r['command']}` |"
        )
    if rows:
        first, last = rows[0], rows[-1]
        print(
            f"\nCommit `{first['commit']}`, {first['date']} – {last['date']}, load average "
            f"{min(r['load'] for r in rows)}–{max(r['load'] for r in rows)}."
        )


def run_one(command: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    """Run one benchmark, its output passed through as it comes; its exit status and the
    SMOKE lines it printed."""
    smoked = []
    with subprocess.Popen(
        command, env=env, cwd=_common.ROOT, stdout=subprocess.PIPE, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if line.startswith("SMOKE "):
                smoked.append(line.rstrip("\n"))
    return proc.returncode, smoked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="toy size, a check not a measure")
    parser.add_argument("--markdown", type=Path, help="print a results file as a Markdown table")
    parser.add_argument("only", nargs="*", help="run only these scripts (e.g. amm_quote.py)")
    args = parser.parse_args()
    if args.markdown:
        markdown(args.markdown)
        return 0

    unlisted = sorted(set(scripts()) - set(RUNS))
    if unlisted:
        print(f"bench/run.py: add {', '.join(unlisted)} to RUNS (full and smoke arguments)")
        return 2
    chosen = [s for s in RUNS if not args.only or s in args.only]

    env = dict(os.environ)
    commit = _common.commit()
    env["BENCH_COMMIT"] = commit
    results = None
    if not args.smoke:
        results = HERE / "results" / f"{commit}.jsonl"
        results.parent.mkdir(exist_ok=True)
        results.write_text("")
        env["BENCH_RESULTS"] = str(results)
    else:
        env.pop("BENCH_RESULTS", None)
    kind = "smoke (toy size)" if args.smoke else "full size"
    print(f"bench {kind} at {commit}, load average {_common.load()}", flush=True)
    _common.prepare_template()  # once: every script copies its database from it
    env["BENCH_TEMPLATE_READY"] = os.environ["BENCH_TEMPLATE_READY"]

    failed: list[str] = []
    lines: list[str] = []  # every SMOKE line, repeated together at the end
    started = time.monotonic()
    for script in chosen:
        full, smoke = RUNS[script]
        for extra in smoke if args.smoke else full:
            if NEEDS_REDIS & set(extra) and _common.redis_url() is None:
                print(f"\n== {script} {' '.join(extra)}: skipped, no BENCH_REDIS_URL or REDIS_URL")
                lines.append(f"SMOKE {script} {' '.join(extra)}: skipped · no Redis URL")
                continue
            command = [sys.executable, str(HERE / script), *extra]
            label = " ".join([script, *extra])
            print(f"\n== {label} (load {_common.load()})", flush=True)
            t = time.monotonic()
            code, smoked = run_one(command, env)
            print(f"== {label}: exit {code}, {time.monotonic() - t:.1f} s", flush=True)
            if args.smoke and code == 0 and not any(": ok · " in line for line in smoked):
                # A smoke path that returns before its check passes nothing: say so, and fail.
                smoked.append(f"SMOKE {label}: FAILED · exit 0 without its SMOKE line")
                code = 1
            elif args.smoke and code and not smoked:
                smoked.append(f"SMOKE {label}: FAILED · exit {code} (crashed: see above)")
            lines += smoked
            if code:
                failed.append(label)
    print(f"\nbench {kind}: {time.monotonic() - started:.0f} s, load average {_common.load()}")
    if args.smoke:
        print("\n".join(lines))
    if results is not None:
        table(results)
    if failed:
        print(f"FAILED: {'; '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
