"""Prometheus metrics: business counters and gauges, bot metrics, and access to `/metrics`.

Every helper here swallows its own errors: a metric never breaks a trade or an interaction.
This module imports no domain app: domain code reports through `core.signals` (counted by the
receivers `OpsConfig.ready()` connects) and offers its numbers through `core.telemetry`.

Business counters (signals the market services send after commit)
    `trade_committed(mechanism, kind, amount)`
        → `pm_trades_total{mechanism,kind}`, `pm_points_traded_total{mechanism}`
    `market_transitioned(event, mechanism)` → `pm_markets_total{event,mechanism}`
        (event: created, closed, resolved, cancelled)
    `dashboard_publish_failed` → `pm_dashboard_publish_failures_total`

Business gauges (`metrics_refresh()`; after every scheduler tick, and before every scrape)
    Whatever the apps register with `core.telemetry.gauges_register` — today
    `pm_markets_open{mechanism}`, `pm_markets_pending_resolution_stale` (closed > 1 day, not
    settled) from `markets`, and `pm_points_in_circulation` (−Σ treasury balances),
    `pm_points_in_escrow` from `points` — exposed by one custom collector (`BUSINESS_GAUGES`)
    with the latest readings. Plus the verdict of the registered ledger audit:
    `pm_ledger_solvent` (1 when invariants L1–L4 hold, else 0), `pm_ledger_audit_violations`,
    `pm_ledger_audit_timestamp_seconds`. The audit runs at most every `METRICS_AUDIT_INTERVAL`
    seconds; its result is shared through the cache so every process reports the scheduler's
    verdict.

Dependencies
    `pm_dependency_up{dependency}` (database, migrations, cache; external checks by name) — set
    by every health check run, and every scrape runs the readiness checks.
    `pm_db_retries_total{operation,sqlstate}` — transient database errors retried by
    `points.db.retry_transient` (signal `transient_error_retried`).

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
import hmac
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core import telemetry
from core.telemetry import Reading
from ops.middleware import client_ip_from, ip_in

logger = logging.getLogger(__name__)

# --- Business counters ------------------------------------------------------------------------
TRADES = Counter("pm_trades_total", "Trades committed", ["mechanism", "kind"])
POINTS_TRADED = Counter("pm_points_traded_total", "Points moved by trades (gross)", ["mechanism"])
MARKET_TRANSITIONS = Counter(
    "pm_markets_total", "Markets created, closed, resolved or cancelled", ["event", "mechanism"]
)
DASHBOARD_PUBLISH_FAILURES = Counter(
    "pm_dashboard_publish_failures_total",
    "Market events the dashboard push could not hand to the channel layer (e.g. Redis down)",
)

# --- Dependencies --------------------------------------------------------------------------
DEPENDENCY_UP = Gauge(
    "pm_dependency_up", "1 when the last check of a dependency passed", ["dependency"]
)
DB_RETRIES = Counter(
    "pm_db_retries_total", "Transient database errors retried", ["operation", "sqlstate"]
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


# --- Counters (the receivers of core.signals call these) ------------------------------------


def trade_recorded(*, mechanism: str, kind: str, amount: int) -> None:
    try:
        TRADES.labels(mechanism, kind).inc()
        POINTS_TRADED.labels(mechanism).inc(amount)
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


class LatestReadings(Collector):
    """A custom collector exposing the latest readings of every registered gauge source (and of
    the ledger audit) as gauge families. `collect()` only reads memory: the readings are taken by
    `metrics_refresh()`, which scrapes run under a deadline, so a hung database can never hang
    an exposition. A source that fails keeps its last readings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readings: dict[str, list[Reading]] = {}

    def update(self, source: str, readings: list[Reading]) -> None:
        with self._lock:
            self._readings[source] = readings

    def readings(self) -> list[Reading]:
        with self._lock:
            return [r for _, rs in sorted(self._readings.items()) for r in rs]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}
        for reading in self.readings():
            family = families.get(reading.name)
            if family is None:
                family = GaugeMetricFamily(
                    reading.name, reading.documentation, labels=sorted(reading.labels)
                )
                families[reading.name] = family
            family.add_metric(
                [str(reading.labels[k]) for k in sorted(reading.labels)], reading.value
            )
        yield from families.values()


BUSINESS_GAUGES = LatestReadings()
REGISTRY.register(BUSINESS_GAUGES)  # once: Python imports this module once per process

AUDIT_CACHE_KEY = "pm:metrics:ledger-audit"
AUDIT_LOCK_KEY = "pm:metrics:ledger-audit-lock"
_audit_lock = threading.Lock()


@dataclass
class Refresh:
    """What `metrics_refresh()` read: the gauge readings and the audit verdict it reports."""

    readings: list[Reading] = field(default_factory=list)
    solvent: bool | None = None
    audit_violations: int | None = None
    audit_at: float | None = None


