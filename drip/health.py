"""The `drip` check of `/health/external` (registered by the processes that talk to DRIP: the
bot's drip cog and the worker). Degraded, never unhealthy: DRIP being down must not make an
orchestrator restart the bot, whose markets run on the local ledger."""

from __future__ import annotations

from typing import Any

from circuitbreaker import CircuitBreaker

from .client import breaker_state
from .selectors import drip_backlog

HEALTHY, DEGRADED = "healthy", "degraded"


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
