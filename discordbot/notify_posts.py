"""The notifier's channel posts about a market's resolution (`discordbot.notifier`): a proposed
result with its Dispute button, a dispute for the moderators, a proposal undone, and the
settlement summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from markets.models import MarketEvent
from markets.selectors import MarketSummary

from . import how_post, render
from .market_ui import DisputeButton

if TYPE_CHECKING:
    from .botlike import BotLike
    from .results import PostContext


async def post_event(
    bot: BotLike,
    channel: discord.PartialMessageable,
    m: MarketSummary,
    post: PostContext,
    *,
    nonce: str,
) -> None:
    """Post what `post` (the event and the guild's settings) says about market `m` in
    `channel`, with `nonce` (Discord enforces it: a repeat returns the message posted). The
    "how resolution works" paragraph is shown once per market; later posts link to it
    (`discordbot.how_post`)."""
    if post.type == MarketEvent.Type.PROPOSED:
        view = discord.ui.View(timeout=None)
        if m.status == "resolving":
            view.add_item(DisputeButton(m.id))
        view.stop()  # a DynamicItem: the bot dispatches it by its custom_id
        content = render.proposed_post(m, post.payload)
        await channel.send(content=content, view=view, nonce=nonce)
        return
    if post.type == MarketEvent.Type.DISPUTED:
        # Ping the resolver roles on the first dispute only (later ones are listed quietly),
        # and nobody else: a reason is member text.
        roles = post.resolver_role_ids[:100] if post.payload.get("first") else ()
        words = render.moderators_words(post)
        await channel.send(
            content=(
                render.dispute_reminder(m, post.payload, role_ids=roles, moderators=words)
                if post.payload.get("reminder")
                else render.dispute_ping(m, post.payload, role_ids=roles, moderators=words)
            ),
            embed=render.market_embed(m),
            allowed_mentions=discord.AllowedMentions(
                everyone=False,
                users=False,
                roles=[discord.Object(id=r) for r in roles],
                replied_user=False,
            ),
            nonce=nonce,
        )
        return
    if post.type == MarketEvent.Type.UNDONE:
        how, shows_paragraph = await how_post.words(
            bot, m, render.how_text(post.settings, creator_id=m.creator_id)
        )
        content = render.undone_post(m, post.payload, how=how)
        sent = await channel.send(content=content, nonce=nonce)
        if shows_paragraph:
            await how_post.remembering(bot, m)(sent)
        return
    cancelled = post.type == MarketEvent.Type.CANCELLED
    embed = render.settlement_embed(m, post.payload, cancelled=cancelled, results=post.results)
    await channel.send(embed=embed, nonce=nonce)
