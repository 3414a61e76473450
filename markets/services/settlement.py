"""Settling a market (DOMAIN §6): resolving it on an outcome and paying the winners, or
cancelling it and refunding every trader. Who holds what comes from the registered `Holdings`
(`markets.holdings`); the status change, the escrow, the keys and the event are the market's."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from points.errors import NotAllowed, validate_reason
from points.models import Account, Transfer
from points.rules import Action, Actor, require
from points.seasons import season_for_settlement
from points.services import (
    Leg,
    accounts_lock,
    guild_settings_get_or_create,
    transfers_post,
    treasury_get_or_create,
)
from points.usecase import Call, stop_if_replayed, use_case

from ..errors import (
    MSG_ALREADY_SETTLED,
    MSG_CONFLICT_PROPOSE,
    MSG_NOT_CLOSED_FOR_RESOLVE,
    MarketStateError,
)
from ..holdings import Payouts, holdings_get
from ..models import Market, MarketEvent, Outcome
from .base import (
    conflicted,
    ensure_not_settled,
    escrow_get,
    event_by_request_key,
    known_at_clean,
    known_at_matches,
    market_changed,
    market_lock,
    outcome_at,
    outcomes_locked,
)


def market_of_event(event: MarketEvent, call: Call) -> Market:
    """What a lifecycle use case returns: its market as committed."""
    return Market.objects.get(pk=call["market_id"])


def _same_resolve(event: MarketEvent, call: Call) -> bool:
    return (
        event.market_id == call["market_id"]
        and event.type == MarketEvent.Type.RESOLVED
        and event.payload.get("outcome") == call["outcome"]
        and known_at_matches(event, call["known_at"])
    )


@use_case(lookup=event_by_request_key, matches=_same_resolve, result=market_of_event)
def market_resolve(
    *,
    market_id: int,
    outcome: int,
    actor: Actor,
    reason: str,
    idempotency_key: str,
    known_at: dt.datetime | None = None,
) -> MarketEvent:
    """A moderator resolves a closed market directly ("force"), with a reason, overruling votes
    and any proposal in its dispute window (DOMAIN §6, docs/domain.md §6.1). Pays out once,
    after reversing the trades after `known_at` (docs/domain.md §6.2).
    A moderator holding a position may not, where the conflict-of-interest rule is on (the back
    office shows a staff member their own position instead: it cannot know it for certain).
    Emits `market_resolved`. Returns the market."""
    reason = validate_reason(reason)
    market = market_lock(market_id)
    stop_if_replayed(event_by_request_key, idempotency_key)
    gs = guild_settings_get_or_create(guild_id=market.guild_id)
    require(Action.RESOLVE, actor, gs, market)
    ensure_not_settled(market)
    if market.status not in (Market.Status.CLOSED, Market.Status.RESOLVING):
        raise MarketStateError(
            MSG_NOT_CLOSED_FOR_RESOLVE.format(market_id=market.pk, status=market.status)
        )
    if conflicted(gs, market, actor):
        raise NotAllowed(MSG_CONFLICT_PROPOSE.format(market_id=market.pk))
    outcomes = outcomes_locked(market)
    chosen = outcome_at(market, outcomes, outcome)
    return resolve(
        market,
        outcomes,
        chosen,
        actor_id=actor.user_id,
        actor_user_id=actor.admin_user_id,
        reason=reason,
        request_key=idempotency_key,
        known_at=known_at_clean(market, known_at),
    )


def resolve(
    market: Market,
    outcomes: list[Outcome],
    winner: Outcome,
    *,
    actor_id: int | None,
    actor_user_id: int | None,
    reason: str,
    request_key: str | None,
    known_at: dt.datetime | None = None,
) -> MarketEvent:
    """Settle a closed or resolving market on `winner`, first reversing the trades after
    `known_at` (checked by the caller; docs/domain.md §6.2). Caller holds a row lock on `market` and
    checked its status. The conditional status change plus the `resolve:<market>` keys make it
    once-only. amm: each winning position gets floor(shares / SHARE_SCALE); the rest returns to the
    treasury. pari-mutuel: winners split the pot (§5), or everyone is refunded if nobody backed
    the winner."""
    now = timezone.now()
    before = market.status
    proposed_id = market.proposed_outcome_id
    changed = Market.objects.filter(
        pk=market.pk, status__in=[Market.Status.CLOSED, Market.Status.RESOLVING]
    ).update(
        status=Market.Status.RESOLVED,
        winning_outcome=winner,
        proposed_outcome=None,
        dispute_deadline=None,
        settled_at=now,
        season=season_for_settlement(market.guild_id),
        settled_by_id=actor_id,
        settled_by_user_id=actor_user_id,
        settle_reason=reason[:500],
        known_at=known_at,
    )
    if changed != 1:  # pragma: no cover - the caller checked under the lock
        raise MarketStateError(MSG_ALREADY_SETTLED.format(market_id=market.pk, status="settled"))
    market.status, market.known_at = Market.Status.RESOLVED, known_at
    reversal = None
    if known_at is not None:
        reversal = holdings_get().reversal_apply(
            market, outcomes, known_at, actor_id=actor_id, actor_user_id=actor_user_id
        )
    plan = holdings_get().resolve_plan(market, outcomes, winner)
    refunded_all = plan.refunded_all
    total_paid = _pay(
        market,
        plan,
        code=Transfer.Code.PAYOUT if not refunded_all else Transfer.Code.REFUND,
        key_prefix=f"resolve:{market.pk}",
        actor_id=actor_id,
        actor_user_id=actor_user_id,
    )
    winners = sorted(plan.per_user.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    event = market_changed(
        market,
        MarketEvent.Type.RESOLVED,
        {
            "outcome": winner.position,
            "label": winner.label,
            "reason": reason,
            "total_paid": total_paid,
            "refunded_all": refunded_all,
            "winners": [[str(user), amount] for user, amount in winners],
            "paid_count": len(plan.per_user),
            "was_proposed": before == Market.Status.RESOLVING,
            "changed_from": _changed_from(outcomes, proposed_id, winner),
            "disputed": market.disputed_at is not None,
            "known_at": None,
            **(reversal.payload() if reversal is not None else {}),
        },
        natural_key=f"resolve:{market.pk}",
        request_key=request_key,
        actor_id=actor_id,
        actor_user_id=actor_user_id,
        audit=(
            "market_resolve",
            reason,
            {"status": before},
            {
                "status": "resolved",
                "outcome": winner.position,
                "total_paid": total_paid,
                **({"reversed": reversal.trades} if reversal is not None else {}),
            },
        ),
        announce="resolved",
    )
    return event


def _changed_from(outcomes: list[Outcome], proposed_id: int | None, winner: Outcome) -> str | None:
    """The label of a proposal the resolution overruled, if any."""
    if proposed_id is None or proposed_id == winner.pk:
        return None
    return next((o.label for o in outcomes if o.pk == proposed_id), None)


def _pay(
    market: Market,
    plan: Payouts,
    *,
    code: str,
    key_prefix: str,
    actor_id: int | None,
    actor_user_id: int | None,
) -> int:
    """Pay `plan.per_user` from escrow, return the escrow remainder to the treasury, and
    cover any shortfall from the treasury so the escrow ends at 0 (DOMAIN §6). Caller holds a
    row lock on `market`; this locks the escrow, the treasury and the paid wallets in one query.
    Returns the points paid to members."""
    users = sorted(u for u, amount in plan.per_user.items() if amount > 0)
    wallets = dict(
        Account.objects.filter(
            guild_id=market.guild_id, kind=Account.Kind.WALLET, owner_id__in=users
        ).values_list("owner_id", "pk")
    )
    escrow = escrow_get(market)
    treasury = treasury_get_or_create(guild_id=market.guild_id)
    locked = accounts_lock([escrow.pk, treasury.pk, *wallets.values()])
    escrow_row, treasury_row = locked[escrow.pk], locked[treasury.pk]
    total = sum(plan.per_user[u] for u in users)
    legs: list[Leg] = []
    if total > escrow_row.balance:
        legs.append(
            Leg(
                treasury_row,
                escrow_row,
                total - escrow_row.balance,
                code,
                f"{key_prefix}:shortfall",
                f"Market #{market.pk}: treasury covers refunds",
                actor_id,
                actor_user_id,
                market.pk,
            )
        )
    for user in users:
        legs.append(
            Leg(
                escrow_row,
                locked[wallets[user]],
                plan.per_user[user],
                code,
                f"{key_prefix}:{code}:{user}",
                f"Market #{market.pk}: {code}",
                actor_id,
                actor_user_id,
                market.pk,
            )
        )
    remainder = escrow_row.balance - total
    if remainder > 0:
        legs.append(
            Leg(
                escrow_row,
                treasury_row,
                remainder,
                Transfer.Code.LIQUIDITY_RETURN,
                f"{key_prefix}:return",
                f"Market #{market.pk}: escrow remainder",
                actor_id,
                actor_user_id,
                market.pk,
            )
        )
    transfers_post(legs, locked)
    holdings_get().payouts_record(market, plan)
    return total


def cancel(
    market: Market,
    *,
    actor_id: int | None,
    actor_user_id: int | None,
    reason: str,
    request_key: str | None,
    automatic: bool,
    extra: dict[str, object] | None = None,
) -> MarketEvent:
    """Cancel and refund. Caller holds a row lock on `market` and checked it is not settled.
    `extra`: more facts for the event's payload (a dispute that expired)."""
    before = market.status
    now = timezone.now()
    released = 0
    if before == Market.Status.OPEN:
        released = holdings_get().orders_release(market, now)  # DOMAIN §4.7
    Market.objects.filter(pk=market.pk, status=before).update(
        status=Market.Status.CANCELLED,
        settled_at=now,
        season=season_for_settlement(market.guild_id),
        settled_by_id=actor_id,
        settled_by_user_id=actor_user_id,
        settle_reason=reason[:500],
        closed_at=market.closed_at or now,
        proposed_outcome=None,
        dispute_deadline=None,
    )
    market.status = Market.Status.CANCELLED
    plan = holdings_get().refund_plan(market)
    total = _pay(
        market,
        plan,
        code=Transfer.Code.REFUND,
        key_prefix=f"refund:{market.pk}",
        actor_id=actor_id,
        actor_user_id=actor_user_id,
    )
    event = market_changed(
        market,
        MarketEvent.Type.CANCELLED,
        {
            "reason": reason,
            "automatic": automatic,
            "total_refunded": total,
            "refunded_count": len([u for u, a in plan.per_user.items() if a]),
            **({"orders_released": released} if released else {}),
            **(extra or {}),
        },
        natural_key=f"cancel:{market.pk}",
        request_key=request_key,
        actor_id=actor_id,
        actor_user_id=actor_user_id,
        audit=(
            "market_cancel",
            reason,
            {"status": before},
            {"status": "cancelled", "total_refunded": total},
        ),
        announce="cancelled",
    )
    return event


def _same_cancel(event: MarketEvent, call: Call) -> bool:
    return event.market_id == call["market_id"] and event.type == MarketEvent.Type.CANCELLED


@use_case(lookup=event_by_request_key, matches=_same_cancel, result=market_of_event)
def market_cancel(
    *,
    market_id: int,
    actor: Actor,
    reason: str,
    idempotency_key: str,
) -> MarketEvent:
    """Cancel an open, closed or resolving market and refund every trader (DOMAIN §6): a
    moderator. Emits `market_cancelled`. Returns the market."""
    reason = validate_reason(reason)
    market = market_lock(market_id)
    stop_if_replayed(event_by_request_key, idempotency_key)
    require(Action.CANCEL, actor, guild_settings_get_or_create(guild_id=market.guild_id), market)
    ensure_not_settled(market)
    return cancel(
        market,
        actor_id=actor.user_id,
        actor_user_id=actor.admin_user_id,
        reason=reason,
        request_key=idempotency_key,
        automatic=False,
    )
