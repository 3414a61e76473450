"""The bot process's own health and metrics server (`runbot --health-port`): the same probes
and the same `/metrics` as the web server, for a process that runs without it. Its readiness
includes the external checks (the gateway): a bot that is not connected is not ready."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from ops import health, metrics
from ops.views import exposition, scrape_refresh

logger = logging.getLogger(__name__)


def build_health_app(*, include_external_in_ready: bool = True) -> web.Application:
    """An aiohttp application serving /health/{live,ready,database,cache,external} and
    /metrics."""

    def json_response(body: dict[str, Any], status: int) -> web.Response:
        return web.Response(
            text=json.dumps(body),
            status=status,
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    def handler(name: str):
        async def handle(request: web.Request) -> web.Response:
            body, status = await asyncio.to_thread(
                health.probe, name, include_external_in_ready=include_external_in_ready
            )
            return json_response(body, status)

        return handle

    async def metrics_handler(request: web.Request) -> web.Response:
        allowed = metrics.metrics_access_allowed(
            request.remote or "",
            request.headers.get("X-Forwarded-For"),
            request.headers.get("Authorization", ""),
        )
        if not allowed:
            return web.Response(text="Forbidden\n", status=403)
        await asyncio.to_thread(scrape_refresh)
        body, content_type = exposition()
        # aiohttp wants the charset apart from the media type.
        media_type, _, params = content_type.partition(";")
        response = web.Response(body=body, content_type=media_type.strip())
        if "charset=" in params:
            response.charset = params.split("charset=")[1].strip()
        return response

    app = web.Application()
    for name in health.PROBES:
        app.router.add_get(f"/health/{name}", handler(name))
    app.router.add_get("/metrics", metrics_handler)
    return app


async def health_server_start(host: str, port: int) -> web.AppRunner:
    """Start `build_health_app()` on `host:port` in the running loop; returns the
    `aiohttp.web.AppRunner` (`await runner.cleanup()` stops it; `runner.addresses` tells the
    port when 0 was asked)."""
    runner = web.AppRunner(build_health_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    logger.info("health server on %s", runner.addresses)
    return runner
