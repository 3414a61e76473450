"""Know before you say, and keep saying it (issue 27): what an interaction's work does when the
database is away.

While `interactions.respond` runs a body, the body's database calls (`bot.db`) and trades
(`bot.trade`) go through `resolved`:
- an unknown commit outcome (`OutcomeUnknown`: the connection broke during or after COMMIT
  and the key could not be looked up) → the member reads "checking"; the request's idempotency
  key is looked up — and nothing else — with backoff until the database answers, within the
  interaction token's 15 minutes; then the same call runs again with the same key, which
  answers from the committed record or does the work once. Nothing before it (a quote read,
  the trade count) runs again;
- a transient error (`points.db.is_transient`: a connection that could not be established, a
  serialization failure, a server shutting down) → the same call again with backoff: these
  failed before anything was committed. The member reads "the database is restarting —
  retrying" when the connection could not be made;
- past the answer budget the member reads "still working", repeated with the time waited
  every `HEARTBEAT_SECONDS` (`heartbeat`) until the true result is shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import discord
from django.db import DatabaseError, InterfaceError

from betting.models import Trade
from markets.models import Market, MarketEvent
from points.db import connection_failed, is_transient
from points.errors import MSG_OUTCOME_UNKNOWN, OutcomeUnknown
from points.models import Transfer

from . import answers
from .delivery import deliver_quietly
from .replies import MSG_DB_RESTARTING, MSG_SO_FAR, MSG_STILL_WORKING, Reply, age

if TYPE_CHECKING:
    from .bot import PredictionBot

logger = logging.getLogger("discordbot.interactions")
T = TypeVar("T")

HEARTBEAT_SECONDS = 10.0
"""The longest a waiting member's message stands unchanged."""
RETRY_DELAY_MAX = 5.0
"""Backoff cap of re-checks and retries: a database back after a few seconds is noticed soon."""
LATE_CHECK_SECONDS = 1.0
"""How long a trade count waits for the gate's unfinished first-delivery check (`Answering.
counts_trade`); past it the trade counts, as a first delivery's."""
TOKEN_MARGIN_SECONDS = 30.0
"""Retries stop this long before the interaction token expires, so the answer still gets out."""


@dataclass
class Answering:
    """One interaction being answered: how to show it an interim answer, and how long it may
    wait (its token's 15 minutes)."""

    interaction: discord.Interaction
    placeholder_ephemeral: bool
    update: bool
    status: str = MSG_STILL_WORKING
    """What the member is told while waiting (the heartbeat repeats it)."""
    shown: str = ""
    told_at: float = field(default_factory=time.monotonic)
    done: bool = False
    """The final answer is settled: no more interim answers."""
    interim: discord.WebhookMessage | None = None
    """The follow-up that shows interim answers after a button click."""
    first_delivery: bool = True
    """False for a re-delivery of the interaction: it spends no rate limit (`trade_counted`)."""
    trade_spent: bool = False
    """The member's trade for this interaction is counted: a body run again (`finish_later`,
    after an unknown outcome) does not count it twice — and say "too fast" about the trade."""
    fresh_check: asyncio.Future[tuple[bool, object]] | None = None
    """The gate's first-delivery check, unfinished when the gate opened (`interactions.gate`)."""

    async def counts_trade(self) -> bool:
        """Whether the member's trade is still to be counted for this interaction: not for a
        re-delivery, nor twice. A gate that opened before the cache answered (the cache slow,
        or the interaction past Discord's 3 seconds: a late re-delivery to another process)
        left its check running; the acknowledgement is out, so it gets `LATE_CHECK_SECONDS`
        more to say whether this is a re-delivery, whose trade the first delivery counted."""
        check, self.fresh_check = self.fresh_check, None
        if check is not None and self.first_delivery:
            done, _ = await asyncio.wait({check}, timeout=LATE_CHECK_SECONDS)
            if done and not check.cancelled() and check.exception() is None:
                self.first_delivery = check.result()[0]
        return self.first_delivery and not self.trade_spent

    @property
    def bot(self) -> PredictionBot:
        return self.interaction.client  # type: ignore[return-value]

    def left(self) -> float:
        """Seconds this interaction may still spend waiting for the database."""
        lifetime = answers.TOKEN_LIFETIME.total_seconds()
        return lifetime - TOKEN_MARGIN_SECONDS - age(self.interaction)

    def silent_for(self) -> float:
        return time.monotonic() - self.told_at

    async def tell(self, text: str) -> None:
        """Show `text` as the interim answer (not again while it is showing and fresh)."""
        if self.done or (text == self.shown and self.silent_for() < HEARTBEAT_SECONDS):
            return
        self.status = text
        await self._show(text)

    async def heartbeat(self) -> None:
        """Tell the member again that we are still at it, with the time waited so far."""
        if self.done:
            return
        await self._show(MSG_SO_FAR.format(status=self.status, seconds=int(age(self.interaction))))

    async def _show(self, text: str) -> None:
        """The placeholder shows interim answers, as it is seen (a public "thinking…" becomes a
        public interim word, which the final answer then edits: deleting the placeholder for a
        private word left the final answer nothing to edit, and it went by DM); after a button
        click (`update`) the first one is a private follow-up, and later ones edit that
        follow-up rather than adding messages (the final answer removes it: `delivery.
        retire_interim`)."""
        self.shown, self.told_at = text, time.monotonic()
        if self.interim is not None:
            try:
                await self.interim.edit(content=text)
            except Exception as exc:  # best effort: the final answer follows
                logger.info("interim answer to %s not updated: %s", self.interaction.id, exc)
            return
        how = {"placeholder_ephemeral": self.placeholder_ephemeral, "update": self.update}
        word = Reply(content=text, ephemeral=self.update or self.placeholder_ephemeral)
        message = await deliver_quietly(self.interaction, word, **how)
        if self.update and isinstance(message, discord.WebhookMessage):
            self.interim = message


