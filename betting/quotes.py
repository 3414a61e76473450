"""Quotes (DOMAIN §4.6): what a trade would do now, computed by the trade rules
(`betting.rules`) on the market as read. Read-only: a quote never writes — a member without a
wallet is quoted against the starting balance the wallet would get, a guild without a settings
row against `PM_GUILD_DEFAULTS`. The trade itself is recomputed under lock.

`quote_buy` / `quote_sell` price a trade alone; `member_quote_buy` / `member_quote_sell` also
apply the member's limits (max bet, balance, holding) and give the slippage limit a
confirmation trades with: every refusal the trade would make, from the same rules."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Subquery, Sum
from django.db.models.functions import Coalesce

from markets import amm
from markets.models import Market, Outcome
from markets.selectors import market_and_outcome, probabilities
from points.models import GuildSettings
from points.selectors import balance_get, guild_settings_get

from . import rules
from .models import Order, Position


@dataclass(frozen=True)
class BuyQuote:
    amount: int
    fee: int
    shares: int
    """Micro-shares the buyer would receive (amm); 0 for a pool stake."""
    average_price: float  # display: points per share
    probability_before: float  # display
    probability_after: float  # display
    potential_payout: int
    """Points if this outcome wins: whole shares (amm) or the pari-mutuel share of the pot."""


@dataclass(frozen=True)
class SellQuote:
    shares_offered: int
    shares_burned: int
    """Equal to `shares_offered`: a sale removes exactly the shares asked for (DOMAIN §4.4)."""
    points: int
    fee: int
    net_points: int
    probability_after: float  # display


def _buy_quote(
    market: Market, outcomes: list[Outcome], position: int, plan: rules.BuyPlan
) -> BuyQuote:
    before = probabilities(market.mechanism, outcomes)[position]
    if plan.kind == "buy":
        after = float(amm.prices(plan.pools)[position])  # display
        average = plan.amount * amm.SHARE_SCALE / plan.shares  # display
        payout = plan.shares // amm.SHARE_SCALE
        return BuyQuote(plan.amount, plan.fee, plan.shares, average, before, after, payout)
    after = float(amm.parimutuel_probabilities(plan.staked)[position])  # display
    payout = plan.amount * sum(plan.staked) // plan.staked[position]
    return BuyQuote(plan.amount, 0, 0, 0.0, before, after, payout)


def _sell_quote(position: int, plan: rules.SellPlan) -> SellQuote:
    after = float(amm.prices(plan.pools)[position])  # display
    return SellQuote(plan.asked, plan.asked, plan.points, plan.fee, plan.net, after)


def _held(market_id: int, outcome: Outcome, user_id: int) -> tuple[int, int]:
    """The member's micro-shares of `outcome`, and how many of them their resting sell orders
    hold back from sales (DOMAIN §4.7), in one query."""
    reserved = (
        Order.objects.filter(
            market_id=market_id,
            outcome=outcome,
            user_id=user_id,
            side=Order.Side.SELL,
            status=Order.Status.RESTING,
        )
        .values("user_id")
        .annotate(s=Sum("remaining"))
        .values("s")
    )
    row = (
        Position.objects.filter(market_id=market_id, outcome=outcome, user_id=user_id)
        .annotate(reserved=Coalesce(Subquery(reserved), 0))
        .values_list("shares", "reserved")
        .first()
    )
    return (0, 0) if row is None else (row[0], row[1])


def quote_buy(*, market_id: int, outcome: int, amount: int) -> BuyQuote:
    """What `amount` points on `outcome` would give now, whoever buys (2 queries); an amount
    the fee eats whole gives 0 shares."""
    market, outcomes, chosen = market_and_outcome(market_id, outcome)
    state = rules.state_of(market, outcomes)
    if amount - rules.buy_fee(state, amount) <= 0:
        before = probabilities(market.mechanism, outcomes)[chosen.position]
        return BuyQuote(amount, rules.buy_fee(state, amount), 0, 0.0, before, before, 0)
    plan = rules.buy_plan(state, chosen.position, amount, max_bet=amount, balance=amount)
    return _buy_quote(market, outcomes, chosen.position, plan)


def quote_sell(
    *, market_id: int, user_id: int, outcome: int, shares: int | None = None
) -> SellQuote:
    """What selling `shares` (None = all held) of `outcome` would return now, refused as the
    sale would be (3 queries)."""
    market, outcomes, chosen = market_and_outcome(market_id, outcome)
    state = rules.state_of(market, outcomes)
    rules.sell_allowed(state)
    held, reserved = _held(market_id, chosen, user_id)
    plan = rules.sell_plan(state, chosen.position, held, shares, reserved=reserved)
    return _sell_quote(chosen.position, plan)


@dataclass(frozen=True)
class MemberQuote:
    """A quote a member may confirm: the numbers, and the slippage limit the confirmation
    trades with (`min_shares` for a buy, `min_points` for a sale; 0 for a stake, whose payout
    is only known at settlement)."""

    buy: BuyQuote | None
    sell: SellQuote | None
    limit: int
    slippage_bps: int


def guild_settings_or_defaults(guild_id: int) -> GuildSettings:
    """The guild's settings row, or an unsaved one with the defaults (no write)."""
    return _settings(guild_id)


def _settings(guild_id: int) -> GuildSettings:
    """The guild's settings row, or an unsaved one with the defaults (no write)."""
    row = guild_settings_get(guild_id=guild_id)
    return (
        row if row is not None else GuildSettings(guild_id=guild_id, **settings.PM_GUILD_DEFAULTS)
    )


def member_quote_buy(
    *, guild_id: int, user_id: int, market_id: int, outcome: int, amount: int
) -> MemberQuote:
    """What `amount` points on `outcome` would give the member now, refused as the trade would
    refuse it (max bet, the fee eating the amount, the balance; 4 queries)."""
    market, outcomes, chosen = market_and_outcome(market_id, outcome)
    gs = _settings(guild_id)
    balance = balance_get(guild_id=guild_id, user_id=user_id)
    plan = rules.buy_plan(
        rules.state_of(market, outcomes),
        chosen.position,
        amount,
        max_bet=gs.max_bet,
        balance=gs.starting_balance if balance is None else balance,
    )
    quote = _buy_quote(market, outcomes, chosen.position, plan)
    limit = rules.slippage_limit(plan.shares, gs.slippage_bps) if plan.kind == "buy" else 0
    return MemberQuote(quote, None, limit, gs.slippage_bps)


def member_quote_sell(
    *, guild_id: int, user_id: int, market_id: int, outcome: int, shares: int | None
) -> MemberQuote:
    """What selling `shares` (None = all held) would return the member now, refused as the
    confirmation would be: it sells exactly the micro-shares quoted, so a sale worth 0 points
    is refused here too; shares held back by the member's sell orders are not sold (4
    queries)."""
    market, outcomes, chosen = market_and_outcome(market_id, outcome)
    state = rules.state_of(market, outcomes)
    rules.sell_allowed(state)
    held, reserved = _held(market_id, chosen, user_id)
    asked = held - reserved if shares is None and held > reserved else shares
    plan = rules.sell_plan(state, chosen.position, held, asked, reserved=reserved)
    gs = _settings(guild_id)
    limit = rules.slippage_limit(plan.net, gs.slippage_bps)
    return MemberQuote(None, _sell_quote(chosen.position, plan), limit, gs.slippage_bps)
