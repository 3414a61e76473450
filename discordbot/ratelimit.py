"""Rate limits of DOMAIN §7 through Django's shared cache (Redis in production, so every shard and
process counts together): per member 10 requests and 5 trades a minute, per guild 100 requests a
minute and 10 new markets an hour. Fixed windows counted with `cache.add` + `cache.incr`, which
are atomic on Redis and on the local-memory cache. A cache outage opens the limits rather than
refusing members (settings make Redis errors non-fatal)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

MSG_LIMITED = "You're going too fast: {what}. Try again {when}."
MSG_GUILD_LIMITED = "This server is going too fast: {what}. Try again {when}."


@dataclass(frozen=True)
class Rule:
    scope: str  # "user" or "guild"
    bucket: str
    limit: int
    period: int  # seconds
    what: str


USER_REQUESTS = Rule("user", "requests", 10, 60, "at most 10 commands a minute")
USER_TRADES = Rule("user", "trades", 5, 60, "at most 5 trades a minute")
GUILD_REQUESTS = Rule("guild", "requests", 100, 60, "at most 100 commands a minute")
GUILD_MARKETS = Rule("guild", "markets", 10, 3600, "at most 10 new markets an hour")

REQUEST = (USER_REQUESTS, GUILD_REQUESTS)
TRADE = (*REQUEST, USER_TRADES)
CREATE = (*REQUEST, GUILD_MARKETS)


@dataclass(frozen=True)
class Limited:
    rule: Rule
    retry_at: float  # unix time

    @property
    def message(self) -> str:
        template = MSG_GUILD_LIMITED if self.rule.scope == "guild" else MSG_LIMITED
        return template.format(what=self.rule.what, when=f"<t:{int(self.retry_at) + 1}:R>")

    @property
    def retry_after(self) -> float:
        return max(0.0, self.retry_at - time.time())


def check(
    *, guild_id: int, user_id: int, rules: Sequence[Rule], now: float | None = None
) -> Limited | None:
    """Count one use against every rule; the first rule over its limit is returned (the use
    still counts, so hammering does not shorten the wait)."""
    now = time.time() if now is None else now
    namespace = getattr(settings, "DISCORD_RATELIMIT_NAMESPACE", "v1")
    first: Limited | None = None
    for rule in rules:
        owner = user_id if rule.scope == "user" else guild_id
        window = int(now // rule.period)
        key = f"rl:{namespace}:{rule.bucket}:{rule.scope}:{owner}:{window}"
        try:
            cache.add(key, 0, timeout=rule.period + 5)
            count = cache.incr(key)
        except Exception:  # cache down or key evicted between add and incr: fail open
            logger.warning("rate limit cache unavailable for %s", key, exc_info=True)
            continue
        if count is None:
            continue
        if count > rule.limit and first is None:
            first = Limited(rule=rule, retry_at=(window + 1) * rule.period)
    return first
