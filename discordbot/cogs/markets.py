"""Market commands: `/market create|show|list|close|resolve|cancel`, `/bet`, `/sell`, `/portfolio`.

Thin (STYLE §8): each command parses its options, awaits one `discordbot.actions` use case or a
selector through `bot.db`, and renders the result. Options carry Discord-side limits for a better
form, but the services validate everything again (DOMAIN §7).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from betting.selectors import portfolio_get
from markets.models import Market
from markets.selectors import categories as market_categories
from markets.selectors import market_list
from markets.validation import MAX_DESCRIPTION
from points.errors import MAX_AMOUNT

from .. import actions, interactions, limits, market_ui, parsing, ratelimit, render, selectors
from ..interactions import Reply, actor, answer_now, idempotency_key, respond, send_modal
from ..permissions import require_creator

if TYPE_CHECKING:
    from ..bot import PredictionBot

logger = logging.getLogger(__name__)

AUTOCOMPLETE_DEADLINE = 2.5
"""Seconds after Discord created an autocomplete by which its choices must be sent (Discord's
limit is 3 s); the read runs on the bot's fast pool (`db_fast`), apart from trades."""
"""Autocomplete cannot be deferred: past this budget it answers with no suggestions."""
CREATE_MODAL_ID = r"pm:m:create:(?P<mechanism>amm|parimutuel):(?P<liquidity>\d{0,10})"

MSG_VOTE = (
    "🗳️ <@{voter}> voted **{label}** for #{market_id} ({votes} of {needed} votes needed).\n{how}"
)
MSG_VOTE_REPEATED = (
    "You already voted **{label}** for #{market_id} ({votes} of {needed} votes needed); "
    "nothing changed.\n{how}"
)
MSG_PROPOSED = (
    "⚖️ <@{who}> proposed **{label}** for #{market_id}: pays out {deadline} unless disputed. "
    "Traders who disagree press **Dispute** on the market message.\n{how}"
)
MSG_PROPOSED_BY_VOTES = (
    "⚖️ <@{who}> voted **{label}** for #{market_id} ({votes} of {needed} votes needed): the "
    "result is proposed and pays out {deadline} unless disputed. Traders who disagree press "
    "**Dispute** on the market message.\n{how}"
)
MSG_PROPOSED_WAITS = (
    "⚖️ <@{who}> proposed **{label}** for #{market_id}. They hold a position in it, so the "
    "result waits for a second resolver: a moderator confirms it with `/market confirm` (or "
    "changes it, or undoes it with `/market undo`).\n{how}"
)
MSG_CONFIRMED = (
    "✅ Market #{market_id} resolved: **{label}**. <@{moderator}> confirmed the proposed result: "
    "{reason}"
)
MSG_CHANGED = (
    "✅ Market #{market_id} resolved: **{label}**. <@{moderator}> changed the proposed result "
    "from **{before}**: {reason}"
)
MSG_UNDONE = (
    "↩️ <@{moderator}> undid the proposed result **{label}** of #{market_id}: {reason}\nThe "
    "market is closed again and needs a new result. {how}"
)
MSG_SPLIT = (
    "Your outcomes were split at the commas into {count}: {shown}. Not what you meant? "
    "Take the market back within a minute (while nobody has traded) and create it again with "
    "| between outcomes."
)
MSG_RESOLVED = "✅ Market #{market_id} resolved: **{label}**."
MSG_CLOSED = "⏸️ Trading on #{market_id} is closed. {how}"
MSG_CANCELLED = "❌ Market #{market_id} was cancelled; every trader was refunded."
MSG_FORCE_REASON = "A direct resolution needs a reason (1–500 characters)."

STATUS_CHOICES = [
    app_commands.Choice(name="Open", value="open"),
    app_commands.Choice(name="Closed, awaiting resolution", value="closed"),
    app_commands.Choice(name="Result proposed", value="resolving"),
    app_commands.Choice(name="Resolved", value="resolved"),
    app_commands.Choice(name="Cancelled", value="cancelled"),
    app_commands.Choice(name="All", value="all"),
]
MECHANISM_CHOICES = [
    app_commands.Choice(name="Market maker (buy and sell shares)", value="amm"),
    app_commands.Choice(name="Pool (stakes split the pot)", value="parimutuel"),
]


