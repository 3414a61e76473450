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


TOOLS = {"ruff", "import-linter", "django-stubs", "playwright", "pytest-cov"}
"""Development tools the bot's tests never import (linters, type checker, browser, coverage):
the lowest-versions venv goes without them, and is built in less time beside the main tests."""


def test_requirements(pyproject: Path) -> list[str]:
    """The `dev` extra less TOOLS: what the bot's tests need besides the runtime dependencies."""
    dev = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["dev"]
    return [r for r in dev if SPEC.match(r).group(1).lower() not in TOOLS]


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    if sys.argv[1:] == ["--test-requirements"]:
        print("\n".join(test_requirements(root / "pyproject.toml")))
    else:
        print("\n".join(lowest_pins(root / "pyproject.toml")))
