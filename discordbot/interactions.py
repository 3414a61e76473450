"""Answering interactions: the one place that decides how and when the bot replies (STYLE §7).

`respond()` runs every command, button, select and modal submission the same way:
1. rate limits (DOMAIN §7; moderators exempt) are checked against the cache, not the database,
   so a refusal is immediate; the check must end `PRE_ACK_DEADLINE` seconds after Discord
   created the interaction (its snowflake), or it is skipped (fail open, logged and counted in
   `pm_bot_pre_ack_budget_exceeded_total`): a hung Redis cannot make the bot miss Discord's
   3-second deadline (DOMAIN §8). Modals (which cannot follow a defer) use the same budget for
   what they check first;
2. the interaction is deferred *before* any database work, because a trade can wait on a row
   lock and Discord drops interactions not answered within 3 seconds (DOMAIN §8);
3. the body runs (parse → service or selector through `bot.db` → render) and returns a `Reply`;
4. a `DomainError` becomes its short message, ephemeral; anything else becomes "Something went
   wrong (error id …)" and the same id is logged with the traceback.

Every interaction gets its final answer, and it is true (issues 12 and 27):
- a re-delivery of the same interaction id is not counted by the rate limits and shows the first
  delivery's answer (`answers.first_delivery`, `answers.remember`) — unless that answer is
  already shown on the same message, which is then left as it is;
- "already acknowledged" (40060) on the acknowledgement means Discord has it, and a transport
  error (connection closed or reset) means it may: the work goes on, and the answer edits the
  original;
- the body runs within a budget (`BotConfig.answer_budget`): past it the member reads "still
  working", repeated about every 10 s, and the result follows when the body finishes (its
  thread keeps running);
- inside the body, the database calls and trades recover from an unknown commit outcome
  ("checking", then the key is looked up until the database answers) and from a database that
  is restarting ("retrying"), within the token's 15 minutes (`recovery`);
- a reply Discord does not take is kept (`PendingAnswer`) and retried with backoff while the
  token is valid, then sent by DM, or — DMs closed — shown with the member's next reply
  (`delivery`).

The module is split (issue 20): `replies` (what is said, the interaction's clock), `delivery`
(getting it to the member), `recovery` (the database away), `modals` (stateless modals); their
names are importable from here as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import discord

from ops import logging as ops_logging
from ops import metrics
from points.errors import DomainError, OutcomeUnknown

from . import answers, ratelimit, replies
from .delivery import (
    TRANSPORT_ERRORS,
    Later,
    _followup,
    _gone,
    _permanent,
    answer_by_dm,
    answer_now,
    deliver,
    deliver_quietly,
    deliver_reliably,
    keep_answer,
    settle_answer,
    summary_of,
)
from .modals import ModalHandler, ModalRouter, modal, modal_values, send_modal, text_input
from .permissions import Actor, actor_from_interaction, is_moderator
from .recovery import HEARTBEAT_SECONDS, Answering, answering, until_answered
from .recovery import current as current_answering
from .replies import (
    ALREADY_ACKNOWLEDGED,
    MSG_DB_RESTARTING,
    MSG_ERROR,
    MSG_GUILD_ONLY,
    MSG_STALE,
    MSG_STILL_WORKING,
    MSG_UNSEEN,
    MSG_UNVERIFIED,
    PRE_ACK_DEADLINE,
    TOKEN_GONE,
    Reply,
    age,
    idempotency_key,
    observe,
    remaining,
    token_digest,
    within_budget,
)

if TYPE_CHECKING:  # the bot's services as a protocol: `bot` imports this module
    from .botlike import BotLike as PredictionBot

__all__ = [  # the names other modules import from here (some now live in the split modules)
    "ALREADY_ACKNOWLEDGED",
    "MSG_DB_RESTARTING",
    "MSG_ERROR",
    "MSG_GUILD_ONLY",
    "MSG_STALE",
    "MSG_STILL_WORKING",
    "MSG_UNSEEN",
    "MSG_UNVERIFIED",
    "PRE_ACK_DEADLINE",
    "TOKEN_GONE",
    "TRANSPORT_ERRORS",
    "Actor",
    "ModalHandler",
    "ModalRouter",
    "Reply",
    "TooFast",
    "_followup",
    "_gone",
    "_permanent",
    "acknowledge",
    "actor",
    "age",
    "already_shown",
    "answer_by_dm",
    "answer_now",
    "deliver",
    "deliver_quietly",
    "deliver_reliably",
    "error_capture",
    "error_reply",
    "finish_later",
    "first_answer",
    "gate",
    "idempotency_key",
    "keep_answer",
    "modal",
    "modal_values",
    "new_error_id",
    "observe",
    "rate_limited",
    "remaining",
    "respond",
    "send_modal",
    "settle_answer",
    "summary_of",
    "text_input",
    "trade_counted",
    "with_unseen",
    "within_budget",
]  # fmt: skip

logger = logging.getLogger(__name__)
T = TypeVar("T")


def new_error_id() -> str:
    return ops_logging.new_error_id()


def error_capture(exc: BaseException, **fields: Any) -> str:
    """Log `exc` under a new error id bound into the JSON log line and the Sentry event (the same
    id the member is shown)."""
    return ops_logging.error_capture(exc, **fields)


def error_reply(exc: BaseException, *, action: str, interaction: discord.Interaction) -> Reply:
    if isinstance(exc, DomainError):
        return Reply(content=exc.message, ephemeral=True)
    error_id = error_capture(
        exc,
        logger=logger,
        message=f"interaction {action} failed",
        interaction_id=interaction.id,
        guild_id=interaction.guild_id,
        user_id=getattr(interaction.user, "id", None),
    )
    return Reply(content=MSG_ERROR.format(error_id=error_id), ephemeral=True)


def actor(interaction: discord.Interaction) -> Actor:
    return actor_from_interaction(interaction)


async def rate_limited(
    interaction: discord.Interaction, rules: Sequence[ratelimit.Rule]
) -> ratelimit.Limited | None:
    """Count this interaction against `rules`; moderators are exempt. Uses only the interaction
    and the bot's cached guild policy, never the database, and gives up (None: not limited)
    once the interaction is `PRE_ACK_DEADLINE` old."""
    if not rules or interaction.guild_id is None:
        return None
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    who = actor(interaction)
    policy = bot.policies.peek(interaction.guild_id)
    if is_moderator(policy, who):
        return None
    if policy is not None:
        rules = ratelimit.with_guild_limit(rules, policy.requests_per_minute)
    guild_id, user_id = interaction.guild_id, who.user_id
    if bot.cache_is_local:  # in-process memory: no I/O, nothing can stall
        limited = await bot.cache_call(
            ratelimit.check, guild_id=guild_id, user_id=user_id, rules=rules
        )
    else:  # Redis: the interactions checking at the same time share one pipelined round trip
        check = bot.ratelimits.check(guild_id=guild_id, user_id=user_id, rules=rules)
        _, limited = await within_budget(
            interaction, check, step="ratelimit", floor=replies.RATELIMIT_FLOOR
        )
    if limited is not None:
        metrics.ratelimit_refused(limited.rule.metric_scope)
    return limited


class TooFast(DomainError, code="rate_limited"): ...


class RecentIds:
    """The last `capacity` ids added, oldest forgotten first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: dict[int, None] = {}

    def add(self, id_: int) -> bool:
        """Remember `id_`; False when it was already remembered."""
        if id_ in self._ids:
            return False
        self._ids[id_] = None
        if len(self._ids) > self.capacity:
            del self._ids[next(iter(self._ids))]
        return True

    def __contains__(self, id_: object) -> bool:
        return id_ in self._ids