def _bot(interaction: discord.Interaction) -> PredictionBot:
    return interaction.client  # type: ignore[return-value]


# --- Autocomplete ----------------------------------------------------------------------------


def _choice(name: str, value: str) -> app_commands.Choice[str]:
    return app_commands.Choice(name=limits.fit(name, limits.CHOICE_NAME), value=value[:100])


def market_choices(*, guild_id: int, current: str, statuses: list[str] | None) -> list:
    return market_list(
        guild_id=guild_id,
        status=statuses,
        search=current or None,
        limit=limits.AUTOCOMPLETE_RESULTS,
    )


def market_autocomplete(statuses: list[str] | None) -> Callable[..., Any]:
    """Markets of this guild in `statuses` whose question (or number) matches the typed text,
    newest first, each with its leading outcome."""

    async def complete(interaction: discord.Interaction, current: str):
        if interaction.guild_id is None:
            return []
        try:
            found = await asyncio.wait_for(
                _bot(interaction).db_fast(
                    market_choices,
                    guild_id=interaction.guild_id,
                    current=current[:100],
                    statuses=statuses,
                ),
                timeout=interactions.remaining(interaction, AUTOCOMPLETE_DEADLINE),
            )
        except Exception:
            logger.warning("market autocomplete failed or timed out", exc_info=True)
            return []
        out = []
        for m in found[: limits.AUTOCOMPLETE_RESULTS]:
            lead = m.leading
            suffix = f" ({render.percent(lead.probability)} {lead.label})"
            head = f"#{m.id} · "
            room = limits.CHOICE_NAME - limits.size(head) - min(limits.size(suffix), 40)
            name = head + limits.fit(m.question, max(10, room)) + limits.fit(suffix, 40)
            out.append(_choice(name, str(m.id)))
        return out

    return complete


async def outcome_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[int]]:
    """The outcomes of the market chosen in the same command, with their current price."""
    chosen = getattr(interaction.namespace, "market", None)
    if interaction.guild_id is None or not chosen:
        return []
    try:
        summary = await asyncio.wait_for(
            _bot(interaction).db_fast(
                actions.market_in_guild, guild_id=interaction.guild_id, market=chosen
            ),
            timeout=interactions.remaining(interaction, AUTOCOMPLETE_DEADLINE),
        )
    except Exception:
        return []
    typed = current.casefold().strip()
    return [
        _choice(f"{o.label} — {render.percent(o.probability)}", str(o.position + 1))
        for o in summary.outcomes
        if not typed or typed in o.label.casefold() or typed == str(o.position + 1)
    ][: limits.AUTOCOMPLETE_RESULTS]


async def category_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    if interaction.guild_id is None:
        return []
    try:
        names = await asyncio.wait_for(
            _bot(interaction).db_fast(market_categories, guild_id=interaction.guild_id, limit=100),
            timeout=interactions.remaining(interaction, AUTOCOMPLETE_DEADLINE),
        )
    except Exception:
        return []
    typed = current.casefold().strip()
    return [_choice(n, n) for n in names if not typed or typed in n.casefold()][
        : limits.AUTOCOMPLETE_RESULTS
    ]


# --- Market creation -------------------------------------------------------------------------


