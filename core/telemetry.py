"""Where apps offer their business numbers to whoever exports them.

The app that owns a number registers a source for it in its `AppConfig.ready()`; `ops` reads the
sources when it refreshes the gauges, so `ops` never imports a domain app and a domain app never
imports `ops`:

    gauges_register("markets", market_gauges)          # () -> Iterable[Reading]
    ledger_audit_register(ledger_violations)           # () -> list of violation texts

A source runs on the caller's thread and may query the database; it must be cheap (a few
aggregate queries). The ledger audit is expensive: `ops` runs it at most every
`METRICS_AUDIT_INTERVAL` seconds and shares its verdict between processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Reading:
    """One gauge sample: a metric name (`pm_…`), its help text, the value and its labels."""

    name: str
    documentation: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


GaugeSource = Callable[[], Iterable[Reading]]
LedgerAudit = Callable[[], list[str]]

_lock = threading.Lock()
_gauge_sources: dict[str, GaugeSource] = {}
_ledger_audit: list[LedgerAudit] = []


def gauges_register(name: str, source: GaugeSource) -> None:
    """Add (or replace) the gauge source called `name`."""
    with _lock:
        _gauge_sources[name] = source


def gauges_unregister(name: str) -> None:
    with _lock:
        _gauge_sources.pop(name, None)


def gauge_sources() -> list[tuple[str, GaugeSource]]:
    with _lock:
        return sorted(_gauge_sources.items())


def ledger_audit_register(audit: LedgerAudit) -> None:
    """Set the function that audits the ledger: it returns the violations found (none: solvent)."""
    with _lock:
        _ledger_audit[:] = [audit]


def ledger_audit_get() -> LedgerAudit | None:
    with _lock:
        return _ledger_audit[0] if _ledger_audit else None
