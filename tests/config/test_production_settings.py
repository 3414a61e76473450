"""Production settings (issue 7), loaded for real in a subprocess with production variables and
nothing else: `check --deploy` is clean, PostgreSQL goes through psycopg's pool with connect,
statement, lock and idle-transaction timeouts, logs are JSON, Sentry starts with the scrubber,
and probes are exempt from the HTTPS redirect. Nothing here connects to a server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
PROJECT_PARTS = [
    "manage.py",
    "config",
    "core",
    "ops",
    "points",
    "markets",
    "betting",
    "discordbot",
    "drip",
    "templates",
]
PRODUCTION = {
    "DJANGO_SECRET_KEY": "production-like-secret-key-" + "x" * 40,
    "DJANGO_DEBUG": "0",
    "DJANGO_ALLOWED_HOSTS": "markets.example.org",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://markets.example.org",
    "DATABASE_URL": "postgres://pm:secret@127.0.0.1:5432/pm",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "DB_POOL_MAX_SIZE": "8",
    "DB_POOL_MIN_SIZE": "2",
    "DB_STATEMENT_TIMEOUT_MS": "15000",
    "DB_TCP_USER_TIMEOUT_MS": "9000",
    "SENTRY_DSN": "https://public@sentry.example.invalid/1",
    "SENTRY_RELEASE": "pm@test",
}

DUMP = """
import json, logging, sentry_sdk
from django.conf import settings as s
db = s.DATABASES["default"]
client = sentry_sdk.get_client()
print("DUMP=" + json.dumps(default=str, obj={
    "options": db["OPTIONS"],
    "conn_max_age": db.get("CONN_MAX_AGE"),
    "formatter": type(logging.getLogger().handlers[0].formatter).__name__,
    "sentry_active": client.is_active(),
    "sentry_release": client.options.get("release"),
    "sentry_pii": client.should_send_default_pii(),
    "before_send": client.options["before_send"].__module__,
    "redirect_exempt": s.SECURE_REDIRECT_EXEMPT,
    "middleware": s.MIDDLEWARE[:2],
}))
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the code without a developer's `.env`, which settings would read."""
    dest = tmp_path_factory.mktemp("production")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".env", "db.sqlite3*")
    for part in PROJECT_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / part)
    return dest


def run(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    env.update(PRODUCTION)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_variables(project):
    result = run(project, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_database_logging_and_sentry(project):
    result = run(project, "shell", "-v", "0", "-c", DUMP)
    assert result.returncode == 0, result.stderr
    dump = json.loads(result.stdout.split("DUMP=", 1)[1])
    options = dump["options"]
    assert options["pool"] == {"min_size": 2, "max_size": 8, "timeout": 10}
    assert dump["conn_max_age"] == 0  # the pool and persistent connections exclude each other
    assert options["connect_timeout"] == 5
    # A query in flight on a vanished database host fails instead of hanging (issue 12).
    assert {k: options[k] for k in options if k.startswith(("keepalives", "tcp_"))} == {
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 3,
        "keepalives_count": 3,
        "tcp_user_timeout": 9000,
    }
    for part in (
        "statement_timeout=15000",
        "lock_timeout=10000",
        "idle_in_transaction_session_timeout=60000",
    ):
        assert part in options["options"]
    assert dump["formatter"] == "JsonFormatter"
    assert dump["sentry_active"] and dump["sentry_release"] == "pm@test"
    assert dump["sentry_pii"] is False and dump["before_send"] == "ops.sentry"
    assert dump["redirect_exempt"] == ["^health/", "^metrics$"]
    assert dump["middleware"][1] == "ops.middleware.RequestContextMiddleware"


POOL_CHECK = """
import time, psycopg
from django.conf import settings
from django.db import connection
with connection.cursor() as c:
    c.execute("SELECT pg_backend_pid()")
    pid = c.fetchone()[0]
connection.close()  # back into the pool, idle
db = settings.DATABASES["default"]
with psycopg.connect(
    host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"],
    dbname=db["NAME"], autocommit=True,
) as other:  # the database ends that idle connection (a restart, a proxy's idle timeout)
    other.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = %s AND datname = %s",
        [pid, db["NAME"]],
    )
time.sleep(0.3)
with connection.cursor() as c:
    c.execute("SELECT pg_backend_pid()")
    print("REPLACED=" + str(c.fetchone()[0] != pid))
"""


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_pooled_connection_that_died_while_idle_is_replaced_not_failed_on(project):
    """With `DB_POOL_MAX_SIZE` the connections come from psycopg's pool; one that the database
    ended while it sat in the pool is checked and replaced before Django uses it (the pool's
    `check`, which Django passes on only with CONN_HEALTH_CHECKS)."""
    import psycopg

    db = settings.DATABASES["default"]
    # A database of its own, so the connection ended is one only this check uses.
    name = f"pm_poolcheck_{os.getpid()}"
    conninfo = {
        "host": db["HOST"],
        "port": db["PORT"],
        "user": db["USER"],
        "password": db["PASSWORD"],
        "dbname": db["NAME"],
        "autocommit": True,
    }
    with psycopg.connect(**conninfo) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgres://{db['USER']}:{db['PASSWORD'] or 'x'}@{db['HOST']}:{db['PORT']}/{name}"
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
        env.update(PRODUCTION, DATABASE_URL=url, DB_POOL_MAX_SIZE="1", DB_POOL_MIN_SIZE="1")
        env.pop("SENTRY_DSN")
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-v", "0", "-c", POOL_CHECK],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        with psycopg.connect(**conninfo) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert result.returncode == 0, result.stderr[-2000:]
    assert "REPLACED=True" in result.stdout
