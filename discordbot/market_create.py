"""Creating a market from Discord: `/market create` with its options, or the form it opens
without them (and its submission), and the reply that posts the new market message."""

from __future__ import annotations

import re
import unicodedata

import discord

from markets.models import Market
from markets.validation import MAX_DESCRIPTION
from ops import metrics

from . import actions, interactions, limits, market_ui, parsing, ratelimit
from .interactions import Reply, actor, idempotency_key
from .market_threads import market_thread_start
from .market_ui.base import utf16_prefix
from .permissions import is_moderator, require_creator
from .responders import Opening, bot_of, opener, responder

CREATE_MODAL_ID = r"pm:m:create:(?P<mechanism>amm|parimutuel):(?P<liquidity>\d{0,10})"
MSG_SPLIT = (
    "Your outcomes were split at the commas into {count}: {shown}. Not what you meant? "
    "Take the market back within a minute (while nobody has traded) and create it again with "
    "| between outcomes."
)


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
    # Prefills are cut in UTF-16 units, as Discord counts a text input's value against its
    # max_length (an emoji is 2 units): a prefix by characters overflows and Discord refuses the
    # whole form with 50035 (issue 23 item 18).
    lines = "\n".join(parsing.outcomes_text(outcomes)) if outcomes else ""
    return interactions.modal(
        f"pm:m:create:{mechanism}:{liquidity or ''}",
        "New market",
        interactions.text_input(
            custom_id="question",
            label="Question",
            description="What will happen? 1–500 characters.",
            default=utf16_prefix(question, 500),
            max_length=500,
            paragraph=True,
        ),
        interactions.text_input(
            custom_id="outcomes",
            label="Outcomes, one per line",
            description="2 to 10 different answers, each up to 100 characters.",
            default=utf16_prefix(lines, 1100),
            placeholder="Yes\nNo",
            max_length=1100,
            paragraph=True,
        ),
        interactions.text_input(
            custom_id="duration",
            label="Open for",
            description="1 minute to 30 days: 90m, 2h, 1d2h30m or d,h,m like 1,2,30.",
            default=utf16_prefix(duration, 20) or "1d",
            max_length=20,
        ),
        interactions.text_input(
            custom_id="category",
            label="Category (optional)",
            description="Up to 50 characters, e.g. sports.",
            default=utf16_prefix(category, 50),
            required=False,
            max_length=50,
        ),
        interactions.text_input(
            custom_id="description",
            label="Description and resolution criteria",
            description="Optional, up to 1,000 characters: what counts as each outcome.",
            default=utf16_prefix(description, MAX_DESCRIPTION),
            placeholder="Resolves Yes if … according to …",
            required=False,
            max_length=MAX_DESCRIPTION,
            paragraph=True,
        ),
    )


@opener("market.create", guild_only=True)
async def create_form(
    interaction: discord.Interaction,
    *,
    mechanism: str,
    liquidity: int | None,
    question: str,
    outcomes: str,
    duration: str,
    category: str,
    description: str,
) -> Opening:
    """The form for what `/market create` was not given, unless the guild's cached policy
    already says this member may not create (the service decides on submission)."""
    assert interaction.guild_id is not None  # `guild_only`
    policy = bot_of(interaction).policies.peek(interaction.guild_id)
    if policy is not None:
        require_creator(policy, actor(interaction))
    return create_modal(
        mechanism=mechanism if mechanism in Market.Mechanism.values else "amm",
        liquidity=liquidity,
        question=question,
        outcomes=outcomes,
        duration=duration,
        category=category,
        description=description,
    )


