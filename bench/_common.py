"""What every benchmark shares: where its database and Redis are, the fresh database it runs on,
the figures it records, and the one line it prints in a smoke run.

Database: `BENCH_DATABASE_URL`, else `DATABASE_URL` (the project's own variable), else libpq's
defaults (`postgresql:///`: the local socket, your login name). The URL names a PostgreSQL server,
a role that may create databases, and a base name: the benchmarks never touch the database the URL
names, they create their own beside it, `<base>_bench_<purpose>`, each a copy of one migrated
template `<base>_bench_template` (a copy takes a fraction of a second, a migration several).

Redis: `BENCH_REDIS_URL`, else `REDIS_URL`; none set means the Redis variants are skipped (and say
so). Keys and channel groups get a prefix of the run's own, so nothing is flushed.

Figures: with `BENCH_RESULTS=<file>` (set by `bench/run.py`, i.e. `make bench`), `record` appends
one JSON line per figure: name, value, unit, the baseline measured in the same run and the ratio,
the commit, the load average and the date. Without it, the scripts only print their tables.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RUN = uuid.uuid4().hex[:8]
"""This process's run id: key prefixes, idempotency keys."""


class BenchError(SystemExit):
    """A setup problem said in one line (no stack trace)."""


# --- PostgreSQL -----------------------------------------------------------------------------


@functools.cache
def server_url() -> str:
    """The PostgreSQL URL the benchmarks start from (see the module docstring), read once:
    `django_setup` then points DATABASE_URL at the benchmark's own database."""
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL") or ""
    if not url:
        return "postgresql:///pm"
    scheme = urlparse(url).scheme
    if not scheme.startswith("postgres"):
        which = "BENCH_DATABASE_URL" if os.environ.get("BENCH_DATABASE_URL") else "DATABASE_URL"
        raise BenchError(
            f"the benchmarks need PostgreSQL, and {which} is {scheme}:…; "
            "set BENCH_DATABASE_URL=postgres://user:password@host:5432/pm"
        )
    return url


def _with_name(url: str, name: str) -> str:
    parsed = urlparse(url)
    query = f"?{parsed.query}" if parsed.query else ""
    return f"{parsed.scheme}://{parsed.netloc}/{name}{query}"


def base_name() -> str:
    return urlparse(server_url()).path.lstrip("/") or "pm"


def database_url(purpose: str) -> str:
    """The URL of the benchmark database `<base>_bench_<purpose>` (not created here)."""
    return _with_name(server_url(), f"{base_name()}_bench_{purpose}")


def _admin():
    import psycopg

    url = _with_name(server_url(), "postgres")
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        parsed = urlparse(url)
        where = f"{parsed.hostname}:{parsed.port or 5432}" if parsed.hostname else "local socket"
        who = parsed.username or "your login name"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(
            f"cannot connect to PostgreSQL ({where}, role {who}): {first}; set BENCH_DATABASE_URL "
            "or DATABASE_URL=postgres://user:password@host:5432/name to a server where that "
            "role may create databases"
        ) from None


def _create(conn, name: str, *, template: str | None = None) -> None:
    import psycopg

    sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
    try:
        conn.execute(sql)
    except psycopg.errors.InsufficientPrivilege:
        role = urlparse(server_url()).username or "your login role"
        raise BenchError(
            f"the role {role} may not create databases: ALTER ROLE {role} CREATEDB, or set "
            "BENCH_DATABASE_URL to a role that may"
        ) from None


def ensure_database(purpose: str) -> str:
    """`<base>_bench_<purpose>`, created empty if missing (pgbench's own database)."""
    name = f"{base_name()}_bench_{purpose}"
    with _admin() as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            _create(conn, name)
    return database_url(purpose)


