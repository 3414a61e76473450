"""Configuration (issue 2, STYLE §12): the embedded defaults work with no environment, and bad
configuration stops start-up with one line naming the variable — never a traceback.

Start-up is tested for real: `manage.py` runs in a subprocess with an environment built from
scratch (only PATH and HOME besides the variables under test), in a copy of the project that has
no `.env` — settings read `BASE_DIR/.env`, and a developer's `.env` (written by `make run`) must
not leak into what these tests see."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from ops.checks import check_guild_defaults, guild_default_variable
from points.rules import SETTINGS, SETTINGS_BY_NAME

ROOT = Path(__file__).resolve().parent.parent
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

DUMP = """
import json
from django.conf import settings as s
db = s.DATABASES["default"]
cache = s.CACHES["default"]
print("SETTINGS=" + json.dumps({
    "DEBUG": s.DEBUG,
    "SECRET_KEY_SET": bool(s.SECRET_KEY),
    "ENGINE": db["ENGINE"],
    "NAME": str(db["NAME"]),
    "DB_OPTIONS": db.get("OPTIONS", {}),
    "CACHE": cache["BACKEND"],
    "CACHE_OPTIONS": cache.get("OPTIONS", {}),
    "LAYER": s.CHANNEL_LAYERS["default"]["BACKEND"],
    "BASE_DIR": str(s.BASE_DIR),
    "GUILD_DEFAULTS": s.PM_GUILD_DEFAULTS,
}, default=str))
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project's code without `.env`, a database or caches."""
    dest = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".env", "db.sqlite3*")
    for part in PROJECT_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=ignore)
        else:
            shutil.copy2(src, dest / part)
    assert not (dest / ".env").exists()
    return dest


