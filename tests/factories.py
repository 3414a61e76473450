"""Test data built through the real services (STYLE §13, §14): a member is a wallet opened by the
ledger service, a market is created by `market_create` (liquidity moved, outcomes and outbox
event written), a bet or a position comes from `bet_place`. Nothing here writes a row directly,
so every factory-built state is one the application can reach, and the ledger audit after each
test holds for it (DOMAIN §3).

    market = MarketFactory()                          # amm, "Yes"/"No", open for a day
    pool = PoolMarketFactory(outcomes=["A", "B", "C"])
    trade = BetFactory(market=market, user_id=ALICE, outcome=1, amount=50)
    position = PositionFactory(market=pool, amount=20)
    closed = MarketFactory(closed=True)               # closed by its creator

Each object gets its own idempotency key from a sequence; pass `idempotency_key=` to replay one.
"""

from __future__ import annotations

import factory

from betting.models import Position, Trade
from markets.models import Market
from points.models import Account
from tests.conftest import ALICE, CAROL, GUILD

# --- The services the factories build through: the one place to change when a service moves ----
# isort: split
from markets.services import market_close, market_create
from points.services import wallet_get_or_create

# isort: split
from betting.services import bet_place
from points.rules import Actor

MEMBER_IDS = 700_000_000_000_000_000
"""Factory members' user ids count up from here: snowflakes that no named test member uses."""


class MemberFactory(factory.Factory):
    """A member's wallet, opened by the ledger with the guild's starting balance (DOMAIN §2)."""

    class Meta:
        model = Account

    guild_id = GUILD
    user_id = factory.Sequence(lambda n: MEMBER_IDS + n)

    @classmethod
    def _create(cls, model_class: type[Account], *, guild_id: int, user_id: int) -> Account:
        return wallet_get_or_create(guild_id=guild_id, user_id=user_id)


class MarketFactory(factory.Factory):
    """An open market-maker market created by `market_create` (DOMAIN §4.1); `closed=True`
    then closes it as its creator (DOMAIN §6)."""

    class Meta:
        model = Market

    guild_id = GUILD
    creator_id = CAROL
    question = factory.Sequence(lambda n: f"Will event {n} happen?")
    outcomes = ("Yes", "No")
    duration = "1d"
    category = None
    mechanism = Market.Mechanism.AMM
    liquidity = None
    idempotency_key = factory.Sequence(lambda n: f"factory:market:{n}")

    @classmethod
    def _create(cls, model_class: type[Market], *, outcomes, **kwargs) -> Market:
        return market_create(outcomes=list(outcomes), **kwargs)

    @factory.post_generation
    def closed(market: Market, create: bool, extracted: bool | None, **kwargs) -> None:
        if create and extracted:
            market_close(
                market_id=market.pk,
                idempotency_key=f"factory:close:{market.pk}",
                actor=Actor.member(market.creator_id),
            )
            market.refresh_from_db()


class PoolMarketFactory(MarketFactory):
    """A pari-mutuel market (DOMAIN §5): no liquidity, stakes only."""

    mechanism = Market.Mechanism.PARIMUTUEL


class BetFactory(factory.Factory):
    """A buy (amm) or a stake (pool) placed by `bet_place`; returns the `Trade` (DOMAIN §4.3, §5).
    The member's wallet is opened on the way if it did not exist."""

    class Meta:
        model = Trade

    market = factory.SubFactory(MarketFactory)
    user_id = ALICE
    outcome = 0
    amount = 100
    idempotency_key = factory.Sequence(lambda n: f"factory:bet:{n}")
    min_shares = None

    @classmethod
    def _create(cls, model_class: type[Trade], *, market: Market, **kwargs) -> Trade:
        return bet_place(market_id=market.pk, **kwargs)


class PositionFactory(BetFactory):
    """The member's position after a bet placed by `bet_place` (with every earlier bet of the
    same member on the same outcome folded in)."""

    class Meta:
        model = Position

    idempotency_key = factory.Sequence(lambda n: f"factory:position:{n}")

    @classmethod
    def _create(cls, model_class: type[Position], **kwargs) -> Position:
        trade = super()._create(Trade, **kwargs)
        return Position.objects.get(
            market_id=trade.market_id, user_id=trade.user_id, outcome_id=trade.outcome_id
        )