async def trade_counted(interaction: discord.Interaction) -> None:
    """Count one trade against the per-member trade limit (DOMAIN §7), once its input is known
    to be valid: a refused amount or a typo spends no trade. Raises `TooFast` over the limit.
    A re-delivery spends none: its interaction was counted by its first delivery (DOMAIN §7
    limits interactions), and a re-delivery that runs the body again (the first delivery's
    answer not found in time) must find the same trade, not "too fast"; so must a body run
    again after an unknown commit outcome (`finish_later`, issue 27)."""
    state = current_answering()
    if state is not None and not await state.counts_trade():
        return
    limited = await rate_limited(interaction, (ratelimit.USER_TRADES,))
    if limited is not None:
        raise TooFast(limited.message)
    if state is not None:
        state.trade_spent = True


async def respond(
    interaction: discord.Interaction,
    body: Callable[[], Awaitable[Reply]],
    *,
    action: str,
    ephemeral: bool = True,
    update: bool = False,
    rules: Sequence[ratelimit.Rule] = ratelimit.REQUEST,
) -> discord.Message | None:
    """Answer `interaction` with what `body` returns; see the module docstring for the steps.
    `ephemeral` is how the "thinking…" placeholder is shown (and so the reply, unless the reply
    is an error); `update` defers a component click as an edit of its own message. Returns the
    message that was sent or edited, if any (None when the answer follows later)."""
    first: float | None = None
    outcome = "ok"
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    try:
        if interaction.guild_id is None:
            await interaction.response.send_message(MSG_GUILD_ONLY, ephemeral=True)
            outcome, first = "refused", age(interaction)
            return None
        fresh, limited, checking = await gate(interaction, rules)
        if limited is not None:
            await interaction.response.send_message(limited.message, ephemeral=True)
            outcome, first = "refused", age(interaction)
            await bot.cache_call(
                answers.remember,
                interaction_id=interaction.id,
                answer=Reply(content=limited.message).remembered(shown=True),
            )
            return None
        acknowledged = await acknowledge(interaction, ephemeral=ephemeral, update=update)
        first = age(interaction)
        later: Later = {"action": action, "placeholder_ephemeral": ephemeral, "update": update}
        if not fresh:
            earlier = await first_answer(interaction)
            if earlier is not None:
                reply, shown_on = earlier
                if shown_on is not None and (
                    not acknowledged or shown_on in ("", token_digest(interaction.token))
                ):
                    # Already on the member's screen: an interaction has one original message,
                    # whichever delivery acknowledged it, so twenty deliveries make one edit,
                    # not twenty (issue 27). A delivery whose own placeholder is another
                    # token's original message still gets the answer.
                    return None
                return await deliver_reliably(interaction, reply, **later, remember=False)
        state = Answering(
            interaction, placeholder_ephemeral=ephemeral, update=update, first_delivery=fresh,
            fresh_check=checking,
        )  # fmt: skip

        async def final() -> Reply:
            nonlocal outcome
            reply, outcome = await run_body(interaction, body, state, action=action)
            return reply

        task = asyncio.ensure_future(final())
        done, _ = await asyncio.wait({task}, timeout=bot.config.answer_budget)
        if not done:
            # Over budget: say so now (unless something more precise is showing), answer when
            # the body is done (it keeps running), and keep the member informed meanwhile.
            outcome = "slow"
            if not state.shown:
                await state.tell(MSG_STILL_WORKING)
            bot.spawn(finish_later(interaction, task, body, state=state, **later))
            return None
        error = task.exception()
        if isinstance(error, OutcomeUnknown):
            outcome = "unknown"
            await state.tell(error.message)
            bot.spawn(finish_later(interaction, None, body, state=state, key=error.key, **later))
            return None
        state.done = True
        reply = task.result()
        if not acknowledged and await already_shown(interaction, reply):
            return None  # a twin delivery (its gate fell open) showed this very answer
        return await deliver_reliably(interaction, reply, **later, interim=state.interim)
    except Exception as exc:  # Discord refused or lost a reply: nothing more can be shown
        outcome = "error"
        logger.error(
            "interaction %s: the reply could not be delivered (error id %s): %s",
            action,
            new_error_id(),
            exc,
            exc_info=exc,
        )
        return None
    finally:
        metrics.interaction_observed(action, outcome, first, age(interaction))


