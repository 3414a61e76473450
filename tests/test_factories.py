"""The factories build through the real services: what they return is what the application
itself would have written (liquidity moved, outbox event, wallet funded, position held)."""

from __future__ import annotations

import pytest

from betting.models import Position, Trade
from markets.amm import SHARE_SCALE
from markets.models import Market, MarketEvent
from points.models import Account, Transfer
from tests.conftest import ALICE, GUILD
from tests.factories import (
    BetFactory,
    MarketFactory,
    MemberFactory,
    PoolMarketFactory,
    PositionFactory,
)

pytestmark = pytest.mark.django_db


def test_member_factory_opens_a_funded_wallet():
    wallet = MemberFactory()
    assert wallet.kind == Account.Kind.WALLET and wallet.guild_id == GUILD
    assert wallet.balance == 1000  # the guild's starting balance, DOMAIN §2
    assert Transfer.objects.filter(destination=wallet, code="starting_balance").count() == 1
    assert MemberFactory(user_id=wallet.owner_id).pk == wallet.pk  # opened once


def test_market_factories_create_both_mechanisms_through_market_create():
    amm, pool = MarketFactory(), PoolMarketFactory(outcomes=["A", "B", "C"])
    assert (amm.mechanism, amm.status) == (Market.Mechanism.AMM, "open")
    assert [o.pool for o in amm.outcomes.order_by("position")] == [1000 * SHARE_SCALE] * 2
    assert Account.objects.get(kind="escrow", market=amm).balance == 1000
    assert pool.mechanism == Market.Mechanism.PARIMUTUEL and pool.outcomes.count() == 3
    assert Account.objects.get(kind="escrow", market=pool).balance == 0
    assert MarketEvent.objects.filter(type="market_created").count() == 2
    assert MarketFactory(closed=True).status == "closed"


def test_bet_and_position_factories_place_real_bets():
    market = MarketFactory()
    trade = BetFactory(market=market, user_id=ALICE, outcome=1, amount=50)
    assert isinstance(trade, Trade) and trade.amount == 50 and trade.shares > 0
    position = PositionFactory(market=market, user_id=ALICE, outcome=1, amount=30)
    assert isinstance(position, Position)
    assert position.points_spent == 80 and position.shares > trade.shares
    assert Account.objects.get(kind="wallet", owner_id=ALICE).balance == 1000 - 80
    pool_position = PositionFactory(market=PoolMarketFactory(), amount=20)
    assert pool_position.points_spent == 20
