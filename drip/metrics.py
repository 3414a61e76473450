"""`pm_drip_*` Prometheus metrics. Helpers never raise: a metric never breaks a transfer."""

from __future__ import annotations

import contextlib

from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN
from prometheus_client import Counter, Gauge

REQUESTS = Counter(
    "pm_drip_requests_total",
    "Requests to the DRIP API by endpoint and outcome",
    ["endpoint", "outcome"],
)
CIRCUIT_STATE = Gauge(
    "pm_drip_circuit_state", "DRIP circuit breaker in this process: 0 closed, 1 half-open, 2 open"
)
CIRCUIT_REFUSALS = Counter(
    "pm_drip_circuit_refusals_total", "DRIP calls refused at once by the open circuit breaker"
)
TRANSFERS = Counter(
    "pm_drip_transfers_total", "DRIP transfers reaching a state", ["direction", "status"]
)
BACKLOG = Gauge("pm_drip_transfers_open", "DRIP transfers not settled yet, by status", ["status"])
BATCH_SIZE = Gauge("pm_drip_last_batch_size", "Updates in the worker's last DRIP batch")

_STATE_VALUE = {STATE_CLOSED: 0, STATE_HALF_OPEN: 1, STATE_OPEN: 2}


def request_observed(endpoint: str, outcome: str) -> None:
    with contextlib.suppress(Exception):
        REQUESTS.labels(endpoint, outcome).inc()


def breaker_observed(state: str) -> None:
    with contextlib.suppress(Exception):
        CIRCUIT_STATE.set(_STATE_VALUE.get(state, 0))


def breaker_refused() -> None:
    with contextlib.suppress(Exception):
        CIRCUIT_REFUSALS.inc()


def transfer_observed(direction: str, status: str, n: int = 1) -> None:
    with contextlib.suppress(Exception):
        TRANSFERS.labels(direction, status).inc(n)


def backlog_set(counts: dict[str, int]) -> None:
    with contextlib.suppress(Exception):
        for status, n in counts.items():
            BACKLOG.labels(status).set(n)


def batch_observed(size: int) -> None:
    with contextlib.suppress(Exception):
        BATCH_SIZE.set(size)
