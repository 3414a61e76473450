"""How settlement reaches what members hold (DOMAIN §6) without `markets` importing the app that
keeps positions. That app registers one `Holdings` at start-up (`betting` does, in its
`AppConfig.ready`); resolving, cancelling and the settlement preview ask it who gets what, and
the resolve/cancel services ask it to record what was paid.

Why a hook and not settlement in `betting`: resolving and cancelling are lifecycle changes of a
market (status, votes, the escrow remainder, the `resolve:<market>` key, the outbox event), and
the scheduler's auto-refund is one too; only "who holds what" belongs to trading."""

from __future__ import annotations

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
