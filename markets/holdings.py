"""How settlement reaches what members hold (DOMAIN §6) without `markets` importing the app that
keeps positions. That app registers one `Holdings` at start-up (`betting` does, in its
`AppConfig.ready`); resolving, cancelling and the settlement preview ask it who gets what, and
the resolve/cancel services ask it to record what was paid.

Why a hook and not settlement in `betting`: resolving and cancelling are lifecycle changes of a
market (status, votes, the escrow remainder, the `resolve:<market>` key, the outbox event), and
the scheduler's auto-refund is one too; only "who holds what" belongs to trading."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured

from .models import Market, Outcome


@dataclass(frozen=True)
class Payouts:
    """Points each holding (a position, by id) and each member receive from a market's escrow.
    `per_user` has an entry for every member named by `per_holding`, even at 0 points."""

    per_holding: dict[int, int] = field(default_factory=dict)
    per_user: dict[int, int] = field(default_factory=dict)
    refunded_all: bool = False
    """True when a pool market is resolved on an outcome nobody backed: everyone is refunded."""


@dataclass(frozen=True)
class Reversal:
    """The trades after `known_at` a settlement reverses (docs/domain.md §6.2), or would: how
    many, and per member the points their wallet gets back (negative: gives back) and what the
    treasury paid for them because their wallet fell short."""

    known_at: dt.datetime
    trades: int = 0
    per_user: dict[int, int] = field(default_factory=dict)
    shortfall: dict[int, int] = field(default_factory=dict)
    trade_ids: list[int] = field(default_factory=list)
    """Latest first."""

    def payload(self) -> dict[str, object]:
        """What the settlement's event says of it (the bot's summary and DMs read this)."""
        return {
            "known_at": self.known_at.isoformat(),
            "reversed": self.trades,
            "reversed_members": {str(u): amount for u, amount in sorted(self.per_user.items())},
            "reversal_shortfall": sum(self.shortfall.values()),
        }


class Holdings(Protocol):
    def resolve_plan(self, market: Market, outcomes: list[Outcome], winner: Outcome) -> Payouts:
        """Who gets what if `winner` wins (DOMAIN §4, §5). Reads; writes nothing."""
        ...

    def refund_plan(self, market: Market) -> Payouts:
        """Who gets what if the market is cancelled (DOMAIN §6). Reads; writes nothing."""
        ...

    def payouts_record(self, market: Market, payouts: Payouts) -> None:
        """Record on the holdings what settlement paid. Caller holds a row lock on `market`."""
        ...

    def holds(self, market: Market, user_id: int) -> bool:
        """Whether `user_id` holds shares or a stake in `market` now (docs/domain.md §6.1)."""
        ...

    def traded(self, market: Market, user_id: int) -> bool:
        """Whether `user_id` ever traded in `market` (who may dispute a proposed result)."""
        ...

    def orders_release(self, market: Market, now: dt.datetime) -> int:
        """Release what waits on the market being open — limit orders' budgets and reserved
        shares (DOMAIN §4.7) — as it closes or is cancelled; returns how many orders ended.
        Caller holds a row lock on `market`."""
        ...

    def orders_expire(self, now: dt.datetime) -> int:
        """Release the limit orders whose expiry has passed (the market clock, DOMAIN §4.7),
        each market in its own transaction; returns how many."""

    def reversal_plan(self, market: Market, known_at: dt.datetime) -> Reversal:
        """What reversing the trades after `known_at` would move (docs/domain.md §6.2), on the
        balances as read now. Reads; writes nothing (the moderator's preview)."""
        ...

    def reversal_apply(
        self,
        market: Market,
        outcomes: list[Outcome],
        known_at: dt.datetime,
        *,
        actor_id: int | None,
        actor_user_id: int | None,
    ) -> Reversal:
        """Reverse the trades after `known_at`, latest first (docs/domain.md §6.2): points,
        pools (`outcomes` are updated in place and saved), positions; marks the trades. Caller
        holds a row lock on `market` and is settling it, once."""
        ...


_registered: list[Holdings] = []


def holdings_register(holdings: Holdings) -> None:
    """Install the app that keeps positions; called once from its `AppConfig.ready()`."""
    _registered[:] = [holdings]


def holdings_get() -> Holdings:
    if not _registered:
        raise ImproperlyConfigured(
            "No app registered the markets' holdings: install `betting` (it registers them in "
            "BettingConfig.ready) before settling a market."
        )
    return _registered[0]