async def run_body(
    interaction: discord.Interaction,
    body: Callable[[], Awaitable[Reply]],
    state: Answering,
    *,
    action: str,
) -> tuple[Reply, str]:
    """Run `body` as the interaction being answered (`recovery`): its reply and the metrics
    outcome. A `DomainError` becomes its message, anything else "Something went wrong"; an
    `OutcomeUnknown` the body could not resolve within the token's time is raised."""
    outcome = "ok"
    with answering(state):
        try:
            reply = await body()
        except OutcomeUnknown:
            raise
        except Exception as exc:
            outcome = "refused" if isinstance(exc, DomainError) else "error"
            reply = error_reply(exc, action=action, interaction=interaction)
        return await with_unseen(interaction, reply), outcome


async def gate(
    interaction: discord.Interaction, rules: Sequence[ratelimit.Rule]
) -> tuple[bool, ratelimit.Limited | None, asyncio.Future[Any] | None]:
    """Before the acknowledgement: is this the interaction's first delivery, and is it over a
    rate limit (only first deliveries count: DOMAIN §7 limits interactions, not deliveries)?
    Bounded by `BotConfig.gate_budget` so a slow cache (Redis paused) cannot cost the 3-second
    acknowledgement deadline: past it the gate opens (a first delivery, no limit) and the cache
    calls finish in their thread; the unfinished check is returned third, for the trade count
    (`Answering.counts_trade`)."""
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    if not bot.seen_here.add(interaction.id):
        # A re-delivery to this process (the usual case: Discord re-delivers on the same
        # gateway session): known without the cache, so a slow cache cannot open the gate
        # for it — twenty twins counted as twenty trades and edited "too fast" over the answer.
        return False, None, None

    async def both() -> tuple[bool, ratelimit.Limited | None]:
        fresh = await bot.cache_call(answers.first_delivery, interaction_id=interaction.id)
        return fresh, (await rate_limited(interaction, rules) if fresh else None)

    task = asyncio.ensure_future(both())
    # The budget runs on Discord's clock (from the interaction's creation), capped by the bot's.
    budget = min(bot.config.gate_budget, remaining(interaction))
    done, _ = await asyncio.wait({task}, timeout=budget)
    if not done:
        logger.warning("cache too slow before acknowledging %s: limits open", interaction.id)
        metrics.pre_ack_budget_exceeded("gate")
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return True, None, task
    return (*task.result(), None)


