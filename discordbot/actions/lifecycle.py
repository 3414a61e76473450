"""A market's life from Discord: create, withdraw, close, vote, resolve, confirm, undo, dispute,
cancel."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from markets import selectors as market_selectors
from markets import services as market_services
from markets.errors import (
    MSG_DISPUTE_TWICE,
    MSG_NOT_RESOLVING,
)
from markets.holdings import holdings_get
from markets.models import Dispute, Market, MarketEvent, ResolutionVote
from markets.selectors import MarketSummary
from points import selectors as points_selectors
from points.models import GuildSettings
from points.rules.permissions import MSG_DISPUTE
from points.services import guild_settings_get_or_create

from .. import parsing, render
from ..permissions import Actor
from ..results import ConfirmResult, DisputeResult, UndoResult, VoteResult
from .common import market_in_guild, member_id
from .copies import market_copy_claim

# --- Market lifecycle ------------------------------------------------------------------------


def market_create_for_interaction(
    *,
    guild_id: int,
    actor: Actor,
    question: str,
    outcomes: str | list[str],
    duration: str | int | None,
    category: str | None = None,
    mechanism: str = Market.Mechanism.AMM,
    liquidity: int | None = None,
    description: str | None = None,
    idempotency_key: str,
    channel_id: int | None = None,
) -> MarketSummary:
    """Create a market if the guild lets this member (`creator_role_ids`, DOMAIN §2; only
    moderators choose the liquidity: the service's rules). `channel_id`: where the reply will
    post the market, claimed at once so the announcement does not post it there a second
    time."""
    labels = parsing.outcomes_text(outcomes) if isinstance(outcomes, str) else outcomes
    market = market_services.market_create(
        guild_id=guild_id,
        creator_id=member_id(actor),
        question=question,
        outcomes=labels,
        duration=duration,
        category=category or None,
        mechanism=mechanism,
        liquidity=liquidity,
        description=description or "",
        idempotency_key=idempotency_key,
        actor=actor,
    )
    if channel_id:
        market_copy_claim(market_id=market.pk, channel_id=channel_id)
    return market_selectors.market_get(market_id=market.pk, guild_id=guild_id)


def market_withdraw_for_interaction(
    *, guild_id: int, actor: Actor, market: object, idempotency_key: str
) -> MarketSummary:
    """The creator takes back a market they just created, while nobody has traded (the rule
    is the service's: `markets.services.market_withdraw`)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    market_services.market_withdraw(
        market_id=summary.id, actor_id=member_id(actor), idempotency_key=idempotency_key
    )
    return market_selectors.market_get(market_id=summary.id, guild_id=guild_id)


def market_close_for_interaction(
    *, guild_id: int, actor: Actor, market: object, reason: str = "", idempotency_key: str
) -> MarketSummary:
    """Close trading early: the creator, or a moderator (DOMAIN §6)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    market_services.market_close(
        market_id=summary.id,
        actor=actor,
        reason=reason or "",
        idempotency_key=idempotency_key,
    )
    return market_selectors.market_get(market_id=summary.id, guild_id=guild_id)


def _known_at(value: object, guild_id: int) -> dt.datetime | None:
    """What a member typed for "known at" (docs/domain.md §6.2); a time of day is read in the
    server's time zone (`/settings time_zone`, UTC unless set)."""
    if value is None or str(value).strip() == "":
        return None
    gs = points_selectors.guild_settings_get(guild_id=guild_id)
    zone = (gs.time_zone if gs is not None else "") or "UTC"
    return parsing.known_at_text(value, now=timezone.now(), zone=zone)


def market_vote_for_interaction(
    *,
    guild_id: int,
    actor: Actor,
    market: object,
    outcome: object,
    idempotency_key: str,
    known_at: object = None,
) -> VoteResult:
    """A resolver's vote on the winning outcome; enough agreeing votes propose it (or resolve it,
    with no dispute window). In a server that resolves by creator, the creator's choice is a
    proposal (docs/domain.md §6.1). The rules are the services'."""
    gs = guild_settings_get_or_create(guild_id=guild_id)
    summary = market_in_guild(guild_id=guild_id, market=market)
    position = parsing.outcome_ref(
        outcome, [o.label for o in summary.outcomes], market_id=summary.id
    )
    by_creator = gs.resolution_mode == GuildSettings.ResolutionMode.CREATOR
    moment = _known_at(known_at, guild_id)
    repeated = (
        not by_creator
        and summary.status == Market.Status.CLOSED
        and ResolutionVote.objects.filter(
            market_id=summary.id, voter_id=member_id(actor), outcome__position=position
        ).exists()
    )
    if by_creator:
        market_services.market_propose(
            market_id=summary.id,
            outcome=position,
            actor=actor,
            idempotency_key=idempotency_key,
            known_at=moment,
        )
    elif not repeated:  # the same vote again changes nothing: no second event (issue 13)
        market_services.resolution_vote_cast(
            market_id=summary.id,
            actor=actor,
            outcome=position,
            idempotency_key=idempotency_key,
            known_at=moment,
        )
    after = market_selectors.market_get(market_id=summary.id, guild_id=guild_id)
    votes = sum(
        1 for _, pos, _ in market_selectors.votes_get(market_id=summary.id) if pos == position
    )
    return VoteResult(
        market=after,
        outcome=position,
        label=after.outcomes[position].label,
        votes=votes,
        needed=gs.min_resolution_votes,
        repeated=repeated,
        how=render.how_text(gs, creator_id=summary.creator_id),
        by_creator=by_creator,
    )


def resolution_how_for_market(*, guild_id: int, market_id: int) -> str:
    """Who resolves `market_id` and how, in this guild's words (`render.how_text`)."""
    gs = guild_settings_get_or_create(guild_id=guild_id)
    creator_id = Market.objects.values_list("creator_id", flat=True).get(pk=market_id)
    return render.how_text(gs, creator_id=creator_id)


def market_resolve_for_interaction(
    *,
    guild_id: int,
    actor: Actor,
    market: object,
    outcome: object,
    reason: str,
    idempotency_key: str,
    known_at: object = None,
) -> MarketSummary:
    """A member with Manage Server resolves a closed or resolving market directly ("force"),
    with a reason, overruling votes and any proposal (the service's rules)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    position = parsing.outcome_ref(
        outcome, [o.label for o in summary.outcomes], market_id=summary.id
    )
    market_services.market_resolve(
        market_id=summary.id,
        outcome=position,
        actor=actor,
        reason=reason,
        idempotency_key=idempotency_key,
        known_at=_known_at(known_at, guild_id),
    )
    return market_selectors.market_get(market_id=summary.id, guild_id=guild_id)


def market_proposal_confirm_for_interaction(
    *,
    guild_id: int,
    actor: Actor,
    market: object,
    outcome: object | None,
    reason: str,
    idempotency_key: str,
    known_at: object = None,
) -> ConfirmResult:
    """`/market confirm`: a moderator pays out a proposed result now, as proposed or changed to
    `outcome` (docs/domain.md §6.1; who may and when: the service `market_proposal_confirm`)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    position = (
        None
        if outcome is None or str(outcome).strip() == ""
        else parsing.outcome_ref(outcome, [o.label for o in summary.outcomes], market_id=summary.id)
    )
    before = summary.proposal
    market_services.market_proposal_confirm(
        market_id=summary.id,
        actor=actor,
        outcome=position,
        reason=reason,
        idempotency_key=idempotency_key,
        known_at=_known_at(known_at, guild_id),
    )
    after = market_selectors.market_get(market_id=summary.id, guild_id=guild_id)
    changed = (
        before.label
        if before is not None and position is not None and position != before.position
        else None
    )
    return ConfirmResult(market=after, changed_from=changed)


def market_proposal_undo_for_interaction(
    *, guild_id: int, actor: Actor, market: object, reason: str, idempotency_key: str
) -> UndoResult:
    """`/market undo`: a moderator withdraws a proposed result; the market is closed again and
    can be proposed anew (`markets.services.market_proposal_undo`)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    market_services.market_proposal_undo(
        market_id=summary.id, actor=actor, reason=reason, idempotency_key=idempotency_key
    )
    label = summary.proposal.label if summary.proposal else ""
    undone = (
        MarketEvent.objects.filter(market_id=summary.id, type=MarketEvent.Type.UNDONE)
        .order_by("-id")
        .values_list("payload", flat=True)
        .first()
    )
    if undone:  # also when this interaction is a replay (the market is closed already)
        label = undone.get("label", label)
    return UndoResult(
        market=market_selectors.market_get(market_id=summary.id, guild_id=guild_id),
        label=label,
        how=resolution_how_for_market(guild_id=guild_id, market_id=summary.id),
    )


def market_dispute_precheck(*, guild_id: int, market: object, user_id: int) -> str | None:
    """Before the Dispute button opens its form: the refusal the service would give this member
    (not resolving, never traded, already disputed), so nobody writes a reason for nothing.
    None: open the form (the service decides on submission)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    if summary.proposal is None:
        return MSG_NOT_RESOLVING.format(market_id=summary.id, status=summary.status)
    row = Market.objects.get(pk=summary.id)
    if not holdings_get().traded(row, user_id):
        return MSG_DISPUTE.format(market=summary.id)
    if Dispute.objects.filter(
        market_id=summary.id, proposal_round=summary.proposal.round, user_id=user_id
    ).exists():
        return MSG_DISPUTE_TWICE.format(market_id=summary.id)
    return None


def market_dispute_for_interaction(
    *, guild_id: int, actor: Actor, market: object, reason: str, idempotency_key: str
) -> DisputeResult:
    """A trader disputes a proposed result with a reason (`markets.services.market_dispute`:
    one per member per proposal; the first holds the market for moderators)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    dispute = market_services.market_dispute(
        market_id=summary.id, actor=actor, reason=reason, idempotency_key=idempotency_key
    )
    after = market_selectors.market_get(market_id=summary.id, guild_id=guild_id)
    disputes = Dispute.objects.filter(
        market_id=summary.id, proposal_round=dispute.proposal_round
    ).count()
    return DisputeResult(market=after, disputes=disputes)


def market_cancel_for_interaction(
    *, guild_id: int, actor: Actor, market: object, reason: str, idempotency_key: str
) -> MarketSummary:
    """Cancel and refund (DOMAIN §6): moderators only (the service's rule)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    market_services.market_cancel(
        market_id=summary.id,
        actor=actor,
        reason=reason,
        idempotency_key=idempotency_key,
    )
    return market_selectors.market_get(market_id=summary.id, guild_id=guild_id)
