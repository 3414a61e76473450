"""Business metrics (Prometheus). Services call these after commit; they never raise."""

from __future__ import annotations

import logging

from prometheus_client import Counter

logger = logging.getLogger(__name__)

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
