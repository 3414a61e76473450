"""The per-realm window every process shares through Redis (docs/drip.md, "Rate limits"), and
the migration that takes realm ids to DRIP's 24-hex form."""

from __future__ import annotations

import importlib
import uuid

import pytest
from django.apps import apps

from drip import ratelimit
from drip.models import DripLink
from drip.ratelimit import RealmLimiter

from .conftest import WallClock

REALM = "64b7f0c2a1d3e4f5a6b7c8d9"


@pytest.mark.redis
def test_the_window_lives_in_redis_so_every_process_counts_together(settings):
    settings.DRIP_RATELIMIT_NAMESPACE = uuid.uuid4().hex
    settings.DRIP_RATE_LIMIT_PER_MINUTE, settings.DRIP_RATE_WINDOW_SECONDS = 3, 60.0
    clock = WallClock()
    bot, worker = RealmLimiter(clock=clock), RealmLimiter(clock=clock)
    assert bot.acquire(REALM) == 0 and worker.acquire(REALM) == 0
    ratelimit.local_reset()  # nothing is counted in this process: it is all in Redis
    clock.advance(1)
    assert bot.acquire(REALM) == 0
    assert worker.acquire(REALM) == 59  # the fourth request waits for the oldest to age
    assert bot.blocked_for(REALM) == 59
    assert RealmLimiter(clock=clock).acquire("64b7f0c2a1d3e4f5a6b7c8da") == 0  # its own
    clock.advance(59)
    assert worker.acquire(REALM) == 0  # the two oldest aged out: room again


@pytest.mark.redis
def test_drips_reset_header_blocks_every_process_until_that_time(settings):
    settings.DRIP_RATELIMIT_NAMESPACE = uuid.uuid4().hex
    clock = WallClock()
    reset = int(clock()) + 4
    RealmLimiter(clock=clock).observe(
        REALM, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}, 200, None
    )
    ratelimit.local_reset()
    assert RealmLimiter(clock=clock).acquire(REALM) == 4
    RealmLimiter(clock=clock).observe(REALM, {}, 429, 9.0)  # a 429's Retry-After extends it
    assert RealmLimiter(clock=clock).blocked_for(REALM) == 9
    clock.advance(9)
    assert RealmLimiter(clock=clock).acquire(REALM) == 0


LOCAL_CACHE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def test_without_redis_a_new_namespace_starts_the_realms_count_afresh(settings):
    """The count in this process (no Redis) is namespaced like Redis's keys: each test's own
    `DRIP_RATELIMIT_NAMESPACE` meets a realm nobody used, whatever an earlier test spent or
    DRIP blocked (`make test` with no environment refused 11 DRIP tests before)."""
    settings.CACHES = LOCAL_CACHE
    settings.DRIP_RATE_LIMIT_PER_MINUTE, settings.DRIP_RATE_WINDOW_SECONDS = 1, 60.0
    settings.DRIP_RATELIMIT_NAMESPACE = uuid.uuid4().hex
    clock = WallClock()
    used = RealmLimiter(clock=clock)
    assert used.acquire(REALM) == 0 and used.acquire(REALM) == 60  # one a minute: used up
    used.observe(REALM, {}, 429, 30.0)
    assert used.blocked_for(REALM) == 30

    settings.DRIP_RATELIMIT_NAMESPACE = uuid.uuid4().hex  # the next test's own
    fresh = RealmLimiter(clock=clock)
    assert fresh.blocked_for(REALM) == 0 and fresh.acquire(REALM) == 0


@pytest.mark.django_db
def test_links_with_a_realm_id_drip_cannot_have_are_disabled_not_deleted():
    migration = importlib.import_module("drip.migrations.0003_initiator_and_realm_ids")
    DripLink.objects.create(guild_id=1, realm_id="realm-test-1", api_key_encrypted="x")
    DripLink.objects.create(guild_id=2, realm_id=REALM, api_key_encrypted="x")
    migration.disable_bad_realm_ids(apps, None)
    bad, good = DripLink.objects.get(guild_id=1), DripLink.objects.get(guild_id=2)
    assert (bad.enabled, good.enabled) == (False, True)
    assert "24 hex characters" in bad.last_error and "/settings drip" in bad.last_error
    assert good.last_error == ""
