"""Proposed results and the dispute window (docs/domain.md §6.1).

A result is first *proposed* — by enough agreeing resolver votes, by the creator in a server that
resolves by creator, or by a moderator — and the market waits in `resolving` for
`dispute_window_minutes`: nothing leaves its escrow. Members who traded may dispute it (one
dispute each, with a reason), which holds it for moderators; moderators confirm it, change it or
undo it. Undisputed, the scheduler settles it when the window ends, exactly once. With a window
of 0 a proposal pays at once, unless its proposer holds a position: then it waits for a second
resolver."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from points.errors import NotAllowed, validate_reason
from points.models import GuildSettings
from points.rules import Action, Actor, is_moderator, require
from points.rules.permissions import MSG_DISPUTE
from points.services import audit_record, guild_settings_get_or_create
from points.usecase import Call, stop_if_replayed, use_case

from ..errors import (
    MSG_CONFLICT_CONFIRM_SELF,
    MSG_CONFLICT_PROPOSE,
    MSG_DISPUTE_LATE,
    MSG_DISPUTE_TWICE,
    MSG_NOT_CLOSED_FOR_RESOLVE,
    MSG_NOT_RESOLVING,
    MSG_PROPOSED_ALREADY,
    MarketStateError,
)
from ..holdings import holdings_get
from ..models import Dispute, Market, MarketEvent, Outcome, ResolutionVote
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
from .settlement import market_of_event, resolve


def ensure_closed_for_decision(market: Market, refusal: str = MSG_NOT_CLOSED_FOR_RESOLVE) -> None:
    """A vote, a proposal or a direct resolution needs a closed market with no proposal yet."""
    ensure_not_settled(market)
    if market.status == Market.Status.RESOLVING:
        label = market.proposed_outcome.label if market.proposed_outcome else "?"
        raise MarketStateError(
            MSG_PROPOSED_ALREADY.format(market_id=market.pk, label=label),
            details={"status": market.status},
        )
    if market.status != Market.Status.CLOSED:
        raise MarketStateError(
            refusal.format(market_id=market.pk, status=market.status),
            details={"status": market.status},
        )


def ensure_resolving(market: Market) -> None:
    if market.status != Market.Status.RESOLVING:
        raise MarketStateError(
            MSG_NOT_RESOLVING.format(market_id=market.pk, status=market.status),
            details={"status": market.status},
        )


def propose(
    market: Market,
    outcomes: list[Outcome],
    chosen: Outcome,
    *,
    gs: GuildSettings,
    actor: Actor,
    how: str,
    reason: str,
    request_key: str | None,
    proposer_conflicted: bool = False,
    now: dt.datetime | None = None,
    known_at: dt.datetime | None = None,
) -> MarketEvent:
    """Propose `chosen` for a closed market. Caller holds a row lock on `market` and checked it
    is closed and that `actor` may propose, and checked `known_at` (docs/domain.md §6.2: the
    settlement reverses the trades after it). `how`: "vote", "creator" or "moderator". With no
    dispute window and no conflict the market resolves at once (and that event is returned)."""
    window = gs.dispute_window_minutes
    if window == 0 and not proposer_conflicted:
        return resolve(
            market,
            outcomes,
            chosen,
            actor_id=actor.user_id,
            actor_user_id=actor.admin_user_id,
            reason=reason,
            request_key=request_key,
            known_at=known_at,
        )
    now = now or timezone.now()
    deadline = now + dt.timedelta(minutes=window) if window else None
    round_ = market.proposal_round + 1
    Market.objects.filter(pk=market.pk, status=Market.Status.CLOSED).update(
        status=Market.Status.RESOLVING,
        proposed_outcome=chosen,
        proposed_at=now,
        proposed_by_id=actor.user_id,
        proposal_reason=reason[:500],
        proposal_conflicted=proposer_conflicted,
        dispute_deadline=deadline,
        disputed_at=None,
        proposal_round=round_,
        known_at=known_at,
    )
    market.status, market.proposed_outcome, market.proposal_round = (
        Market.Status.RESOLVING,
        chosen,
        round_,
    )
    market.proposed_at, market.proposed_by_id, market.dispute_deadline = (
        now,
        actor.user_id,
        deadline,
    )
    market.proposal_conflicted, market.disputed_at = proposer_conflicted, None
    market.known_at = known_at
    event = market_changed(
        market,
        MarketEvent.Type.PROPOSED,
        {
            "outcome": chosen.position,
            "label": chosen.label,
            "how": how,
            "proposed_by": str(actor.user_id) if actor.user_id else None,
            "reason": reason,
            "deadline": deadline.isoformat() if deadline else None,
            "window_minutes": window,
            "conflicted": proposer_conflicted,
            "creator_id": str(market.creator_id),
            "known_at": known_at.isoformat() if known_at is not None else None,
            "reversible": _reversible(market, known_at),
        },
        natural_key=f"propose:{market.pk}:{round_}",
        request_key=request_key,
        actor_id=actor.user_id,
        actor_user_id=actor.admin_user_id,
        audit=(
            "market_propose",
            reason,
            {"status": "closed"},
            {
                "status": "resolving",
                "outcome": chosen.position,
                "deadline": deadline.isoformat() if deadline else None,
                "conflicted": proposer_conflicted,
            },
        ),
        announce="proposed",
    )
    return event


def _reversible(market: Market, known_at: dt.datetime | None) -> int:
    """How many trades a settlement with `known_at` would reverse (the proposal says so)."""
    if known_at is None:
        return 0
    return holdings_get().reversal_plan(market, known_at).trades


def _same_proposal(event: MarketEvent, call: Call) -> bool:
    return (
        event.market_id == call["market_id"]
        and event.type in (MarketEvent.Type.PROPOSED, MarketEvent.Type.RESOLVED)
        and event.payload.get("outcome") == call["outcome"]
        and known_at_matches(event, call["known_at"])
    )


@use_case(lookup=event_by_request_key, matches=_same_proposal, result=market_of_event)
def market_propose(
    *,
    market_id: int,
    outcome: int,
    actor: Actor,
    reason: str = "",
    idempotency_key: str,
    now: dt.datetime | None = None,
    known_at: dt.datetime | None = None,
) -> MarketEvent:
    """Propose the result of a closed market (docs/domain.md §6.1), optionally saying when its
    outcome became known (§6.2): the creator, in a server that
    resolves by creator, or a moderator. It pays out when the dispute window ends undisputed (at
    once with no window). A creator who holds a position may still propose, but their proposal
    waits the whole window or a second resolver; anyone else holding one may not. Emits
    `resolution_proposed` (or `market_resolved`). Returns the market. `now` (the clock the
    deadline starts from) is for tests and scripts, as in `market_dispute` and `markets_tick`."""
    reason = validate_reason(reason, required=False)
    market = market_lock(market_id)
    stop_if_replayed(event_by_request_key, idempotency_key)
    gs = guild_settings_get_or_create(guild_id=market.guild_id)
    require(Action.PROPOSE, actor, gs, market)
    ensure_closed_for_decision(market)
    outcomes = outcomes_locked(market)
    chosen = outcome_at(market, outcomes, outcome)
    known_at = known_at_clean(market, known_at, now)
    is_creator = actor.user_id is not None and actor.user_id == market.creator_id
    holds = conflicted(gs, market, actor)
    if holds and not (is_creator and gs.resolution_mode == GuildSettings.ResolutionMode.CREATOR):
        raise NotAllowed(MSG_CONFLICT_PROPOSE.format(market_id=market.pk))
    moderator = is_moderator(gs, actor) or actor.is_admin_user
    how = "creator" if is_creator and not moderator else "moderator"
    return propose(
        market,
        outcomes,
        chosen,
        gs=gs,
        actor=actor,
        how=how,
        reason=reason or (f"Proposed by the creator <@{actor.user_id}>" if is_creator else ""),
        request_key=idempotency_key,
        proposer_conflicted=holds,
        now=now,
        known_at=known_at,
    )


def _same_dispute(event: MarketEvent, call: Call) -> bool:
    return (
        event.market_id == call["market_id"]
        and event.type == MarketEvent.Type.DISPUTED
        and event.actor_id == call["actor"].user_id
    )


def _dispute_of(event: MarketEvent, call: Call) -> Dispute:
    return Dispute.objects.get(
        market_id=call["market_id"],
        user_id=call["actor"].user_id,
        proposal_round=event.payload["round"],
    )


@use_case(lookup=event_by_request_key, matches=_same_dispute, result=_dispute_of)
def market_dispute(
    *,
    market_id: int,
    actor: Actor,
    reason: str,
    idempotency_key: str,
    now: dt.datetime | None = None,
) -> MarketEvent:
    """A member who traded disputes a proposed result, with a reason (docs/domain.md §6.1): one
    dispute per member per proposal. The first dispute holds the market for moderators (the
    scheduler no longer settles it). Emits `resolution_disputed`. Returns the `Dispute`."""
    reason = validate_reason(reason)
    market = market_lock(market_id)
    stop_if_replayed(event_by_request_key, idempotency_key)
    gs = guild_settings_get_or_create(guild_id=market.guild_id)
    require(Action.DISPUTE, actor, gs, market)
    ensure_not_settled(market)
    ensure_resolving(market)
    now = now or timezone.now()
    if market.disputed_at is None and market.dispute_deadline and market.dispute_deadline <= now:
        ended = f"<t:{int(market.dispute_deadline.timestamp())}:R>"
        raise MarketStateError(MSG_DISPUTE_LATE.format(market_id=market.pk, ended=ended))
    if actor.user_id is None or not holdings_get().traded(market, actor.user_id):
        raise NotAllowed(MSG_DISPUTE.format(market=market.pk))
    round_ = market.proposal_round
    if Dispute.objects.filter(market=market, proposal_round=round_, user_id=actor.user_id).exists():
        raise MarketStateError(MSG_DISPUTE_TWICE.format(market_id=market.pk))
    Dispute.objects.create(
        market=market, proposal_round=round_, user_id=actor.user_id, reason=reason
    )
    first = market.disputed_at is None
    if first:
        Market.objects.filter(pk=market.pk).update(disputed_at=now)
        market.disputed_at = now
    count = Dispute.objects.filter(market=market, proposal_round=round_).count()
    proposed = market.proposed_outcome
    event = event_write(
        market,
        MarketEvent.Type.DISPUTED,
        {
            "user_id": str(actor.user_id),
            "reason": reason,
            "disputes": count,
            "first": first,
            "round": round_,
            "outcome": proposed.position if proposed else None,
            "label": proposed.label if proposed else "",
        },
        request_key=idempotency_key,
        actor_id=actor.user_id,
    )
    audit_record(
        action="market_dispute",
        target_type="market",
        target_id=market.pk,
        guild_id=market.guild_id,
        actor_id=actor.user_id,
        reason=reason,
        idempotency_key=idempotency_key,
        after={"disputes": count, "round": round_},
    )
    return event


def _same_confirm(event: MarketEvent, call: Call) -> bool:
    return (
        event.market_id == call["market_id"]
        and event.type == MarketEvent.Type.RESOLVED
        and (call["known_at"] is None or known_at_matches(event, call["known_at"]))
    )


@use_case(lookup=event_by_request_key, matches=_same_confirm, result=market_of_event)
def market_proposal_confirm(
    *,
    market_id: int,
    actor: Actor,
    outcome: int | None = None,
    reason: str,
    idempotency_key: str,
    known_at: dt.datetime | None = None,
) -> MarketEvent:
    """A moderator settles a proposed result now: as proposed (`outcome` None or the same) or
    changed to another outcome (docs/domain.md §6.1), with the proposal's `known_at` or, given
    one, this `known_at` (§6.2). A proposal whose proposer holds a position
    needs a second resolver: its proposer cannot confirm it. Pays out once. Emits
    `market_resolved`. Returns the market."""
    reason = validate_reason(reason)
    market = market_lock(market_id)
    stop_if_replayed(event_by_request_key, idempotency_key)
    gs = guild_settings_get_or_create(guild_id=market.guild_id)
    require(Action.CONFIRM, actor, gs, market)
    ensure_not_settled(market)
    ensure_resolving(market)
    if (
        market.proposal_conflicted
        and actor.user_id is not None
        and actor.user_id == market.proposed_by_id
    ):
        raise NotAllowed(MSG_CONFLICT_CONFIRM_SELF.format(market_id=market.pk))
    if conflicted(gs, market, actor):
        raise NotAllowed(MSG_CONFLICT_PROPOSE.format(market_id=market.pk))
    outcomes = outcomes_locked(market)
    proposed = next(o for o in outcomes if o.pk == market.proposed_outcome_id)
    chosen = proposed if outcome is None else outcome_at(market, outcomes, outcome)
    known_at = market.known_at if known_at is None else known_at_clean(market, known_at)
    changed = chosen.pk != proposed.pk
    verb = f"changed from “{proposed.label}” to" if changed else "confirmed"
    return resolve(
        market,
        outcomes,
        chosen,
        actor_id=actor.user_id,
        actor_user_id=actor.admin_user_id,
        reason=f"A moderator {verb} “{chosen.label}”: {reason}",
        request_key=idempotency_key,
        known_at=known_at,
    )


def _same_undo(event: MarketEvent, call: Call) -> bool:
    return event.market_id == call["market_id"] and event.type == MarketEvent.Type.UNDONE


@use_case(lookup=event_by_request_key, matches=_same_undo, result=market_of_event)
def market_proposal_undo(
    *, market_id: int, actor: Actor, reason: str, idempotency_key: str
) -> MarketEvent:
    """A moderator withdraws a proposed result during its window (docs/domain.md §6.1):
    `resolving → closed`, resolver votes cleared, so the market can be proposed again. Nothing
    was paid, so nothing moves. Emits `proposal_undone`. Returns the market."""
    reason = validate_reason(reason)
    market = market_lock(market_id)
    stop_if_replayed(event_by_request_key, idempotency_key)
    gs = guild_settings_get_or_create(guild_id=market.guild_id)
    require(Action.CONFIRM, actor, gs, market)
    ensure_not_settled(market)
    ensure_resolving(market)
    proposed = market.proposed_outcome
    assert proposed is not None  # the market_proposal_iff_resolving constraint
    round_ = market.proposal_round
    disputes = Dispute.objects.filter(market=market, proposal_round=round_).count()
    Market.objects.filter(pk=market.pk, status=Market.Status.RESOLVING).update(
        status=Market.Status.CLOSED,
        proposed_outcome=None,
        dispute_deadline=None,
        disputed_at=None,
        proposal_conflicted=False,
        known_at=None,
    )
    market.status, market.proposed_outcome, market.dispute_deadline = (
        Market.Status.CLOSED,
        None,
        None,
    )
    ResolutionVote.objects.filter(market=market).delete()
    event = market_changed(
        market,
        MarketEvent.Type.UNDONE,
        {
            "outcome": proposed.position,
            "label": proposed.label,
            "reason": reason,
            "round": round_,
            "disputes": disputes,
            "proposed_by": str(market.proposed_by_id) if market.proposed_by_id else None,
        },
        natural_key=f"undo:{market.pk}:{round_}",
        request_key=idempotency_key,
        actor_id=actor.user_id,
        actor_user_id=actor.admin_user_id,
        audit=(
            "market_proposal_undo",
            reason,
            {"status": "resolving", "outcome": proposed.position},
            {"status": "closed"},
        ),
        announce="undone",
    )
    return event


def proposal_settle_due(market: Market, now: dt.datetime) -> bool:
    """The scheduler's step: settle `market` on its proposal if the window ended undisputed.
    Caller holds a row lock on `market` (re-checked here: another process may have been first)."""
    due = market.dispute_deadline is not None and market.dispute_deadline <= now
    if market.status != Market.Status.RESOLVING or market.disputed_at is not None or not due:
        return False
    outcomes = outcomes_locked(market)
    proposed = next(o for o in outcomes if o.pk == market.proposed_outcome_id)
    minutes = (
        int((market.dispute_deadline - market.proposed_at).total_seconds() // 60)
        if (market.dispute_deadline and market.proposed_at)
        else 0
    )
    resolve(
        market,
        outcomes,
        proposed,
        actor_id=None,
        actor_user_id=None,
        reason=f"Proposed result “{proposed.label}” stood: no dispute within {minutes} minutes",
        request_key=None,
        known_at=market.known_at,
    )
    return True