def prepare_template() -> None:
    """Create and migrate `<base>_bench_template` (a no-op migration when up to date). Run once
    per `make bench`; a script run alone does it itself."""
    if os.environ.get("BENCH_TEMPLATE_READY") == server_url():
        return
    url = ensure_database("template")
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_TESTING": "1"}
    env.pop("REDIS_URL", None)
    out = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        sys.stderr.write(out.stdout[-2000:] + out.stderr[-4000:])
        raise BenchError("migrating the benchmark template database failed")
    os.environ["BENCH_TEMPLATE_READY"] = server_url()


def fresh_database(purpose: str) -> str:
    """A fresh, migrated `<base>_bench_<purpose>` (dropped and copied from the template)."""
    prepare_template()
    name = f"{base_name()}_bench_{purpose}"
    template = f"{base_name()}_bench_template"
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _create(conn, name, template=template)
    return database_url(purpose)


def pg_args(url: str) -> tuple[list[str], dict[str, str]]:
    """Connection arguments and environment for PostgreSQL's command-line tools (pgbench)."""
    parsed = urlparse(url)
    args = []
    if parsed.hostname:
        args += ["-h", parsed.hostname]
    if parsed.port:
        args += ["-p", str(parsed.port)]
    if parsed.username:
        args += ["-U", parsed.username]
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    return args, env


def pgbench_binary() -> str:
    """`pgbench` from PATH, else from the PostgreSQL install (/usr/lib/postgresql/*/bin)."""
    import glob
    import shutil

    found = shutil.which("pgbench") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)), None
    )
    if found is None:
        raise BenchError(
            "pgbench not found (PATH, /usr/lib/postgresql/*/bin): install PostgreSQL's client "
            "tools, e.g. apt-get install postgresql-client postgresql-contrib"
        )
    return found


# --- Redis ----------------------------------------------------------------------------------


def redis_url() -> str | None:
    return os.environ.get("BENCH_REDIS_URL") or os.environ.get("REDIS_URL") or None


# --- Django ---------------------------------------------------------------------------------


def django_setup(database: str, *, redis: str | None = None) -> None:
    """Configure and set up Django for a benchmark: `database` (a URL), Redis as cache and
    channel layer when `redis` is given (keys and groups under this run's own prefix), else the
    in-memory ones; DJANGO_TESTING (no secret key needed) and warnings only in the logs; the
    start-up heap frozen, as in the long-running processes."""
    os.environ["DATABASE_URL"] = database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DJANGO_TESTING"] = "1"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if redis:
        os.environ["REDIS_URL"] = redis
        os.environ["CACHE_KEY_PREFIX"] = f"pmbench{RUN}"
        os.environ["CHANNELS_PREFIX"] = f"pmbench{RUN}"
    else:
        os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from core.runtime import heap_freeze

    heap_freeze()  # as the processes that run this code do once started (core/runtime.py)


# --- Figures --------------------------------------------------------------------------------


def commit() -> str:
    """The checked-out commit (short), with `-dirty` when the work tree has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + ("-dirty" if dirty else "")


def load() -> float:
    """The 1-minute load average (how busy the machine was)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def record(
    name: str,
    value: float,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_name: str | None = None,
    **extra: Any,
) -> dict:
    """One figure: appended as a JSON line to $BENCH_RESULTS when set; returned either way.
    `ratio` is value / baseline (both measured in this run)."""
    ratio = round(value / baseline, 3) if baseline not in (None, 0) else None
    line = {
        "name": name,
        "value": round(value, 3),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 3),
        "baseline_name": baseline_name,
        "ratio": ratio,
        "commit": os.environ.get("BENCH_COMMIT") or commit(),
        "load": load(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/" + Path(sys.argv[0]).name, *sys.argv[1:]]),
        **extra,
    }
    path = os.environ.get("BENCH_RESULTS")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return line


def smoke_line(name: str, ok: bool, detail: str) -> int:
    """The benchmark's one line in a smoke run (and in the CI log); returns the exit status."""
    print(f"SMOKE {name}: {'ok' if ok else 'FAILED'} · {detail}", flush=True)
    return 0 if ok else 1


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]
