"""Print pip constraints that pin every runtime dependency in pyproject.toml to the lowest
version its specifier allows (`>=X` → `==X`), for the CI job that proves those lower bounds
still work (issue 11: `discord.py>=2.5` was allowed while the modals needed 2.6)."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

SPEC = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")


def lowest_pins(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    pins = []
    for requirement in project["dependencies"]:
        name, rest = SPEC.match(requirement).groups()
        lower = re.search(r">=\s*([^,;\s]+)", rest)
        if lower is None:
            sys.exit(f"{requirement!r} has no lower bound: say which oldest version is supported")
        pins.append(f"{name}=={lower.group(1)}")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    print("\n".join(lowest_pins(root / "pyproject.toml")))
