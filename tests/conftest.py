"""Shared fixtures. After every database test the ledger audit runs (DOMAIN §3)."""

import os

import pytest
from django.db import connection
from django.test.utils import override_settings
from hypothesis import settings as hypothesis_settings

from points.audit import ledger_audit

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
