"""Rate limits of DOMAIN §7: per member 10 requests and 5 trades a minute, per guild 100 requests
a minute and 10 new markets an hour. The counting is django-ratelimit's (`get_usage`, the same
core that guards the admin login), in the cache `RATELIMIT_USE_CACHE` names: Redis in production,
so every shard and process counts together. This module only holds the rule table, says whose
budget a rule spends (a key callable), and words the refusal.

django-ratelimit counts in fixed windows of each rule's period; every key's window is offset by
a hash of the key (its jitter), so members' windows do not all end in the same second. Its only
clock is `django_ratelimit.core.time.time()`: tests set that clock instead of waiting for a
window to pass. A cache outage opens the limits rather than refusing members: errors the cache
swallows follow `RATELIMIT_FAIL_OPEN` (on by default), errors it raises are logged and skipped.
`RATELIMIT_ENABLE = False` turns these limits off together with the admin login's."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from django.conf import settings
from django_ratelimit import core

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
    metric_scope: str
    """The `scope` label of `pm_bot_ratelimit_refusals_total` when this rule refuses."""

    @property
    def group(self) -> str:
        """django-ratelimit's group: the rule's own counters, apart from every other rule's."""
        return f"discordbot.{self.bucket}.{self.scope}"


USER_REQUESTS = Rule("user", "requests", 10, 60, "at most 10 commands a minute", "user")
USER_TRADES = Rule("user", "trades", 5, 60, "at most 5 trades a minute", "user_trades")
GUILD_REQUESTS = Rule("guild", "requests", 100, 60, "at most 100 commands a minute", "guild")
GUILD_MARKETS = Rule(
    "guild", "markets", 10, 3600, "at most 10 new markets an hour", "guild_markets"
)

REQUEST = (USER_REQUESTS, GUILD_REQUESTS)
TRADE = (*REQUEST, USER_TRADES)
CREATE = (*REQUEST, GUILD_MARKETS)


def with_guild_limit(rules: Sequence[Rule], per_minute: int) -> tuple[Rule, ...]:
    """`rules` with the guild's own commands-a-minute limit (the `requests_per_minute` guild
    setting, default 100) in place of the default one."""
    if per_minute == GUILD_REQUESTS.limit:
        return tuple(rules)
    own = replace(
        GUILD_REQUESTS, limit=per_minute, what=f"at most {per_minute:,} commands a minute"
    )
    return tuple(own if rule == GUILD_REQUESTS else rule for rule in rules)


@dataclass(frozen=True)
class Limited:
    rule: Rule
    retry_at: int
    """Unix time of the first second of the rule's next window."""

    @property
    def message(self) -> str:
        template = MSG_GUILD_LIMITED if self.rule.scope == "guild" else MSG_LIMITED
        return template.format(what=self.rule.what, when=f"<t:{self.retry_at}:R>")


@dataclass(frozen=True)
class Asker:
    """What django-ratelimit calls the request: who is asking, in which guild."""

    guild_id: int
    user_id: int


def _member_key(group: str, asker: Asker) -> str:
    return f"{_namespace()}:user:{asker.user_id}"


def _guild_key(group: str, asker: Asker) -> str:
    return f"{_namespace()}:guild:{asker.guild_id}"


def _namespace() -> str:
    """Bumping DISCORD_RATELIMIT_NAMESPACE starts every budget afresh (tests give each test its
    own, since the cache may be a Redis shared between runs)."""
    return getattr(settings, "DISCORD_RATELIMIT_NAMESPACE", "v1")


def check(*, guild_id: int, user_id: int, rules: Sequence[Rule]) -> Limited | None:
    """Count one use against every rule; the first rule over its limit is returned (the use
    still counts, so hammering does not shorten the wait)."""
    asker = Asker(guild_id=guild_id, user_id=user_id)
    first: Limited | None = None
    for rule in rules:
        try:
            usage = core.get_usage(
                asker,
                group=rule.group,
                key=_member_key if rule.scope == "user" else _guild_key,
                rate=(rule.limit, rule.period),
                increment=True,
            )
        except Exception:  # the cache raised instead of swallowing its outage: fail open
            logger.warning("rate limit cache unavailable for %s", rule.group, exc_info=True)
            continue
        if usage is None or not usage["should_limit"] or first is not None:
            continue
        # `time_left` counts down to the window's last second, read on django-ratelimit's clock.
        first = Limited(rule=rule, retry_at=int(core.time.time()) + usage["time_left"] + 1)
    return first
