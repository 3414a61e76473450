"""The bot's metrics, through the hooks `ops.metrics` defines (they never raise). Looked up at
call time so the bot keeps working against an older `ops.metrics` without them."""

from __future__ import annotations

import logging

from ops import metrics

logger = logging.getLogger(__name__)

_SCOPES = {
    ("requests", "user"): "user",
    ("trades", "user"): "user_trades",
    ("requests", "guild"): "guild",
    ("markets", "guild"): "guild_markets",
}


def _call(name: str, *args, **kwargs) -> None:
    hook = getattr(metrics, name, None)
    if hook is None:
        return
    try:
        hook(*args, **kwargs)
    except Exception:  # metrics never break an interaction
        logger.exception("metrics hook %s failed", name)


def interaction_observed(action: str, outcome: str, first_s: float | None, total_s: float) -> None:
    _call("interaction_observed", action, outcome, first_s, total_s)


def rate_limited(bucket: str, scope: str) -> None:
    _call("ratelimit_refused", _SCOPES.get((bucket, scope), f"{scope}_{bucket}"))


def notification_backlog(n: int) -> None:
    _call("notification_backlog_set", n)


def gateway(latency_s: float | None, shards: int) -> None:
    _call("gateway_observed", latency_s, shards)
