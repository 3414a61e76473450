"""The market message and everything on it (STYLE §10).

The message is an embed plus buttons: one **Buy** per outcome (up to 10), then **Sell**, **My
position**, **Refresh** and **Chart** (a PNG of the price history, drawn by `charts.py`). Every
button and select is a `DynamicItem` whose `custom_id` carries the market (and outcome), so
buttons keep working after a restart and always re-read the market from the database; a click on
a market that is no longer open says so. Buy and Sell open small stateless modals (`pm:m:…`)
whose submissions `ModalRouter` dispatches.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import discord
from django.core.cache import cache

from markets.selectors import MarketSummary

from . import actions, charts, interactions, limits, parsing, ratelimit, render, selectors
from .interactions import Reply, answer_now, respond, send_modal

if TYPE_CHECKING:
    from .bot import PredictionBot

logger = logging.getLogger(__name__)

MSG_CLOSED = "Market #{market_id} is {status}: trading is over. {hint}"
MSG_NO_SELL_POOL = "Pool markets don't support selling: stakes stay in until the market settles."
MSG_NOTHING_TO_SELL = "You hold no shares in market #{market_id}."
MSG_PICK_SELL = "Which outcome of #{market_id} do you want to sell?"
"""How long a Buy click may wait for the database before opening the modal anyway (the trade
re-checks the market), so the 3-second deadline holds even under load."""

BUY_ID = r"pm:buy:(?P<market>\d{1,19}):(?P<outcome>\d{1,2})"
SELL_ID = r"pm:sell:(?P<market>\d{1,19})"
POSITION_ID = r"pm:pos:(?P<market>\d{1,19})"
REFRESH_ID = r"pm:refresh:(?P<market>\d{1,19})"
CHART_ID = r"pm:chart:(?P<market>\d{1,19})"
SELL_PICK_ID = r"pm:sellpick:(?P<market>\d{1,19})"
DISPUTE_ID = r"pm:dispute:(?P<market>\d{1,19})"
DISPUTE_MODAL_ID = r"pm:m:dispute:(?P<market>\d{1,19})"
MSG_DISPUTED = (
    "🚩 Your dispute of the proposed result **{label}** of #{market_id} is recorded ({count}). "
    "The market is held for moderators, who confirm the result, change it or undo it; you will "
    "get a DM with their decision."
)
LIST_ID = r"pm:list:(?P<page>\d{1,4}):(?P<status>[a-z]{1,10})(?P<cut>[:~])(?P<category>.{0,50})"
BUY_MODAL_ID = r"pm:m:buy:(?P<market>\d{1,19}):(?P<outcome>\d{1,2})"
SELL_MODAL_ID = r"pm:m:sell:(?P<market>\d{1,19}):(?P<outcome>\d{1,2})"
_B36 = r"[0-9a-z]{1,13}"
_B36_WIDE = r"[0-9a-z]{1,15}"
CONFIRM_ID = (
    rf"pm:qc:(?P<kind>[bs]):(?P<market>{_B36}):(?P<outcome>\d{{1,2}}):"
    rf"(?P<quantity>{_B36_WIDE}):(?P<limit>{_B36_WIDE}):(?P<user>{_B36}):(?P<quote>{_B36})"
)
"""At most 84 characters: snowflakes take 13 base-36 digits, points and micro-shares 15."""
CANCEL_ID = rf"pm:qx:(?P<user>{_B36})"
WITHDRAW_ID = rf"pm:wd:(?P<market>{_B36}):(?P<user>{_B36})"
MSG_WITHDRAWN = "Market #{market_id} was taken back: nobody had traded, nothing was charged."
QUOTE_SECONDS = 120
"""How long a quote's Confirm button trades: after that the price has likely moved."""
MSG_QUOTE_EXPIRED = (
    "This quote expired (quotes last {minutes} minutes, prices move). Nothing was traded; "
    "click Buy or Sell again for a fresh quote."
)
MSG_QUOTE_CANCELLED = "Cancelled: nothing was traded."
MSG_NOT_YOUR_QUOTE = "This quote belongs to another member; ask for your own with Buy or Sell."


def _bot(interaction: discord.Interaction) -> PredictionBot:
    return interaction.client  # type: ignore[return-value]


