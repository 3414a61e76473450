"""Builders the selector tests of `markets` and `betting` share: a guild's settings, a market, a
bet, a sale, a close, and what a settlement paid. Everything goes through the real services."""

from __future__ import annotations

from django.db.models import Sum

from betting import services as betting_services
from markets import services
from markets.models import Market
from points.models import Account, Transfer
from points.rules import Actor
from points.services import guild_settings_get_or_create
from tests.conftest import ALICE, CAROL, GUILD
from tests.factories import BetFactory

DAVE = CAROL + 1
OTHER_GUILD = GUILD + 1

_keys = iter(range(10**9))


def set_guild(guild_id: int = GUILD, **values: int) -> None:
    row = guild_settings_get_or_create(guild_id=guild_id)
    for name, value in values.items():
        setattr(row, name, value)
    row.save()


def create(key: str, *, guild_id: int = GUILD, outcomes=("Yes", "No"), **kw) -> Market:
    kw.setdefault("question", f"Question {key}?")
    kw.setdefault("duration", "1d")
    return services.market_create(
        guild_id=guild_id, creator_id=ALICE, outcomes=list(outcomes), idempotency_key=key, **kw
    )


def bet(market: Market, user: int, outcome: int, amount: int):
    return BetFactory(market=market, user_id=user, outcome=outcome, amount=amount)


def sell(market: Market, user: int, outcome: int, shares: int | None = None):
    return betting_services.shares_sell(
        market_id=market.pk,
        user_id=user,
        outcome=outcome,
        shares=shares,
        idempotency_key=f"sell:{next(_keys)}",
    )


def close(market: Market) -> None:
    services.market_close(
        market_id=market.pk, idempotency_key=f"close:{market.pk}", actor=Actor.member(ALICE)
    )


def paid_to_members(market: Market) -> dict[int, int]:
    """Points each member's wallet received from this market's settlement (payout or refund)."""
    rows = (
        Transfer.objects.filter(
            market_id=market.pk,
            code__in=[Transfer.Code.PAYOUT, Transfer.Code.REFUND],
            destination__kind=Account.Kind.WALLET,
        )
        .values_list("destination__owner_id")
        .annotate(total=Sum("amount"))
    )
    return dict(rows)
