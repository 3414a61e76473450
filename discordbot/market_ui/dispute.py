"""The Dispute button of a proposed result (docs/domain.md §6.1) and the form it opens."""

from __future__ import annotations

import re

import discord

from .. import actions, interactions, limits
from ..interactions import Reply
from ..responders import Opening, bot_of, opener, responder
from .base import DISPUTE_ID, MSG_DISPUTED, MarketButton


class DisputeButton(MarketButton, template=DISPUTE_ID):
    """Dispute a proposed result (docs/domain.md §6.1): opens a form for the reason."""

    key, button_label, button_emoji = "dispute", "Dispute", "🚩"
    button_style = discord.ButtonStyle.danger

    async def callback(self, interaction: discord.Interaction) -> None:
        await dispute_open(interaction, self.market_id)


@opener("market.dispute.open")
async def dispute_open(interaction: discord.Interaction, market_id: int) -> Opening:
    """Open the dispute form, unless the member would be refused anyway (not resolving, never
    traded, disputed already: the service's words, `actions.market_dispute_precheck`). The
    check must finish by `interactions.PRE_ACK_DEADLINE`; past it the form opens and the
    service decides on submission."""
    checked, refusal = await interactions.within_budget(
        interaction,
        bot_of(interaction).db_fast(
            actions.market_dispute_precheck,
            guild_id=interaction.guild_id,
            market=market_id,
            user_id=interaction.user.id,
        ),
        step="dispute_check",
    )
    if checked and refusal:
        return str(refusal)
    return interactions.modal(
        f"pm:m:dispute:{market_id}",
        f"Dispute the result of #{market_id}",
        interactions.text_input(
            custom_id="reason",
            label="Why is the proposed result wrong?",
            description="1–500 characters; moderators read it before they decide.",
            placeholder="e.g. The official source says otherwise: …",
            min_length=1,
            max_length=500,
            paragraph=True,
        ),
    )


@responder("market.dispute")
async def dispute_submit(
    interaction: discord.Interaction, match: re.Match[str], values: dict[str, str]
) -> Reply:
    market_id = int(match["market"])
    done = await bot_of(interaction).db(
        actions.market_dispute_for_interaction,
        guild_id=interaction.guild_id,
        actor=interactions.actor(interaction),
        market=market_id,
        reason=values.get("reason", ""),
        idempotency_key=interactions.idempotency_key(interaction),
    )
    p = done.market.proposal
    count = f"{done.disputes} dispute{'s' if done.disputes != 1 else ''} so far"
    return Reply(
        content=MSG_DISPUTED.format(
            label=limits.escape(p.label) if p else "?", market_id=market_id, count=count
        )
    )
