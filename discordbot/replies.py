"""What the bot says in answer to an interaction, and the interaction's clock: the leaf the
answering modules (`interactions`, `delivery`, `recovery`, `modals`) share.

Split from `discordbot/interactions.py` (issue 20: no core module over ~500 lines); everything
here is still importable from `discordbot.interactions`."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import discord

from ops import metrics

from . import limits

logger = logging.getLogger("discordbot.interactions")
T = TypeVar("T")

MSG_ERROR = (
    "Something went wrong (error id {error_id}). Please check the result (for example with "
    "/balance) before trying again, and mention the id to a moderator if it keeps happening."
)
MSG_STILL_WORKING = (
    "Still working on it — the database is slow right now. The result will appear here (or in "
    "a DM) as soon as it is done; please don't repeat the command."
)
MSG_SO_FAR = "{status} ({seconds} s so far)"
"""An interim answer repeated about every `recovery.HEARTBEAT_SECONDS` while the member waits."""
MSG_DB_RESTARTING = (
    "The database is restarting — retrying. The result will appear here as soon as it "
    "answers; please don't repeat the command."
)
MSG_UNVERIFIED = (
    "I could not check whether that went through: the database did not answer within Discord's "
    "15 minutes. Please check the result (for example with /balance) before trying again."
)
MSG_UNSEEN = "Earlier: {summary}"
MSG_GUILD_ONLY = "This bot works inside a server, not in direct messages."
MSG_STALE = "This button or form is from an older version of the bot; use the slash commands."
ALREADY_ACKNOWLEDGED = 40060
TOKEN_GONE = {50027, 10015}  # invalid webhook token (expired), unknown webhook


def idempotency_key(interaction: discord.Interaction) -> str:
    """`discord:<interaction id>`: Discord gives every interaction a unique id, and re-delivers the
    same id when it retries, so a repeated interaction repeats no effect (DOMAIN §3)."""
    return f"discord:{interaction.id}"


@dataclass
class Reply:
    """What to show. `ephemeral` replies are seen by the member alone; `edit` replaces the
    message a button was clicked on instead of sending a new one."""

    content: str = ""
    embeds: list[discord.Embed] = field(default_factory=list)
    view: discord.ui.View | None = None
    ephemeral: bool = True
    edit: bool = False
    after_send: Callable[[discord.Message], Awaitable[None]] | None = None
    allowed_mentions: discord.AllowedMentions | None = None
    """Who the reply may ping; None keeps the bot's default (nobody)."""

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "content": limits.fit(self.content, limits.CONTENT) if self.content else None,
            "embeds": [limits.embed_fit(e) for e in self.embeds],
        }
        if self.view is not None:
            out["view"] = self.view
        if self.allowed_mentions is not None:
            out["allowed_mentions"] = self.allowed_mentions
        return out

    def remembered(self, *, shown: bool, token: str = "") -> dict[str, Any]:
        """The answer as kept for re-deliveries (`answers.remember`); `shown`: Discord took it,
        on the original message of the interaction token `token` (kept as a digest only)."""
        return {
            "content": self.content,
            "embeds": [e.to_dict() for e in self.embeds],
            "ephemeral": self.ephemeral,
            "shown": shown,
            "shown_on": token_digest(token) if shown and token else "",
        }


def token_digest(token: str) -> str:
    """A short digest of an interaction token: which original message shows an answer, without
    keeping the token (a credential for 15 minutes) in the cache."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def age(interaction: discord.Interaction) -> float:
    """Seconds since Discord created the interaction, as Discord's 3-second deadline counts
    them: from when the bot received it, plus the delivery before, bounded by the creation time
    on the skew-corrected clock (`discordbot.clock`, issue 23 item 15: a host clock ahead of
    Discord's no longer eats the budgets)."""
    clock = getattr(interaction.client, "clock", None)
    if clock is None:
        return max(0.0, time.time() - interaction.created_at.timestamp())
    return float(clock.age(interaction.id, interaction.created_at.timestamp()))


def observe(interaction: discord.Interaction, action: str, outcome: str = "ok") -> None:
    """Record an interaction answered at once (a modal or a refusal) in the metrics."""
    elapsed = age(interaction)
    metrics.interaction_observed(action, outcome, elapsed, elapsed)


PRE_ACK_DEADLINE = 0.6
"""Seconds after Discord created an interaction by which every check that runs before its first
response (rate limit, the Buy button's status check) must have finished. The gateway usually
delivers an interaction 0.1–0.3 s after its creation; the rest of Discord's 3 s is margin for a
loaded event loop and the response's own round trip."""


def remaining(interaction: discord.Interaction, deadline: float = PRE_ACK_DEADLINE) -> float:
    """Seconds left until `deadline` (seconds of the interaction's age); at least 0."""
    return max(0.0, deadline - age(interaction))


RATELIMIT_FLOOR = 0.3
"""The rate-limit check always gets this long, however old the interaction looks: only a
stalled cache skips it, never the clock (issue 23 item 15)."""

_budget_logged: dict[str, tuple[float, int]] = {}
"""step → (when its last budget miss was logged, misses since): one line per step every
`BUDGET_LOG_SECONDS`, so a burst on a sick cache does not flood the log (the metric counts
every miss)."""
BUDGET_LOG_SECONDS = 10.0


async def within_budget(
    interaction: discord.Interaction,
    awaitable: Awaitable[T],
    *,
    step: str,
    deadline: float = PRE_ACK_DEADLINE,
    floor: float = 0.0,
) -> tuple[bool, T | None]:
    """Await `awaitable` until the interaction is `deadline` seconds old, but at least `floor`
    seconds (a check that must not be skipped for time alone: the rate limit). Returns
    (True, result), or (False, None) when the budget ran out (or had run out before it
    started): the caller goes ahead without the result (fail open), and the miss is logged and
    counted."""
    left = max(remaining(interaction, deadline), floor)
    try:
        if left <= 0:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise TimeoutError
        return True, await asyncio.wait_for(awaitable, timeout=left)
    except TimeoutError:
        metrics.pre_ack_budget_exceeded(step)
        now = time.monotonic()
        last, missed = _budget_logged.get(step, (0.0, 0))
        if now - last >= BUDGET_LOG_SECONDS:
            logger.warning(
                "interaction %s: %s ran out of its %.1f s budget (age %.2f s; %d more misses "
                "since the last line); going ahead without it",
                interaction.id,
                step,
                deadline,
                age(interaction),
                missed,
            )
            _budget_logged[step] = (now, 0)
        else:
            _budget_logged[step] = (last, missed + 1)
        return False, None
