"""Set-based SQL for writes of many rows in a constant number of statements (PostgreSQL, and
SQLite ≥ 3.35 for the embedded default): `COPY … FROM STDIN`, `UPDATE … FROM unnest(…)`
(`VALUES` on SQLite) and deletes by primary key. Generic: each app writes only its own tables
with them (the ledger's tables only through `points.ledger`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Model


def columns_of(model: type[Model], names: Sequence[str]) -> list[tuple[str, str]]:
    """(attribute, column) of the fields `names`, plus `created_at`."""
    fields = {f.attname: f.column for f in model._meta.concrete_fields}
    return [(name, fields[name]) for name in [*names, "created_at"]]


def copy_rows(model: type[Model], columns: list[tuple[str, str]], rows: list[list[Any]]) -> None:
    """PostgreSQL `COPY … FROM STDIN`: the fastest way to write many rows in one statement."""
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(column) for _, column in columns)
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def json_ready(value: object) -> object:
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def ids_by(model: type[Model], key: str, values: list[Any]) -> dict[Any, int]:
    """Primary keys of the rows whose unique field `key` is in `values` (1 query). On
    PostgreSQL text keys go as one array parameter (`= ANY(%s)`): an `IN (%s, %s, …)` of a
    thousand keys costs more to build and parse on the client than the query on the server."""
    field = model._meta.get_field(key)
    column = getattr(field, "attname", key)
    if connection.vendor == "postgresql" and values and all(isinstance(v, str) for v in values):
        table = connection.ops.quote_name(model._meta.db_table)
        name = connection.ops.quote_name(getattr(field, "column", column))
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {name}, id FROM {table} WHERE {name} = ANY(%s)", [values])
            return dict(cursor.fetchall())
    return dict(model._default_manager.filter(**{f"{key}__in": values}).values_list(column, "pk"))


def insert_instances(model: type[Model], objects: list[Any], now: dt.datetime, *, key: str) -> None:
    """Write model instances in one statement and give them their pks and `created_at`
    (`key` is a unique field: on PostgreSQL the pks are read back by it, one more query)."""
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objects)
        return
    names = [
        f.attname
        for f in model._meta.concrete_fields
        if not f.primary_key and f.attname != "created_at"
    ]
    copy_rows(
        model,
        columns_of(model, names),
        [[json_ready(getattr(o, n)) for n in names] + [now] for o in objects],
    )
    ids = ids_by(model, key, [getattr(o, key) for o in objects])
    for o in objects:
        o.pk = ids[getattr(o, key)]
        o.created_at = now
        o._state.adding = False


def insert_rows(
    model: type[Model], rows: list[dict[str, Any]], now: dt.datetime, *, key: str | None = None
) -> list[Any]:
    """Write rows given as field dicts (all with the same fields) in one statement; with `key`
    (a unique field), return them as saved instances (one more query on PostgreSQL)."""
    if not rows:
        return []
    if connection.vendor != "postgresql":
        return model._default_manager.bulk_create([model(**row) for row in rows])
    copy_rows(
        model,
        columns_of(model, list(rows[0])),
        [[json_ready(v) for v in row.values()] + [now] for row in rows],
    )
    if key is None:
        return []
    ids = ids_by(model, key, [row[key] for row in rows])
    return [model(pk=ids[row[key]], created_at=now, **row) for row in rows]


def db_time(value: dt.datetime) -> object:
    return connection.ops.adapt_datetimefield_value(value)


def _values(rows: int, width: int) -> str:
    row = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([row] * rows)


def update_from_values(
    model: type[Model], assignments: str, columns: list[str], rows: Sequence[Sequence[Any]]
) -> None:
    """`UPDATE table SET … FROM (VALUES …) v WHERE table.id = v.id` in one statement (integer
    values). `assignments` uses `{t}` for the table and `{col}` for the value columns.

    On PostgreSQL the values go as one array per column (`unnest(%s::bigint[], …)`): a
    statement with a placeholder per value (4,000 for 1,000 rows of four columns) spends more
    time being built and parsed on the client than running on the server."""
    if not rows:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    if connection.vendor == "postgresql":
        alias = f"v({', '.join(columns)})"
        names = {c: f"v.{c}" for c in columns}
        source = "unnest(" + ", ".join(["%s::bigint[]"] * len(columns)) + ")"
        params: list[Any] = [list(column) for column in zip(*rows, strict=True)]
    else:  # SQLite names VALUES columns column1, column2, …
        alias = "v"
        names = {c: f"v.column{n + 1}" for n, c in enumerate(columns)}
        source = f"(VALUES {_values(len(rows), len(columns))})"
        params = [value for row in rows for value in row]
    sets = assignments.format(t=table, **names)
    sql = f"UPDATE {table} SET {sets} FROM {source} AS {alias} WHERE {table}.id = {names['id']}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def add_by_pk(model: type[Model], column: str, deltas: dict[int, int]) -> None:
    """Add `deltas[pk]` to `column` of each row, in one statement."""
    update_from_values(
        model, f"{column} = {{t}}.{column} + {{delta}}", ["id", "delta"], sorted(deltas.items())
    )


def set_by_pk(
    model: type[Model], columns: tuple[str, ...], values: dict[int, tuple[int, ...]]
) -> None:
    """Set `columns` of each row to `values[pk]`, in one statement."""
    sets = ", ".join(f"{c} = {{{c}}}" for c in columns)
    update_from_values(
        model, sets, ["id", *columns], [(pk, *v) for pk, v in sorted(values.items())]
    )


def delete_by_pk(model: type[Model], pks: list[int]) -> None:
    """Delete rows by primary key, in one statement."""
    if not pks:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    marks = ", ".join(["%s"] * len(pks))
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id IN ({marks})", pks)
