"""The `drip` check of `/health/external` (registered by the processes that talk to DRIP: the
bot's drip cog and the worker). Degraded, never unhealthy: DRIP being down must not make an
orchestrator restart the bot, whose markets run on the local ledger."""

from __future__ import annotations

from typing import Any

from circuitbreaker import CircuitBreaker

from .client import breaker_state
from .selectors import drip_backlog

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"


def drip_health(breaker: CircuitBreaker) -> tuple[str, dict[str, Any]]:
    """Breaker state of this process, and the outbox: withdrawals waiting, in-doubt transfers
    waiting for a moderator."""
    details: dict[str, Any] = {"circuit": breaker_state(breaker)}
    details["transfers"] = drip_backlog()
    status = HEALTHY
    if details["circuit"]["state"] != "closed":
        status = DEGRADED
        details["message"] = "DRIP is failing; deposits are refused at once until it recovers"
    elif details["transfers"].get("in_doubt"):
        status = DEGRADED
        details["message"] = "DRIP transfers in doubt wait for a moderator (admin: DRIP transfers)"
    return status, details


def worker_ready() -> tuple[str, dict[str, Any]]:
    """The worker's own readiness check (its `/health/ready`): unhealthy while
    PM_ENCRYPTION_KEY is malformed or a linked guild's key cannot be decrypted — withdrawals
    wait until a moderator or the host acts. Host words; the key never appears."""
    from . import crypto, worker

    problem = crypto.key_problem()
    if problem:
        return UNHEALTHY, {"message": problem}
    if worker.key_problems:
        return UNHEALTHY, {
            "message": "stored DRIP API keys cannot be decrypted for some guilds",
            "guilds": {str(g): text for g, text in sorted(worker.key_problems.items())},
        }
    return HEALTHY, {}


def worker_readiness() -> tuple[dict[str, Any], int]:
    """`/health/ready` of the worker: the database answers and the DRIP keys can be used. The
    same JSON shape as the web server's probes (docs/deploy.md); 503 when unhealthy."""
    import datetime as dt

    from django.db import connection

    checks = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks.append({"name": "database", "status": HEALTHY, "details": {}})
    except Exception as exc:  # the probe reports it; it must not crash the server
        checks.append(
            {"name": "database", "status": UNHEALTHY, "details": {"error": type(exc).__name__}}
        )
    finally:
        connection.close()
    status, details = worker_ready()
    checks.append({"name": "drip_key", "status": status, "details": details})
    overall = UNHEALTHY if any(c["status"] == UNHEALTHY for c in checks) else HEALTHY
    body = {
        "status": overall,
        "checks": checks,
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
    }
    return body, 503 if overall == UNHEALTHY else 200


async def worker_health_start(host: str, port: int) -> Any:
    """Serve `/health/live` and `/health/ready` for the worker process (an aiohttp runner;
    `await runner.cleanup()` stops it)."""
    import asyncio
    import json

    from aiohttp import web

    async def ready(request: web.Request) -> web.Response:
        body, status = await asyncio.to_thread(worker_readiness)
        return web.Response(text=json.dumps(body), status=status, content_type="application/json")

    async def live(request: web.Request) -> web.Response:
        return web.json_response({"status": HEALTHY})

    app = web.Application()
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
