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

REALM = "64b7f0c2a1d3e4f5a6b7c8d9"
OTHER_REALM = "64b7f0c2a1d3e4f5a6b7c8da"
POINT = "64b7f0c2a1d3e4f5a6b7c8db"
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
    settings.DRIP_RATELIMIT_NAMESPACE = uuid.uuid4().hex
    settings.DRIP_RATE_LIMIT_PER_MINUTE = 10_000


@pytest.fixture
def ratelimit_clock(monkeypatch):
    """The bot's rate limits (django-ratelimit, fixed one-minute windows) on a stopped clock, as
    in tests/discordbot: a test never straddles a window boundary, and never waits for one."""
    from tests.discordbot.conftest import RateLimitClock

    clock = RateLimitClock(1_800_000_000.0)
    monkeypatch.setattr("django_ratelimit.core.time", clock)
    return clock


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


class BreakerClock:
    """The circuit breaker's clock (`circuitbreaker.monotonic`), stopped and moved only by
    `advance`: a breaker opened under test stays open until the test says its recovery time has
    passed, however slowly a loaded machine gets from one step to the next."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def breaker_clock(monkeypatch) -> BreakerClock:
    clock = BreakerClock()
    monkeypatch.setattr("circuitbreaker.monotonic", clock)
    return clock


class WallClock:
    """A UNIX clock for DRIP's rate window (`RealmLimiter(clock=…)`, `FakeDrip.clock`), stopped
    at a whole second and moved only by `advance`: a used-up window resets when the test says
    its reset time has come, not when a loaded machine gets there."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def wall_clock() -> WallClock:
    return WallClock()


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


def assert_journal_matches(
    fake: FakeDrip, *, initial: int, guild_id: int = GUILD, realm: str = REALM
) -> dict[str, int]:
    """No point created, destroyed or moved twice on either side, in-doubt rows allowed: every
    change in the fake's journal (DRIP's activity log) is explained by the transfer rows that
    carry its `initiatorId` and were applied once; a confirmed row was applied exactly once, a
    failed or pending one never; an in-doubt row at most once (explained: a moderator decides
    from the log). DRIP's total moved by the journal; the clearing account mirrors the rows.
    Returns the rows' statuses."""
    from collections import defaultdict

    from drip.models import DripTransfer
    from drip.selectors import drip_totals

    Status = DripTransfer.Status
    groups: dict[tuple[str, str], list] = defaultdict(list)
    statuses: dict[str, int] = defaultdict(int)
    for row in DripTransfer.objects.filter(guild_id=guild_id):
        statuses[row.status] += 1
        if row.initiator_id:
            groups[(row.initiator_id, str(row.user_id))].append(row)
    applied: dict[tuple[str, str], list[int]] = defaultdict(list)
    for change in fake.applied(realm):
        applied[(change.initiator_id, change.value)].append(change.amount)
    for key, amounts in applied.items():
        assert key in groups, f"DRIP applied {key} {amounts}: no transfer explains it"
        assert len(amounts) == 1, f"{key} applied {len(amounts)} times"
        group = groups[key]
        assert amounts[0] == sum(r.signed_amount for r in group), key
        assert {r.status for r in group} <= {Status.CONFIRMED, Status.IN_DOUBT}, key
    for key, group in groups.items():
        if key not in applied:
            assert all(r.status != Status.CONFIRMED for r in group), f"{key} confirmed, not applied"
    assert fake.total(realm) == initial + sum(a for v in applied.values() for a in v)
    totals = drip_totals(guild_id=guild_id)
    assert totals.held_here == (
        totals.confirmed_deposits - totals.confirmed_withdrawals - totals.open_withdrawals
    )
    return dict(statuses)


__all__ = ["ALICE", "API_KEY", "BOB", "CAROL", "GUILD", "MOD", "POINT", "REALM", "START"]
