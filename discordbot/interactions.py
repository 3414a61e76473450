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

Every interaction gets its final answer (issue 12):
- a re-delivery of the same interaction id is not counted by the rate limits and shows the first
  delivery's answer (`answers.first_delivery`, `answers.remember`);
- "already acknowledged" (40060) on the acknowledgement means Discord has it: the work goes on;
- the body runs within a budget (`BotConfig.answer_budget`): past it the member reads "still
  working" and the result follows when the body finishes (its thread keeps running);
- a commit whose outcome is unknown (`OutcomeUnknown`) is answered "checking", and the same body
  (same idempotency key) runs again with backoff until the verified result can be shown;
- a reply Discord does not take is kept (`PendingAnswer`) and retried with backoff while the
  token is valid, then sent by DM, or — DMs closed — shown with the member's next reply.

Modals are stateless: their state lives in the `custom_id` (like `DynamicItem` buttons), they are
never kept in discord.py's view store, and `ModalRouter` dispatches submissions by pattern, so a
modal opened before a restart still works after it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import discord

from ops import logging as ops_logging
from ops import metrics
from points.errors import DomainError, OutcomeUnknown

from . import answers, limits, ratelimit
from .models import PendingAnswer
from .permissions import Actor, actor_from_interaction, is_moderator

if TYPE_CHECKING:
    from .bot import PredictionBot

logger = logging.getLogger(__name__)
T = TypeVar("T")

MSG_ERROR = (
    "Something went wrong (error id {error_id}). Please check the result (for example with "
    "/balance) before trying again, and mention the id to a moderator if it keeps happening."
)
MSG_STILL_WORKING = (
    "Still working on it — the database is slow right now. The result will appear here (or in "
    "a DM) as soon as it is done; please don't repeat the command."
)
MSG_UNSEEN = "Earlier: {summary}"
ALREADY_ACKNOWLEDGED = 40060
TOKEN_GONE = {50027, 10015}  # invalid webhook token (expired), unknown webhook
MSG_GUILD_ONLY = "This bot works inside a server, not in direct messages."
MSG_STALE = "This button or form is from an older version of the bot; use the slash commands."


def idempotency_key(interaction: discord.Interaction) -> str:
    """`discord:<interaction id>`: Discord gives every interaction a unique id, and re-delivers the
    same id when it retries, so a repeated interaction repeats no effect (DOMAIN §3)."""
    return f"discord:{interaction.id}"


def new_error_id() -> str:
    return ops_logging.new_error_id()


def error_capture(exc: BaseException, **fields: Any) -> str:
    """Log `exc` under a new error id bound into the JSON log line and the Sentry event (the same
    id the member is shown)."""
    return ops_logging.error_capture(exc, **fields)


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


def age(interaction: discord.Interaction) -> float:
    """Seconds since Discord created the interaction (its id is a timestamp): the clock Discord's
    3-second deadline runs on. Falls back to 0 when the local clock is behind Discord's."""
    return max(0.0, time.time() - interaction.created_at.timestamp())


PRE_ACK_DEADLINE = 0.6
"""Seconds after Discord created an interaction by which every check that runs before its first
response (rate limit, the Buy button's status check) must have finished. The gateway usually
delivers an interaction 0.1–0.3 s after its creation; the rest of Discord's 3 s is margin for a
loaded event loop and the response's own round trip."""


def remaining(interaction: discord.Interaction, deadline: float = PRE_ACK_DEADLINE) -> float:
    """Seconds left until `deadline` (seconds of the interaction's age); at least 0."""
    return max(0.0, deadline - age(interaction))


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
) -> tuple[bool, T | None]:
    """Await `awaitable` until the interaction is `deadline` seconds old. Returns (True, result),
    or (False, None) when the budget ran out (or had run out before it started): the caller goes
    ahead without the result (fail open), and the miss is logged and counted."""
    left = remaining(interaction, deadline)
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


def observe(interaction: discord.Interaction, action: str, outcome: str = "ok") -> None:
    """Record an interaction answered at once (a modal or a refusal) in the metrics."""
    elapsed = age(interaction)
    metrics.interaction_observed(action, outcome, elapsed, elapsed)


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
    check = bot.cache_call(
        ratelimit.check, guild_id=interaction.guild_id, user_id=who.user_id, rules=rules
    )
    if bot.cache_is_local:  # in-process memory: no I/O, nothing can stall
        limited = await check
    else:
        _, limited = await within_budget(interaction, check, step="ratelimit")
    if limited is not None:
        metrics.ratelimit_refused(limited.rule.metric_scope)
    return limited


class TooFast(DomainError):
    code = "rate_limited"


