"""Market commands: `/market create|show|list|close|resolve|cancel`, `/bet`, `/sell`, `/portfolio`.

Thin (STYLE §8): each command parses its options, awaits one `discordbot.actions` use case or a
selector through `bot.db`, and renders the result. Options carry Discord-side limits for a better
form, but the services validate everything again (DOMAIN §7). Each command states how it answers
with `@responder` (`discordbot.responders`); its autocomplete is `discordbot.autocomplete`, the
creation form and reply `discordbot.market_create`, the market message `discordbot.market_ui`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from betting.calibration import calibration_of
from betting.selectors import portfolio_get
from markets.models import Market
from points.errors import MAX_AMOUNT

from .. import actions, how_post, limits, market_ui, render, selectors
from ..autocomplete import category_autocomplete, market_autocomplete, outcome_autocomplete
from ..interactions import Reply, actor, idempotency_key
from ..known_at import KNOWN_AT_HELP, known_at_note
from ..market_create import (
    CREATE_MODAL_ID,
    create_form,
    create_market,
    create_submit,
    from_message_menu,
)
from ..responders import responder
from ..results import VoteResult

if TYPE_CHECKING:
    from ..bot import PredictionBot

logger = logging.getLogger(__name__)
T = TypeVar("T")
Reason = app_commands.Range[str, 1, 500]
"""A moderator's reason, shown to traders (DOMAIN §7: 1–500 characters)."""

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


def trade_command(name: str, **described: str) -> Callable[[Any], Any]:
    """`/bet` and `/sell`: a guild-only command on an open market (autocompleted) and one of its
    outcomes, its options described by `described`."""

    def wrap(callback: Any) -> Any:
        callback = app_commands.autocomplete(
            market=market_autocomplete(["open"]), outcome=outcome_autocomplete
        )(callback)
        callback = app_commands.describe(market="The market (type to search)", **described)(
            callback
        )
        return app_commands.command(name=name)(app_commands.guild_only()(callback))

    return wrap


