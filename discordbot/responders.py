"""How an interaction is answered, stated once per action (STYLE §8).

A handler is a coroutine function that computes what to say; one decorator says how it is said
and which rate limits it spends, and does the rest through `interactions`:

- `@responder(action, reply=..., limits=...)`: the common case. The interaction is deferred and
  answered through `interactions.respond` (first-delivery check, rate limits, the "thinking…"
  placeholder, errors mapped to a friendly reply, the answer delivered reliably). `reply` is
  `"private"` (ephemeral), `"public"` or `"edit"` (a component click edits its own message).
- `@opener(action, ...)`: a click or command that must answer at once with a form (Discord does
  not let a deferred interaction open a modal). The handler returns the modal, or a refusal to
  say instead; the rate limit is counted beside it and wins over both.
- `trade(interaction, ...)`: every trade from Discord goes through here, which spends the
  member's trade limit (DOMAIN §7) once the input is known to be valid.

So the rate limits are applied here and in `interactions`, never by hand in a handler.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Literal, ParamSpec

import discord

from core import replicas
from points.errors import InsufficientPoints, InvalidAmount

from . import interactions, ratelimit
from .interactions import Reply, answer_now, send_modal
from .results import TradeAsk, TradeResult

if TYPE_CHECKING:
    from .bot import PredictionBot

logger = logging.getLogger(__name__)

P = ParamSpec("P")
ReplyKind = Literal["private", "public", "edit"]
Opening = discord.ui.Modal | str | None
"""What an opener answers with: the form, a refusal to say at once, or None (nothing)."""


def bot_of(interaction: discord.Interaction) -> PredictionBot:
    return interaction.client  # type: ignore[return-value]


def interaction_in(args: Sequence[object]) -> discord.Interaction:
    """The interaction among a handler's positional arguments (after `self` for a cog's)."""
    for arg in args:
        if isinstance(arg, discord.Interaction):
            return arg
    raise TypeError("a responder's handler takes the interaction as a positional argument")


def _keep_signature(handler: Callable[..., Any], fn: Callable[..., Any]) -> None:
    """discord.py reads a command's options from its callback's signature and resolves string
    annotations in the callback's module: the wrapper lives here, so it carries the handler's
    signature with the annotations already evaluated (in the handler's module)."""
    try:
        handler.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    except NameError:  # an annotation only known to type checkers: no command reads it
        handler.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]


async def answer_safely(interaction: discord.Interaction, content: str) -> None:
    """Answer at once; a Discord refusal is logged, not raised (nothing more can be shown)."""
    try:
        await answer_now(interaction, content)
    except discord.HTTPException:
        logger.exception("could not answer interaction %s", interaction.id)


def responder(
    action: str,
    *,
    reply: ReplyKind = "private",
    limits: Sequence[ratelimit.Rule] = ratelimit.REQUEST,
    refuse_first: Callable[..., str | None] | None = None,
) -> Callable[[Callable[P, Awaitable[Reply]]], Callable[P, Coroutine[Any, Any, None]]]:
    """Answer with the `Reply` the handler returns, through `interactions.respond`, spending
    `limits`. `refuse_first(*args)` may return a refusal answered at once, before anything is
    counted or deferred (a click on someone else's quote)."""

    def wrap(fn: Callable[P, Awaitable[Reply]]) -> Callable[P, Coroutine[Any, Any, None]]:
        @functools.wraps(fn)
        async def handler(*args: P.args, **kwargs: P.kwargs) -> None:
            interaction = interaction_in(args)
            if refuse_first is not None:
                refusal = refuse_first(*args, **kwargs)
                if refusal:
                    await answer_safely(interaction, refusal)
                    return
            # This member's reads wait for their own writes (core.replicas); the context is
            # this handler's task, and database threads run with a copy of it.
            reader_token = replicas.current_reader_set(f"member:{interaction.user.id}")

            async def body() -> Reply:
                # A member's first interaction: their names are stored before the reply that
                # may show them is rendered.
                await bot_of(interaction).directory_noted(interaction)
                return await fn(*args, **kwargs)

            try:
                await interactions.respond(
                    interaction,
                    body,
                    action=action,
                    ephemeral=reply != "public",
                    update=reply == "edit",
                    rules=limits,
                )
            finally:
                replicas.current_reader_reset(reader_token)

        _keep_signature(handler, fn)
        return handler

    return wrap


def opener(
    action: str,
    *,
    limits: Sequence[ratelimit.Rule] = ratelimit.REQUEST,
    guild_only: bool = False,
) -> Callable[[Callable[P, Awaitable[Opening]]], Callable[P, Coroutine[Any, Any, None]]]:
    """Answer at once with the modal the handler returns (or its refusal). The rate limit is
    counted while the handler runs (its checks have `interactions.PRE_ACK_DEADLINE`) and a
    member over it is told so whatever the handler found. `guild_only`: outside a server,
    say so before anything else."""

    def wrap(fn: Callable[P, Awaitable[Opening]]) -> Callable[P, Coroutine[Any, Any, None]]:
        @functools.wraps(fn)
        async def handler(*args: P.args, **kwargs: P.kwargs) -> None:
            interaction = interaction_in(args)
            try:
                if guild_only and interaction.guild_id is None:
                    await answer_now(interaction, interactions.MSG_GUILD_ONLY)
                    return
                limit_task = asyncio.ensure_future(interactions.rate_limited(interaction, limits))
                try:
                    opening = await fn(*args, **kwargs)
                except Exception:
                    if (limited := await limit_task) is not None:
                        await answer_now(interaction, limited.message)
                        return
                    raise
                if (limited := await limit_task) is not None:
                    await answer_now(interaction, limited.message)
                elif isinstance(opening, str):
                    await answer_now(interaction, opening)
                elif opening is not None:
                    await send_modal(interaction, opening)
            except Exception as exc:
                failed = interactions.error_reply(exc, action=action, interaction=interaction)
                await answer_safely(interaction, failed.content or "")

        _keep_signature(handler, fn)
        return handler

    return wrap


async def trade(
    interaction: discord.Interaction,
    *,
    kind: Literal["buy", "sell"],
    market_id: int,
    outcome: int,
    idempotency_key: str,
    amount: int | None = None,
    shares: int | None = None,
    min_shares: int | None = None,
    min_points: int | None = None,
) -> TradeResult:
    """Trade for the member behind `interaction` (a buy or stake of `amount` points, or a sale
    of `shares` micro-shares, None: all) on outcome position `outcome`, in the market's next
    batch (`PredictionBot.trade`), after spending one of the member's trades (DOMAIN §7; raises
    `interactions.TooFast` over the limit)."""
    await interactions.trade_counted(interaction)
    assert interaction.guild_id is not None  # `respond` answered outside a guild already
    ask = TradeAsk(
        guild_id=interaction.guild_id,
        user_id=interaction.user.id,
        outcome=outcome,
        kind=kind,
        idempotency_key=idempotency_key,
        amount=amount,
        shares=shares,
        min_shares=min_shares,
        min_points=min_points,
    )
    try:
        return await bot_of(interaction).trade(market_id=market_id, ask=ask)
    except (InsufficientPoints, InvalidAmount):
        # Refused for the member's balance or amount, which the one-step path leaves to the
        # batch: a refused trade spends no trade (DOMAIN §7).
        await bot_of(interaction).cache_call(
            ratelimit.refund,
            guild_id=ask.guild_id,
            user_id=ask.user_id,
            rule=ratelimit.USER_TRADES,
        )
        raise
