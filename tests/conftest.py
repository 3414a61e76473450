"""Shared fixtures. After every database test the ledger audit runs (DOMAIN §3).

The suite runs in random order (pytest-randomly; `.ci/run` prints the seed) and in parallel
(pytest-xdist): each worker gets its own PostgreSQL test database (pytest-django's `_gw0`
suffix), its own SQLite file, and its own cache and channel-layer key prefix in the shared
Redis. Tests that share something a prefix cannot separate run in one worker (`xdist_group`,
with `--dist loadgroup`; see `pytest_collection_modifyitems`)."""

import copy
import os

import pytest
from django.db import connection
from django.test.utils import override_settings
from hypothesis import settings as hypothesis_settings

from points.audit import ledger_audit
from tests import db_template

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Hypothesis profiles. `ci` is thorough and repeatable: a fixed sequence (so a guard such as the
# state machine's "every path was reached" cannot flake) and more examples; `dev` is quick.
# A test that sets `max_examples` itself keeps its own number; the profile sets the rest.
# CI=true selects `ci`; HYPOTHESIS_PROFILE=ci|dev overrides.
hypothesis_settings.register_profile(
    "ci", max_examples=200, derandomize=True, deadline=None, database=None, print_blob=True
)
hypothesis_settings.register_profile("dev", max_examples=25, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if IN_CI else "dev"))


WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
"""The xdist worker this process is (`gw0`, …), empty when the suite runs in one process."""

SERIAL_GROUPS = {
    # The fault drills share session-wide private PostgreSQL and Redis servers: one worker
    # starts them once (private ports and data directories make a second set safe, only slow).
    "tests/faults/": "faults",
    # One Chromium at a time: two browsers on two cores miss the pages' timing budgets.
    "tests/dashboard/test_browser.py": "browser",
}


LONG_POLES = (
    # Minutes of real time each (a 1,000-trader settlement, server processes, the fault drills,
    # a hung Redis, the browser): started first, so that under xdist no worker begins one while
    # the others have finished. Their order among themselves stays random.
    "tests/discordbot/test_delivery_queue.py",
    "tests/discordbot/test_embedded_default.py",
    "tests/faults/",
    "tests/dashboard/test_browser.py",
    "tests/discordbot/test_management.py",
    "tests/discordbot/test_first_response.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, tests that share a resource run in one worker (`--dist loadgroup`), and the
    long poles go first among the tests that may run after a transactional one. Runs after
    pytest-randomly's shuffle and pytest-django's grouping (database tests in a transaction,
    then transactional ones — which flush the tables, rows made by data migrations included —
    then the rest); the sort is stable, so the order stays the seed's."""
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        for prefix, group in SERIAL_GROUPS.items():
            if path.startswith(prefix) and not item.get_closest_marker("xdist_group"):
                # A worker runs a group as one unit: one group per pytest-django block, so no
                # test that needs the migrations' rows runs after a transactional one's flush.
                block = "flushing" if _flushes_or_no_db(item) else "in-transaction"
                item.add_marker(pytest.mark.xdist_group(f"{group}-{block}"))
    if config.pluginmanager.hasplugin("xdist") and getattr(config.option, "numprocesses", None):
        first = next((i for i, item in enumerate(items) if _flushes_or_no_db(item)), len(items))
        items[first:] = sorted(
            items[first:], key=lambda item: not item.nodeid.startswith(LONG_POLES)
        )


def _flushes_or_no_db(item: pytest.Item) -> bool:
    """pytest-django's order 1 or 2: a transactional database test, or no database at all."""
    marker = item.get_closest_marker("django_db")
    names = getattr(item, "fixturenames", ())
    if (marker and marker.kwargs.get("transaction")) or {"transactional_db", "live_server"} & set(
        names
    ):
        return True
    return not (marker or "db" in names)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """Under SQLite the test database is a file configured like the embedded default
    (config/settings.py: WAL, a busy timeout, IMMEDIATE transactions), not Django's in-memory
    shared-cache database: there a conflicting table lock fails at once (SQLITE_LOCKED, which
    no busy timeout waits out), so the bot's database threads would see errors members on the
    embedded default never see (issue 28). One file per worker (tmp_path_factory is per worker).
    """
    from django.conf import settings as django_settings

    db = django_settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("sqlite") / "test.sqlite3")
        # Locking as in production; only the fsyncs go (no test survives a power cut anyway),
        # or migrating and flushing a file costs minutes on a busy disk.
        options = db.setdefault("OPTIONS", {})
        options["init_command"] = (options.get("init_command") or "") + "PRAGMA synchronous=OFF;"


def pytest_configure(config: pytest.Config) -> None:
    if not WORKER and getattr(config.option, "numprocesses", None):
        db_template.run_start()


def pytest_unconfigure(config: pytest.Config) -> None:
    if not WORKER and getattr(config.option, "numprocesses", None):
        db_template.run_end()