async def trade_counted(interaction: discord.Interaction) -> None:
    """Count one trade against the per-member trade limit (DOMAIN §7), once its input is known
    to be valid: a refused amount or a typo spends no trade. Raises `TooFast` over the limit."""
    limited = await rate_limited(interaction, (ratelimit.USER_TRADES,))
    if limited is not None:
        raise TooFast(limited.message)


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
        fresh, limited = await gate(interaction, rules)
        if limited is not None:
            await interaction.response.send_message(limited.message, ephemeral=True)
            outcome, first = "refused", age(interaction)
            await bot.cache_call(
                answers.remember,
                interaction_id=interaction.id,
                answer={"content": limited.message, "embeds": [], "ephemeral": True},
            )
            return None
        await acknowledge(interaction, ephemeral=ephemeral, update=update)
        first = age(interaction)
        if not fresh:
            earlier = await first_answer(interaction)
            if earlier is not None:
                return await deliver_reliably(
                    interaction, earlier, action=action, placeholder_ephemeral=ephemeral,
                    update=update, remember=False,
                )  # fmt: skip

        async def final() -> Reply:
            nonlocal outcome
            try:
                reply = await body()
            except OutcomeUnknown:
                raise
            except Exception as exc:
                outcome = "refused" if isinstance(exc, DomainError) else "error"
                reply = error_reply(exc, action=action, interaction=interaction)
            return await with_unseen(interaction, reply)

        task = asyncio.ensure_future(final())
        done, _ = await asyncio.wait({task}, timeout=bot.config.answer_budget)
        later = dict(action=action, placeholder_ephemeral=ephemeral, update=update)
        if not done:
            # Over budget: say so now, answer when the body is done (it keeps running).
            outcome = "slow"
            await deliver_quietly(interaction, Reply(content=MSG_STILL_WORKING), **later)
            bot.spawn(finish_later(interaction, task, body, **later))
            return None
        if isinstance(task.exception(), OutcomeUnknown):
            outcome = "unknown"
            await deliver_quietly(interaction, Reply(content=task.exception().message), **later)
            bot.spawn(finish_later(interaction, None, body, **later))
            return None
        return await deliver_reliably(interaction, task.result(), **later)
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


async def gate(
    interaction: discord.Interaction, rules: Sequence[ratelimit.Rule]
) -> tuple[bool, ratelimit.Limited | None]:
    """Before the acknowledgement: is this the interaction's first delivery, and is it over a
    rate limit (only first deliveries count: DOMAIN §7 limits interactions, not deliveries)?
    Bounded by `BotConfig.gate_budget` so a slow cache (Redis paused) cannot cost the 3-second
    acknowledgement deadline: past it the gate opens (a first delivery, no limit) and the cache
    calls finish in their thread."""
    bot: PredictionBot = interaction.client  # type: ignore[assignment]

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
        return True, None
    return task.result()


async def acknowledge(interaction: discord.Interaction, *, ephemeral: bool, update: bool) -> None:
    """Defer the interaction. "Already acknowledged" (40060) means Discord has an acknowledgement
    (ours, whose answer was lost, or a twin delivery's): the work goes on."""
    try:
        if update:
            await interaction.response.defer()
        else:
            await interaction.response.defer(ephemeral=ephemeral, thinking=True)
    except discord.HTTPException as exc:
        if exc.code != ALREADY_ACKNOWLEDGED:
            raise
        logger.info("interaction %s was already acknowledged; continuing", interaction.id)


async def first_answer(interaction: discord.Interaction) -> Reply | None:
    """A re-delivered interaction: the first delivery's answer, waiting for it up to the budget
    (the first delivery may still be working). None: run the body (idempotent by its key)."""
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    deadline = time.monotonic() + bot.config.answer_budget
    while True:
        stored = await bot.cache_call(answers.remembered, interaction_id=interaction.id)
        if stored is not None:
            return Reply(
                content=stored.get("content") or "",
                embeds=[discord.Embed.from_dict(e) for e in stored.get("embeds", [])],
                ephemeral=stored.get("ephemeral", True),
            )
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.05)


async def with_unseen(interaction: discord.Interaction, reply: Reply) -> Reply:
    """Prefix the answers this member has not seen yet (DMs closed) to this reply."""
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
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
) -> None:
    """The verified result after "still working" or "checking": await the body still running
    (`task`), or run `body` again with backoff — the same interaction, so the same idempotency
    key: a committed effect is answered from its record, an uncommitted one is done once."""
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    delay = bot.config.answer_retry_base
    reply: Reply | None = None
    while reply is None:
        try:
            reply = await task if task is not None else await body()
        except OutcomeUnknown:
            task = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, bot.config.answer_retry_max)
        except Exception as exc:
            reply = error_reply(exc, action=action, interaction=interaction)
    await deliver_reliably(
        interaction, reply, action=action, placeholder_ephemeral=placeholder_ephemeral,
        update=update,
    )  # fmt: skip


