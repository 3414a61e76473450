"""`points` owns the ledger's tables: `betting`, `drip`, `discordbot` and `dashboard` change them
only through `points`' services and `points.ledger` (issue 20 §1). A static scan of their source:
raw SQL that names a `points` table in an INSERT, UPDATE, DELETE or COPY; a `points` model's
table name or a `core.sql` writer used on a `points` model; ORM writes (`create`, `update`,
`save`, `bulk_create`, `delete`, …) on a `points` model's manager or queryset."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.apps import apps

ROOT = Path(__file__).resolve().parent.parent
APPS = ("betting", "drip", "discordbot", "dashboard")
WRITES = {
    "create",
    "get_or_create",
    "update_or_create",
    "update",
    "save",
    "bulk_create",
    "bulk_update",
    "delete",
}
SQL_WRITERS = {
    "copy_rows",
    "insert_instances",
    "insert_rows",
    "update_from_values",
    "add_by_pk",
    "set_by_pk",
    "delete_by_pk",
}


def _points_models() -> dict[str, str]:
    """Model class name → table, for every model of the `points` app."""
    return {m.__name__: m._meta.db_table for m in apps.get_app_config("points").get_models()}


def _model_names(tree: ast.Module) -> set[str]:
    """The names a module binds to `points` models (`from points.models import Account as A`),
    and `points.models` module aliases as `alias.`-prefixed markers."""
    models = _points_models()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "points.models":
            names |= {a.asname or a.name for a in node.names if a.name in models}
        elif isinstance(node, ast.ImportFrom) and node.module == "points":
            names |= {f"{a.asname or a.name}." for a in node.names if a.name == "models"}
        elif isinstance(node, ast.Import):
            names |= {f"{a.asname}." for a in node.names if a.name == "points.models" and a.asname}
    return names


def _root(node: ast.expr) -> str | None:
    """The model a call chain starts from: `Account` in `Account.objects.filter(…).update`, or
    `models.Account` written as `models.`."""
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            inner = node.value
            if isinstance(inner, ast.Name) and node.attr in _points_models():
                return f"{inner.id}."
            node = inner
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None


def violations(source: str, where: str = "<source>") -> list[str]:
    """Every direct write of a `points` table in `source`, as "where:line: what"."""
    tree = ast.parse(source)
    models = _points_models()
    tables = "|".join(sorted(models.values(), key=len, reverse=True))
    raw = re.compile(
        rf"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY)\s+[\"']?({tables})\b", re.IGNORECASE
    )
    names = _model_names(tree)
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = raw.search(node.value)
            if match:
                found.append(f"{where}:{line}: raw SQL {match.group(0)!r}")
        elif isinstance(node, ast.Attribute) and node.attr == "db_table":
            if _root(node) in names:
                found.append(f"{where}:{line}: a points table name in SQL")
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr
            if called in SQL_WRITERS and node.args and _root(node.args[0]) in names:
                found.append(f"{where}:{line}: core.sql.{called} on a points model")
            elif (
                isinstance(func, ast.Attribute) and called in WRITES and _root(func.value) in names
            ):
                found.append(f"{where}:{line}: ORM .{called}() on a points model")
    return found


def _sources(app: str) -> list[Path]:
    return [path for path in sorted((ROOT / app).rglob("*.py")) if "migrations" not in path.parts]


@pytest.mark.parametrize("app", APPS)
def test_app_writes_no_points_table_directly(app):
    found = []
    for path in _sources(app):
        found += violations(path.read_text(), str(path.relative_to(ROOT)))
    assert found == [], "write the ledger through points' services:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "snippet",
    [
        'cursor.execute("UPDATE points_account SET balance = balance + 1")',
        "cursor.execute(f'INSERT INTO points_transfer (amount) VALUES (%s)', [1])",
        'sql = "copy \\"points_transfer\\" (amount) FROM STDIN"',
        "from points.models import Account\nAccount.objects.filter(pk=1).update(balance=0)",
        "from points.models import Transfer as T\nT.objects.bulk_create([])",
        "from points.models import Account\nAccount.objects.get_or_create(guild_id=1)",
        "from points import models\nmodels.Account.objects.all().delete()",
        "from points.models import Account\ntable = Account._meta.db_table",
        "from points.models import Account\nadd_by_pk(Account, 'balance', {1: 2})",
        "from points.models import Transfer\nsql.insert_rows(Transfer, rows, now)",
    ],
)
def test_the_scan_finds_each_kind_of_direct_write(snippet):
    assert violations(snippet) != []


@pytest.mark.parametrize(
    "snippet",
    [
        "from points.models import Account\nAccount.objects.filter(pk=1).first()",
        'cursor.execute("UPDATE betting_position SET points_spent = 0")',
        "from betting.models import Trade\nTrade.objects.filter(pk=1).update(amount=1)",
        "from points.services import points_grant\npoints_grant(guild_id=1)",
    ],
)
def test_the_scan_leaves_reads_and_other_tables_alone(snippet):
    assert violations(snippet) == []
