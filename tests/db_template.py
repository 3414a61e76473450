"""One migration per test run on PostgreSQL, however many xdist workers (CI's time, issue 20 §5).

pytest-django gives each worker its own test database (`test_pm_gw0`, …) and, left alone, each
worker runs every migration into its own. Here the first worker to get there migrates its
database as usual and copies it into a template (`CREATE DATABASE … TEMPLATE …`, a file copy in
the server); the others wait for it on an advisory lock and start from a copy of that template,
so Django's `migrate` finds nothing to apply. The template lives for one run: its name carries a
run id the controller sets before it starts the workers, and the controller drops it at the end.

The copies are exactly what a migration leaves, data migrations' rows included (the copy is made
before any test runs). Outside xdist, or on SQLite, nothing changes."""

from __future__ import annotations

import contextlib
import os
import uuid

RUN_ENV = "PM_TEST_DB_TEMPLATE_RUN"
"""Set by the xdist controller, inherited by its workers: the run's template suffix."""


def _postgres(settings_dict: dict) -> bool:
    return "postgresql" in settings_dict.get("ENGINE", "")


def _admin_connection(settings_dict: dict):
    """An autocommit connection to the server's `postgres` database, as the test role."""
    import psycopg

    return psycopg.connect(
        host=settings_dict.get("HOST") or None,
        port=settings_dict.get("PORT") or None,
        user=settings_dict.get("USER") or None,
        password=settings_dict.get("PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
    )


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def run_start() -> None:
    """In the xdist controller, before the workers start: name this run's template."""
    os.environ.setdefault(RUN_ENV, uuid.uuid4().hex[:12])


def run_end() -> None:
    """In the xdist controller, after the workers stopped: drop this run's template."""
    run = os.environ.get(RUN_ENV)
    if not run:
        return
    from django.conf import settings

    db = settings.DATABASES["default"]
    if not _postgres(db):
        return
    with contextlib.suppress(Exception), _admin_connection(db) as admin:
        for (name,) in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"%\\_tpl\\_{run}"]
        ).fetchall():
            admin.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")


class WorkerDatabase:
    """A worker's side: `prepare()` before pytest-django sets the databases up (True: the
    worker's database is already a migrated copy, so pytest-django must keep, not recreate,
    it); `setup_done()` after; `teardown()` at the end of the session."""

    def __init__(self, settings_dict: dict, worker: str) -> None:
        self.db = settings_dict
        self.worker = worker
        self.run = os.environ.get(RUN_ENV, "")
        self.enabled = bool(worker and self.run and _postgres(settings_dict))
        self.name = settings_dict.get("TEST", {}).get("NAME") or "test_" + settings_dict["NAME"]
        # "test_pm_gw0" → "test_pm_tpl_<run>": one template for the run's workers.
        base = self.name.removesuffix(f"_{worker}")
        self.template = f"{base}_tpl_{self.run}"
        self.cloned = False
        self._lock = None

    def prepare(self) -> bool:
        if not self.enabled:
            return False
        admin = _admin_connection(self.db)
        admin.execute("SELECT pg_advisory_lock(hashtext(%s))", [self.template])
        found = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [self.template]
        ).fetchone()
        if not found:
            # This worker builds the template: it holds the lock until `setup_done`.
            self._lock = admin
            return False
        try:
            admin.execute(f"DROP DATABASE IF EXISTS {_quoted(self.name)} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {_quoted(self.name)} TEMPLATE {_quoted(self.template)}")
        finally:
            admin.close()  # and with it the advisory lock
        self.cloned = True
        return True

    def setup_done(self) -> None:
        """The builder copies its freshly migrated database into the template."""
        if self._lock is None:
            return
        from django.db import connections

        connections.close_all()  # a template must have no connection while it is copied
        try:
            # Without a template (a copy refused) every worker migrates its own, as before.
            with contextlib.suppress(Exception):
                self._lock.execute(
                    f"CREATE DATABASE {_quoted(self.template)} TEMPLATE {_quoted(self.name)}"
                )
        finally:
            self._lock.close()
            self._lock = None

    def teardown(self) -> None:
        """A copy is dropped here (pytest-django keeps a database it was told to keep)."""
        if not self.cloned:
            return
        from django.db import connections

        connections.close_all()
        with contextlib.suppress(Exception), _admin_connection(self.db) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {_quoted(self.name)} WITH (FORCE)")
