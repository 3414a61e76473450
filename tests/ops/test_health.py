"""Health endpoints (issue 7): healthy with everything up; unhealthy — and fast — when the
database or the cache is unreachable or hangs."""

from __future__ import annotations

import threading
import time

import pytest
from django.urls import reverse
from prometheus_client import REGISTRY

from ops import health
from tests.ops.conftest import redis_caches

pytestmark = pytest.mark.django_db(transaction=True)

ENDPOINTS = ["live", "ready", "database", "cache", "external"]


def get(client, name: str):
    started = time.perf_counter()
    response = client.get(f"/health/{name}")
    return response, time.perf_counter() - started


def checks_by_name(body: dict) -> dict[str, dict]:
    return {c["name"]: c for c in body["checks"]}


def dependency_up(name: str) -> float | None:
    return REGISTRY.get_sample_value("pm_dependency_up", {"dependency": name})


@pytest.fixture
def external_check():
    """Register external checks for one test; unregistered (and released) afterwards."""
    names: list[str] = []
    release = threading.Event()

    def register(name, fn):
        names.append(name)
        health.register_external_check(name, fn)

    yield register, release
    release.set()
    for name in names:
        health.unregister_external_check(name)


@pytest.mark.parametrize("name", ENDPOINTS)
def test_every_endpoint_is_healthy_with_everything_up(client, name):
    response, _ = get(client, name)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["status"] == "healthy"
    assert set(body) == {"status", "checks", "timestamp"}
    assert body["checks"], "every answer names what it checked"
    for check in body["checks"]:
        assert set(check) == {"name", "status", "response_time", "details"}
        assert check["status"] == "healthy"
        assert 0 <= check["response_time"] < 2


def test_ready_checks_database_migrations_and_cache(client):
    checks = checks_by_name(get(client, "ready")[0].json())
    assert list(checks) == ["database", "migrations", "cache"]
    assert checks["database"]["details"]["alias"] == "default"
    assert checks["migrations"]["details"] == "all migrations applied"
    assert dependency_up("database") == 1 and dependency_up("cache") == 1


def test_urls_are_the_documented_ones():
    assert reverse("health-live") == "/health/live"
    assert reverse("health-ready") == "/health/ready"
    assert reverse("metrics") == "/metrics"


def test_only_get_and_head(client):
    assert client.post("/health/live").status_code == 405
    assert client.head("/health/live").status_code == 200


def test_health_is_served_over_plain_http_even_with_ssl_redirect(client, settings):
    """Probes talk HTTP to the app server behind the TLS proxy: no redirect for them."""
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/health/live").status_code == 200
    assert client.get("/admin/login/").status_code == 301


