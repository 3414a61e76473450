"""Helpers every market use case shares (run inside the caller's transaction): the market
lock, outcome lookup, the escrow lock, the outbox event and display prices."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from core import signals
from points.models import Account, GuildSettings
from points.rules import Actor
from points.services import audit_record

from .. import amm
from ..errors import (
    MSG_ALREADY_SETTLED,
    MSG_MARKET_NOT_FOUND,
    MSG_NOT_OPEN,
    MSG_OUTCOME_NOT_FOUND,
    InvalidMarketInput,
    MarketNotFound,
    MarketStateError,
)
from ..holdings import holdings_get
from ..models import Market, MarketEvent, Outcome
from ..realtime import event_publish_on_commit
from ..validation import clean_known_at

SHARE_SCALE = amm.SHARE_SCALE


def market_lock(market_id: object) -> Market:
    """Lock and return the market row. Caller is in a transaction."""
    if isinstance(market_id, bool) or not isinstance(market_id, int) or market_id <= 0:
        raise MarketNotFound(MSG_MARKET_NOT_FOUND.format(market_id=market_id))
    market = Market.objects.select_for_update().filter(pk=market_id).first()
    if market is None:
        raise MarketNotFound(MSG_MARKET_NOT_FOUND.format(market_id=market_id))
    return market


def outcomes_locked(market: Market) -> list[Outcome]:
    """Caller holds a row lock on `market`; outcome rows change only under that lock."""
    return list(Outcome.objects.filter(market=market).order_by("position"))


def outcome_at(market: Market, outcomes: list[Outcome], position: object) -> Outcome:
    if isinstance(position, bool) or not isinstance(position, int):
        position = -1
    if not 0 <= position < len(outcomes):
        raise InvalidMarketInput(
            MSG_OUTCOME_NOT_FOUND.format(
                market_id=market.pk,
                outcome=position + 1 if position >= 0 else "?",
                count=len(outcomes),
            )
        )
    return outcomes[position]


def escrow_get(market: Market) -> Account:
    return Account.objects.get(kind=Account.Kind.ESCROW, market=market)


def probabilities(market: Market, outcomes: list[Outcome]) -> list[float]:
    if market.mechanism == Market.Mechanism.AMM:
        return [float(p) for p in amm.prices([o.pool for o in outcomes])]  # display
    return [float(p) for p in amm.parimutuel_probabilities([o.staked for o in outcomes])]  # display


def prices_ppm(market: Market, outcomes: list[Outcome]) -> list[int]:
    if market.mechanism == Market.Mechanism.AMM:
        return amm.prices_ppm([o.pool for o in outcomes])
    probabilities = amm.parimutuel_probabilities([o.staked for o in outcomes])
    return [round(p * 1_000_000) for p in probabilities]


def ensure_trading(market: Market, now: dt.datetime) -> None:
    if market.status != Market.Status.OPEN or market.closes_at <= now:
        status = market.status if market.status != Market.Status.OPEN else "closed"
        raise MarketStateError(
            MSG_NOT_OPEN.format(market_id=market.pk, status=status),
            details={"status": market.status},
        )


def known_at_clean(
    market: Market, known_at: object, now: dt.datetime | None = None
) -> dt.datetime | None:
    """`known_at` checked against the market's span (docs/domain.md §6.2): not in the future,
    not before it opened, not after it closed (early, or at `closes_at`)."""
    closed = market.closes_at
    if market.closed_at is not None and market.closed_at < closed:
        closed = market.closed_at
    return clean_known_at(
        known_at,
        market_id=market.pk,
        opened=market.created_at,
        closed=closed,
        now=now or timezone.now(),
    )


def known_at_matches(event: MarketEvent, known_at: dt.datetime | None) -> bool:
    """Whether a replayed request states the same `known_at` as the event it caused."""
    stated = event.payload.get("known_at")
    if stated is None or known_at is None:
        return stated is None and known_at is None
    return dt.datetime.fromisoformat(stated) == known_at


def ensure_not_settled(market: Market) -> None:
    if market.is_settled:
        raise MarketStateError(
            MSG_ALREADY_SETTLED.format(market_id=market.pk, status=market.status),
            details={"status": market.status},
        )


def event_write(
    market: Market,
    type_: str,
    payload: dict[str, Any],
    *,
    request_key: str | None = None,
    natural_key: str | None = None,
    actor_id: int | None = None,
) -> MarketEvent:
    """Write the outbox row and queue its dashboard push after commit. Caller holds a row lock
    on `market`."""
    event = MarketEvent.objects.create(
        market=market,
        guild_id=market.guild_id,
        type=type_,
        payload={"status": market.status, **payload},
        idempotency_key=natural_key,
        request_key=request_key,
        actor_id=actor_id,
    )
    event_publish_on_commit(event)
    return event


def conflicted(gs: GuildSettings, market: Market, actor: Actor) -> bool:
    """Whether the conflict-of-interest rule stops `actor` from deciding `market`
    (docs/domain.md §6.1): the guild has the rule on and the actor, a Discord member, holds
    shares or a stake in it."""
    if not gs.conflict_of_interest or actor.user_id is None:
        return False
    return holdings_get().holds(market, actor.user_id)


def event_by_request_key(key: str) -> MarketEvent | None:
    """The event a lifecycle request wrote under `key`, if any (its first result)."""
    return MarketEvent.objects.filter(request_key=key).first()


def on_commit(func: Callable[[], object]) -> None:
    transaction.on_commit(func)


def transition_announce(market: Market, event: str) -> None:
    """After commit, tell telemetry that `market` changed state (`core.signals`; receivers never
    make the write fail). `event`: "created", "closed", "proposed", "undone", "resolved" or
    "cancelled"."""
    mechanism = market.mechanism
    on_commit(
        lambda: signals.market_transitioned.send(sender=Market, event=event, mechanism=mechanism)
    )


def market_changed(
    market: Market,
    type_: str,
    payload: dict[str, Any],
    *,
    natural_key: str,
    request_key: str | None,
    actor_id: int | None,
    actor_user_id: int | None,
    audit: tuple[str, str, dict[str, Any], dict[str, Any]],
    audit_key: str | None = None,
    announce: str,
) -> MarketEvent:
    """A market's change of state, told in its transaction: the outbox event (`event_write`),
    the audit record about the market (`audit`: action, reason, before, after; keyed by
    `audit_key`, else the request's key, else the event's natural key) and, after commit,
    telemetry (`transition_announce(market, announce)`)."""
    event = event_write(
        market,
        type_,
        payload,
        request_key=request_key,
        natural_key=natural_key,
        actor_id=actor_id,
    )
    action, reason, before, after = audit
    audit_record(
        action=action,
        target_type="market",
        target_id=market.pk,
        guild_id=market.guild_id,
        actor_id=actor_id,
        actor_user_id=actor_user_id,
        reason=reason,
        idempotency_key=(request_key or natural_key) if audit_key is None else audit_key,
        before=before,
        after=after,
    )
    transition_announce(market, announce)
    return event


def format_shares(micro_shares: int) -> str:
    """Micro-shares as shares with up to 6 decimals, for messages: 1500000 → "1.5"."""
    whole, frac = divmod(micro_shares, SHARE_SCALE)
    return f"{whole:,}" + (f".{frac:06d}".rstrip("0") if frac else "")
