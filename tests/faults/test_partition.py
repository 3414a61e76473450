"""Drill: the network path to PostgreSQL disappears while queries are in flight (issue 12).

Before the keepalive and tcp_user_timeout options, a query in flight waited for the operating
system's defaults (two hours of keepalive idle). The drill runs in a private network namespace
(`unshare -n`), where taking the loopback down is a true partition — packets are dropped, not
acknowledged — and nothing outside the namespace is touched. A userspace proxy cannot fake this:
its kernel keeps acknowledging (see the xfail in test_proxy_drills.py).

The drill sets short keepalive values through the same environment variables production uses,
so it proves the settings reach real connections."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI

from .servers import postgres_bin

pytestmark = [pytest.mark.faults]

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("in_flight", "sent_after")
BUDGET = 8.0  # keepalive: 1 s idle + 2 × 1 s probes; tcp_user_timeout 3 s; with margin


def test_queries_in_flight_fail_within_budget_when_the_network_path_vanishes(drill):
    reasons = []
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        reasons.append("needs root with unshare and ip (a private network namespace)")
    if postgres_bin() is None:
        reasons.append("needs PostgreSQL server binaries")
    if reasons:
        if IN_CI:
            pytest.fail("; ".join(reasons) + " (CI must run the fault drills)")
        pytest.skip("; ".join(reasons))

    env = {**os.environ, "PARTITION_BUDGET": str(BUDGET), "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)
    script = f"ip link set lo up && exec {sys.executable} -m tests.faults.partition"
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT=")]
    assert lines, f"the drill printed no result:\n{done.stdout}\n{done.stderr}"
    results = json.loads(lines[0].removeprefix("RESULT="))

    for name in NAMES:
        drill.notes.append(f"{name}: {results[name]}")
    drill.notes.append(f"control (no options): {results['control']}")
    drill.longest_wait = max(results[name].get("seconds", BUDGET) for name in NAMES)

    for name in NAMES:
        assert results[name]["error"] == "OperationalError", results
        assert 0.5 <= results[name]["seconds"] <= BUDGET, results  # failed by the partition
    # The comparison that makes the drill able to fail: without the options it still waits.
    assert results["control"].get("still_waiting_after") == BUDGET, results