def manage(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python manage.py *args` in `project` with exactly PATH, HOME and `env` set."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(project), **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_dump(project: Path, **env: str) -> dict:
    result = manage(project, "shell", "-c", DUMP, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("SETTINGS="))
    return json.loads(line.removeprefix("SETTINGS="))


def assert_one_line_naming(result: subprocess.CompletedProcess[str], variable: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, output
    assert variable in lines[0], output
    return lines[0]


# --- The embedded defaults ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["DJANGO_DEBUG", "DJANGO_TESTING"])
def test_embedded_defaults_need_no_environment(project, mode):
    """Only the mode flag (`make run` writes DJANGO_DEBUG=1 into .env; `make test` sets
    DJANGO_TESTING=1): SQLite in the project folder, local-memory cache, in-memory layer."""
    check = manage(project, "check", **{mode: "1"})
    assert check.returncode == 0, check.stdout + check.stderr
    assert "System check identified no issues" in check.stdout

    dump = settings_dump(project, **{mode: "1"})
    assert dump["BASE_DIR"] == str(project)  # the copy, so no `.env` could have been read
    assert dump["ENGINE"].endswith("sqlite3")
    assert dump["NAME"] == str(project / "db.sqlite3")
    # django-prometheus' subclass, for the django_cache_* hit/miss metrics (issue 7).
    assert dump["CACHE"] == "django_prometheus.cache.backends.locmem.LocMemCache"
    assert dump["LAYER"] == "channels.layers.InMemoryChannelLayer"
    assert dump["SECRET_KEY_SET"]
    assert dump["GUILD_DEFAULTS"]["starting_balance"] == 1000  # DOMAIN §2


def test_embedded_sqlite_database_migrates_and_passes_the_ledger_audit(project):
    migrate = manage(project, "migrate", "--noinput", DJANGO_DEBUG="1")
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert (project / "db.sqlite3").stat().st_size > 0

    audit = manage(project, "ledger_audit", DJANGO_DEBUG="1")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "ledger audit OK" in audit.stdout


def test_database_and_redis_urls_switch_to_postgresql_and_redis(project):
    """Read only: nothing here connects, so no server is needed."""
    dump = settings_dump(
        project,
        DJANGO_DEBUG="1",
        DATABASE_URL="postgres://pm:secret@127.0.0.1:5432/pm_example",
        REDIS_URL="redis://127.0.0.1:6379/3",
    )
    assert dump["ENGINE"].endswith("postgresql") and dump["NAME"] == "pm_example"
    assert "lock_timeout" in dump["DB_OPTIONS"]["options"]
    assert dump["CACHE"] == "django_prometheus.cache.backends.redis.RedisCache"  # django-redis
    # A cache outage must degrade, not hang or break a trade: short timeouts, errors ignored.
    assert dump["CACHE_OPTIONS"]["IGNORE_EXCEPTIONS"] is True
    assert dump["CACHE_OPTIONS"]["SOCKET_TIMEOUT"] <= 2
    assert dump["CACHE_OPTIONS"]["SOCKET_CONNECT_TIMEOUT"] <= 2
    assert dump["LAYER"] == "channels_redis.core.RedisChannelLayer"


def test_pgbouncer_mode_keeps_no_server_side_state(project):
    """Issue 24 item 3: no startup `options` (PgBouncer refuses them), no prepared statements."""
    dump = settings_dump(
        project,
        DJANGO_DEBUG="1",
        DATABASE_URL="postgres://pm:secret@127.0.0.1:6432/pm_example",
        DB_PGBOUNCER="1",
    )
    assert "options" not in dump["DB_OPTIONS"]
    assert dump["DB_OPTIONS"]["prepare_threshold"] is None


# --- Bad configuration stops start-up, naming the variable --------------------------------


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({}, id="nothing-set"),
        pytest.param(
            {
                "DJANGO_DEBUG": "0",
                "DJANGO_ALLOWED_HOSTS": "markets.example.org",
                "DATABASE_URL": "postgres://pm:pm@127.0.0.1:5432/pm",
                "REDIS_URL": "redis://127.0.0.1:6379/0",
            },
            id="production-like",
        ),
    ],
)
def test_production_without_secret_key_refuses_to_start(project, env):
    line = assert_one_line_naming(manage(project, "check", **env), "DJANGO_SECRET_KEY")
    assert "DJANGO_DEBUG=1" in line  # and says how to get going locally


@pytest.mark.parametrize(
    ("variable", "value", "extra"),
    [
        ("PM_MAX_BET", "abc", {}),
        ("PM_STARTING_BALANCE", "1.5", {}),
        ("PM_FEE_BPS", "lots", {}),
        ("DB_LOCK_TIMEOUT_MS", "soon", {"DATABASE_URL": "postgres://pm:pm@127.0.0.1:5432/pm"}),
        ("DATABASE_URL", "mysql://pm:secret@127.0.0.1/pm", {}),
        ("DATABASE_URL", "not-a-url", {}),
        ("DATABASE_URL", "postgres://pm:secret@127.0.0.1:notaport/pm", {}),
    ],
)
def test_malformed_value_refuses_to_start_naming_the_variable(project, variable, value, extra):
    result = manage(project, "check", DJANGO_DEBUG="1", **extra, **{variable: value})
    line = assert_one_line_naming(result, variable)
    assert "secret" not in line  # a database password never ends up in a log


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PM_FEE_BPS", "99999"),
        ("PM_MAX_BET", "0"),
        ("PM_MIN_RESOLUTION_VOTES", "0"),
        ("PM_RESOLUTION_MODE", "sometimes"),
        ("PM_DISPUTE_WINDOW_MINUTES", "10081"),
    ],
)
def test_out_of_range_guild_default_fails_the_system_check(project, variable, value):
    result = manage(project, "check", DJANGO_DEBUG="1", **{variable: value})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert f"(config.E002) {variable} is {value}" in output, output


def _edges(spec):
    """Values at and just beyond what the table allows, each with whether it is allowed."""
    if spec.kind == "int":
        return [(spec.low, True), (spec.high, True), (spec.low - 1, False), (spec.high + 1, False)]
    if spec.kind == "bool":
        return [(True, True), (False, True), (1, False), ("yes", False)]
    return [*((value, True) for value, _ in spec.choices), ("sometimes", False), (None, False)]


DEFAULTED = [spec for spec in SETTINGS if spec.name in settings.PM_GUILD_DEFAULTS]


def test_every_guild_default_has_a_rule_in_the_table():
    assert set(settings.PM_GUILD_DEFAULTS) <= set(SETTINGS_BY_NAME)
    assert {"resolution_mode", "dispute_window_minutes", "conflict_of_interest"} <= {
        spec.name for spec in DEFAULTED
    }


@pytest.mark.parametrize("spec", DEFAULTED, ids=lambda spec: spec.name)
def test_guild_default_check_accepts_the_table_and_names_what_is_outside(spec):
    variable = guild_default_variable(spec.name)
    for value, ok in _edges(spec):
        defaults = {**settings.PM_GUILD_DEFAULTS, spec.name: value}
        with override_settings(PM_GUILD_DEFAULTS=defaults):
            errors = check_guild_defaults(None)
        if ok:
            assert errors == [], (spec.name, value)
        else:
            assert [e.id for e in errors] == ["config.E002"], (spec.name, value)
            assert errors[0].msg == f"{variable} is {value}; {spec.message}"


def test_the_rate_limit_default_is_named_by_its_own_variable():
    defaults = {**settings.PM_GUILD_DEFAULTS, "requests_per_minute": 0}
    with override_settings(PM_GUILD_DEFAULTS=defaults):
        (error,) = check_guild_defaults(None)
    assert error.msg.startswith("PM_GUILD_REQUESTS_PER_MINUTE is 0; Server commands a minute ")


def test_a_default_for_a_setting_that_does_not_exist_fails_the_check():
    defaults = {**settings.PM_GUILD_DEFAULTS, "bonus_multiplier": 2}
    with override_settings(PM_GUILD_DEFAULTS=defaults):
        (error,) = check_guild_defaults(None)
    assert error.id == "config.E002"
    assert error.msg == "PM_BONUS_MULTIPLIER is 2; There is no setting called “bonus_multiplier”."


def test_shipped_defaults_pass_the_guild_default_check():
    assert check_guild_defaults(None) == []
