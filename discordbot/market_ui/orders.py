"""Limit orders on Discord (DOMAIN §4.7): how an order reads; the **Cancel** buttons under
`/orders` — one per waiting order, answering only the member whose orders they are (a click
edits the list: the order is cancelled and the list shows what still waits; a click on an order
that no longer waits — filled, expired, already cancelled, released at close — says so and
changes nothing); and the **Order** button on a market-maker market's message, whose form
places an order as `/order buy|sell` does."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Self

import discord

from betting.models import Order
from betting.services.orders import MSG_ORDERS_PARIMUTUEL
from points.errors import MAX_AMOUNT, InvalidInput

from .. import actions, interactions, limits, parsing
from ..actions import orders as order_actions
from ..actions.common import shares_text
from ..interactions import Reply, idempotency_key
from ..render import timestamp
from ..responders import Opening, bot_of, opener, responder
from .base import _B36, MarketButton, b36, closed_text

MSG_PLACED_BUY = (
    "📥 Order #{id}: buy **{label}** on #{market_id} with up to {budget:,} points while it is at "
    "or under {limit}.{filled}{expires}"
)
MSG_PLACED_SELL = (
    "📤 Order #{id}: sell {shares} shares of **{label}** on #{market_id} while it is at or over "
    "{limit}; those shares are held back from other sales.{filled}{expires}"
)
MSG_FILLED_NOW = " Filled at once: {points:,} points for {shares} shares."
MSG_WAITING = " It waits until the price reaches your limit."
MSG_EXPIRES = " Expires {when}."
MSG_CANCELLED = "🗑️ Order #{id} cancelled{back}."
MSG_NO_ORDERS = "You have no orders waiting{where}."
MSG_ALREADY_ENDED = "Order #{id} {ended}: nothing was changed."
ENDED = {
    Order.Status.FILLED: "has already filled completely",
    Order.Status.CANCELLED: "was already cancelled",
    Order.Status.EXPIRED: "has already expired (its budget went back to your wallet)",
    Order.Status.RELEASED: "was already released when its market closed",
}
MSG_NOT_YOUR_ORDERS = "These are another member's orders; see yours with /orders."
MSG_MORE_ORDERS = "\nCancel the others with /order cancel."

MSG_ORDER_SIDE_TEXT = "“{value}” is neither buy nor sell: type buy or sell."

ORDER_CANCEL_ID = rf"pm:ox:(?P<order>{_B36}):(?P<user>{_B36})"
ORDER_ID = r"pm:order:(?P<market>\d{1,19})"
ORDER_MODAL_ID = r"pm:m:order:(?P<market>\d{1,19})"
BUTTONS_MAX = 25
"""Five rows of five buttons: the most components a message carries (docs/domain.md §8)."""


def _limit(order: Order) -> str:
    return f"{order.limit_ppm / 10_000:g} %"


def order_line(order: Order) -> str:
    """One waiting order, as `/orders` lists it."""
    label = limits.escape(order.outcome.label)
    if order.side == Order.Side.BUY:
        what = f"buy **{label}** ≤ {_limit(order)}, {order.remaining:,} points waiting"
    else:
        what = f"sell **{label}** ≥ {_limit(order)}, {shares_text(order.remaining)} shares"
    expires = f", expires {timestamp(order.expires_at)}" if order.expires_at else ""
    return f"#{order.pk} on market #{order.market_id}: {what}{expires}"


def placed_text(order: Order) -> str:
    filled = (
        MSG_FILLED_NOW.format(points=order.filled_points, shares=shares_text(order.filled_shares))
        if order.fills
        else MSG_WAITING
    )
    expires = MSG_EXPIRES.format(when=timestamp(order.expires_at)) if order.expires_at else ""
    words = dict(
        id=order.pk,
        label=limits.escape(order.outcome.label),
        market_id=order.market_id,
        limit=_limit(order),
        filled=filled,
        expires=expires,
    )
    if order.side == Order.Side.BUY:
        return MSG_PLACED_BUY.format(budget=order.size, **words)
    return MSG_PLACED_SELL.format(shares=shares_text(order.size), **words)


def cancelled_text(order: Order, *, changed: bool) -> str:
    """What a cancel says: the budget that went back, or that the order had already ended."""
    if not changed:
        ended = ENDED.get(order.status, f"is {order.status}")  # type: ignore[call-overload]
        return MSG_ALREADY_ENDED.format(id=order.pk, ended=ended)
    back = (
        f": {order.remaining:,} points are back in your wallet"
        if order.side == Order.Side.BUY and order.remaining
        else ""
    )
    return MSG_CANCELLED.format(id=order.pk, back=back)


class OrderCancelButton(discord.ui.DynamicItem[discord.ui.Button], template=ORDER_CANCEL_ID):
    """Cancel one waiting order from `/orders`. The id carries the order and its owner, so the
    button works after a restart and answers nobody else (STYLE §10)."""

    def __init__(self, order_id: int, user_id: int, *, row: int | None = None):
        self.order_id, self.user_id = order_id, user_id
        super().__init__(
            discord.ui.Button(
                label=f"Cancel #{order_id}",
                emoji="🗑️",
                style=discord.ButtonStyle.secondary,
                custom_id=f"pm:ox:{b36(order_id)}:{b36(user_id)}",
            ),
            row=row,
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["order"], 36), int(match["user"], 36))

    async def callback(self, interaction: discord.Interaction) -> None:
        await order_cancel_click(interaction, self)


def orders_reply(rows: Sequence[Order], *, user_id: int, where: str = "", head: str = "") -> Reply:
    """`/orders`: the member's waiting orders, each with its Cancel button (the first 25)."""
    lines = [head] if head else []
    if not rows:
        lines.append(MSG_NO_ORDERS.format(where=limits.escape(where)))
        return Reply(content="\n".join(lines), view=discord.ui.View(timeout=None))
    lines += [order_line(o) for o in rows]
    if len(rows) > BUTTONS_MAX:
        lines.append(MSG_MORE_ORDERS)
    view = discord.ui.View(timeout=None)
    for i, order in enumerate(rows[:BUTTONS_MAX]):
        view.add_item(OrderCancelButton(order.pk, user_id, row=i // 5))
    return Reply(content=limits.fit("\n".join(lines), limits.CONTENT), view=view)


def _not_your_orders(interaction: discord.Interaction, button: OrderCancelButton) -> str | None:
    return MSG_NOT_YOUR_ORDERS if interaction.user.id != button.user_id else None


@responder("order.cancel.click", reply="edit", refuse_first=_not_your_orders)
async def order_cancel_click(interaction: discord.Interaction, button: OrderCancelButton) -> Reply:
    """Cancel the clicked order (or say it had already ended) and show the list again."""
    order, changed, rows = await bot_of(interaction).db(
        order_actions.order_cancel_from_list,
        guild_id=interaction.guild_id,
        user_id=interaction.user.id,
        order_id=button.order_id,
    )
    reply = orders_reply(
        rows, user_id=interaction.user.id, head=cancelled_text(order, changed=changed)
    )
    reply.edit = True
    return reply


# --- The Order button and its form ----------------------------------------------------------


class OrderButton(MarketButton, template=ORDER_ID):
    """Leave a limit order on the market: opens the order form."""

    key, button_label, button_emoji = "order", "Order", "📝"

    async def callback(self, interaction: discord.Interaction) -> None:
        await order_open(interaction, self.market_id)


@opener("market.order.open")
async def order_open(interaction: discord.Interaction, market_id: int) -> Opening:
    """The order form, unless the market is known to be closed or a pool (no orders there).
    The check must finish within `interactions.PRE_ACK_DEADLINE`; past it the form opens anyway
    and placing the order checks again."""
    checked, summary = await interactions.within_budget(
        interaction,
        bot_of(interaction).db_fast(
            actions.market_in_guild, guild_id=interaction.guild_id, market=market_id
        ),
        step="status_check",
    )
    known = summary if checked else None
    if known is not None and known.status != "open":
        return closed_text(market_id, known.status)
    if known is not None and known.mechanism != "amm":
        return MSG_ORDERS_PARIMUTUEL.format(market_id=market_id)
    labels = [o.label for o in known.outcomes] if known is not None else []
    first = labels[0] if labels else ""
    return interactions.modal(
        f"pm:m:order:{market_id}",
        f"Limit order on #{market_id}",
        interactions.text_input(
            custom_id="side",
            label="Buy or sell",
            description="buy: spend points when the price falls to your limit; sell: sell shares "
            "when it rises to it.",
            default="buy",
            max_length=4,
        ),
        interactions.text_input(
            custom_id="outcome",
            label="Outcome",
            description=limits.fit("One of: " + ", ".join(labels), 100) if labels else "",
            default=first,
            max_length=limits.SELECT_LABEL,
        ),
        interactions.text_input(
            custom_id="limit",
            label="Limit (%)",
            description="Buy at or under it, or sell at or over it: strictly between 0 and 100.",
            placeholder="e.g. 40",
            max_length=10,
        ),
        interactions.text_input(
            custom_id="size",
            label="Points to spend (buy) or shares to sell",
            description="Buy: whole points. Sell: shares like 2.5, or “all”.",
            placeholder="e.g. 100, or all",
            max_length=25,
        ),
        interactions.text_input(
            custom_id="expires",
            label="Expires after (optional)",
            description="e.g. 90m, 2h or 1d; empty: until the market closes.",
            required=False,
            max_length=20,
        ),
    )


@responder("market.order.place")
async def order_submit(
    interaction: discord.Interaction, match: re.Match[str], values: dict[str, str]
) -> Reply:
    """Place the order the form describes (`order_place_for_interaction`, as `/order`)."""
    bot, guild_id = bot_of(interaction), interaction.guild_id or 0
    side = values.get("side", "").strip().casefold()
    if side not in (Order.Side.BUY, Order.Side.SELL):
        raise InvalidInput(MSG_ORDER_SIDE_TEXT.format(value=limits.fit(values.get("side", ""), 20)))
    size = values.get("size", "")
    amount: int | None = None
    if side == Order.Side.BUY:
        policy = bot.policies.peek(guild_id) or await bot.policies.load(guild_id)
        maximum = policy.max_bet if policy is not None else MAX_AMOUNT
        amount = parsing.amount_text(size, maximum=maximum)
    order = await bot.db(
        order_actions.order_place_for_interaction,
        guild_id=guild_id,
        user_id=interaction.user.id,
        idempotency_key=idempotency_key(interaction),
        market=int(match["market"]),
        outcome=values.get("outcome", ""),
        side=side,
        limit=values.get("limit", ""),
        amount=amount,
        shares=None if amount is not None else (size or "all"),
        expires=values.get("expires") or None,
    )
    return Reply(content=placed_text(order))