def create_modal(
    *,
    mechanism: str,
    liquidity: int | None,
    question: str = "",
    outcomes: str = "",
    duration: str = "",
    category: str = "",
    description: str = "",
) -> discord.ui.Modal:
    lines = "\n".join(parsing.outcomes_text(outcomes)) if outcomes else ""
    return interactions.modal(
        f"pm:m:create:{mechanism}:{liquidity or ''}",
        "New market",
        interactions.text_input(
            custom_id="question",
            label="Question",
            description="What will happen? 1–500 characters.",
            default=question[:500],
            max_length=500,
            paragraph=True,
        ),
        interactions.text_input(
            custom_id="outcomes",
            label="Outcomes, one per line",
            description="2 to 10 different answers, each up to 100 characters.",
            default=lines[:1100],
            placeholder="Yes\nNo",
            max_length=1100,
            paragraph=True,
        ),
        interactions.text_input(
            custom_id="duration",
            label="Open for",
            description="1 minute to 30 days: 90m, 2h, 1d2h30m or d,h,m like 1,2,30.",
            default=duration[:20] or "1d",
            max_length=20,
        ),
        interactions.text_input(
            custom_id="category",
            label="Category (optional)",
            description="Up to 50 characters, e.g. sports.",
            default=category[:50],
            required=False,
            max_length=50,
        ),
        interactions.text_input(
            custom_id="description",
            label="Description and resolution criteria",
            description="Optional, up to 1,000 characters: what counts as each outcome.",
            default=description[:MAX_DESCRIPTION],
            placeholder="Resolves Yes if … according to …",
            required=False,
            max_length=MAX_DESCRIPTION,
            paragraph=True,
        ),
    )


async def create_market(
    interaction: discord.Interaction,
    *,
    question: str,
    outcomes: str,
    duration: str,
    category: str | None,
    mechanism: str,
    liquidity: int | None,
    description: str | None = None,
) -> None:
    """Create the market and post it publicly as the market message."""
    bot = _bot(interaction)

    async def body() -> Reply:
        summary = await bot.db(
            actions.market_create_for_interaction,
            guild_id=interaction.guild_id,
            actor=actor(interaction),
            question=question,
            outcomes=outcomes,
            duration=duration,
            category=category,
            mechanism=mechanism,
            liquidity=liquidity,
            description=description,
            idempotency_key=idempotency_key(interaction),
            channel_id=interaction.channel_id,
        )
        reply = market_ui.market_reply(summary)

        async def remember(message: discord.Message) -> None:
            await bot.db(
                actions.market_copy_record,
                market_id=summary.id,
                channel_id=message.channel.id,
                message_id=message.id,
            )

        split = split_at_commas(outcomes)

        async def after(message: discord.Message) -> None:
            await remember(message)
            if split:
                view = market_ui.withdraw_view(summary.id, interaction.user.id)
                # Stopped before sending: the button is a DynamicItem the bot dispatches by its
                # custom_id, so discord.py need not keep (and time out) the view.
                view.stop()
                await interaction.followup.send(
                    limits.fit(
                        MSG_SPLIT.format(
                            count=len(summary.outcomes),
                            shown=" · ".join(
                                f"“{limits.escape(o.label)}”" for o in summary.outcomes
                            ),
                        ),
                        limits.CONTENT,
                    ),
                    view=view,
                    ephemeral=True,
                )

        reply.after_send = after
        return reply

    await respond(
        interaction, body, action="market.create", ephemeral=False, rules=ratelimit.CREATE
    )


def split_at_commas(outcomes: str) -> bool:
    """The outcomes were typed on one line with commas and no `|`: the split may surprise."""
    text = outcomes or ""
    return "," in text and "|" not in text and "\n" not in text.strip()


async def create_submit(
    interaction: discord.Interaction, match: re.Match[str], values: dict[str, str]
) -> None:
    await create_market(
        interaction,
        # The form's question box is multi-line (long questions wrap); a question is one line
        # (DOMAIN §7), so line breaks typed there become spaces instead of a refusal.
        question=" ".join(values.get("question", "").split()),
        outcomes=values.get("outcomes", ""),
        duration=values.get("duration", ""),
        category=values.get("category") or None,
        mechanism=match["mechanism"],
        liquidity=int(match["liquidity"]) if match["liquidity"] else None,
        description=values.get("description") or None,
    )


