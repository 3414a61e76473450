"""Fixtures for the DRIP bridge: a real fake DRIP server on 127.0.0.1, a client with its own
circuit breaker, an encryption key, a linked guild, and the conservation check every fault test
ends with (docs/drip.md)."""

from __future__ import annotations

import time
import uuid

import pytest
from cryptography.fernet import Fernet

from drip.client import DripClient, breaker_new
from drip.fake import FakeDrip
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD

REALM = "realm-test-1"
OTHER_REALM = "realm-other"
POINT = "pts-1"
API_KEY = "drip-live-Q7v3N9xT2kLm8PzR4sWy"
OTHER_KEY = "drip-live-other-Zz9Yy8Xx7Ww6"
START = 5_000


@pytest.fixture(autouse=True)
def _drip_env(settings):
    """Every DRIP test: a Fernet key, short timeouts and its own rate-limit namespace."""
    settings.PM_ENCRYPTION_KEY = Fernet.generate_key().decode()
    settings.DRIP_TIMEOUT_SECONDS = 1.0
    settings.DRIP_BREAKER_RECOVERY_SECONDS = 0.5
    settings.DISCORD_RATELIMIT_NAMESPACE = uuid.uuid4().hex


def inside_a_rate_limit_window() -> None:
    """Bot tests start well inside a minute window (rate limits count in fixed windows)."""
    left = 60 - time.time() % 60
    if left < 10:
        time.sleep(left + 0.05)


@pytest.fixture
def fake(settings):
    """The fake DRIP with our realm (ALICE, BOB, CAROL and MOD hold 5,000 each) and another
    realm whose key is valid but not ours."""
    server = FakeDrip()
    server.hang_seconds = 3.0
    server.realm(REALM, API_KEY, realm_point_id=POINT)
    server.realm(OTHER_REALM, OTHER_KEY)
    for user in (ALICE, BOB, CAROL, MOD):
        server.member(REALM, user, START)
    server.start()
    settings.DRIP_API_BASE = server.base_url
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def breaker():
    return breaker_new(failure_threshold=5, recovery_timeout=0.5)


@pytest.fixture
async def drip_client(fake, breaker):
    c = DripClient(base_url=fake.base_url, timeout=1.0, breaker=breaker)
    try:
        yield c
    finally:
        await c.close()


def link_guild(**overrides):
    from drip.services import drip_link_set

    options = {
        "guild_id": GUILD,
        "realm_id": REALM,
        "realm_point_id": POINT,
        "api_key": API_KEY,
        "actor_id": MOD,
        "idempotency_key": f"test:{uuid.uuid4().hex}",
    }
    options.update(overrides)
    return drip_link_set(**options)


@pytest.fixture
def linked(fake, transactional_db):
    return link_guild()


def assert_conserved(
    fake: FakeDrip, *, initial: int, guild_id: int = GUILD, realm: str = REALM
) -> None:
    """No point lost, doubled or stuck: nothing left open; the clearing account mirrors the
    confirmed moves; DRIP's total moved by exactly the opposite amount."""
    from drip.selectors import drip_totals

    totals = drip_totals(guild_id=guild_id)
    assert totals.open_withdrawals == 0, "withdrawals still open"
    assert totals.held_here == totals.confirmed_deposits - totals.confirmed_withdrawals
    assert fake.total(realm) == initial - totals.held_here


__all__ = ["ALICE", "API_KEY", "BOB", "CAROL", "GUILD", "MOD", "POINT", "REALM", "START"]