_current: contextvars.ContextVar[Answering | None] = contextvars.ContextVar(
    "pm_answering", default=None
)


def current() -> Answering | None:
    return _current.get()


@contextlib.contextmanager
def answering(state: Answering) -> Iterator[None]:
    """Run the block (an interaction's body) with `state` as the interaction being answered."""
    token = _current.set(state)
    try:
        yield
    finally:
        _current.reset(token)


async def resolved(call: Callable[[], Awaitable[T]], *, key: str | None = None) -> T:
    """`call()` (a database call or a trade) with the recovery described in the module
    docstring; `key` is the request's own idempotency key (a batch's `OutcomeUnknown` names the
    batch's first). Outside an interaction's body it is just `call()`."""
    state = current()
    if state is None:
        return await call()
    delay = state.bot.config.answer_retry_base
    while True:
        try:
            result = await call()
        except OutcomeUnknown as exc:
            await state.tell(MSG_OUTCOME_UNKNOWN)
            await until_answered(state, key or exc.key)
            delay = state.bot.config.answer_retry_base
            continue
        except DatabaseError as exc:
            retryable = is_transient(exc) or isinstance(exc, InterfaceError)
            if not retryable or state.left() <= delay:
                raise
            logger.info(
                "interaction %s: database not there (%s); retrying", state.interaction.id, exc
            )
            if connection_failed(exc):
                await state.tell(MSG_DB_RESTARTING)
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, RETRY_DELAY_MAX)
            continue
        if state.status != MSG_STILL_WORKING:
            state.status = MSG_STILL_WORKING  # the database answered again
        return result


async def until_answered(state: Answering, key: str) -> bool:
    """Look `key` up — nothing else — with backoff until the database answers; True when it is
    recorded (the request committed). `OutcomeUnknown` when the token runs out first."""
    bot = state.bot
    delay = bot.config.answer_retry_base
    while True:
        try:
            found = await bot.db_once(key_recorded, key=key)
        except DatabaseError as exc:
            if state.left() <= delay:
                raise OutcomeUnknown(key) from exc
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, RETRY_DELAY_MAX)
            continue
        logger.info("key %s %s", key, "committed" if found else "not committed: running it now")
        return found


def key_recorded(*, key: str) -> bool:
    """Whether a request's idempotency key is in the database: a trade, a transfer, a market or
    a market event (the records the use cases keep by key, DOMAIN §3)."""
    return (
        Trade.objects.filter(idempotency_key=key).exists()
        or Transfer.objects.filter(idempotency_key=key).exists()
        or Market.objects.filter(idempotency_key=key).exists()
        or MarketEvent.objects.filter(request_key=key).exists()
    )