def vote_reply(vote: actions.VoteResult, *, voter: int) -> Reply:
    """The answer to `/market resolve` without force: resolved, proposed (pays out at the
    deadline unless disputed), waiting for a second resolver, a vote recorded, or the same vote
    again (privately). Each says who resolves here and how (`vote.how`)."""
    m = vote.market
    label = limits.escape(vote.label)
    if vote.resolved:
        winner = m.outcomes[m.winning_position].label if m.winning_position is not None else "?"
        reply = market_ui.market_reply(m)
        reply.content = MSG_RESOLVED.format(market_id=m.id, label=limits.escape(winner))
        return reply
    if vote.proposed and not vote.repeated:
        reply = market_ui.market_reply(m)
        p = m.proposal
        deadline = render.timestamp(p.deadline) if p and p.deadline else ""
        words = dict(who=voter, label=label, market_id=m.id, how=vote.how, deadline=deadline)
        if vote.waits_for_second:
            reply.content = MSG_PROPOSED_WAITS.format(**words)
        elif vote.by_creator:
            reply.content = MSG_PROPOSED.format(**words)
        else:
            reply.content = MSG_PROPOSED_BY_VOTES.format(
                votes=vote.votes, needed=vote.needed, **words
            )
        return reply
    words = dict(label=label, market_id=m.id, votes=vote.votes, needed=vote.needed, how=vote.how)
    if vote.repeated:
        return Reply(content=MSG_VOTE_REPEATED.format(**words))
    return Reply(content=MSG_VOTE.format(voter=voter, **words), ephemeral=False)


# --- The cog ---------------------------------------------------------------------------------


