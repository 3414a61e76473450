"""The interaction clock, held against Discord's (issue 23 item 15).

An interaction's id is a timestamp on Discord's clock; the host's clock can be off by seconds.
Measured on the host's clock alone, a host 0.7 s ahead sees every interaction 0.7 s older than
it is (the pre-acknowledgement budget is gone before it starts, so rate limits were skipped) and
a host 3 s ahead sees every autocomplete past its deadline. So:

- the budgets run from when the bot *received* the interaction (the host's monotonic clock, no
  skew), and the time before receipt (the gateway's delivery, usually 0.1–0.3 s) is credited from
  the creation time corrected by the estimated skew: at most `DELIVERY_BOUND` seconds while the
  skew is known roughly, in full once it is known to `PRECISE` seconds;
- the skew (host minus Discord) is estimated from every REST response: Discord's
  `X-RateLimit-Reset` minus `X-RateLimit-Reset-After` is its clock to the millisecond ("Rate
  Limits" in Discord's developer docs: Reset is epoch seconds, Reset-After relative seconds), and
  the HTTP `Date` header (whole seconds, RFC 9110 section 6.6.1) narrows it when no bucket
  headers come;
- the estimate is the gauge `pm_bot_discord_clock_skew_seconds` (registered through
  `core.telemetry`), and a skew over `SKEW_WARNING` seconds is logged as a warning (fix NTP).
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

from core.telemetry import Reading

logger = logging.getLogger("discordbot.clock")

DELIVERY_BOUND = 0.5
"""At most this much of an interaction's age is credited to before the bot received it, while
the skew is known only roughly (or not at all)."""
PRECISE = 0.05
"""A skew known this closely (bucket headers, to the millisecond) is trusted: the creation time
then counts in full, up to Discord's whole 3 s (a lagging event loop shows as age)."""
DEADLINE = 3.0
SKEW_WARNING = 0.5
"""A skew beyond this many seconds is logged (once per `WARN_EVERY` seconds)."""
WARN_EVERY = 600.0
RECEIVED_KEEP = 15 * 60.0
"""Receipt times are kept as long as an interaction's token lives."""


class DiscordClock:
    """The host's offset from Discord's clock, from response headers: an interval that every
    observation narrows (a `Date` header says Discord's clock was in [D, D + 1) while the
    request was in flight), its midpoint the estimate; precise bucket headers replace it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.low: float | None = None
        self.high: float | None = None
        self.samples = 0
        self._warned_at = -WARN_EVERY
        self._received: dict[int, float] = {}

    # --- Skew ---------------------------------------------------------------------------------

    @property
    def skew(self) -> float | None:
        """Host minus Discord, in seconds (positive: the host is ahead); None before any
        response was seen."""
        with self._lock:
            if self.low is None or self.high is None:
                return None
            return (self.low + self.high) / 2

    def observe(self, sent: float, answered: float, headers: Mapping[str, str]) -> None:
        """One response: `sent` and `answered` on the host's wall clock."""
        low = high = None
        reset, after = headers.get("X-RateLimit-Reset"), headers.get("X-RateLimit-Reset-After")
        try:
            if reset and after:
                discord_now = float(reset) - float(after)
                low, high = sent - discord_now, answered - discord_now
            elif headers.get("Date"):
                stamp = email.utils.parsedate_to_datetime(headers["Date"]).timestamp()
                low, high = sent - (stamp + 1.0), answered - stamp
        except (TypeError, ValueError, OverflowError):
            return
        if low is None or high is None:
            return
        with self._lock:
            self.samples += 1
            if self.low is None or self.high is None:
                self.low, self.high = low, high
            else:
                new_low, new_high = max(self.low, low), min(self.high, high)
                if new_low > new_high:
                    # The clock moved (NTP stepped it): start again from this response.
                    new_low, new_high = low, high
                self.low, self.high = new_low, new_high
        self._warn_if_off()

    def _warn_if_off(self) -> None:
        skew = self.skew
        now = time.monotonic()
        if skew is None or abs(skew) <= SKEW_WARNING or now - self._warned_at < WARN_EVERY:
            return
        self._warned_at = now
        logger.warning(
            "the host clock is %.2f s %s Discord's (from its response headers); interaction "
            "budgets run from receipt so they still hold, but fix the host's time sync (NTP)",
            abs(skew),
            "ahead of" if skew > 0 else "behind",
        )

    def readings(self) -> Iterable[Reading]:
        skew = self.skew
        if skew is None:
            return []
        return [
            Reading(
                "pm_bot_discord_clock_skew_seconds",
                "The host's clock minus Discord's, estimated from Discord's response headers",
                skew,
            )
        ]

    def trace_config(self) -> aiohttp.TraceConfig:
        """An aiohttp trace (discord.py's `http_trace`) that feeds every response to
        `observe`."""
        trace = aiohttp.TraceConfig()

        async def start(_session: Any, context: Any, _params: Any) -> None:
            context.sent = time.time()

        async def end(_session: Any, context: Any, params: Any) -> None:
            sent = getattr(context, "sent", None)
            if sent is not None:
                self.observe(sent, time.time(), params.response.headers)

        trace.on_request_start.append(start)
        trace.on_request_end.append(end)
        return trace

    # --- Interaction age ----------------------------------------------------------------------

    def received(self, interaction_id: int) -> float:
        """The monotonic time the bot first saw the interaction (now, on first call)."""
        now = time.monotonic()
        with self._lock:
            seen = self._received.get(interaction_id)
            if seen is None:
                if len(self._received) > 10_000:
                    self._received = {
                        k: v for k, v in self._received.items() if now - v < RECEIVED_KEEP
                    }
                self._received[interaction_id] = seen = now
            return seen

    def age(self, interaction_id: int, created: float) -> float:
        """Seconds since Discord created the interaction, as Discord's deadline counts them:
        the time since receipt (host monotonic) plus what came before it — the creation time on
        the skew-corrected host clock, at most `DELIVERY_BOUND`, never negative."""
        since_receipt = time.monotonic() - self.received(interaction_id)
        before = (time.time() - (self.skew or 0.0) - created) - since_receipt
        return since_receipt + min(max(before, 0.0), self.bound())

    def bound(self) -> float:
        """How much of an interaction's age before its receipt is believed."""
        with self._lock:
            if self.low is not None and self.high is not None and self.high - self.low <= PRECISE:
                return DEADLINE
        return DELIVERY_BOUND


CLOCK = DiscordClock()
"""The process's clock (every shard of a process talks to the same Discord)."""