ACK_RETRY_AGE = 2.5
"""An acknowledgement lost in transport is sent again only while the interaction is younger
than this (Discord's deadline is 3 s)."""


async def acknowledge(interaction: discord.Interaction, *, ephemeral: bool, update: bool) -> bool:
    """Defer the interaction; True when this call made the acknowledgement (a new "thinking"
    placeholder). "Already acknowledged" (40060) means Discord has one (ours, whose answer was
    lost, or a twin delivery's): False, the work goes on. A transport error (connection closed
    or reset before an answer) means Discord *may* have it: the callback is sent once more while
    there is time — 40060 then says it had — and either way the work goes on and the answer
    edits the original (issue 27)."""
    for attempt in (1, 2):
        try:
            if update:
                await interaction.response.defer()
            else:
                await interaction.response.defer(ephemeral=ephemeral, thinking=True)
            return True
        except discord.HTTPException as exc:
            if exc.code == ALREADY_ACKNOWLEDGED:
                logger.info("interaction %s was already acknowledged; continuing", interaction.id)
                return False
            if attempt == 1:
                raise
            logger.warning(
                "interaction %s: acknowledgement uncertain (%s); going on", interaction.id, exc
            )
            return False
        except TRANSPORT_ERRORS as exc:
            if attempt == 2 or age(interaction) >= ACK_RETRY_AGE:
                logger.warning(
                    "interaction %s: acknowledgement may not have arrived (%s: %s); going on",
                    interaction.id, type(exc).__name__, exc,
                )  # fmt: skip
                return False
            logger.info(
                "interaction %s: acknowledgement lost in transport (%s); again", interaction.id, exc
            )
    return False


