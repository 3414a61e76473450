"""The design documents stay citable: every "DOMAIN §n" and "STYLE §n" in the code, the tests and
the Markdown names a section that exists in `docs/domain.md` / `docs/style.md`, and the README
points a newcomer at them. No database."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DOCUMENTS = {"DOMAIN": DOCS / "domain.md", "STYLE": DOCS / "style.md"}

NUMBER = r"\d+(?:\.\d+)*"
# "DOMAIN §4.3", "STYLE §1, §8", "DOMAIN §2–§3", "DOMAIN §5 and §6", and a citation broken over a
# comment line ("(DOMAIN\n    # §3)").
CITATION = re.compile(
    rf"\b(DOMAIN|STYLE)\s+(?:#\s*)?§\s?({NUMBER}(?:\s*(?:,|–|-|and|or)\s*§?\s?{NUMBER})*)"
)
# A bare "(§4.5)" inside code follows the domain document's numbering.
BARE = re.compile(rf"§\s?({NUMBER})")
HEADING = re.compile(rf"^#+\s+({NUMBER})\.?\s", re.MULTILINE)


def sections(document: Path) -> set[str]:
    """The section numbers of a Markdown document's headings: "## 4." → "4", "### 4.1" → "4.1"."""
    return set(HEADING.findall(document.read_text(encoding="utf-8")))


def cited(text: str) -> Iterator[tuple[str, str, int]]:
    """(document, section, line) for each citation in `text`. A range "§4–§7" cites its ends and
    every whole section between them."""
    taken: list[tuple[int, int]] = []
    for match in CITATION.finditer(text):
        taken.append(match.span())
        line = text.count("\n", 0, match.start()) + 1
        numbers = re.findall(NUMBER, match.group(2))
        yield from ((match.group(1), n, line) for n in numbers)
        for low, high in pairwise(numbers):
            joined = match.group(2)
            is_range = re.search(rf"{re.escape(low)}\s*[–-]\s*§?\s?{re.escape(high)}", joined)
            if is_range and low.isdigit() and high.isdigit():
                yield from ((match.group(1), str(n), line) for n in range(int(low) + 1, int(high)))
    for match in BARE.finditer(text):
        if any(start <= match.start() < end for start, end in taken):
            continue
        yield "DOMAIN", match.group(1), text.count("\n", 0, match.start()) + 1


def tracked_files() -> list[Path]:
    """Every tracked .py and .md file (git ls-files); the working tree when git is unavailable."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "*.py", "*.md"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            text=True,
        ).stdout
        paths = [ROOT / name for name in out.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {".venv", "node_modules", ".git"}
        paths = [
            p
            for pattern in ("*.py", "*.md")
            for p in ROOT.rglob(pattern)
            if not skip.intersection(p.relative_to(ROOT).parts)
        ]
    return sorted(p for p in paths if p.is_file())


def unresolved(files: list[Path], known: dict[str, set[str]]) -> list[str]:
    problems = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for document, section, line in cited(text):
            if section not in known[document]:
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                problems.append(f"{where}:{line}: {document} §{section}")
    return problems


def test_every_cited_section_exists():
    known = {name: sections(path) for name, path in DOCUMENTS.items()}
    files = tracked_files()
    assert len(files) > 50, "the scan found almost nothing: is this the project root?"
    problems = unresolved(files, known)
    assert not problems, (
        "these citations name a section that docs/domain.md or docs/style.md does not have:\n"
        + "\n".join(problems)
    )


def test_the_documents_keep_their_section_numbers():
    """Code cites these numbers; renumbering a document would orphan the citations silently."""
    domain = sections(DOCUMENTS["DOMAIN"])
    expected = {str(n) for n in range(1, 9)} | {f"4.{n}" for n in range(1, 7)}
    assert expected <= domain, sorted(expected - domain)
    assert {str(n) for n in range(1, 19)} <= sections(DOCUMENTS["STYLE"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see DOMAIN §4.3, §4.4 here", [("DOMAIN", "4.3"), ("DOMAIN", "4.4")]),
        ("(STYLE §1, §8)", [("STYLE", "1"), ("STYLE", "8")]),
        ("(DOMAIN §2–§4)", [("DOMAIN", "2"), ("DOMAIN", "4"), ("DOMAIN", "3")]),
        ("one (DOMAIN\n    # §3). two", [("DOMAIN", "3")]),
        ("a bare (§4.5) cite", [("DOMAIN", "4.5")]),
        ("DOMAIN §n and STYLE §x are placeholders", []),
    ],
)
def test_citations_are_recognised_in_every_written_form(text, expected):
    assert sorted((d, s) for d, s, _ in cited(text)) == sorted(expected)


def test_a_missing_section_is_reported_with_its_place(tmp_path):
    source = tmp_path / "example.py"
    mark = "\N{SECTION SIGN}"  # spelled out, or this file would cite the missing sections
    missing = f"(DOMAIN {mark}4.9) and (STYLE {mark}99)"
    source.write_text(f'"""Nothing."""\n# the rule {missing}\n')
    problems = unresolved([source], {"DOMAIN": {"4"}, "STYLE": {"1"}})
    assert problems == [f"{source}:2: DOMAIN {mark}4.9", f"{source}:2: STYLE {mark}99"]


def test_readme_points_at_the_project_documents():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/domain.md" in readme
    assert "docs/architecture.md" in readme