def closed_hint(status: str) -> str:
    return {
        "closed": "It is waiting for resolution.",
        "resolving": "A result is proposed; traders can dispute it with the Dispute button.",
        "resolved": "It has been resolved.",
        "cancelled": "It was cancelled and refunded.",
    }.get(status, "")


# --- Buttons ---------------------------------------------------------------------------------


class BuyButton(discord.ui.DynamicItem[discord.ui.Button], template=BUY_ID):
    """Buy one outcome: opens the amount modal."""

    def __init__(
        self,
        market_id: int,
        outcome: int,
        label: str = "",
        *,
        row: int | None = None,
        verb: str = "Buy",
    ):
        self.market_id, self.outcome, self.label = market_id, outcome, label
        super().__init__(
            discord.ui.Button(
                label=limits.fit(f"{verb} {label}" if label else verb, limits.BUTTON_LABEL),
                style=discord.ButtonStyle.success,
                custom_id=f"pm:buy:{market_id}:{outcome}",
            ),
            row=row,
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        label = (getattr(item, "label", "") or "").removeprefix("Buy ").removeprefix("Predict ")
        return cls(int(match["market"]), int(match["outcome"]), label)

    async def callback(self, interaction: discord.Interaction) -> None:
        await buy_open(interaction, self.market_id, self.outcome, self.label)


class SellButton(discord.ui.DynamicItem[discord.ui.Button], template=SELL_ID):
    def __init__(self, market_id: int, *, row: int | None = None):
        self.market_id = market_id
        super().__init__(
            discord.ui.Button(
                label="Sell", style=discord.ButtonStyle.danger, custom_id=f"pm:sell:{market_id}"
            ),
            row=row,
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["market"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await sell_pick(interaction, self.market_id)


class PositionButton(discord.ui.DynamicItem[discord.ui.Button], template=POSITION_ID):
    def __init__(self, market_id: int, *, row: int | None = None):
        self.market_id = market_id
        super().__init__(
            discord.ui.Button(
                label="My position",
                style=discord.ButtonStyle.secondary,
                custom_id=f"pm:pos:{market_id}",
            ),
            row=row,
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["market"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await position_show(interaction, self.market_id)


class RefreshButton(discord.ui.DynamicItem[discord.ui.Button], template=REFRESH_ID):
    def __init__(self, market_id: int, *, row: int | None = None):
        self.market_id = market_id
        super().__init__(
            discord.ui.Button(
                label="Refresh",
                emoji="🔄",
                style=discord.ButtonStyle.secondary,
                custom_id=f"pm:refresh:{market_id}",
            ),
            row=row,
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["market"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await market_refresh(interaction, self.market_id)


class ChartButton(discord.ui.DynamicItem[discord.ui.Button], template=CHART_ID):
    def __init__(self, market_id: int, *, row: int | None = None):
        self.market_id = market_id
        super().__init__(
            discord.ui.Button(
                label="Chart",
                emoji="📈",
                style=discord.ButtonStyle.secondary,
                custom_id=f"pm:chart:{market_id}",
            ),
            row=row,
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["market"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await chart_show(interaction, self.market_id, ephemeral=True)


class DisputeButton(discord.ui.DynamicItem[discord.ui.Button], template=DISPUTE_ID):
    """Dispute a proposed result (docs/domain.md §6.1): opens a form for the reason."""

    def __init__(self, market_id: int, *, row: int | None = None):
        self.market_id = market_id
        super().__init__(
            discord.ui.Button(
                label="Dispute",
                emoji="🚩",
                style=discord.ButtonStyle.danger,
                custom_id=f"pm:dispute:{market_id}",
            ),
            row=row,
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["market"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await dispute_open(interaction, self.market_id)


class SellSelect(discord.ui.DynamicItem[discord.ui.Select], template=SELL_PICK_ID):
    """Pick which holding to sell; the choice opens the shares modal."""

    def __init__(self, market_id: int, options: list[discord.SelectOption] | None = None):
        self.market_id = market_id
        super().__init__(
            discord.ui.Select(
                custom_id=f"pm:sellpick:{market_id}",
                placeholder="Choose the outcome to sell",
                options=options or [discord.SelectOption(label="-", value="0")],
                min_values=1,
                max_values=1,
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["market"]), list(getattr(item, "options", []) or []) or None)

    async def callback(self, interaction: discord.Interaction) -> None:
        values = self.item.values
        try:
            outcome = int(values[0]) if values else -1
        except ValueError:
            outcome = -1
        label = next((o.label for o in self.item.options if o.value == str(outcome)), "")
        await sell_open(interaction, self.market_id, outcome, label)


class ListPageButton(discord.ui.DynamicItem[discord.ui.Button], template=LIST_ID):
    """Previous / next page of `/market list` (the page, filter and category in the id)."""

    def __init__(
        self,
        page: int,
        status: str,
        category: str,
        *,
        label: str,
        disabled: bool,
        cut: bool = False,
    ):
        self.page, self.status, self.category, self.cut = page, status, category, cut
        # custom_id ≤ 100 UTF-16 units (DOMAIN §8): a category of emoji can be 100 units alone,
        # so a long one is carried cut ("~" instead of ":") and completed after the defer.
        prefix = f"pm:list:{page}:{status}"
        shown = category[:50]
        if cut or limits.size(f"{prefix}:{shown}") > limits.CUSTOM_ID:
            shown = _utf16_prefix(shown, limits.CUSTOM_ID - limits.size(prefix) - 1)
            custom_id = f"{prefix}~{shown}"
        else:
            custom_id = f"{prefix}:{shown}"
        super().__init__(
            discord.ui.Button(
                label=label,
                style=discord.ButtonStyle.secondary,
                custom_id=custom_id,
                disabled=disabled,
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(
            int(match["page"]),
            match["status"],
            match["category"],
            label=getattr(item, "label", "") or "Page",
            disabled=False,
            cut=match["cut"] == "~",
        )

    async def callback(self, interaction: discord.Interaction) -> None:
        async def body() -> Reply:
            category = self.category
            if self.cut:
                known = await _bot(interaction).db(
                    selectors.category_complete,
                    guild_id=interaction.guild_id,
                    prefix=self.category,
                )
                category = known or self.category
            reply = await market_list_reply(
                interaction, status=self.status, category=category, page=self.page
            )
            reply.edit = True
            return reply

        await respond(interaction, body, action="market.list.page", update=True)


def b36(n: int) -> str:
    """A non-negative number in base 36 (a snowflake fits in 13 characters), to keep every
    number a Confirm button carries within Discord's 100-character custom_id (DOMAIN §8)."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


class QuoteConfirmButton(discord.ui.DynamicItem[discord.ui.Button], template=CONFIRM_ID):
    """Confirm a quote: trades what was quoted with the quote's slippage limit. The id carries
    the trade (market, outcome, amount or micro-shares, limit), who asked and the quote's
    interaction id (its creation time, and the trade's idempotency key, so a double click
    trades once)."""

    def __init__(
        self,
        kind: str,
        market_id: int,
        outcome: int,
        quantity: int,
        limit: int,
        user_id: int,
        quote_id: int,
    ):
        self.kind, self.market_id, self.outcome = kind, market_id, outcome
        self.quantity, self.limit, self.user_id, self.quote_id = quantity, limit, user_id, quote_id
        parts = (market_id, outcome, quantity, limit, user_id, quote_id)
        custom_id = f"pm:qc:{kind}:" + ":".join(
            str(p) if i == 1 else b36(p) for i, p in enumerate(parts)
        )
        super().__init__(
            discord.ui.Button(
                label="Confirm", style=discord.ButtonStyle.success, custom_id=custom_id
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(
            match["kind"],
            int(match["market"], 36),
            int(match["outcome"]),
            int(match["quantity"], 36),
            int(match["limit"], 36),
            int(match["user"], 36),
            int(match["quote"], 36),
        )

    async def callback(self, interaction: discord.Interaction) -> None:
        await quote_confirm(interaction, self)


class QuoteCancelButton(discord.ui.DynamicItem[discord.ui.Button], template=CANCEL_ID):
    def __init__(self, user_id: int):
        self.user_id = user_id
        super().__init__(
            discord.ui.Button(
                label="Cancel",
                style=discord.ButtonStyle.secondary,
                custom_id=f"pm:qx:{b36(user_id)}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["user"], 36))

    async def callback(self, interaction: discord.Interaction) -> None:
        if interaction.user.id != self.user_id:
            await _answer_safely(interaction, MSG_NOT_YOUR_QUOTE)
            return

        async def body() -> Reply:
            return Reply(content=MSG_QUOTE_CANCELLED, edit=True, view=discord.ui.View(timeout=None))

        await respond(interaction, body, action="trade.cancel", update=True)


class WithdrawButton(discord.ui.DynamicItem[discord.ui.Button], template=WITHDRAW_ID):
    """The creator takes back a market just created (the service checks creator, 60 s, no
    trades)."""

    def __init__(self, market_id: int, user_id: int):
        self.market_id, self.user_id = market_id, user_id
        super().__init__(
            discord.ui.Button(
                label="Cancel this market",
                style=discord.ButtonStyle.danger,
                custom_id=f"pm:wd:{b36(market_id)}:{b36(user_id)}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["market"], 36), int(match["user"], 36))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot = _bot(interaction)

        async def body() -> Reply:
            summary = await bot.db(
                actions.market_withdraw_for_interaction,
                guild_id=interaction.guild_id,
                actor=interactions.actor(interaction),
                market=self.market_id,
                idempotency_key=f"discord:withdraw:{self.market_id}",
            )
            return Reply(
                content=MSG_WITHDRAWN.format(market_id=summary.id),
                edit=True,
                view=discord.ui.View(timeout=None),
            )

        await respond(interaction, body, action="market.withdraw", update=True)


def withdraw_view(market_id: int, user_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(WithdrawButton(market_id, user_id))
    return view


def quote_reply(q: actions.Quote, interaction: discord.Interaction) -> Reply:
    """The ephemeral preview with Confirm / Cancel."""
    quote_id = interaction.id
    expires = discord.utils.snowflake_time(quote_id) + dt.timedelta(seconds=QUOTE_SECONDS)
    quantity = q.amount if q.kind in ("buy", "stake") else q.asked
    view = discord.ui.View(timeout=None)
    view.add_item(
        QuoteConfirmButton(
            "s" if q.kind == "sell" else "b",
            q.market.id,
            q.outcome,
            quantity,
            q.limit,
            interaction.user.id,
            quote_id,
        )
    )
    view.add_item(QuoteCancelButton(interaction.user.id))
    return Reply(content=render.quote_text(q, expires_at=expires), view=view)


async def quote_confirm(interaction: discord.Interaction, button: QuoteConfirmButton) -> None:
    """Trade what the quote showed, unless it is someone else's, expired, or the price moved
    beyond the limit (then the service refuses and nothing moves, DOMAIN §4.6)."""
    if interaction.user.id != button.user_id:
        await _answer_safely(interaction, MSG_NOT_YOUR_QUOTE)
        return
    bot = _bot(interaction)
    quoted_at = discord.utils.snowflake_time(button.quote_id)
    expired = (discord.utils.utcnow() - quoted_at).total_seconds() > QUOTE_SECONDS

    async def body() -> Reply:
        if expired:
            return Reply(
                content=MSG_QUOTE_EXPIRED.format(minutes=QUOTE_SECONDS // 60),
                edit=True,
                view=discord.ui.View(timeout=None),
            )
        await interactions.trade_counted(interaction)
        key = f"discord:{button.quote_id}:confirm"
        if button.kind == "b":
            result = await bot.trade(
                kind="buy",
                guild_id=interaction.guild_id,
                user_id=interaction.user.id,
                market=button.market_id,
                outcome=str(button.outcome + 1),
                amount=button.quantity,
                min_shares=button.limit or None,
                idempotency_key=key,
            )
        else:
            result = await bot.trade(
                kind="sell",
                guild_id=interaction.guild_id,
                user_id=interaction.user.id,
                market=button.market_id,
                outcome=str(button.outcome + 1),
                shares=render.shares_exact(button.quantity).replace(",", ""),
                min_points=button.limit or None,
                idempotency_key=key,
            )
        return Reply(
            content=render.trade_text(result), edit=True, view=discord.ui.View(timeout=None)
        )

    await respond(interaction, body, action="trade.confirm", update=True)


def _utf16_prefix(text: str, units: int) -> str:
    """The longest prefix of `text` within `units` UTF-16 units (never half a surrogate pair)."""
    out, used = [], 0
    for ch in text:
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > units:
            break
        out.append(ch)
    return "".join(out)


DYNAMIC_ITEMS = (
    BuyButton,
    SellButton,
    PositionButton,
    RefreshButton,
    ChartButton,
    DisputeButton,
    SellSelect,
    ListPageButton,
    QuoteConfirmButton,
    QuoteCancelButton,
    WithdrawButton,
)


def market_view(m: MarketSummary) -> discord.ui.View:
    """The buttons under a market message: Buy per outcome (rows 0–1) while open, then Sell
    (market maker only), My position, Refresh, Chart; Dispute while a result is proposed."""
    view = discord.ui.View(timeout=None)
    last_row = 0
    if m.is_open:
        for o in m.outcomes[:10]:
            verb = "Buy" if m.mechanism == "amm" else "Predict"
            view.add_item(BuyButton(m.id, o.position, o.label, row=o.position // 5, verb=verb))
        last_row = (min(len(m.outcomes), 10) - 1) // 5 + 1
        if m.mechanism == "amm":
            view.add_item(SellButton(m.id, row=last_row))
    view.add_item(PositionButton(m.id, row=last_row))
    view.add_item(RefreshButton(m.id, row=last_row))
    view.add_item(ChartButton(m.id, row=last_row))
    if m.status == "resolving":
        view.add_item(DisputeButton(m.id, row=last_row))
    return view


def market_reply(
    m: MarketSummary, *, ephemeral: bool = False, top: Sequence[selectors.Predictor] = ()
) -> Reply:
    return Reply(embeds=[render.market_embed(m, top=top)], view=market_view(m), ephemeral=ephemeral)


# --- Flows -----------------------------------------------------------------------------------


async def buy_open(
    interaction: discord.Interaction, market_id: int, outcome: int, label: str
) -> None:
    """Open the amount modal, unless the market is known to be closed. The rate limit and the
    status check run together and must finish by `interactions.PRE_ACK_DEADLINE` (measured from
    the interaction's creation); past it the modal opens anyway and the trade re-checks."""
    bot = _bot(interaction)
    try:
        limit_task = asyncio.ensure_future(
            interactions.rate_limited(interaction, ratelimit.REQUEST)
        )
        checked, summary = await interactions.within_budget(
            interaction,
            bot.db_fast(actions.market_in_guild, guild_id=interaction.guild_id, market=market_id),
            step="status_check",
        )
        limited = await limit_task
        if limited is not None:
            await answer_now(interaction, limited.message)
            return
        status = summary.status if checked and summary is not None else None
        pool = bool(checked and summary is not None and summary.mechanism != "amm")
        if checked and summary is not None and 0 <= outcome < len(summary.outcomes):
            label = summary.outcomes[outcome].label
        if status is not None and status != "open":
            await answer_now(
                interaction,
                MSG_CLOSED.format(market_id=market_id, status=status, hint=closed_hint(status)),
            )
            return
        verb = "Predict" if pool else "Buy"
        title = f"{verb} “{label}” (#{market_id})" if label else f"{verb} on #{market_id}"
        await send_modal(
            interaction,
            interactions.modal(
                f"pm:m:buy:{market_id}:{outcome}",
                title,
                interactions.text_input(
                    custom_id="amount",
                    label="Stake (points)" if pool else "Amount (points)",
                    description="Whole points; your balance and the server's max bet apply.",
                    placeholder="e.g. 100",
                    max_length=25,
                ),
            ),
        )
    except Exception as exc:
        reply = interactions.error_reply(exc, action="market.buy.open", interaction=interaction)
        await _answer_safely(interaction, reply.content)


async def _answer_safely(interaction: discord.Interaction, content: str) -> None:
    try:
        await answer_now(interaction, content)
    except discord.HTTPException:
        logger.exception("could not answer interaction %s", interaction.id)


async def buy_submit(
    interaction: discord.Interaction, match: re.Match[str], values: dict[str, str]
) -> None:
    market_id, outcome = int(match["market"]), int(match["outcome"])
    bot = _bot(interaction)

    async def body() -> Reply:
        amount = parsing.amount_text(values.get("amount", ""))
        quote = await bot.db(
            actions.quote_buy_for_interaction,
            guild_id=interaction.guild_id,
            user_id=interaction.user.id,
            market=market_id,
            outcome=str(outcome + 1),
            amount=amount,
        )
        return quote_reply(quote, interaction)

    await respond(interaction, body, action="market.buy.quote")


async def sell_pick(interaction: discord.Interaction, market_id: int) -> None:
    bot = _bot(interaction)

    async def body() -> Reply:
        summary = await bot.db(
            actions.market_in_guild, guild_id=interaction.guild_id, market=market_id
        )
        if not summary.is_open:
            return Reply(
                content=MSG_CLOSED.format(
                    market_id=market_id, status=summary.status, hint=closed_hint(summary.status)
                )
            )
        if summary.mechanism != "amm":
            return Reply(content=MSG_NO_SELL_POOL)
        holdings = [
            h
            for h in await bot.db(
                selectors.holdings_in_market, market_id=summary.id, user_id=interaction.user.id
            )
            if h.shares > 0
        ]
        if not holdings:
            return Reply(content=MSG_NOTHING_TO_SELL.format(market_id=market_id))
        options = [
            discord.SelectOption(
                label=limits.fit(h.label, limits.SELECT_LABEL),
                value=str(h.outcome),
                description=limits.fit(
                    f"{render.shares(h.shares)} shares · worth about {render.points(h.value)} "
                    "points",
                    limits.SELECT_DESCRIPTION,
                ),
            )
            for h in holdings[: limits.SELECT_OPTIONS]
        ]
        view = discord.ui.View(timeout=None)
        view.add_item(SellSelect(summary.id, options))
        return Reply(content=MSG_PICK_SELL.format(market_id=summary.id), view=view)

    await respond(interaction, body, action="market.sell.pick")


async def sell_open(
    interaction: discord.Interaction, market_id: int, outcome: int, label: str
) -> None:
    try:
        limited = await interactions.rate_limited(interaction, ratelimit.REQUEST)
        if limited is not None:
            await answer_now(interaction, limited.message)
            return
        title = f"Sell “{label}” (#{market_id})" if label else f"Sell on #{market_id}"
        await send_modal(
            interaction,
            interactions.modal(
                f"pm:m:sell:{market_id}:{max(0, outcome)}",
                title,
                interactions.text_input(
                    custom_id="shares",
                    label="Shares to sell",
                    description="“all”, or a number of shares like 2.5.",
                    default="all",
                    max_length=25,
                ),
            ),
        )
    except Exception as exc:
        reply = interactions.error_reply(exc, action="market.sell.open", interaction=interaction)
        await _answer_safely(interaction, reply.content)


async def sell_submit(
    interaction: discord.Interaction, match: re.Match[str], values: dict[str, str]
) -> None:
    market_id, outcome = int(match["market"]), int(match["outcome"])
    bot = _bot(interaction)

    async def body() -> Reply:
        quote = await bot.db(
            actions.quote_sell_for_interaction,
            guild_id=interaction.guild_id,
            user_id=interaction.user.id,
            market=market_id,
            outcome=str(outcome + 1),
            shares=values.get("shares", "all"),
        )
        return quote_reply(quote, interaction)

    await respond(interaction, body, action="market.sell.quote")


async def position_show(interaction: discord.Interaction, market_id: int) -> None:
    bot = _bot(interaction)

    async def body() -> Reply:
        view = await bot.db(
            selectors.position_in_market,
            guild_id=interaction.guild_id,
            market=market_id,
            user_id=interaction.user.id,
        )
        return Reply(content=render.holdings_text(view.market, view.holdings, view.balance))

    await respond(interaction, body, action="market.position")


async def market_refresh(interaction: discord.Interaction, market_id: int) -> None:
    bot = _bot(interaction)

    async def body() -> Reply:
        summary, top = await bot.db(
            selectors.market_card, guild_id=interaction.guild_id, market=market_id
        )
        reply = market_reply(summary, top=top)
        reply.edit = True
        return reply

    await respond(interaction, body, action="market.refresh", update=True)


@dataclass
class ChartReply(Reply):
    """A reply carrying the chart PNG as `chart.png`, which its embed shows through
    `attachment://chart.png`. The file object is built when the reply is sent (it is read once)."""

    png: bytes = b""

    def kwargs(self) -> dict[str, Any]:
        out = super().kwargs()
        out["attachments"] = [discord.File(io.BytesIO(self.png), filename=charts.CHART_FILENAME)]
        return out


async def chart_png(bot: PredictionBot, summary: MarketSummary) -> bytes:
    """The chart of `summary`, from the cache when nobody traded since it was drawn; otherwise
    read the history (database pool), render it on the chart thread, never on the event loop,
    and cache it. A cache that is down (the settings ignore its errors) costs a render, never
    the answer."""
    key = charts.cache_key(summary)
    png = await bot.cache_call(cache.get, key=key)
    if png is None:
        data = await bot.db(charts.chart_data, market=summary)
        png = await asyncio.get_running_loop().run_in_executor(
            charts.RENDER_EXECUTOR, charts.render_png, data
        )
        await bot.cache_call(cache.set, key=key, value=png, timeout=charts.CACHE_SECONDS)
    return png


async def chart_show(interaction: discord.Interaction, market: object, *, ephemeral: bool) -> None:
    """Post the price chart of `market` (an id, `#12`, or what the member typed): privately for
    the button, in the channel for `/market chart`. Deferred first, because a render that misses
    the cache can take longer than Discord's 3 seconds on a busy machine (DOMAIN §8)."""
    bot = _bot(interaction)

    async def body() -> Reply:
        summary = await bot.db(
            actions.market_in_guild, guild_id=interaction.guild_id, market=market
        )
        png = await chart_png(bot, summary)
        return ChartReply(embeds=[render.chart_embed(summary)], png=png, ephemeral=ephemeral)

    await respond(interaction, body, action="market.chart", ephemeral=ephemeral)


async def market_list_reply(
    interaction: discord.Interaction, *, status: str, category: str, page: int
) -> Reply:
    bot = _bot(interaction)
    page_data = await bot.db(
        selectors.market_page,
        guild_id=interaction.guild_id,
        status=status,
        category=category,
        page=page,
        page_size=render.LIST_PAGE_SIZE,
    )
    embed = render.market_list_embed(
        page_data.markets,
        status=status,
        category=category,
        page=page_data.page,
        pages=page_data.pages,
        total=page_data.total,
    )
    view = discord.ui.View(timeout=None)
    view.add_item(
        ListPageButton(
            max(0, page_data.page - 1),
            status,
            category,
            label="◀ Previous",
            disabled=page_data.page <= 0,
        )
    )
    view.add_item(
        ListPageButton(
            page_data.page + 1,
            status,
            category,
            label="Next ▶",
            disabled=page_data.page + 1 >= page_data.pages,
        )
    )
    return Reply(embeds=[embed], view=view)


async def dispute_open(interaction: discord.Interaction, market_id: int) -> None:
    """Open the dispute form, unless the member would be refused anyway (not resolving, never
    traded, disputed already: the service's words, `actions.market_dispute_precheck`). The
    check must finish by `interactions.PRE_ACK_DEADLINE`; past it the form opens and the
    service decides on submission."""
    bot = _bot(interaction)
    try:
        limit_task = asyncio.ensure_future(
            interactions.rate_limited(interaction, ratelimit.REQUEST)
        )
        checked, refusal = await interactions.within_budget(
            interaction,
            bot.db_fast(
                actions.market_dispute_precheck,
                guild_id=interaction.guild_id,
                market=market_id,
                user_id=interaction.user.id,
            ),
            step="dispute_check",
        )
        limited = await limit_task
        if limited is not None:
            await answer_now(interaction, limited.message)
            return
        if checked and refusal:
            await answer_now(interaction, refusal)
            return
        await send_modal(
            interaction,
            interactions.modal(
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
            ),
        )
    except Exception as exc:
        reply = interactions.error_reply(exc, action="market.dispute.open", interaction=interaction)
        await _answer_safely(interaction, reply.content)


async def dispute_submit(
    interaction: discord.Interaction, match: re.Match[str], values: dict[str, str]
) -> None:
    market_id = int(match["market"])
    bot = _bot(interaction)

    async def body() -> Reply:
        done = await bot.db(
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

    await respond(interaction, body, action="market.dispute")


def register(bot: PredictionBot) -> None:
    bot.add_dynamic_items(*DYNAMIC_ITEMS)
    bot.modals.add(DISPUTE_MODAL_ID, dispute_submit)
    bot.modals.add(BUY_MODAL_ID, buy_submit)
    bot.modals.add(SELL_MODAL_ID, sell_submit)