def _audit_readings(result: dict[str, Any]) -> list[Reading]:
    return [
        Reading(
            "pm_ledger_solvent",
            "1 when the ledger invariants L1–L4 hold, 0 when not",
            1 if result["ok"] else 0,
        ),
        Reading(
            "pm_ledger_audit_violations", "Violations found by the last audit", result["violations"]
        ),
        Reading(
            "pm_ledger_audit_timestamp_seconds",
            "When the last ledger audit finished (Unix time)",
            result["at"],
        ),
    ]


def _audit_interval() -> float:
    return float(getattr(settings, "METRICS_AUDIT_INTERVAL", 300))


def _audit_cached() -> dict[str, Any] | None:
    try:
        result = cache.get(AUDIT_CACHE_KEY)
    except Exception:
        return None
    return result if isinstance(result, dict) and "ok" in result else None


def ledger_audit_run() -> dict[str, Any] | None:
    """Run the registered ledger audit now, expose its verdict and share it via the cache.
    None when no app registered an audit."""
    audit = telemetry.ledger_audit_get()
    if audit is None:
        return None
    violations = audit()
    result = {"ok": not violations, "violations": len(violations), "at": time.time()}
    if violations:
        logger.error(
            "ledger audit failed: %d violations, first: %s", len(violations), violations[0]
        )
    BUSINESS_GAUGES.update("ledger-audit", _audit_readings(result))
    try:
        cache.set(AUDIT_CACHE_KEY, result, timeout=max(3600, int(4 * _audit_interval())))
    except Exception:
        logger.warning("could not share the ledger audit result through the cache")
    return result


def _audit_if_due(force: bool) -> dict[str, Any] | None:
    """The latest audit verdict, running the audit first when `force` or when the shared one is
    older than `METRICS_AUDIT_INTERVAL`. One audit at a time per process, and across processes
    by a short cache lock, so a fleet of web workers does not audit in a stampede."""
    cached = _audit_cached()
    if cached is not None and not force and time.time() - cached["at"] < _audit_interval():
        BUSINESS_GAUGES.update("ledger-audit", _audit_readings(cached))
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


def metrics_refresh(*, audit: bool | None = None) -> Refresh:
    """Read every registered gauge source again. `audit=None` runs the ledger audit when the
    last one is older than `METRICS_AUDIT_INTERVAL`; True runs it now; False never. A source
    that raises is logged and keeps its last readings; the others still refresh."""
    refresh = Refresh()
    for name, source in telemetry.gauge_sources():
        try:
            readings = list(source())
        except Exception:
            logger.exception("metrics: gauge source %s failed", name)
            continue
        BUSINESS_GAUGES.update(name, readings)
        refresh.readings += readings
    dependency_observed("database", True)
    result = None if audit is False else _audit_if_due(force=bool(audit))
    if result is not None:
        refresh.solvent = bool(result["ok"])
        refresh.audit_violations = int(result["violations"])
        refresh.audit_at = float(result["at"])
    logger.debug(
        "metrics refreshed: %d readings, solvent=%s", len(refresh.readings), refresh.solvent
    )
    return refresh


# --- Access ---------------------------------------------------------------------------------------


def metrics_access_allowed(remote_addr: str, forwarded_for: str | None, authorization: str) -> bool:
    """`/metrics` is for Prometheus: a bearer `METRICS_TOKEN` (when set) or a client address in
    `METRICS_ALLOWED_IPS` (addresses or CIDR blocks)."""
    token = getattr(settings, "METRICS_TOKEN", "")
    if token and authorization.startswith("Bearer "):
        given = authorization.removeprefix("Bearer ").strip()
        if hmac.compare_digest(given.encode(), token.encode()):
            return True
    client = client_ip_from(remote_addr, forwarded_for)
    return ip_in(client, list(getattr(settings, "METRICS_ALLOWED_IPS", [])))


# --- Receivers of core.signals (connected by OpsConfig.ready) ------------------------------------


def on_trade_committed(sender: Any, *, mechanism: str, kind: str, amount: int, **kw: Any) -> None:
    trade_recorded(mechanism=mechanism, kind=kind, amount=amount)


def on_market_transitioned(sender: Any, *, event: str, mechanism: str, **kw: Any) -> None:
    market_transition(event=event, mechanism=mechanism)


def on_dashboard_publish_failed(sender: Any, **kw: Any) -> None:
    dashboard_publish_failed()


def on_transient_error_retried(
    sender: Any, *, operation: str, sqlstate: str | None, **kw: Any
) -> None:
    db_retry_observed(operation=operation, sqlstate=sqlstate)


def on_scheduler_ticked(sender: Any, **kw: Any) -> None:
    try:
        metrics_refresh()
    except Exception:  # the scheduler's next tick must not depend on the metrics
        logger.exception("metrics refresh failed")
