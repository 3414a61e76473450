"""Prometheus metrics: business counters and gauges, bot metrics, and the `/metrics` view.

Every helper here swallows its own errors: a metric never breaks a trade or an interaction.

Business counters (market services call these after commit)
    `trade_recorded(guild_id=, mechanism=, kind=, amount=)`
        → `pm_trades_total{guild,mechanism,kind}`, `pm_points_traded_total{guild,mechanism}`
    `market_transition(event=, mechanism=)` → `pm_markets_total{event,mechanism}`
        (event: created, closed, resolved, cancelled)
    `dashboard_publish_failed()` → `pm_dashboard_publish_failures_total`

Business gauges (`metrics_refresh()`; the scheduler calls it after every tick, and every scrape
refreshes the cheap ones)
    `pm_markets_open{mechanism}`, `pm_markets_pending_resolution_stale` (closed > 1 day, not
    settled), `pm_points_in_circulation` (−Σ treasury balances), `pm_points_in_escrow`,
    `pm_ledger_solvent` (1 when invariants L1–L4 hold, else 0), `pm_ledger_audit_violations`,
    `pm_ledger_audit_timestamp_seconds`. The audit runs at most every `METRICS_AUDIT_INTERVAL`
    seconds; its result is shared through the cache so every process reports the scheduler's
    verdict.

Dependencies
    `pm_dependency_up{dependency}` (database, migrations, cache; external checks by name) — set
    by every health check run, and every scrape runs the readiness checks.
    `pm_db_retries_total{operation,sqlstate}` — transient database errors retried by
    `points.db.retry_transient`. `pm_circuit_state{name}` and `pm_circuit_refusals_total{name}`
    — `config.resilience.CircuitBreaker`.

Bot metrics (the Discord bot calls these)
    `interaction_observed(command, outcome, first_response_s, completion_s)`
        outcome: "ok", "refused" (a DomainError the user was told about) or "error";
        first_response_s: seconds from the interaction's creation to the first response (defer
        or message), None if none was sent; completion_s: seconds to the final reply.
        → `pm_bot_interactions_total{command,outcome}`,
          `pm_bot_interaction_first_response_seconds{command}` (histogram),
          `pm_bot_interaction_completion_seconds{command}` (histogram),
          `pm_bot_interactions_missed_3s_total{command}` (first response later than 3 s, or none)
    `ratelimit_refused(scope)` → `pm_bot_ratelimit_refusals_total{scope}` (scope: "user",
        "user_trades", "guild", "guild_markets", …)
    `notification_backlog_set(n)` → `pm_bot_notification_backlog` (market events not yet
        announced)
    `gateway_observed(latency_s, shards)` → `pm_bot_gateway_latency_seconds`,
        `pm_bot_shards_connected`

Plus django-prometheus: `django_http_*` (requests, latencies by view, responses by status),
`django_db_*`, `django_cache_*` and the process collector (`process_resident_memory_bytes`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

logger = logging.getLogger(__name__)

# --- Business counters ------------------------------------------------------------------------
TRADES = Counter("pm_trades_total", "Trades committed", ["guild", "mechanism", "kind"])
POINTS_TRADED = Counter(
    "pm_points_traded_total", "Points moved by trades (gross)", ["guild", "mechanism"]
)
MARKET_TRANSITIONS = Counter(
    "pm_markets_total", "Markets created, closed, resolved or cancelled", ["event", "mechanism"]
)
DASHBOARD_PUBLISH_FAILURES = Counter(
    "pm_dashboard_publish_failures_total",
    "Market events the dashboard push could not hand to the channel layer (e.g. Redis down)",
)

# --- Business gauges --------------------------------------------------------------------------
MARKETS_OPEN = Gauge("pm_markets_open", "Markets open for trading", ["mechanism"])
PENDING_RESOLUTIONS = Gauge(
    "pm_markets_pending_resolution_stale",
    "Closed markets still unresolved more than a day after closing",
)
POINTS_IN_CIRCULATION = Gauge(
    "pm_points_in_circulation", "Points issued by the treasuries (minus their balances)"
)
POINTS_IN_ESCROW = Gauge("pm_points_in_escrow", "Points held as collateral by market escrows")
SOLVENT = Gauge("pm_ledger_solvent", "1 when the ledger invariants L1–L4 hold, 0 when not")
AUDIT_VIOLATIONS = Gauge("pm_ledger_audit_violations", "Violations found by the last audit")
AUDIT_TIMESTAMP = Gauge(
    "pm_ledger_audit_timestamp_seconds", "When the last ledger audit finished (Unix time)"
)

# --- Dependencies and resilience --------------------------------------------------------------
DEPENDENCY_UP = Gauge(
    "pm_dependency_up", "1 when the last check of a dependency passed", ["dependency"]
)
DB_RETRIES = Counter(
    "pm_db_retries_total", "Transient database errors retried", ["operation", "sqlstate"]
)
CIRCUIT_STATE = Gauge(
    "pm_circuit_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open", ["name"]
)
CIRCUIT_REFUSALS = Counter(
    "pm_circuit_refusals_total", "Calls refused by an open circuit breaker", ["name"]
)

# --- Bot --------------------------------------------------------------------------------------
INTERACTION_OUTCOMES = ("ok", "refused", "error")
BOT_INTERACTIONS = Counter(
    "pm_bot_interactions_total", "Interactions handled", ["command", "outcome"]
)
BOT_FIRST_RESPONSE = Histogram(
    "pm_bot_interaction_first_response_seconds",
    "Time from an interaction's creation to its first response",
    ["command"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0),
)
BOT_COMPLETION = Histogram(
    "pm_bot_interaction_completion_seconds",
    "Time from an interaction's creation to its final reply",
    ["command"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)
BOT_MISSED_3S = Counter(
    "pm_bot_interactions_missed_3s_total",
    "Interactions whose first response came later than Discord's 3 s limit (or never)",
    ["command"],
)
BOT_RATELIMIT_REFUSALS = Counter(
    "pm_bot_ratelimit_refusals_total", "Requests refused by a rate limit", ["scope"]
)
BOT_NOTIFICATION_BACKLOG = Gauge(
    "pm_bot_notification_backlog", "Market events waiting to be announced in Discord"
)
BOT_PRE_ACK_BUDGET_EXCEEDED = Counter(
    "pm_bot_pre_ack_budget_exceeded_total",
    "Checks that must run before an interaction is acknowledged (rate limit, status) and were "
    "skipped because they ran out of their budget (the interaction went ahead: fail open)",
    ["step"],
)
BOT_NOTIFICATIONS = Counter(
    "pm_bot_notifications_total",
    "Notification deliveries finished, by lane (dm, channel) and status (sent, skipped, failed)",
    ["lane", "status"],
)
BOT_NOTIFICATION_RETRIES = Counter(
    "pm_bot_notification_retries_total",
    "Notification sends put back for later, by lane and reason (429, 40003, 5xx, network)",
    ["lane", "reason"],
)
BOT_GATEWAY_LATENCY = Gauge("pm_bot_gateway_latency_seconds", "Discord gateway heartbeat latency")
BOT_SHARDS_CONNECTED = Gauge("pm_bot_shards_connected", "Gateway shards connected")

DISCORD_FIRST_RESPONSE_LIMIT_S = 3.0


# --- Counters the services call -----------------------------------------------------------------


def trade_recorded(*, guild_id: int, mechanism: str, kind: str, amount: int) -> None:
    try:
        TRADES.labels(str(guild_id), mechanism, kind).inc()
        POINTS_TRADED.labels(str(guild_id), mechanism).inc(amount)
    except Exception:  # metrics never break a trade
        logger.exception("metrics: trade_recorded failed")


def market_transition(*, event: str, mechanism: str) -> None:
    try:
        MARKET_TRANSITIONS.labels(event, mechanism).inc()
    except Exception:
        logger.exception("metrics: market_transition failed")


def dashboard_publish_failed() -> None:
    try:
        DASHBOARD_PUBLISH_FAILURES.inc()
    except Exception:
        logger.exception("metrics: dashboard_publish_failed failed")


def db_retry_observed(*, operation: str, sqlstate: str | None) -> None:
    try:
        DB_RETRIES.labels(operation, sqlstate or "unknown").inc()
    except Exception:
        logger.exception("metrics: db_retry_observed failed")


def dependency_observed(dependency: str, up: bool) -> None:
    try:
        DEPENDENCY_UP.labels(dependency).set(1 if up else 0)
    except Exception:
        logger.exception("metrics: dependency_observed failed")


# --- Bot helpers ---------------------------------------------------------------------------------


def interaction_observed(
    command: str,
    outcome: str,
    first_response_s: float | None,
    completion_s: float | None,
) -> None:
    """Record one finished interaction (see the module docstring for the arguments)."""
    try:
        command = (command or "unknown")[:64]
        if outcome not in INTERACTION_OUTCOMES:
            outcome = "error"
        BOT_INTERACTIONS.labels(command, outcome).inc()
        if first_response_s is not None:
            BOT_FIRST_RESPONSE.labels(command).observe(max(0.0, first_response_s))
        if first_response_s is None or first_response_s > DISCORD_FIRST_RESPONSE_LIMIT_S:
            BOT_MISSED_3S.labels(command).inc()
        if completion_s is not None:
            BOT_COMPLETION.labels(command).observe(max(0.0, completion_s))
    except Exception:
        logger.exception("metrics: interaction_observed failed")


def ratelimit_refused(scope: str) -> None:
    try:
        BOT_RATELIMIT_REFUSALS.labels((scope or "unknown")[:32]).inc()
    except Exception:
        logger.exception("metrics: ratelimit_refused failed")


def pre_ack_budget_exceeded(step: str) -> None:
    try:
        BOT_PRE_ACK_BUDGET_EXCEEDED.labels((step or "unknown")[:32]).inc()
    except Exception:
        logger.exception("metrics: pre_ack_budget_exceeded failed")


def notification_finished(lane: str, status: str) -> None:
    try:
        BOT_NOTIFICATIONS.labels(lane[:16], status[:16]).inc()
    except Exception:
        logger.exception("metrics: notification_finished failed")


def notification_retried(lane: str, reason: str) -> None:
    try:
        BOT_NOTIFICATION_RETRIES.labels(lane[:16], reason[:16]).inc()
    except Exception:
        logger.exception("metrics: notification_retried failed")


def notification_backlog_set(n: int) -> None:
    try:
        BOT_NOTIFICATION_BACKLOG.set(max(0, n))
    except Exception:
        logger.exception("metrics: notification_backlog_set failed")


def gateway_observed(latency_s: float | None, shards: int) -> None:
    """`latency_s` is `bot.latency` (NaN or inf before the first heartbeat: not recorded)."""
    try:
        if latency_s is not None and 0 <= latency_s < float("inf"):
            BOT_GATEWAY_LATENCY.set(latency_s)
        BOT_SHARDS_CONNECTED.set(max(0, shards))
    except Exception:
        logger.exception("metrics: gateway_observed failed")


# --- Business gauges -----------------------------------------------------------------------------

AUDIT_CACHE_KEY = "pm:metrics:ledger-audit"
AUDIT_LOCK_KEY = "pm:metrics:ledger-audit-lock"
_audit_lock = threading.Lock()


@dataclass
class BusinessSnapshot:
    markets_open: dict[str, int]
    pending_resolutions: int
    points_in_circulation: int
    points_in_escrow: int
    solvent: bool | None = None
    audit_violations: int | None = None
    audit_at: float | None = None


def business_snapshot(*, now: dt.datetime | None = None) -> BusinessSnapshot:
    """The cheap business gauges, from four aggregate queries."""
    from django.db.models import Count, Sum
    from django.utils import timezone

    from markets.models import Market
    from points.models import Account

    now = now or timezone.now()
    open_by_mechanism = dict(
        Market.objects.filter(status=Market.Status.OPEN)
        .values_list("mechanism")
        .annotate(n=Count("id"))
        .order_by()
    )
    pending = Market.objects.filter(
        status=Market.Status.CLOSED, closed_at__lt=now - dt.timedelta(days=1)
    ).count()
    sums = dict(
        Account.objects.filter(kind__in=[Account.Kind.TREASURY, Account.Kind.ESCROW])
        .values_list("kind")
        .annotate(total=Sum("balance"))
        .order_by()
    )
    return BusinessSnapshot(
        markets_open={m: open_by_mechanism.get(m, 0) for m in Market.Mechanism.values},
        pending_resolutions=pending,
        points_in_circulation=-(sums.get(Account.Kind.TREASURY) or 0),
        points_in_escrow=sums.get(Account.Kind.ESCROW) or 0,
    )


def _gauges_set(snapshot: BusinessSnapshot) -> None:
    for mechanism, n in snapshot.markets_open.items():
        MARKETS_OPEN.labels(mechanism).set(n)
    PENDING_RESOLUTIONS.set(snapshot.pending_resolutions)
    POINTS_IN_CIRCULATION.set(snapshot.points_in_circulation)
    POINTS_IN_ESCROW.set(snapshot.points_in_escrow)


def _audit_gauges_set(result: dict[str, Any]) -> None:
    SOLVENT.set(1 if result["ok"] else 0)
    AUDIT_VIOLATIONS.set(result["violations"])
    AUDIT_TIMESTAMP.set(result["at"])


def _audit_interval() -> float:
    from django.conf import settings

    return float(getattr(settings, "METRICS_AUDIT_INTERVAL", 300))


def _audit_cached() -> dict[str, Any] | None:
    from django.core.cache import cache

    try:
        result = cache.get(AUDIT_CACHE_KEY)
    except Exception:
        return None
    return result if isinstance(result, dict) and "ok" in result else None


def ledger_audit_run() -> dict[str, Any]:
    """Run the ledger audit now, set the solvency gauges and share the verdict via the cache."""
    from django.core.cache import cache

    from points.audit import ledger_audit

    report = ledger_audit()
    result = {"ok": report.ok, "violations": len(report.violations), "at": time.time()}
    if not report.ok:
        logger.error(
            "ledger audit failed: %d violations, first: %s",
            len(report.violations),
            report.violations[0],
        )
    _audit_gauges_set(result)
    try:
        cache.set(AUDIT_CACHE_KEY, result, timeout=max(3600, int(4 * _audit_interval())))
    except Exception:
        logger.warning("could not share the ledger audit result through the cache")
    return result


def _audit_if_due(force: bool) -> dict[str, Any] | None:
    """The latest audit verdict, running the audit first when `force` or when the shared one is
    older than `METRICS_AUDIT_INTERVAL`. One audit at a time per process, and across processes
    by a short cache lock, so a fleet of web workers does not audit in a stampede."""
    from django.core.cache import cache

    cached = _audit_cached()
    fresh = cached is not None and time.time() - cached["at"] < _audit_interval()
    if fresh and not force:
        _audit_gauges_set(cached)
        return cached
    if not _audit_lock.acquire(blocking=force):
        return cached
    locked = False
    try:
        if not force:
            try:
                locked = bool(cache.add(AUDIT_LOCK_KEY, 1, timeout=60))
            except Exception:
                locked = True  # no shared cache: this process decides alone
            if not locked:
                return cached  # another process is auditing right now
        return ledger_audit_run()
    finally:
        if locked:
            with contextlib.suppress(Exception):
                cache.delete(AUDIT_LOCK_KEY)
        _audit_lock.release()


def metrics_refresh(
    *, audit: bool | None = None, now: dt.datetime | None = None
) -> BusinessSnapshot:
    """Recompute the business gauges. `audit=None` runs the ledger audit when the last one is
    older than `METRICS_AUDIT_INTERVAL`; True runs it now; False never. The scheduler calls this
    after every tick."""
    snapshot = business_snapshot(now=now)
    _gauges_set(snapshot)
    dependency_observed("database", True)
    result = None if audit is False else _audit_if_due(force=bool(audit))
    if result is not None:
        snapshot.solvent = bool(result["ok"])
        snapshot.audit_violations = int(result["violations"])
        snapshot.audit_at = float(result["at"])
    logger.debug("metrics refreshed: %s", asdict(snapshot))
    return snapshot


# --- Exposition -----------------------------------------------------------------------------------


def metrics_access_allowed(remote_addr: str, forwarded_for: str | None, authorization: str) -> bool:
    """`/metrics` is for Prometheus: a bearer `METRICS_TOKEN` (when set) or a client address in
    `METRICS_ALLOWED_IPS` (addresses or CIDR blocks)."""
    from django.conf import settings

    from config.middleware import client_ip_from, ip_in

    token = getattr(settings, "METRICS_TOKEN", "")
    if token and authorization.startswith("Bearer "):
        given = authorization.removeprefix("Bearer ").strip()
        if hmac.compare_digest(given.encode(), token.encode()):
            return True
    client = client_ip_from(remote_addr, forwarded_for)
    return ip_in(client, list(getattr(settings, "METRICS_ALLOWED_IPS", [])))


def scrape_refresh() -> None:
    """Before an exposition: check the dependencies (`pm_dependency_up`, as `/health/ready`
    does), refresh the cheap business gauges and pick up the shared audit verdict — all under
    deadlines, so a hung database or Redis cannot hang the scrape."""
    from django.conf import settings

    from config import health

    timeout = float(getattr(settings, "METRICS_SCRAPE_TIMEOUT", 5.0))
    results = health.run_checks(health.ready_checks(), timeout=min(timeout, health.check_timeout()))
    if any(r.name == "database" and r.status == health.UNHEALTHY for r in results):
        return  # the business gauges keep their last values; the alert says why
    ok, error = health.run_with_deadline(lambda: metrics_refresh(audit=None), timeout=timeout)
    if not ok:
        dependency_observed("database", False)
        logger.warning("metrics: business gauges not refreshed: %s", error)


def metrics_exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition of this process (or of every process in multiprocess
    mode), as django-prometheus exports it."""
    import os

    import prometheus_client
    from prometheus_client import multiprocess

    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prometheus_client.REGISTRY
    return prometheus_client.generate_latest(registry), prometheus_client.CONTENT_TYPE_LATEST


async def metrics_view(request):
    """`GET /metrics`: 403 unless the client may read it; else the exposition with fresh
    business gauges."""
    import asyncio

    from django.http import HttpResponse

    allowed = metrics_access_allowed(
        request.META.get("REMOTE_ADDR", ""),
        request.META.get("HTTP_X_FORWARDED_FOR"),
        request.META.get("HTTP_AUTHORIZATION", ""),
    )
    if not allowed:
        return HttpResponse(
            "Forbidden: /metrics is only served to addresses in METRICS_ALLOWED_IPS or with "
            "the METRICS_TOKEN bearer token.\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    await asyncio.to_thread(scrape_refresh)
    body, content_type = metrics_exposition()
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
