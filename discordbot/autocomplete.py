"""Autocomplete for the market commands: markets of this guild, the outcomes of the market
chosen, and categories. Autocomplete cannot be deferred, so each answers within
`AUTOCOMPLETE_DEADLINE` from the bot's fast database pool or with no suggestions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands

from markets.selectors import MarketSummary, market_list, search_terms
from markets.selectors import categories as market_categories

from . import interactions, limits, parsing, render
from .responders import bot_of

logger = logging.getLogger(__name__)

AUTOCOMPLETE_DEADLINE = 2.5
"""Seconds after Discord created an autocomplete by which its choices must be sent (Discord's
limit is 3 s); the read runs on the bot's fast pool (`db_fast`), apart from trades."""
"""Autocomplete cannot be deferred: past this budget it answers with no suggestions."""


def _choice(name: str, value: str) -> app_commands.Choice[str]:
    return app_commands.Choice(name=limits.fit(name, limits.CHOICE_NAME), value=value[:100])


LISTING_CAP = 200
"""Markets a guild's kept list holds (`Snapshots.listing`); a guild with more in the statuses a
command takes is searched in the database, as before the list was kept."""


def market_choices(*, guild_id: int, current: str, statuses: list[str] | None) -> list:
    return market_list(
        guild_id=guild_id,
        status=statuses,
        search=current or None,
        limit=limits.AUTOCOMPLETE_RESULTS,
    )


def matching(listing: list[MarketSummary], typed: str) -> list[MarketSummary] | None:
    """The listed markets `typed` matches, as `market_list`'s search matches them (the question
    contains the text, case aside, or the text is the market's number), newest first; None when
    the list is not the guild's whole list (a search in the database answers then)."""
    if len(listing) > LISTING_CAP:
        return None
    if not typed:
        return listing
    text, number = search_terms(typed)
    folded = text.casefold()
    return [m for m in listing if folded in m.question.casefold() or m.id == number]


def market_autocomplete(statuses: list[str] | None) -> Callable[..., Any]:
    """Markets of this guild in `statuses` whose question (or number) matches the typed text,
    newest first, each with its leading outcome."""

    async def complete(interaction: discord.Interaction, current: str):
        if interaction.guild_id is None:
            return []
        bot, guild_id, typed = bot_of(interaction), interaction.guild_id, current[:100]

        def listing() -> Awaitable[list]:
            return bot.db_fast(
                market_list, guild_id=guild_id, status=statuses, limit=LISTING_CAP + 1
            )

        def read() -> Awaitable[list]:
            return bot.db_fast(market_choices, guild_id=guild_id, current=typed, statuses=statuses)

        # The guild's list, kept a few seconds (a rush types against memory); a guild with more
        # markets than the list holds is searched, members typing the same text sharing a read.
        key = ("market_choices", guild_id, typed, tuple(statuses or ()))
        try:
            kept = await asyncio.wait_for(
                bot.snapshots.listing(guild_id, tuple(statuses or ()), listing),
                timeout=interactions.remaining(interaction, AUTOCOMPLETE_DEADLINE),
            )
            found: list[MarketSummary] | None = matching(kept, typed)
            if found is None:
                found = await asyncio.wait_for(
                    bot.snapshots.shared(key, read),
                    timeout=interactions.remaining(interaction, AUTOCOMPLETE_DEADLINE),
                )
        except Exception:
            logger.warning("market autocomplete failed or timed out", exc_info=True)
            return []
        out = []
        for m in (found or [])[: limits.AUTOCOMPLETE_RESULTS]:
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
) -> list[app_commands.Choice[str]]:
    """The outcomes of the market chosen in the same command, with their current price."""
    chosen = getattr(interaction.namespace, "market", None)
    if interaction.guild_id is None or not chosen:
        return []
    try:
        # The market as the bot's snapshot has it (`discordbot.snapshots`): no read in a rush.
        snap = await asyncio.wait_for(
            bot_of(interaction).snapshots.market(parsing.market_ref(chosen)),
            timeout=interactions.remaining(interaction, AUTOCOMPLETE_DEADLINE),
        )
    except Exception:
        return []
    summary = snap.summary
    if summary.guild_id != interaction.guild_id:  # another guild's market is "not found"
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
            bot_of(interaction).db_fast(
                market_categories, guild_id=interaction.guild_id, limit=100
            ),
            timeout=interactions.remaining(interaction, AUTOCOMPLETE_DEADLINE),
        )
    except Exception:
        return []
    typed = current.casefold().strip()
    return [_choice(n, n) for n in names if not typed or typed in n.casefold()][
        : limits.AUTOCOMPLETE_RESULTS
    ]
