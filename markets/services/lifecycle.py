"""A market's life before settlement (DOMAIN §6): closing trading and the resolvers' votes."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from points.errors import NotAllowed, validate_reason
from points.rules import Action, Actor, require
from points.services import audit_record, guild_settings_get_or_create
from points.usecase import Call, stop_if_replayed, use_case

from ..errors import (
    MSG_ALREADY_SETTLED,
    MSG_CONFLICT_VOTE,
    MSG_NOT_CLOSED_FOR_VOTE,
    MarketStateError,
)
from ..holdings import holdings_get
from ..models import Market, MarketEvent, Outcome, ResolutionVote
from .base import (
    conflicted,
    ensure_not_settled,
    event_by_request_key,
    event_write,
    known_at_clean,
    known_at_matches,
    market_changed,
    market_lock,
    outcome_at,
    outcomes_locked,
)
from .proposal import ensure_closed_for_decision, propose
from .settlement import market_of_event


def close(
    market: Market,
    *,
    now: dt.datetime,
    actor_id: int | None,
    actor_user_id: int | None,
    reason: str,
    request_key: str | None,
    automatic: bool,
) -> MarketEvent:
    """Close trading and release the market's limit orders (DOMAIN §4.7). Caller holds a row
    lock on `market` and checked it is open."""
    released = holdings_get().orders_release(market, now)
    Market.objects.filter(pk=market.pk, status=Market.Status.OPEN).update(
        status=Market.Status.CLOSED, closed_at=now, closed_by_id=actor_id
    )
    market.status, market.closed_at, market.closed_by_id = Market.Status.CLOSED, now, actor_id
    event = market_changed(
        market,
        MarketEvent.Type.CLOSED,
        {
            "automatic": automatic,
            "reason": reason,
            "creator_id": str(market.creator_id),
            "closed_at": now.isoformat(),
            **({"orders_released": released} if released else {}),
        },
        natural_key=f"close:{market.pk}",
        request_key=request_key,
        actor_id=actor_id,
        actor_user_id=actor_user_id,
        audit=(
            "market_close",
            reason or ("closing time reached" if automatic else ""),
            {"status": "open"},
            {"status": "closed"},
        ),
        audit_key=request_key or "",
        announce="closed",
    )
    return event


def _same_close(event: MarketEvent, call: Call) -> bool:
    return (
        event.market_id == call["market_id"]
        and event.type == MarketEvent.Type.CLOSED
        and event.actor_id == call["actor"].user_id
    )


@use_case(lookup=event_by_request_key, matches=_same_close, result=market_of_event)
def market_close(
    *,
    market_id: int,
    actor: Actor,
    reason: str = "",
    idempotency_key: str,
) -> MarketEvent:
    """Close trading early (DOMAIN §6): the creator or a moderator (`points.rules`). Emits
    `market_closed`. Returns the market."""
    reason = validate_reason(reason, required=False)
    market = market_lock(market_id)
    stop_if_replayed(event_by_request_key, idempotency_key)
    require(Action.CLOSE, actor, guild_settings_get_or_create(guild_id=market.guild_id), market)
    ensure_not_settled(market)
    if market.status != Market.Status.OPEN:
        raise MarketStateError(
            MSG_ALREADY_SETTLED.format(market_id=market.pk, status=market.status)
        )
    return close(
        market,
        now=timezone.now(),
        actor_id=actor.user_id,
        actor_user_id=actor.admin_user_id,
        reason=reason,
        request_key=idempotency_key,
        automatic=False,
    )


def _same_vote(event: MarketEvent, call: Call) -> bool:
    return (
        event.market_id == call["market_id"]
        and event.type == MarketEvent.Type.VOTE
        and event.payload.get("voter_id") == str(call["actor"].user_id)
        and event.payload.get("outcome") == call["outcome"]
        and known_at_matches(event, call["known_at"])
    )


def _vote_of(event: MarketEvent, call: Call) -> ResolutionVote:
    """The voter's vote now; if an undone proposal cleared it (docs/domain.md §6.1), the vote as
    the replayed request cast it (not saved: there is no such row any more)."""
    voter_id = call["actor"].user_id
    vote = ResolutionVote.objects.filter(market_id=call["market_id"], voter_id=voter_id).first()
    if vote is not None:
        return vote
    outcome = Outcome.objects.get(market_id=event.market_id, position=event.payload["outcome"])
    return ResolutionVote(market_id=event.market_id, voter_id=voter_id, outcome=outcome)


@use_case(lookup=event_by_request_key, matches=_same_vote, result=_vote_of)
def resolution_vote_cast(
    *,
    market_id: int,
    actor: Actor,
    outcome: int,
    idempotency_key: str,
    now: dt.datetime | None = None,
    known_at: dt.datetime | None = None,
) -> MarketEvent:
    """A resolver votes for the winning outcome of a closed market (DOMAIN §6), in a server that
    resolves by vote; a voter may change their vote until the result is proposed. When
    `min_resolution_votes` votes agree, that outcome is proposed in this same transaction
    (docs/domain.md §6.1) and pays out when its dispute window ends (at once with no window).
    Under the conflict-of-interest rule a resolver holding a position cannot vote at all (a
    counted vote is half a decision), for the same reason as their `force`. Emits `vote_cast`
    (and `resolution_proposed` or `market_resolved`). Returns the voter's `ResolutionVote`.
    `now` starts the dispute window (default: the current time). A voter may say when the
    outcome became known (docs/domain.md §6.2); the proposal takes the latest moment the
    agreeing voters stated (every one of them holds the trades after it late)."""
    market = market_lock(market_id)
    stop_if_replayed(event_by_request_key, idempotency_key)
    gs = guild_settings_get_or_create(guild_id=market.guild_id)
    require(Action.VOTE, actor, gs, market)
    ensure_closed_for_decision(market, MSG_NOT_CLOSED_FOR_VOTE)
    outcomes = outcomes_locked(market)
    chosen = outcome_at(market, outcomes, outcome)
    known_at = known_at_clean(market, known_at, now)
    voter_id = actor.user_id
    assert voter_id is not None  # Action.VOTE is for Discord members
    if conflicted(gs, market, actor):
        raise NotAllowed(MSG_CONFLICT_VOTE.format(market_id=market.pk))
    ResolutionVote.objects.update_or_create(
        market=market, voter_id=voter_id, defaults={"outcome": chosen, "known_at": known_at}
    )
    agreeing = ResolutionVote.objects.filter(market=market, outcome=chosen).count()
    needed = gs.min_resolution_votes
    deciding = agreeing >= needed
    event = event_write(
        market,
        MarketEvent.Type.VOTE,
        {
            "voter_id": str(voter_id),
            "outcome": chosen.position,
            "label": chosen.label,
            "votes": agreeing,
            "needed": needed,
            "known_at": known_at.isoformat() if known_at is not None else None,
        },
        request_key=idempotency_key,
        actor_id=voter_id,
    )
    audit_record(
        action="resolution_vote",
        target_type="market",
        target_id=market.pk,
        guild_id=market.guild_id,
        actor_id=voter_id,
        idempotency_key=idempotency_key,
        after={"outcome": chosen.position, "votes": agreeing, "needed": needed},
    )
    if deciding:
        propose(
            market,
            outcomes,
            chosen,
            gs=gs,
            actor=actor,
            how="vote",
            reason=f"{agreeing} resolvers voted for “{chosen.label}”",
            request_key=None,
            now=now,
            known_at=_latest_known_at(market, chosen),
        )
    return event


def _latest_known_at(market: Market, chosen: Outcome) -> dt.datetime | None:
    stated = ResolutionVote.objects.filter(
        market=market, outcome=chosen, known_at__isnull=False
    ).values_list("known_at", flat=True)
    return max((moment for moment in stated if moment is not None), default=None)