async def deliver_quietly(interaction: discord.Interaction, reply: Reply, **how: Any) -> None:
    """An interim answer ("still working", "checking"): best effort, the final one follows."""
    try:
        await deliver(
            interaction, reply, placeholder_ephemeral=how["placeholder_ephemeral"],
            update=how["update"],
        )  # fmt: skip
    except Exception as exc:
        logger.info("interim answer to %s not delivered: %s", interaction.id, exc)


def summary_of(interaction: discord.Interaction, action: str, reply: Reply) -> str:
    """What happened, in words that stand alone in a DM or a later reply."""
    parts = [reply.content] if reply.content else []
    for embed in reply.embeds:
        parts += [p for p in (embed.title, embed.description) if p]
        parts += [f"{f.name}: {f.value}" for f in embed.fields]
    when = int(interaction.created_at.timestamp())
    text = "\n".join(parts) or "done."
    return limits.fit(f"Your /{action.split('.')[0]} from <t:{when}:R>: {text}", limits.CONTENT)


def _gone(exc: BaseException) -> bool:
    """The token cannot be used any more (expired or unknown): only a DM can reach the member."""
    return isinstance(exc, discord.HTTPException) and (exc.status == 401 or exc.code in TOKEN_GONE)


def _permanent(exc: BaseException) -> bool:
    return (
        isinstance(exc, discord.HTTPException)
        and 400 <= exc.status < 500
        and exc.status != 429
        and not _gone(exc)
    )


async def deliver_reliably(
    interaction: discord.Interaction,
    reply: Reply,
    *,
    action: str,
    placeholder_ephemeral: bool,
    update: bool,
    remember: bool = True,
) -> discord.Message | None:
    """Deliver `reply`; if Discord does not take it, keep it (`PendingAnswer`) and retry with
    backoff while the interaction token is valid, then DM the member, or — DMs closed — show
    it with their next reply."""
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    if remember:
        await bot.cache_call(
            answers.remember,
            interaction_id=interaction.id,
            answer={
                "content": reply.content,
                "embeds": [e.to_dict() for e in reply.embeds],
                "ephemeral": reply.ephemeral,
            },
        )
    expires = interaction.created_at + answers.TOKEN_LIFETIME
    delay = bot.config.answer_retry_base
    kept = False
    while True:
        try:
            message = await deliver(
                interaction, reply, placeholder_ephemeral=placeholder_ephemeral, update=update
            )
        except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("answer to interaction %s not delivered: %s", interaction.id, error)
            await keep_answer(interaction, action, reply, error)
            kept = True
            left = (expires - dt.datetime.now(dt.UTC)).total_seconds()
            if _gone(exc) or _permanent(exc) or left <= delay:
                break
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, bot.config.answer_retry_max)
            continue
        if kept:
            await settle_answer(interaction, PendingAnswer.State.DELIVERED)
        return message
    await answer_by_dm(interaction, summary_of(interaction, action, reply))
    return None


async def keep_answer(
    interaction: discord.Interaction, action: str, reply: Reply, error: str
) -> None:
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    try:
        await bot.db(
            answers.keep,
            interaction_id=interaction.id,
            token=interaction.token,
            guild_id=interaction.guild_id or 0,
            user_id=interaction.user.id,
            action=action,
            summary=summary_of(interaction, action, reply),
            created_at=interaction.created_at,
            error=error,
        )
    except Exception:
        logger.exception("could not keep the answer of interaction %s", interaction.id)


async def settle_answer(interaction: discord.Interaction, state: str, error: str = "") -> None:
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    try:
        await bot.db(answers.settle, interaction_id=interaction.id, state=state, error=error)
    except Exception:
        logger.exception("could not settle the answer of interaction %s", interaction.id)


async def answer_by_dm(interaction: discord.Interaction, summary: str) -> None:
    """The token is gone: a DM, or — DMs closed — the member's next reply."""
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    try:
        await interaction.user.send(summary)
    except discord.HTTPException as exc:
        logger.info("answer to %s not sent by DM (%s): next reply", interaction.id, exc)
        await settle_answer(interaction, PendingAnswer.State.NEXT_REPLY, f"DM refused: {exc}")
        bot.unseen.add((interaction.guild_id, interaction.user.id))
        return
    await settle_answer(interaction, PendingAnswer.State.DM)


