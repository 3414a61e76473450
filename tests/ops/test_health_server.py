"""The bot process's own health and metrics server (`build_health_app`), started for real on
127.0.0.1 and queried over HTTP."""

from __future__ import annotations

import aiohttp
import pytest

from ops import health, metrics
from ops.server import health_server_start
from tests.ops.conftest import metric, parse_metrics

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def server():
    runner = await health_server_start("127.0.0.1", 0)
    host, port = runner.addresses[0][:2]
    async with aiohttp.ClientSession(
        base_url=f"http://{host}:{port}", timeout=aiohttp.ClientTimeout(total=10)
    ) as session:
        yield session
    await runner.cleanup()
    health.unregister_external_check("discord")


async def get_json(session, path):
    async with session.get(path) as response:
        return response.status, await response.json(), response.headers


async def test_live_and_ready_without_the_web_server(server):
    status, body, headers = await get_json(server, "/health/live")
    assert status == 200 and body["status"] == "healthy"
    assert body["checks"][0]["details"]["pid"] > 0
    assert headers["Content-Type"].startswith("application/json")

    status, body, _ = await get_json(server, "/health/ready")
    assert status == 200
    assert [c["name"] for c in body["checks"]] == ["database", "migrations", "cache"]


async def test_bot_readiness_includes_the_gateway(server):
    connected = {"ok": True}
    health.register_external_check(
        "discord",
        lambda: ("healthy", {"shards": 1}) if connected["ok"] else ("unhealthy", "gateway down"),
    )
    status, body, _ = await get_json(server, "/health/ready")
    assert status == 200 and body["checks"][-1]["name"] == "discord"

    connected["ok"] = False
    status, body, _ = await get_json(server, "/health/ready")
    assert status == 503 and body["status"] == "unhealthy"
    assert body["checks"][-1]["details"] == "gateway down"
    status, body, _ = await get_json(server, "/health/external")
    assert status == 503


async def test_metrics_on_the_bot_port(server, settings):
    metrics.interaction_observed("balance", "ok", 0.2, 0.3)
    async with server.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        samples = parse_metrics(await response.text())
    assert metric(samples, "pm_bot_interactions_total", command="balance", outcome="ok") >= 1
    assert metric(samples, "pm_ledger_solvent") == 1

    settings.METRICS_ALLOWED_IPS = []
    async with server.get("/metrics") as response:
        assert response.status == 403
