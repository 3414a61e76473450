"""The HTTP face of operations: `/health/<probe>` and `/metrics`.

`/metrics` composes the two halves one way: it runs the readiness checks (`ops.health`, which
set `pm_dependency_up`), then refreshes the business gauges (`ops.metrics`) under a deadline, then
hands the exposition to django-prometheus' `ExportToDjangoView`. Neither `health` nor `metrics`
imports this module, so they never import each other in a circle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_http_methods
from django_prometheus.exports import ExportToDjangoView

from ops import health, metrics

logger = logging.getLogger(__name__)


def scrape_refresh() -> None:
    """Before an exposition: check the dependencies (`pm_dependency_up`, as `/health/ready`
    does), refresh the cheap business gauges and pick up the shared audit verdict — all under
    deadlines, so a hung database or Redis cannot hang the scrape."""
    timeout = float(getattr(settings, "METRICS_SCRAPE_TIMEOUT", 5.0))
    results = health.run_checks(health.ready_checks(), timeout=min(timeout, health.check_timeout()))
    if any(r.name == "database" and r.status == health.UNHEALTHY for r in results):
        return  # the business gauges keep their last values; the alert says why
    ok, error = health.run_with_deadline(
        lambda: metrics.metrics_refresh(audit=None), timeout=timeout
    )
    if not ok:
        metrics.dependency_observed("database", False)
        logger.warning("metrics: business gauges not refreshed: %s", error)


def exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition, exactly as django-prometheus exports it (this process,
    or every process in multiprocess mode)."""
    response = ExportToDjangoView(None)
    return response.content, response["Content-Type"]


MSG_METRICS_FORBIDDEN = (
    "Forbidden: /metrics is only served to addresses in METRICS_ALLOWED_IPS or with "
    "the METRICS_TOKEN bearer token.\n"
)


async def metrics_view(request: HttpRequest) -> HttpResponse:
    """`GET /metrics`: 403 unless the client may read it; else the exposition with fresh
    business gauges."""
    allowed = metrics.metrics_access_allowed(
        request.META.get("REMOTE_ADDR", ""),
        request.META.get("HTTP_X_FORWARDED_FOR"),
        request.META.get("HTTP_AUTHORIZATION", ""),
    )
    if not allowed:
        return HttpResponse(
            MSG_METRICS_FORBIDDEN, status=403, content_type="text/plain; charset=utf-8"
        )
    await asyncio.to_thread(scrape_refresh)
    response = ExportToDjangoView(request)
    response["Cache-Control"] = "no-store"
    return response


def _health_view(name: str) -> Callable[[HttpRequest], Coroutine[Any, Any, HttpResponse]]:
    @require_http_methods(["GET", "HEAD"])
    async def view(request: HttpRequest) -> HttpResponse:
        body, status = await asyncio.to_thread(health.probe, name)
        response = JsonResponse(body, status=status)
        response["Cache-Control"] = "no-store"
        # A 503 here is an answer, not a server error: keep Django from logging it at ERROR
        # (which the Sentry logging integration would turn into an event per probe).
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response

    view.__name__ = f"health_{name}"
    view.__doc__ = f"GET /health/{name}"
    return view


health_live = _health_view("live")
health_ready = _health_view("ready")
health_database = _health_view("database")
health_cache = _health_view("cache")
health_external = _health_view("external")
