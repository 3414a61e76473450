"""The facts the bot's use cases and selectors return and `render` turns into text: a leaf
module (it imports nothing else of `discordbot`), so `actions`, `selectors` and `render` share
these types without importing each other."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from betting.selectors import RestingLevel
from markets.models import Market
from markets.selectors import MarketSummary
from points.models import GuildSettings


@dataclass(frozen=True)
class TradeResult:
    market: MarketSummary
    """The market as it was before the trade (its id, question and outcomes)."""
    kind: str
    outcome: int
    label: str
    amount: int
    """Points paid (buy, stake) or returned before the fee (sell)."""
    fee: int
    shares: int
    """Micro-shares received (buy) or burned (sell)."""
    balance: int | None
    probability: float
    """The outcome's probability right after the trade (display)."""
    left_in_pool: int = 0
    """Sales: micro-shares sold beyond what the points cost, kept by the market (DOMAIN §4.4)."""


@dataclass(frozen=True)
class Quote:
    """What a trade would do now (DOMAIN §4.6), shown before the member confirms it."""

    market: MarketSummary
    kind: str
    """"buy" (market maker), "stake" (pool) or "sell"."""
    outcome: int
    label: str
    amount: int
    """Points paid (buy, stake), or returned before the fee (sell)."""
    shares: int
    """Micro-shares received (buy) or sold (sell); 0 for a stake."""
    fee: int
    average_price: float  # display: points per share
    probability_before: float  # display
    probability_after: float  # display
    payout: int
    """Points if the outcome wins: whole shares (buy), the share of the pot as it stands
    (stake); for a sale, the points it returns after the fee."""
    limit: int
    """The slippage limit a confirmation trades with: `min_shares` (buy) or `min_points`
    (sell), `slippage_bps` below the quote; 0 for a stake (a pool's payout is only known at
    settlement)."""
    slippage_bps: int
    pot_after: int = 0
    """Pool: the whole pot with this stake in it."""
    asked: int = 0
    """Sell: the micro-shares asked for (a sale burns only what whole points pay for, so
    `shares` may be a little less)."""

    @property
    def net(self) -> int:
        return self.amount - self.fee


@dataclass(frozen=True)
class TradeAsk:
    """What a member asked for in one interaction, before anything was read: the bot queues it
    by market and `trades_for_interactions` serves a whole queue with one market read."""

    guild_id: int
    user_id: int
    outcome: int
    """The outcome's position (0-based), as the member's quote or the button named it."""
    kind: Literal["buy", "sell"]
    idempotency_key: str
    amount: int | None = None
    """Points to buy or stake with."""
    shares: int | None = None
    """Micro-shares to sell; None: all the member holds."""
    min_shares: int | None = None
    """The slippage limit of a confirmed quote (DOMAIN §4.6): a buy giving fewer is refused."""
    min_points: int | None = None
    """A sale returning fewer points (after the fee) is refused."""


@dataclass(frozen=True)
class VoteResult:
    """What `/market resolve` did without force: a vote recorded, a proposal (by agreeing votes
    or by the creator), a proposal that waits for a second resolver, or a resolution."""

    market: MarketSummary
    outcome: int
    label: str
    votes: int
    needed: int
    repeated: bool = False
    """The voter had already voted for this same outcome: nothing new to announce."""
    how: str = ""
    """Who resolves a market here and how, and how else it can end (`render.how_text`)."""
    by_creator: bool = False
    """The server resolves by creator: the creator's call was a proposal, not a vote."""

    @property
    def resolved(self) -> bool:
        return self.market.status == Market.Status.RESOLVED

    @property
    def proposed(self) -> bool:
        return self.market.status == Market.Status.RESOLVING

    @property
    def waits_for_second(self) -> bool:
        """Proposed by someone holding a position with no window: a second resolver confirms."""
        p = self.market.proposal
        return p is not None and p.deadline is None and not p.disputed


@dataclass(frozen=True)
class ConfirmResult:
    market: MarketSummary
    """The market after the decision (resolved)."""
    changed_from: str | None
    """The proposed outcome's label when a moderator changed it, else None."""


@dataclass(frozen=True)
class UndoResult:
    market: MarketSummary
    """The market after the undo (closed again)."""
    label: str
    """The outcome that had been proposed."""
    how: str


@dataclass(frozen=True)
class DisputeResult:
    market: MarketSummary
    disputes: int
    """Disputes of this proposal, this one included."""


@dataclass(frozen=True)
class DailyClaim:
    amount: int
    balance: int
    next_at: dt.datetime


@dataclass(frozen=True)
class Holding:
    outcome: int
    label: str
    shares: int
    points_spent: int
    points_received: int
    value: int
    """`betting.selectors.position_value`: the same worth `/portfolio` shows."""


@dataclass(frozen=True)
class PositionInMarket:
    market: MarketSummary
    holdings: list[Holding]
    balance: int | None


@dataclass(frozen=True)
class MarketPage:
    markets: list[MarketSummary]
    page: int
    pages: int
    total: int


@dataclass(frozen=True)
class Predictor:
    user_id: int
    label: str
    staked: int


@dataclass(frozen=True)
class HolderRow:
    """Shares of one outcome of a market-maker market one member holds (issue 26)."""

    user_id: int
    outcome: int
    """The outcome's position."""
    shares: int
    """Micro-shares (market maker); points staked in `/market holders` of a pool."""


@dataclass(frozen=True)
class Holders:
    """The biggest holders of each outcome of a market-maker market, with their names, for the
    market message (as `Predictor`s are for a pool)."""

    rows: list[HolderRow]
    names: dict[int, str]
    resting: tuple[RestingLevel, ...] = ()
    """The limit orders waiting on the market, per outcome, side and limit (DOMAIN §4.7)."""


@dataclass(frozen=True)
class HolderPage:
    """One page of `/market holders`: every holder, by outcome then most shares first."""

    rows: list[HolderRow]
    names: dict[int, str]
    page: int
    pages: int
    total: int
    offset: int


@dataclass(frozen=True)
class TraderResult:
    user_id: int
    spent: int
    received: int
    payout: int

    @property
    def net(self) -> int:
        return self.payout + self.received - self.spent


@dataclass(frozen=True)
class EventContext:
    """Everything the notifier needs to announce one event (one trip to the database)."""

    market: MarketSummary
    announce_channel_id: int | None
    auto_refund_hours: int
    results: list[TraderResult]
    opted_out: set[int]
    settings: GuildSettings
    """The guild's settings: who resolves the market and how (`render.how_text` says it)."""
    moderator_channel_id: int | None = None
    resolver_role_ids: tuple[int, ...] = ()
    disputers: list[int] = field(default_factory=list)
    """Members who disputed the proposal the event is about, in the order they did."""


@dataclass(frozen=True)
class PostContext:
    """What a channel post about a resolution event is rendered from when it is sent."""

    type: str
    payload: dict
    settings: GuildSettings
    """Who resolves the market and how (`render.how_text` says it)."""
    resolver_role_ids: tuple[int, ...]
    results: list[TraderResult] = field(default_factory=list)
    """For a resolution: every trader's result (the biggest winners are ranked by net gain)."""


@dataclass(frozen=True)
class LateTrades:
    """A member's trades after a proposal's `known_at` (docs/domain.md §6.2): what settling it
    would reverse — points their buys and stakes spent come back, points their sales paid go
    back."""

    trades: int = 0
    spent: int = 0
    received: int = 0