async def deliver(
    interaction: discord.Interaction,
    reply: Reply,
    *,
    placeholder_ephemeral: bool,
    update: bool,
) -> discord.Message | None:
    """Send `reply` after a defer: edit the placeholder (or the clicked message) when that shows
    it the way it should be seen, otherwise send a follow-up."""
    kwargs = reply.kwargs()
    if update:
        if reply.edit:
            # No text in the reply keeps the message's own text: `content: null` would erase
            # it (an announcement's line above the market embed).
            message = await interaction.edit_original_response(**_followup(kwargs))
        else:
            message = await interaction.followup.send(
                wait=True, ephemeral=reply.ephemeral, **_followup(kwargs)
            )
    elif reply.ephemeral == placeholder_ephemeral or placeholder_ephemeral:
        message = await interaction.edit_original_response(**kwargs)
    else:
        # A public placeholder but a private reply (usually a refusal): remove the placeholder
        # so the channel does not keep an empty "thinking" message.
        await interaction.delete_original_response()
        message = await interaction.followup.send(wait=True, ephemeral=True, **_followup(kwargs))
    if reply.after_send is not None and message is not None:
        try:
            await reply.after_send(message)
        except Exception:  # the member has their answer; only the bookkeeping failed
            logger.exception("after-send step of interaction %s failed", interaction.id)
    return message


def _followup(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    if out.get("content") is None:
        out.pop("content")
    return out


async def answer_now(interaction: discord.Interaction, content: str) -> None:
    """An immediate ephemeral answer (no database involved), if nobody answered yet."""
    if interaction.response.is_done():
        await interaction.followup.send(limits.fit(content, limits.CONTENT), ephemeral=True)
    else:
        await interaction.response.send_message(limits.fit(content, limits.CONTENT), ephemeral=True)


# --- Stateless modals ------------------------------------------------------------------------


ModalHandler = Callable[[discord.Interaction, "re.Match[str]", dict[str, str]], Awaitable[None]]


def modal_values(components: Sequence[dict]) -> dict[str, str]:
    """custom_id → value of every text input in a modal submission (action rows or labels)."""
    values: dict[str, str] = {}
    for component in components or []:
        kind = component.get("type")
        if kind == 1:
            values.update(modal_values(component.get("components", [])))
        elif kind == 18 and component.get("component"):
            values.update(modal_values([component["component"]]))
        elif "custom_id" in component and "value" in component:
            values[component["custom_id"]] = component.get("value") or ""
    return values


class ModalRouter:
    """Dispatches modal submissions by `custom_id` pattern (the modal's state lives there)."""

    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], ModalHandler]] = []

    def add(self, pattern: str, handler: ModalHandler) -> None:
        self._routes.append((re.compile(pattern), handler))

    def match(self, custom_id: str) -> tuple[re.Match[str], ModalHandler] | None:
        for pattern, handler in self._routes:
            found = pattern.fullmatch(custom_id)
            if found:
                return found, handler
        return None

    async def dispatch(self, interaction: discord.Interaction) -> bool:
        data: dict = interaction.data or {}  # type: ignore[assignment]
        routed = self.match(str(data.get("custom_id", "")))
        if routed is None:
            return False
        found, handler = routed
        await handler(interaction, found, modal_values(data.get("components", [])))
        return True


async def send_modal(interaction: discord.Interaction, modal: discord.ui.Modal) -> None:
    """Show `modal` without keeping it in discord.py's view store: `ModalRouter` handles the
    submission from its `custom_id`, so nothing is lost (or leaked) if it is never submitted."""
    modal.stop()
    await interaction.response.send_modal(modal)
    observe(interaction, f"modal:{modal.custom_id.split(':')[2]}")


def text_input(
    *,
    custom_id: str,
    label: str,
    description: str = "",
    placeholder: str = "",
    default: str = "",
    required: bool = True,
    max_length: int | None = None,
    min_length: int | None = None,
    paragraph: bool = False,
) -> discord.ui.Label:
    """A text input under a label (Discord's modal layout), cut to the §8 limits."""
    field_input: discord.ui.TextInput = discord.ui.TextInput(
        custom_id=custom_id,
        placeholder=limits.fit(placeholder, limits.INPUT_PLACEHOLDER) or None,
        default=default or None,
        required=required,
        max_length=max_length,
        min_length=min_length,
        style=discord.TextStyle.paragraph if paragraph else discord.TextStyle.short,
    )
    return discord.ui.Label(
        text=limits.fit(label, limits.INPUT_LABEL),
        description=limits.fit(description, limits.DESCRIPTION) or None,
        component=field_input,
    )


def modal(custom_id: str, title: str, *inputs: discord.ui.Item) -> discord.ui.Modal:
    m = discord.ui.Modal(title=limits.fit(title, limits.MODAL_TITLE), custom_id=custom_id)
    for item in inputs:
        m.add_item(item)
    return m