def vote_reply(vote: VoteResult, *, voter: int) -> Reply:
    """The answer to `/market resolve` without force: resolved, proposed (pays out at the
    deadline unless disputed), waiting for a second resolver, a vote recorded, or the same vote
    again (privately). Each says who resolves here and how (`vote.how`: the paragraph, or a link
    to the public post that showed it, `discordbot.how_post`)."""
    m = vote.market
    label = limits.escape(vote.label)
    if vote.resolved:
        winner = m.outcomes[m.winning_position].label if m.winning_position is not None else "?"
        reply = market_ui.market_reply(m)
        reply.content = MSG_RESOLVED.format(market_id=m.id, label=limits.escape(winner))
        reply.content += known_at_note(m)
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
        reply.content += known_at_note(m)
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

    async def _as_member(
        self, interaction: discord.Interaction, use_case: Callable[..., T], /, **fields: Any
    ) -> T:
        """Run a market use case for the member Discord described, in their guild, with the
        interaction's idempotency key."""
        return await self.bot.db(
            use_case,
            guild_id=interaction.guild_id,
            actor=actor(interaction),
            idempotency_key=idempotency_key(interaction),
            **fields,
        )

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
        await create_form(
            interaction,
            mechanism=mechanism,
            liquidity=liquidity,
            question=question or "",
            outcomes=outcomes or "",
            duration=duration or "",
            category=category or "",
            description=description or "",
        )

    @market.command(name="show")
    @app_commands.describe(market="The market (type to search, or its number like #12)")
    @app_commands.autocomplete(market=market_autocomplete(None))
    @responder("market.show", reply="public")
    async def show(self, interaction: discord.Interaction, market: str) -> Reply:
        """Post a market with its buttons in this channel."""
        summary, top = await self.bot.db(
            selectors.market_card, guild_id=interaction.guild_id, market=market
        )
        reply = market_ui.market_reply(summary, top=top)
        reply.after_send = market_ui.copy_recorder(self.bot, summary.id)
        return reply

    @market.command(name="chart")
    @app_commands.describe(
        market="The market (type to search, or its number like #12)",
        range="Which time to show (default: since it opened)",
    )
    @app_commands.choices(
        range=[
            app_commands.Choice(name="Last hour", value="1h"),
            app_commands.Choice(name="Last 24 hours", value="24h"),
            app_commands.Choice(name="Since it opened", value="all"),
        ]
    )
    @app_commands.autocomplete(market=market_autocomplete(None))
    async def chart(
        self, interaction: discord.Interaction, market: str, range: str = "all"
    ) -> None:
        """Post a chart of a market's price history in this channel."""
        await market_ui.chart_post(interaction, market, range)

    @market.command(name="list")
    @app_commands.describe(status="Which markets (default: open)", category="Only this category")
    @app_commands.choices(status=STATUS_CHOICES)
    @app_commands.autocomplete(category=category_autocomplete)
    @responder("market.list")
    async def list_(
        self,
        interaction: discord.Interaction,
        status: str = "open",
        category: app_commands.Range[str, 1, 50] | None = None,
    ) -> Reply:
        """List this server's markets, newest first, five to a page."""
        return await market_ui.market_list_reply(
            interaction,
            status=status if status in selectors.LIST_STATUSES else "open",
            category=(category or "").strip()[:50],
            page=0,
        )

    @market.command(name="close")
    @app_commands.describe(market="The market to close", reason="Why (optional)")
    @app_commands.autocomplete(market=market_autocomplete(["open"]))
    @responder("market.close", reply="public")
    async def close(
        self,
        interaction: discord.Interaction,
        market: str,
        reason: Reason | None = None,
    ) -> Reply:
        """Stop trading early (the market's creator or a moderator)."""
        summary = await self._as_member(
            interaction,
            actions.market_close_for_interaction,
            market=market,
            reason=reason or "",
        )
        how = await self.bot.db(
            actions.resolution_how_for_market,
            guild_id=interaction.guild_id,
            market_id=summary.id,
        )
        how, shows_paragraph = await how_post.words(self.bot, summary, how)
        reply = market_ui.market_reply(summary)
        reply.content = MSG_CLOSED.format(market_id=summary.id, how=how)
        if shows_paragraph:
            reply.after_send = how_post.remembering(self.bot, summary, reply.after_send)
        return reply

    @market.command(name="resolve")
    @app_commands.describe(
        market="The closed market to resolve (or, with force, one whose result is proposed)",
        outcome="The outcome that happened",
        force="Resolve now, final at once, overruling votes and proposals (Manage Server only)",
        reason="Why (required with force)",
        known_at=KNOWN_AT_HELP,
    )
    @app_commands.autocomplete(
        market=market_autocomplete(["closed", "resolving"]), outcome=outcome_autocomplete
    )
    @responder("market.resolve", reply="public")
    async def resolve(
        self,
        interaction: discord.Interaction,
        market: str,
        outcome: str,
        force: bool = False,
        reason: Reason | None = None,
        known_at: str | None = None,
    ) -> Reply:
        """Vote for (or, where creators decide, propose) the outcome that happened."""
        if force:
            if not (reason or "").strip():
                return Reply(content=MSG_FORCE_REASON)
            summary = await self._as_member(
                interaction,
                actions.market_resolve_for_interaction,
                market=market,
                outcome=outcome,
                reason=reason or "",
                known_at=known_at,
            )
            winner = summary.winning_position
            label = summary.outcomes[winner].label if winner is not None else "?"
            reply = market_ui.market_reply(summary)
            reply.content = MSG_RESOLVED.format(market_id=summary.id, label=limits.escape(label))
            reply.content += known_at_note(summary)
            return reply
        vote = await self._as_member(
            interaction,
            actions.market_vote_for_interaction,
            market=market,
            outcome=outcome,
            known_at=known_at,
        )
        # The paragraph on how this market is resolved, or a link to the post that showed it.
        how, shows_paragraph = await how_post.words(self.bot, vote.market, vote.how)
        vote = dataclasses.replace(vote, how=how)
        reply = vote_reply(vote, voter=interaction.user.id)
        if vote.proposed and not vote.repeated:
            # The proposal's message carries the countdown and the Dispute button: a copy of
            # the market message, refreshed like the others when it is disputed or decided.
            reply.after_send = market_ui.copy_recorder(self.bot, vote.market.id)
        if shows_paragraph and not reply.ephemeral and how and how in (reply.content or ""):
            reply.after_send = how_post.remembering(self.bot, vote.market, reply.after_send)
        return reply

    @market.command(name="confirm")
    @app_commands.describe(
        market="The market whose proposed result you decide",
        reason="Why (shown to everyone, and to the members who disputed it)",
        outcome="Change the result to this outcome (leave empty to confirm it as proposed)",
        known_at=KNOWN_AT_HELP + " (empty: as proposed)",
    )
    @app_commands.autocomplete(
        market=market_autocomplete(["resolving"]), outcome=outcome_autocomplete
    )
    @responder("market.confirm", reply="public")
    async def confirm(
        self,
        interaction: discord.Interaction,
        market: str,
        reason: Reason,
        outcome: str | None = None,
        known_at: str | None = None,
    ) -> Reply:
        """Pay out a proposed result now, as proposed or changed (moderators)."""
        done = await self._as_member(
            interaction,
            actions.market_proposal_confirm_for_interaction,
            market=market,
            outcome=outcome,
            reason=reason,
            known_at=known_at,
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
        ) + known_at_note(m)
        return reply

    @market.command(name="undo")
    @app_commands.describe(
        market="The market whose proposed result you withdraw",
        reason="Why (shown to everyone, and to the members who disputed it)",
    )
    @app_commands.autocomplete(market=market_autocomplete(["resolving"]))
    @responder("market.undo", reply="public")
    async def undo(self, interaction: discord.Interaction, market: str, reason: Reason) -> Reply:
        """Withdraw a proposed result: the market is closed again (moderators)."""
        done = await self._as_member(
            interaction, actions.market_proposal_undo_for_interaction, market=market, reason=reason
        )
        how, shows_paragraph = await how_post.words(self.bot, done.market, done.how)
        reply = market_ui.market_reply(done.market)
        reply.content = MSG_UNDONE.format(
            moderator=interaction.user.id,
            label=limits.escape(done.label),
            market_id=done.market.id,
            reason=limits.fit(limits.escape(reason), 500),
            how=how,
        )
        if shows_paragraph:
            reply.after_send = how_post.remembering(self.bot, done.market, reply.after_send)
        return reply

    @market.command(name="cancel")
    @app_commands.describe(market="The market to cancel", reason="Why (shown to traders)")
    @app_commands.autocomplete(market=market_autocomplete(["open", "closed", "resolving"]))
    @responder("market.cancel", reply="public")
    async def cancel(self, interaction: discord.Interaction, market: str, reason: Reason) -> Reply:
        """Cancel a market and refund every trader (moderators)."""
        summary = await self._as_member(
            interaction, actions.market_cancel_for_interaction, market=market, reason=reason
        )
        reply = market_ui.market_reply(summary)
        reply.content = MSG_CANCELLED.format(market_id=summary.id)
        return reply

    # --- Trading -----------------------------------------------------------------------------

    @trade_command(
        "bet",
        outcome="The outcome you think will happen",
        amount="Points to bet",
        confirm="Show a quote to confirm first (default), or trade at once within the "
        "slippage limit",
    )
    @responder("bet")
    async def bet(
        self,
        interaction: discord.Interaction,
        market: str,
        outcome: str,
        amount: app_commands.Range[int, 1, MAX_AMOUNT],
        confirm: bool = True,
    ) -> Reply:
        """Bet points on an outcome: buy its shares, or stake on it in a pool."""
        return await market_ui.quote_or_trade(
            interaction,
            actions.quote_buy_for_interaction,
            confirm=confirm,
            market=market,
            outcome=outcome,
            amount=amount,
        )

    @trade_command(
        "sell",
        outcome="The outcome whose shares you sell",
        shares="How many shares, e.g. 2.5, or “all” (default)",
        confirm="Show a quote to confirm first (default), or sell at once within the "
        "slippage limit",
    )
    @responder("sell")
    async def sell(
        self,
        interaction: discord.Interaction,
        market: str,
        outcome: str,
        shares: app_commands.Range[str, 1, 25] = "all",
        confirm: bool = True,
    ) -> Reply:
        """Sell shares back to the market maker for points."""
        return await market_ui.quote_or_trade(
            interaction,
            actions.quote_sell_for_interaction,
            confirm=confirm,
            market=market,
            outcome=outcome,
            shares=shares,
        )

    @app_commands.command(name="portfolio")
    @app_commands.guild_only()
    @app_commands.describe(member="Whose portfolio (default: yours)")
    @responder("portfolio")
    async def portfolio(
        self, interaction: discord.Interaction, member: discord.Member | None = None
    ) -> Reply:
        """Your (or a member's) balance and positions with their current value."""
        target = member or interaction.user
        result = await self.bot.db(portfolio_get, guild_id=interaction.guild_id, user_id=target.id)
        embed = render.portfolio_embed(result, name=target.display_name)
        score = await self.bot.db(calibration_of, guild_id=interaction.guild_id, user_id=target.id)
        return Reply(embeds=[render.with_calibration(embed, score)])


async def setup(bot: PredictionBot) -> None:
    market_ui.register(bot)
    bot.modals.add(CREATE_MODAL_ID, create_submit)
    bot.tree.add_command(from_message_menu(), override=True)
    await bot.add_cog(Markets(bot))