class Markets(commands.Cog):
    """Prediction markets: create, browse, trade, close and settle."""

    market = app_commands.Group(
        name="market", description="Create, browse and run prediction markets", guild_only=True
    )

    def __init__(self, bot: PredictionBot) -> None:
        self.bot = bot

    @market.command(name="create")
    @app_commands.describe(
        question="What will happen? (1–500 characters). Leave empty to fill in a form.",
        outcomes="2–10 answers separated by | or commas, e.g. Yes | No",
        duration="How long trading stays open: 90m, 2h, 1d2h30m or 1,2,30 (max 30 days)",
        category="An optional category, e.g. sports",
        mechanism="Market maker (default) or pool",
        liquidity="Points the server puts in (moderators only; default from /settings)",
        description="Optional: what the question means and what counts as each outcome",
    )
    @app_commands.choices(mechanism=MECHANISM_CHOICES)
    @app_commands.autocomplete(category=category_autocomplete)
    async def create(
        self,
        interaction: discord.Interaction,
        question: app_commands.Range[str, 1, 500] | None = None,
        outcomes: app_commands.Range[str, 1, 1100] | None = None,
        duration: app_commands.Range[str, 1, 20] | None = None,
        category: app_commands.Range[str, 1, 50] | None = None,
        mechanism: str = Market.Mechanism.AMM,
        liquidity: app_commands.Range[int, 1, 1_000_000_000] | None = None,
        description: app_commands.Range[str, 1, 1000] | None = None,
    ) -> None:
        """Create a market; without options it opens a form."""
        if question and outcomes and duration:
            await create_market(
                interaction,
                question=question,
                outcomes=outcomes,
                duration=duration,
                category=category,
                mechanism=mechanism,
                liquidity=liquidity,
                description=description,
            )
            return
        try:
            if interaction.guild_id is None:
                await answer_now(interaction, interactions.MSG_GUILD_ONLY)
                return
            limited = await interactions.rate_limited(interaction, ratelimit.REQUEST)
            if limited is not None:
                await answer_now(interaction, limited.message)
                return
            policy = self.bot.policies.peek(interaction.guild_id)
            if policy is not None:
                require_creator(policy, actor(interaction))
            await send_modal(
                interaction,
                create_modal(
                    mechanism=mechanism if mechanism in Market.Mechanism.values else "amm",
                    liquidity=liquidity,
                    question=question or "",
                    outcomes=outcomes or "",
                    duration=duration or "",
                    category=category or "",
                    description=description or "",
                ),
            )
        except Exception as exc:
            reply = interactions.error_reply(exc, action="market.create", interaction=interaction)
            await answer_now(interaction, reply.content)

    @market.command(name="show")
    @app_commands.describe(market="The market (type to search, or its number like #12)")
    @app_commands.autocomplete(market=market_autocomplete(None))
    async def show(self, interaction: discord.Interaction, market: str) -> None:
        """Post a market with its buttons in this channel."""

        async def body() -> Reply:
            summary, top = await self.bot.db(
                selectors.market_card, guild_id=interaction.guild_id, market=market
            )
            reply = market_ui.market_reply(summary, top=top)

            async def remember(message: discord.Message) -> None:
                await self.bot.db(
                    actions.market_copy_record,
                    market_id=summary.id,
                    channel_id=message.channel.id,
                    message_id=message.id,
                )

            reply.after_send = remember
            return reply

        await respond(interaction, body, action="market.show", ephemeral=False)

    @market.command(name="chart")
    @app_commands.describe(market="The market (type to search, or its number like #12)")
    @app_commands.autocomplete(market=market_autocomplete(None))
    async def chart(self, interaction: discord.Interaction, market: str) -> None:
        """Post a chart of a market's price history in this channel."""
        await market_ui.chart_show(interaction, market, ephemeral=False)

    @market.command(name="list")
    @app_commands.describe(status="Which markets (default: open)", category="Only this category")
    @app_commands.choices(status=STATUS_CHOICES)
    @app_commands.autocomplete(category=category_autocomplete)
    async def list_(
        self,
        interaction: discord.Interaction,
        status: str = "open",
        category: app_commands.Range[str, 1, 50] | None = None,
    ) -> None:
        """List this server's markets, newest first, five to a page."""

        async def body() -> Reply:
            return await market_ui.market_list_reply(
                interaction,
                status=status if status in selectors.LIST_STATUSES else "open",
                category=(category or "").strip()[:50],
                page=0,
            )

        await respond(interaction, body, action="market.list")

    @market.command(name="close")
    @app_commands.describe(market="The market to close", reason="Why (optional)")
    @app_commands.autocomplete(market=market_autocomplete(["open"]))
    async def close(
        self,
        interaction: discord.Interaction,
        market: str,
        reason: app_commands.Range[str, 1, 500] | None = None,
    ) -> None:
        """Stop trading early (the market's creator or a moderator)."""

        async def body() -> Reply:
            summary = await self.bot.db(
                actions.market_close_for_interaction,
                guild_id=interaction.guild_id,
                actor=actor(interaction),
                market=market,
                reason=reason or "",
                idempotency_key=idempotency_key(interaction),
            )
            how = await self.bot.db(
                actions.resolution_how_for_market,
                guild_id=interaction.guild_id,
                market_id=summary.id,
            )
            reply = market_ui.market_reply(summary)
            reply.content = MSG_CLOSED.format(market_id=summary.id, how=how)
            return reply

        await respond(interaction, body, action="market.close", ephemeral=False)

    @market.command(name="resolve")
    @app_commands.describe(
        market="The closed market to resolve (or, with force, one whose result is proposed)",
        outcome="The outcome that happened",
        force="Resolve now, final at once, overruling votes and proposals (Manage Server only)",
        reason="Why (required with force)",
    )
    @app_commands.autocomplete(
        market=market_autocomplete(["closed", "resolving"]), outcome=outcome_autocomplete
    )
    async def resolve(
        self,
        interaction: discord.Interaction,
        market: str,
        outcome: str,
        force: bool = False,
        reason: app_commands.Range[str, 1, 500] | None = None,
    ) -> None:
        """Vote for (or, where creators decide, propose) the outcome that happened."""

        async def body() -> Reply:
            if force:
                if not (reason or "").strip():
                    return Reply(content=MSG_FORCE_REASON)
                summary = await self.bot.db(
                    actions.market_resolve_for_interaction,
                    guild_id=interaction.guild_id,
                    actor=actor(interaction),
                    market=market,
                    outcome=outcome,
                    reason=reason or "",
                    idempotency_key=idempotency_key(interaction),
                )
                label = summary.outcomes[summary.winning_position].label
                reply = market_ui.market_reply(summary)
                reply.content = MSG_RESOLVED.format(
                    market_id=summary.id, label=limits.escape(label)
                )
                return reply
            vote = await self.bot.db(
                actions.market_vote_for_interaction,
                guild_id=interaction.guild_id,
                actor=actor(interaction),
                market=market,
                outcome=outcome,
                idempotency_key=idempotency_key(interaction),
            )
            reply = vote_reply(vote, voter=interaction.user.id)
            if vote.proposed and not vote.repeated:
                # The proposal's message carries the countdown and the Dispute button: a copy
                # of the market message, refreshed like the others when it is disputed or
                # decided.
                market_id = vote.market.id

                async def remember(message: discord.Message) -> None:
                    await self.bot.db(
                        actions.market_copy_record,
                        market_id=market_id,
                        channel_id=message.channel.id,
                        message_id=message.id,
                    )

                reply.after_send = remember
            return reply

        await respond(interaction, body, action="market.resolve", ephemeral=False)

    @market.command(name="confirm")
    @app_commands.describe(
        market="The market whose proposed result you decide",
        reason="Why (shown to everyone, and to the members who disputed it)",
        outcome="Change the result to this outcome (leave empty to confirm it as proposed)",
    )
    @app_commands.autocomplete(
        market=market_autocomplete(["resolving"]), outcome=outcome_autocomplete
    )
    async def confirm(
        self,
        interaction: discord.Interaction,
        market: str,
        reason: app_commands.Range[str, 1, 500],
        outcome: str | None = None,
    ) -> None:
        """Pay out a proposed result now, as proposed or changed (moderators)."""

        async def body() -> Reply:
            done = await self.bot.db(
                actions.market_proposal_confirm_for_interaction,
                guild_id=interaction.guild_id,
                actor=actor(interaction),
                market=market,
                outcome=outcome,
                reason=reason,
                idempotency_key=idempotency_key(interaction),
            )
            m = done.market
            label = m.outcomes[m.winning_position].label if m.winning_position is not None else "?"
            reply = market_ui.market_reply(m)
            words = dict(
                market_id=m.id,
                label=limits.escape(label),
                moderator=interaction.user.id,
                reason=limits.fit(limits.escape(reason), 500),
            )
            reply.content = (
                MSG_CHANGED.format(before=limits.escape(done.changed_from), **words)
                if done.changed_from
                else MSG_CONFIRMED.format(**words)
            )
            return reply

        await respond(interaction, body, action="market.confirm", ephemeral=False)

    @market.command(name="undo")
    @app_commands.describe(
        market="The market whose proposed result you withdraw",
        reason="Why (shown to everyone, and to the members who disputed it)",
    )
    @app_commands.autocomplete(market=market_autocomplete(["resolving"]))
    async def undo(
        self,
        interaction: discord.Interaction,
        market: str,
        reason: app_commands.Range[str, 1, 500],
    ) -> None:
        """Withdraw a proposed result: the market is closed again (moderators)."""

        async def body() -> Reply:
            done = await self.bot.db(
                actions.market_proposal_undo_for_interaction,
                guild_id=interaction.guild_id,
                actor=actor(interaction),
                market=market,
                reason=reason,
                idempotency_key=idempotency_key(interaction),
            )
            reply = market_ui.market_reply(done.market)
            reply.content = MSG_UNDONE.format(
                moderator=interaction.user.id,
                label=limits.escape(done.label),
                market_id=done.market.id,
                reason=limits.fit(limits.escape(reason), 500),
                how=done.how,
            )
            return reply

        await respond(interaction, body, action="market.undo", ephemeral=False)

    @market.command(name="cancel")
    @app_commands.describe(market="The market to cancel", reason="Why (shown to traders)")
    @app_commands.autocomplete(market=market_autocomplete(["open", "closed", "resolving"]))
    async def cancel(
        self,
        interaction: discord.Interaction,
        market: str,
        reason: app_commands.Range[str, 1, 500],
    ) -> None:
        """Cancel a market and refund every trader (moderators)."""

        async def body() -> Reply:
            summary = await self.bot.db(
                actions.market_cancel_for_interaction,
                guild_id=interaction.guild_id,
                actor=actor(interaction),
                market=market,
                reason=reason,
                idempotency_key=idempotency_key(interaction),
            )
            reply = market_ui.market_reply(summary)
            reply.content = MSG_CANCELLED.format(market_id=summary.id)
            return reply

        await respond(interaction, body, action="market.cancel", ephemeral=False)

    # --- Trading -----------------------------------------------------------------------------

    @app_commands.command(name="bet")
    @app_commands.guild_only()
    @app_commands.describe(
        market="The market (type to search)",
        outcome="The outcome you think will happen",
        amount="Points to bet",
        confirm="Show a quote to confirm first (default), or trade at once within the "
        "slippage limit",
    )
    @app_commands.autocomplete(market=market_autocomplete(["open"]), outcome=outcome_autocomplete)
    async def bet(
        self,
        interaction: discord.Interaction,
        market: str,
        outcome: str,
        amount: app_commands.Range[int, 1, MAX_AMOUNT],
        confirm: bool = True,
    ) -> None:
        """Bet points on an outcome: buy its shares, or stake on it in a pool."""

        async def body() -> Reply:
            quote = await self.bot.db(
                actions.quote_buy_for_interaction,
                guild_id=interaction.guild_id,
                user_id=interaction.user.id,
                market=market,
                outcome=outcome,
                amount=amount,
            )
            if confirm:
                return market_ui.quote_reply(quote, interaction)
            await interactions.trade_counted(interaction)
            result = await self.bot.trade(
                kind="buy",
                guild_id=interaction.guild_id,
                user_id=interaction.user.id,
                market=quote.market.id,
                outcome=str(quote.outcome + 1),
                amount=amount,
                min_shares=quote.limit or None,
                idempotency_key=idempotency_key(interaction),
            )
            return Reply(content=render.trade_text(result))

        await respond(interaction, body, action="bet")

    @app_commands.command(name="sell")
    @app_commands.guild_only()
    @app_commands.describe(
        market="The market (type to search)",
        outcome="The outcome whose shares you sell",
        shares="How many shares, e.g. 2.5, or “all” (default)",
        confirm="Show a quote to confirm first (default), or sell at once within the "
        "slippage limit",
    )
    @app_commands.autocomplete(market=market_autocomplete(["open"]), outcome=outcome_autocomplete)
    async def sell(
        self,
        interaction: discord.Interaction,
        market: str,
        outcome: str,
        shares: app_commands.Range[str, 1, 25] = "all",
        confirm: bool = True,
    ) -> None:
        """Sell shares back to the market maker for points."""

        async def body() -> Reply:
            quote = await self.bot.db(
                actions.quote_sell_for_interaction,
                guild_id=interaction.guild_id,
                user_id=interaction.user.id,
                market=market,
                outcome=outcome,
                shares=shares,
            )
            if confirm:
                return market_ui.quote_reply(quote, interaction)
            await interactions.trade_counted(interaction)
            result = await self.bot.trade(
                kind="sell",
                guild_id=interaction.guild_id,
                user_id=interaction.user.id,
                market=quote.market.id,
                outcome=str(quote.outcome + 1),
                shares=render.shares_exact(quote.asked).replace(",", ""),
                min_points=quote.limit or None,
                idempotency_key=idempotency_key(interaction),
            )
            return Reply(content=render.trade_text(result))

        await respond(interaction, body, action="sell")

    @app_commands.command(name="portfolio")
    @app_commands.guild_only()
    @app_commands.describe(member="Whose portfolio (default: yours)")
    async def portfolio(
        self, interaction: discord.Interaction, member: discord.Member | None = None
    ) -> None:
        """Your (or a member's) balance and positions with their current value."""
        target = member or interaction.user

        async def body() -> Reply:
            result = await self.bot.db(
                portfolio_get, guild_id=interaction.guild_id, user_id=target.id
            )
            return Reply(embeds=[render.portfolio_embed(result, name=target.display_name)])

        await respond(interaction, body, action="portfolio")


async def setup(bot: PredictionBot) -> None:
    market_ui.register(bot)
    bot.modals.add(CREATE_MODAL_ID, create_submit)
    await bot.add_cog(Markets(bot))