async def already_shown(interaction: discord.Interaction, reply: Reply) -> bool:
    """Whether Discord already shows `reply` for this interaction (a twin delivery showed it)."""
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    stored = await bot.cache_call(answers.remembered, interaction_id=interaction.id)
    if not stored or not stored.get("shown"):
        return False
    return {k: stored.get(k) for k in ("content", "embeds")} == {
        k: v for k, v in reply.remembered(shown=True).items() if k in ("content", "embeds")
    }


async def first_answer(interaction: discord.Interaction) -> tuple[Reply, str | None] | None:
    """A re-delivered interaction: the first delivery's answer and, when Discord already shows
    it, the digest of the token whose original message shows it ("" when not known; None when
    not shown), waiting for it up to the budget (the first delivery may still be working).
    None: run the body (idempotent by its key)."""
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    deadline = time.monotonic() + bot.config.answer_budget
    while True:
        stored = await bot.cache_call(answers.remembered, interaction_id=interaction.id)
        if stored is not None:
            reply = Reply(
                content=stored.get("content") or "",
                embeds=[discord.Embed.from_dict(e) for e in stored.get("embeds", [])],
                ephemeral=stored.get("ephemeral", True),
            )
            shown_on = str(stored.get("shown_on", "")) if stored.get("shown") else None
            return reply, shown_on
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.05)


async def with_unseen(interaction: discord.Interaction, reply: Reply) -> Reply:
    """Prefix the answers this member has not seen yet (DMs closed) to this reply."""
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    if interaction.guild_id is None:  # unseen answers are kept per server
        return reply
    who = (interaction.guild_id, interaction.user.id)
    if who not in bot.unseen:
        return reply
    bot.unseen.discard(who)
    summaries = await bot.db(answers.unseen_take, guild_id=who[0], user_id=who[1])
    if summaries:
        lines = "\n".join(MSG_UNSEEN.format(summary=s) for s in summaries)
        reply.content = f"{lines}\n\n{reply.content}" if reply.content else lines
    return reply


async def finish_later(
    interaction: discord.Interaction,
    task: asyncio.Future[Reply] | None,
    body: Callable[[], Awaitable[Reply]],
    *,
    action: str,
    placeholder_ephemeral: bool,
    update: bool,
    state: Answering | None = None,
    key: str | None = None,
) -> None:
    """The true result after "still working" or "checking". With `task` (the body still
    running): await it, telling the member again about every 10 s. Without (an unknown commit
    outcome reached here, `key` its idempotency key): look the key up — nothing else — with
    backoff until the database answers, within the token's 15 minutes; only then run `body`
    again (the same key: a committed effect answers from its record, an uncommitted one is done
    once). Plain database errors while waiting are not "something went wrong"."""
    state = state or Answering(
        interaction, placeholder_ephemeral=placeholder_ephemeral, update=update
    )
    reply: Reply | None = None
    while reply is None:
        try:
            if task is None:
                try:
                    await until_answered(state, key or idempotency_key(interaction))
                except OutcomeUnknown:
                    reply = Reply(content=MSG_UNVERIFIED)
                    break
                rerun = asyncio.ensure_future(run_body(interaction, body, state, action=action))
                reply, _ = await _informed(rerun, state)
            else:
                reply = await _informed(task, state)
        except OutcomeUnknown as exc:
            task, key = None, exc.key
        except Exception as exc:
            reply = error_reply(exc, action=action, interaction=interaction)
    state.done = True
    await deliver_reliably(
        interaction, reply, action=action, placeholder_ephemeral=placeholder_ephemeral,
        update=update, interim=state.interim,
    )  # fmt: skip


async def _informed(task: asyncio.Future[Any], state: Answering) -> Any:
    """`await task`, telling the member again whenever their message has stood unchanged for
    `recovery.HEARTBEAT_SECONDS` (issue 27: the silence reached 20 s)."""
    while True:
        wait = max(0.1, HEARTBEAT_SECONDS - state.silent_for())
        done, _ = await asyncio.wait({task}, timeout=wait)
        if done:
            return task.result()
        if state.silent_for() >= HEARTBEAT_SECONDS:
            await state.heartbeat()
