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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from django.conf import settings
from django.core.cache import caches
from django_ratelimit import ALL, core

from .batching import MarketBatcher

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
CREATE = REQUEST
"""`/market create` spends the member's and guild's command budgets like any command; the guild's
market budget (`GUILD_MARKETS`) is reserved before creating (`reserve`, one atomic cache step, so
two creations at the same moment cannot both take the tenth slot) and given back when the
creation is refused (`release`): a refused attempt (a typo, 11 outcomes, a duplicate) costs the
server nothing (issue 23 item 1)."""


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


def _usage(asker: Asker, rule: Rule, *, increment: bool) -> dict | None:
    return core.get_usage(
        asker,
        group=rule.group,
        key=_member_key if rule.scope == "user" else _guild_key,
        rate=(rule.limit, rule.period),
        increment=increment,
    )


@dataclass(frozen=True)
class Reservation:
    """One use of a rule taken by `reserve`: the cache counter it was counted in."""

    key: str


def reserve(*, guild_id: int, user_id: int, rule: Rule) -> Reservation | Limited | None:
    """Take one use of `rule` before acting: one atomic cache step (ADD of 1, else INCR, in the
    counter django-ratelimit's `get_usage` reads), so concurrent callers never both get the last
    slot. Over the limit, the use is given back at once and the refusal returned. None: limits
    off, or the cache is out (fail open, as `check`)."""
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return None
    asker = Asker(guild_id=guild_id, user_id=user_id)
    value = (_member_key if rule.scope == "user" else _guild_key)(rule.group, asker)
    # django-ratelimit's own window and key for this rule and member or guild (its private
    # helpers: the counter is the one `check` and `get_usage` count in).
    window = core._get_window(value, rule.period)
    key = core._make_cache_key(rule.group, window, (rule.limit, rule.period), value, ALL)
    cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
    try:
        count = 1 if cache.add(key, 1, rule.period + core.EXPIRATION_FUDGE) else cache.incr(key)
    except ValueError:  # the counter expired between ADD and INCR: the window is over anyway
        count = None
    except Exception:
        logger.warning("rate limit cache unavailable for %s", rule.group, exc_info=True)
        return None
    if not count:
        return None
    if count > rule.limit:
        release(Reservation(key))
        return Limited(rule=rule, retry_at=window + 1)
    return Reservation(key)


def release(reservation: Reservation) -> None:
    """Give back a use taken by `reserve` (the creation was refused)."""
    cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
    try:
        cache.decr(reservation.key)
    except ValueError:  # the window ended meanwhile: nothing left to give back
        pass
    except Exception:
        logger.warning("rate limit cache unavailable releasing %s", reservation.key, exc_info=True)


def check(*, guild_id: int, user_id: int, rules: Sequence[Rule]) -> Limited | None:
    """Count one use against every rule; the first rule over its limit is returned (the use
    still counts, so hammering does not shorten the wait)."""
    asker = Asker(guild_id=guild_id, user_id=user_id)
    first: Limited | None = None
    for rule in rules:
        try:
            usage = _usage(asker, rule, increment=True)
        except Exception:  # the cache raised instead of swallowing its outage: fail open
            logger.warning("rate limit cache unavailable for %s", rule.group, exc_info=True)
            continue
        if usage is None or not usage["should_limit"] or first is not None:
            continue
        # `time_left` counts down to the window's last second, read on django-ratelimit's clock.
        first = Limited(rule=rule, retry_at=int(core.time.time()) + usage["time_left"] + 1)
    return first


def refund(*, guild_id: int, user_id: int, rule: Rule) -> None:
    """Give back one use of a member-scoped `rule` counted by `check` (a trade the batch refused
    for the member's balance or amount, which the one-step path no longer reads before counting:
    a refused trade spends no trade, DOMAIN §7). Uses django-ratelimit's own key for the current
    window; a use counted in the previous window is not given back. Fails silent (a cache
    outage leaves the use counted)."""
    asker = Asker(guild_id=guild_id, user_id=user_id)
    value = _member_key(rule.group, asker)
    rate = (rule.limit, rule.period)
    try:
        window = core._get_window(value, rule.period)
        key = core._make_cache_key(rule.group, window, rate, value, core.ALL)
        cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
        if cache.get(key, 0) > 0:
            cache.decr(key)
    except Exception:
        logger.warning("could not give back a use of %s", rule.group, exc_info=True)


Ask = tuple[int, int, Sequence[Rule]]
"""(guild id, user id, rules): one interaction's `check`."""


def check_many(*, asks: Sequence[Ask]) -> list[Limited | None]:
    """`check` for each ask, in order, counting in the same counters; on Redis every rule of
    every ask in one pipelined round trip (SET NX of 0 then INCR: django-ratelimit's ADD of 1,
    else INCR), instead of two round trips per rule and interaction. A cache error opens the
    limits for the whole wave (fail open, as `check`)."""
    cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
    client = getattr(getattr(cache, "client", None), "get_client", None)
    if client is None or not getattr(settings, "RATELIMIT_ENABLE", True):
        return [check(guild_id=g, user_id=u, rules=rules) for g, u, rules in asks]
    counted: list[tuple[Rule, int]] = []  # (rule, window) per INCR, in order
    try:
        pipe = client(write=True).pipeline(transaction=False)
        for guild_id, user_id, rules in asks:
            asker = Asker(guild_id=guild_id, user_id=user_id)
            for rule in rules:
                value = (_member_key if rule.scope == "user" else _guild_key)(rule.group, asker)
                window = core._get_window(value, rule.period)
                rate = (rule.limit, rule.period)
                key = cache.make_key(core._make_cache_key(rule.group, window, rate, value, ALL))
                pipe.set(key, 0, nx=True, ex=rule.period + core.EXPIRATION_FUDGE)
                pipe.incr(key)
                counted.append((rule, window))
        counts = pipe.execute()[1::2]
    except Exception:
        logger.warning("rate limit cache unavailable for %s checks", len(asks), exc_info=True)
        return [None] * len(asks)
    answers: list[Limited | None] = []
    at = 0
    for _, _, rules in asks:
        first: Limited | None = None
        for (rule, window), count in zip(
            counted[at : at + len(rules)], counts[at : at + len(rules)], strict=True
        ):
            if first is None and count > rule.limit:
                first = Limited(rule=rule, retry_at=window + 1)  # as `check` words it
        answers.append(first)
        at += len(rules)
    return answers


class Pipelined:
    """The bot's rate-limit checks: the interactions checking at the same time share one
    `check_many` (one Redis round trip per wave, `discordbot.batching`), run through `run`
    (`PredictionBot.cache_call`, off the event loop)."""

    def __init__(self, run: Callable[..., Awaitable[list[Limited | None]]]) -> None:
        self._run = run
        self._waves = MarketBatcher(self._check_wave, cap=500)

    async def check(self, *, guild_id: int, user_id: int, rules: Sequence[Rule]) -> Limited | None:
        result: Limited | None = await self._waves.submit(0, (guild_id, user_id, tuple(rules)))
        return result

    async def _check_wave(self, _: int, asks: Sequence[Ask]) -> list[Limited | None]:
        return await self._run(check_many, asks=list(asks))
