"""Getting an answer to the member (issue 12): edit the "thinking" placeholder or send a
follow-up; if Discord does not take it, keep it (`PendingAnswer`) and retry with backoff while
the interaction token is valid, then DM the member, or — DMs closed — show it with their next
reply.

Split from `discordbot/interactions.py` (issue 20); still importable from there."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from typing import TYPE_CHECKING, Any, TypedDict

import aiohttp
import discord

from . import answers, limits
from .models import PendingAnswer
from .replies import TOKEN_GONE, Reply

if TYPE_CHECKING:
    from .bot import PredictionBot

# The answering modules log as one: operators (and tests) follow `discordbot.interactions`.
logger = logging.getLogger("discordbot.interactions")

TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
"""The request may or may not have reached Discord: the connection broke, was reset, or timed
out before an answer came back."""


async def deliver_quietly(
    interaction: discord.Interaction, reply: Reply, **how: Any
) -> discord.Message | None:
    """An interim answer ("still working", "checking"): best effort, the final one follows."""
    try:
        return await deliver(
            interaction, reply, placeholder_ephemeral=how["placeholder_ephemeral"],
            update=how["update"],
        )  # fmt: skip
    except Exception as exc:
        logger.info("interim answer to %s not delivered: %s", interaction.id, exc)
        return None


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


class Later(TypedDict):
    """How an answer that is not the first delivery's is delivered (`deliver_reliably`)."""

    action: str
    placeholder_ephemeral: bool
    update: bool


async def deliver_reliably(
    interaction: discord.Interaction,
    reply: Reply,
    *,
    action: str,
    placeholder_ephemeral: bool,
    update: bool,
    remember: bool = True,
    interim: discord.Message | None = None,
) -> discord.Message | None:
    """Deliver `reply`; if Discord does not take it, keep it (`PendingAnswer`) and retry with
    backoff while the interaction token is valid, then DM the member, or — DMs closed — show
    it with their next reply. With `remember`, the answer is kept in the cache for
    re-deliveries of the interaction, marked `shown` once Discord took it (a re-delivery then
    leaves it as it is, issue 27). `interim`: the follow-up that showed interim words after a
    button click, removed once the answer is shown (`retire_interim`)."""
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    expires = interaction.created_at + answers.TOKEN_LIFETIME
    delay = bot.config.answer_retry_base
    kept = False
    while True:
        try:
            message = await deliver(
                interaction, reply, placeholder_ephemeral=placeholder_ephemeral, update=update
            )
        except (discord.HTTPException, *TRANSPORT_ERRORS) as exc:
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("answer to interaction %s not delivered: %s", interaction.id, error)
            if remember and not kept:
                await _remember(interaction, reply, shown=False)
            await keep_answer(interaction, action, reply, error)
            kept = True
            left = (expires - dt.datetime.now(dt.UTC)).total_seconds()
            if _gone(exc) or _permanent(exc) or left <= delay:
                break
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, bot.config.answer_retry_max)
            continue
        if interim is not None:
            await retire_interim(interaction, interim)
        if remember:
            await _remember(interaction, reply, shown=True)
        if kept:
            await settle_answer(interaction, PendingAnswer.State.DELIVERED)
        return message
    await answer_by_dm(interaction, summary_of(interaction, action, reply))
    return None


async def retire_interim(interaction: discord.Interaction, interim: discord.Message) -> None:
    """Delete the follow-up that said "retrying" or "still working" after a button click, now
    that the answer is shown (on the clicked message, or in a later follow-up): left there, it
    was the member's last word on the interaction (issue 27, the soak's unanswered Confirm
    clicks). Retried with backoff like the answer while the token lives (Discord answering 429
    or 5xx); a follow-up already gone is done."""
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    expires = interaction.created_at + answers.TOKEN_LIFETIME
    delay = bot.config.answer_retry_base
    while True:
        try:
            await interim.delete()
            return
        except discord.NotFound:
            return
        except (discord.HTTPException, *TRANSPORT_ERRORS) as exc:
            left = (expires - dt.datetime.now(dt.UTC)).total_seconds()
            if _gone(exc) or _permanent(exc) or left <= delay:
                logger.warning(
                    "interim answer of interaction %s not removed: %s", interaction.id, exc
                )
                return
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, bot.config.answer_retry_max)


async def _remember(interaction: discord.Interaction, reply: Reply, *, shown: bool) -> None:
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    await bot.cache_call(
        answers.remember,
        interaction_id=interaction.id,
        answer=reply.remembered(shown=shown, token=interaction.token),
    )


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
        if interaction.guild_id is not None:
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
    message: discord.Message | None
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