@responder("market.create", reply="public", limits=ratelimit.CREATE)
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
) -> Reply:
    """Create the market and post it publicly as the market message. A slot of the server's
    market budget is reserved first (atomically) and given back if the creation is refused
    (`ratelimit.CREATE`)."""
    bot = bot_of(interaction)
    counted = await counts_against_guild(interaction)
    reservation: ratelimit.Reservation | None = None
    if counted:
        taken = await bot.cache_call(ratelimit.reserve, rule=ratelimit.GUILD_MARKETS, **counted)
        if isinstance(taken, ratelimit.Limited):
            metrics.ratelimit_refused(taken.rule.metric_scope)
            raise interactions.TooFast(taken.message)
        reservation = taken
    try:
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
    except BaseException:
        if reservation is not None:
            await bot.cache_call(ratelimit.release, reservation=reservation)
        raise
    bot.snapshots.drop_listings(summary.guild_id)  # autocomplete offers it at once
    reply = market_ui.market_reply(summary)
    recorded = market_ui.copy_recorder(bot, summary.id)

    async def remember(message: discord.Message) -> None:
        await recorded(message)
        await market_thread_start(
            bot,
            summary,
            channel_id=message.channel.id,
            message_id=message.id,
            content=message.content,
        )

    if not split_at_commas(outcomes):
        reply.after_send = remember
        return reply

    async def after(message: discord.Message) -> None:
        await remember(message)
        view = market_ui.withdraw_view(summary.id, interaction.user.id)
        # Stopped before sending: the button is a DynamicItem the bot dispatches by its
        # custom_id, so discord.py need not keep (and time out) the view.
        view.stop()
        shown = " · ".join(f"“{limits.escape(o.label)}”" for o in summary.outcomes)
        await interaction.followup.send(
            limits.fit(MSG_SPLIT.format(count=len(summary.outcomes), shown=shown), limits.CONTENT),
            view=view,
            ephemeral=True,
        )

    reply.after_send = after
    return reply


async def counts_against_guild(interaction: discord.Interaction) -> dict[str, int] | None:
    """Whose market budget a creation spends (None: a moderator's, exempt as from every limit)."""
    assert interaction.guild_id is not None  # `respond` answered outside a guild already
    who = actor(interaction)
    if is_moderator(bot_of(interaction).policies.peek(interaction.guild_id), who):
        return None
    return {"guild_id": interaction.guild_id, "user_id": interaction.user.id}


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


# --- Issue 26: a market from a message (the message context menu) -----------------------------

FROM_MESSAGE_MENU = "Create market from message"
"""The menu entry (Discord: a context menu name is at most 32 characters, so the longer
“Create a market from this message” cannot be it)."""
MAX_QUESTION = 500
MSG_FROM_MESSAGE = "Asked in this message: {url}"
_DROPPED = frozenset({"Cf", "Cs"})


def question_from_message(text: str) -> str:
    """A message's text as a market question (DOMAIN §7: one line, 1–500 characters, no control
    or format characters): format characters (zero-width spaces, bidi overrides) are dropped,
    control characters and line breaks become spaces, runs of spaces one, and a text over 500
    characters is cut and ends in “…” (counted in UTF-16 units too, as the form's box counts)."""
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if category in _DROPPED:
            continue
        kept.append(" " if category == "Cc" else ch)
    question = " ".join("".join(kept).split())
    if len(question) <= MAX_QUESTION and limits.size(question) <= MAX_QUESTION:
        return question
    cut = utf16_prefix(question[: MAX_QUESTION - 1], MAX_QUESTION - 1).rstrip()
    return cut + "…"


def message_text(message: discord.Message) -> str:
    """What the message says: its text with mentions as names, else its first embed's title or
    description (a bot's announcement)."""
    if message.content:
        return message.clean_content
    for embed in message.embeds:
        if embed.title or embed.description:
            return embed.title or embed.description or ""
    return ""


async def create_from_message(interaction: discord.Interaction, message: discord.Message) -> None:
    """The message context menu: the creation form, its question taken from the message and
    its description linking back to it (issue 26)."""
    await create_form(
        interaction,
        mechanism="amm",
        liquidity=None,
        question=question_from_message(message_text(message)),
        outcomes="Yes | No",
        duration="",
        category="",
        description=MSG_FROM_MESSAGE.format(url=message.jump_url),
    )


def from_message_menu() -> discord.app_commands.ContextMenu:
    """The message context menu (a cog cannot declare one): server-only, as `/market` is."""
    menu = discord.app_commands.ContextMenu(name=FROM_MESSAGE_MENU, callback=create_from_message)
    menu.guild_only = True
    menu.allowed_contexts = discord.app_commands.AppCommandContext(guild=True)  # issue 23 item 19
    return menu