def test_ready_is_503_fast_when_the_database_refuses(
    client, settings, health_database_at, closed_port
):
    settings.HEALTH_CHECK_TIMEOUT = 1.0
    health_database_at(closed_port)
    response, elapsed = get(client, "ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    checks = checks_by_name(body)
    assert checks["database"]["status"] == "unhealthy"
    assert checks["database"]["details"].startswith("OperationalError"), checks
    assert checks["migrations"]["status"] == "unhealthy"
    assert checks["cache"]["status"] == "healthy"
    assert elapsed < 1.5
    assert dependency_up("database") == 0


def test_database_check_gives_up_at_its_deadline_when_the_database_hangs(
    client, settings, health_database_at, blackhole_port, vendor
):
    if vendor != "postgresql":
        pytest.skip("a hanging database needs a network database")
    settings.HEALTH_CHECK_TIMEOUT = 0.5
    health_database_at(blackhole_port)  # accepts TCP, never answers; connect_timeout is 5 s
    response, elapsed = get(client, "ready")
    assert response.status_code == 503
    checks = checks_by_name(response.json())
    assert checks["database"]["details"] == "no answer within 0.5s"
    assert checks["cache"]["status"] == "healthy"
    assert 0.45 < elapsed < 1.5, elapsed


def test_ready_is_503_while_migrations_are_unapplied(client, health_database_at, tmp_path):
    health_database_at(empty_sqlite=str(tmp_path / "fresh.sqlite3"))
    response, _ = get(client, "ready")
    assert response.status_code == 503
    checks = checks_by_name(response.json())
    assert checks["database"]["status"] == "healthy"
    migrations = checks["migrations"]
    assert migrations["status"] == "unhealthy"
    assert "contenttypes.0001_initial" in migrations["details"]["unapplied"]
    assert migrations["details"]["count"] >= 5


@pytest.mark.redis
def test_ready_is_503_fast_once_redis_is_stopped(client, settings, own_redis):
    proc, port = own_redis
    settings.CACHES = redis_caches(f"redis://127.0.0.1:{port}/0")
    settings.HEALTH_CHECK_TIMEOUT = 1.5
    response, _ = get(client, "ready")
    assert response.status_code == 200, response.json()
    assert checks_by_name(response.json())["cache"]["details"]["backend"] == "RedisCache"

    proc.kill()
    proc.wait(5)
    response, elapsed = get(client, "ready")
    assert response.status_code == 503
    checks = checks_by_name(response.json())
    assert checks["cache"]["status"] == "unhealthy"
    assert "ConnectionError" in checks["cache"]["details"] or "refused" in str(checks["cache"])
    assert checks["database"]["status"] == "healthy"
    assert elapsed < 2.0
    assert get(client, "cache")[0].status_code == 503


@pytest.mark.redis
def test_cache_check_gives_up_at_its_deadline_when_redis_hangs(client, settings, blackhole_port):
    settings.CACHES = redis_caches(f"redis://127.0.0.1:{blackhole_port}/0")
    settings.HEALTH_CHECK_TIMEOUT = 0.5
    response, elapsed = get(client, "cache")
    assert response.status_code == 503
    assert response.json()["checks"][0]["details"] == "no answer within 0.5s"
    assert elapsed < 1.0


def test_external_without_a_bot_says_so(client):
    body = get(client, "external")[0].json()
    assert body["status"] == "healthy"
    assert body["checks"] == [
        {
            "name": "discord",
            "status": "healthy",
            "response_time": body["checks"][0]["response_time"],
            "details": "bot not running in this process",
        }
    ]


def test_external_reports_registered_checks(client, external_check):
    register, _ = external_check
    register("discord", lambda: ("healthy", {"latency_ms": 42, "shards": 1}))
    register("drip", lambda: ("degraded", "slow answers"))
    response, _ = get(client, "external")
    assert response.status_code == 200  # degraded still serves
    body = response.json()
    assert body["status"] == "degraded"
    assert checks_by_name(body)["discord"]["details"] == {"latency_ms": 42, "shards": 1}
    assert dependency_up("drip") == 1


def test_external_check_that_raises_or_hangs_is_unhealthy_at_the_deadline(
    client, settings, external_check
):
    register, release = external_check
    settings.HEALTH_CHECK_TIMEOUT = 0.3

    def gateway_gone():
        raise RuntimeError("gateway disconnected")

    register("discord", gateway_gone)
    register("drip", lambda: release.wait(10))
    response, elapsed = get(client, "external")
    assert response.status_code == 503
    checks = checks_by_name(response.json())
    assert checks["discord"]["details"] == "RuntimeError: gateway disconnected"
    assert checks["drip"]["details"] == "no answer within 0.3s"
    assert elapsed < 1.0


def test_hung_checks_cannot_pile_up_threads(settings, external_check):
    register, release = external_check
    settings.HEALTH_MAX_INFLIGHT = 2
    register("stuck", lambda: release.wait(10))
    first = health.run_checks(health.external_checks(), timeout=0.1)
    second = health.run_checks(health.external_checks(), timeout=0.1)
    third = health.run_checks(health.external_checks(), timeout=0.1)
    assert [r[0].details for r in (first, second)] == ["no answer within 0.1s"] * 2
    assert third[0].status == "unhealthy"
    assert "too many earlier checks" in third[0].details
    release.set()
    time.sleep(0.2)
    assert health.run_checks([("ok", lambda: True)], timeout=1)[0].status == "healthy"


def test_pool_watch_reports_calls_stuck_past_the_budget():
    """A stalled pool (issue 12): degraded while some worker is stuck, unhealthy when all are."""
    import time as _time

    from ops.health import PoolWatch

    watch = PoolWatch(workers=2, stall_after=0.05)
    assert watch.check()[0] == "healthy"
    first = watch.started()
    _time.sleep(0.1)
    status, details = watch.check()
    assert status == "degraded" and details["in_flight"] == details["stalled"] == 1
    assert details["oldest_seconds"] >= 0.1
    second = watch.started()
    _time.sleep(0.1)
    status, details = watch.check()
    assert status == "unhealthy" and details["stalled"] == 2
    watch.finished(first)
    watch.finished(second)
    assert watch.check()[0] == "healthy"
