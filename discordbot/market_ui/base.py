"""What every part of the market message shares: the `custom_id` templates, the words, and the
`MarketButton` base of the buttons that carry only their market."""

from __future__ import annotations

import re
from typing import ClassVar, Self

import discord

MSG_CLOSED = "Market #{market_id} is {status}: trading is over. {hint}"
MSG_NO_SELL_POOL = "Pool markets don't support selling: stakes stay in until the market settles."
MSG_NOTHING_TO_SELL = "You hold no shares in market #{market_id}."
MSG_PICK_SELL = "Which outcome of #{market_id} do you want to sell?"

BUY_ID = r"pm:buy:(?P<market>\d{1,19}):(?P<outcome>\d{1,2})"
SELL_ID = r"pm:sell:(?P<market>\d{1,19})"
POSITION_ID = r"pm:pos:(?P<market>\d{1,19})"
REFRESH_ID = r"pm:refresh:(?P<market>\d{1,19})"
CHART_ID = r"pm:chart:(?P<market>\d{1,19})"
CHART_RANGE_ID = r"pm:chartr:(?P<market>\d{1,19}):(?P<span>1h|24h|all)"
SELL_PICK_ID = r"pm:sellpick:(?P<market>\d{1,19})"
DISPUTE_ID = r"pm:dispute:(?P<market>\d{1,19})"
DISPUTE_MODAL_ID = r"pm:m:dispute:(?P<market>\d{1,19})"
MSG_DISPUTED = (
    "🚩 Your dispute of the proposed result **{label}** of #{market_id} is recorded ({count}). "
    "The market is held for moderators, who confirm the result, change it or undo it; you will "
    "get a DM with their decision."
)
LIST_ID = r"pm:list:(?P<page>\d{1,10}):(?P<status>[a-z]{1,10})(?P<cut>[:~])(?P<category>.{0,50})"
BUY_MODAL_ID = r"pm:m:buy:(?P<market>\d{1,19}):(?P<outcome>\d{1,2})"
SELL_MODAL_ID = r"pm:m:sell:(?P<market>\d{1,19}):(?P<outcome>\d{1,2})"
_B36 = r"[0-9a-z]{1,13}"
"""A snowflake or any 64-bit number: 36**13 > 2**64."""
_B36_WIDE = r"[0-9a-z]{1,20}"
"""An amount, micro-shares or a limit: every legal value is a 64-bit column (< 2**63, 13 digits);
20 digits leave room for a quote's intermediate figures (36**20 > 10**31) and still fit."""
CONFIRM_ID = (
    rf"pm:qc:(?P<kind>[bs]):(?P<market>{_B36}):(?P<outcome>\d{{1,2}}):"
    rf"(?P<quantity>{_B36_WIDE}):(?P<limit>{_B36_WIDE}):(?P<user>{_B36}):(?P<quote>{_B36})"
)
"""At most 94 characters (`pm:qc:b:` 8 + market 13 + outcome 2 + 2 × 20 + user 13 + quote 13 +
6 separators), within Discord's 100-character custom_id (DOMAIN §8; issue 23 item 17)."""
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


def closed_hint(status: str) -> str:
    return {
        "closed": "It is waiting for resolution.",
        "resolving": "A result is proposed; traders can dispute it with the Dispute button.",
        "resolved": "It has been resolved.",
        "cancelled": "It was cancelled and refunded.",
    }.get(status, "")


def closed_text(market_id: int, status: str) -> str:
    return MSG_CLOSED.format(market_id=market_id, status=status, hint=closed_hint(status))


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


def utf16_prefix(text: str, units: int) -> str:
    """The longest prefix of `text` within `units` UTF-16 units (never half a surrogate pair)."""
    out, used = [], 0
    for ch in text:
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > units:
            break
        out.append(ch)
    return "".join(out)


class MarketButton(
    discord.ui.DynamicItem[discord.ui.Button], template=r"pm:(?P<key>[a-z]+):(?P<market>\d{1,19})"
):
    """A button of the market message whose `custom_id` is `pm:<key>:<market>`: it re-reads the
    market on every click (STYLE §10). A subclass names its template, `key`, label, style and
    emoji, and says what a click does in `callback`."""

    key: ClassVar[str]
    button_label: ClassVar[str]
    button_style: ClassVar[discord.ButtonStyle] = discord.ButtonStyle.secondary
    button_emoji: ClassVar[str | None] = None

    def __init__(self, market_id: int, *, row: int | None = None):
        self.market_id = market_id
        super().__init__(
            discord.ui.Button(
                label=self.button_label,
                emoji=self.button_emoji,
                style=self.button_style,
                custom_id=f"pm:{self.key}:{market_id}",
            ),
            row=row,
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["market"]))