@pytest.fixture(scope="session")
def _worker_database(django_db_modify_db_settings) -> db_template.WorkerDatabase:
    """Under xdist on PostgreSQL, this worker's test database as a copy of the run's migrated
    template when another worker made it already (tests/db_template.py)."""
    from django.conf import settings as django_settings

    worker_db = db_template.WorkerDatabase(django_settings.DATABASES["default"], WORKER)
    worker_db.prepare()
    return worker_db


@pytest.fixture(scope="session")
def django_db_keepdb(request, _worker_database) -> bool:
    """pytest-django keeps (does not recreate) a database copied from the template."""
    return bool(request.config.getvalue("reuse_db")) or _worker_database.cloned


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, _worker_database):
    _worker_database.setup_done()
    yield
    _worker_database.teardown()


@pytest.fixture(scope="session", autouse=True)
def _worker_keys_apart():
    """Under xdist every worker uses its own key prefix for the cache and the channel layer in
    the shared Redis (and passes it to the processes it starts), so workers never count each
    other's rate limits or hear each other's groups."""
    from django.conf import settings as django_settings

    if not (WORKER and django_settings.REDIS_URL):
        yield
        return
    caches = copy.deepcopy(django_settings.CACHES)
    layers = copy.deepcopy(django_settings.CHANNEL_LAYERS)
    cache_prefix = f"{caches['default'].get('KEY_PREFIX') or 'pm'}-{WORKER}"
    layer_prefix = f"{layers['default']['CONFIG'].get('prefix') or 'pm'}-{WORKER}"
    caches["default"]["KEY_PREFIX"] = cache_prefix
    layers["default"]["CONFIG"]["prefix"] = layer_prefix
    saved = {k: os.environ.get(k) for k in ("CACHE_KEY_PREFIX", "CHANNELS_PREFIX")}
    os.environ.update(CACHE_KEY_PREFIX=cache_prefix, CHANNELS_PREFIX=layer_prefix)
    try:
        with override_settings(CACHES=caches, CHANNEL_LAYERS=layers):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hasher():
    """MD5 instead of PBKDF2 under tests: a staff user costs milliseconds, not a second. Tests
    never rely on a password hash being strong; production settings are untouched."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(scope="session", autouse=True)
def _pay_at_once_unless_a_test_opens_a_dispute_window():
    """Guilds created under tests resolve without a dispute window (0 minutes), as the tests
    written before the window expect; the dispute-window tests set their own (DOMAIN §6.1)."""
    from django.conf import settings as django_settings

    defaults = {**django_settings.PM_GUILD_DEFAULTS, "dispute_window_minutes": 0}
    with override_settings(PM_GUILD_DEFAULTS=defaults):
        yield


@pytest.fixture(autouse=True)
def _directory_gate_apart(settings):
    """Each test gates directory writes (`member_seen`) in its own cache namespace: the cache
    may be a Redis shared by the whole run."""
    import uuid

    settings.PM_DIRECTORY_NAMESPACE = uuid.uuid4().hex


def _uses_db(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return (
        bool(item.get_closest_marker("django_db")) or "db" in names or "transactional_db" in names
    )


@pytest.fixture(autouse=True)
def _ledger_audit_after_test(request):
    """Run the ledger audit at the end of every database test, before the database is reset."""
    if not _uses_db(request.node):
        yield
        return
    marker = request.node.get_closest_marker("django_db")
    transactional = bool(marker and marker.kwargs.get("transaction"))
    request.getfixturevalue("transactional_db" if transactional else "db")
    yield
    report = ledger_audit()
    assert report.ok, "ledger audit failed:\n" + "\n".join(report.violations)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and not os.environ.get("DATABASE_URL", "").startswith(
        ("postgres://", "postgresql://")
    ):
        message = "needs PostgreSQL: set DATABASE_URL=postgres://…"
        if IN_CI:
            pytest.fail(message + " (CI must run it, not skip it)")
        pytest.skip(message)
    if item.get_closest_marker("redis") and not os.environ.get("REDIS_URL"):
        message = "needs Redis: set REDIS_URL=redis://…"
        if IN_CI:
            pytest.fail(message + " (CI must run it, not skip it)")
        pytest.skip(message)


@pytest.fixture
def vendor() -> str:
    return connection.vendor


GUILD = 111_111_111_111_111_111
ALICE = 222_222_222_222_222_201
BOB = 222_222_222_222_222_202
CAROL = 222_222_222_222_222_203
MOD = 333_333_333_333_333_301


@pytest.fixture
def guild_id() -> int:
    return GUILD


# --- Back-office clients (tests/*/test_admin.py) ----------------------------------------------


@pytest.fixture
def plain_http(settings):
    """The admin tests speak plain HTTP; production settings would redirect them to HTTPS."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def moderator():
    from tests.admin_helpers import staff_user

    return staff_user("mod", "Moderators")


@pytest.fixture
def mod_client(client, moderator):
    client.force_login(moderator)
    return client


@pytest.fixture
def viewer_client(client):
    from tests.admin_helpers import staff_user

    client.force_login(staff_user("viewer", "Viewers"))
    return client
