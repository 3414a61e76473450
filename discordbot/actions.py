"""What each Discord interaction does, as one synchronous function the cogs await through
`database_sync_to_async` (STYLE §1, §8). A use case serving an interaction is named
`<core service>_for_interaction`: it takes what Discord told us (guild, member, typed text,
interaction key) where the core service of the same stem takes validated ids, so the two are never
confused in an import.

Every function here keeps guilds apart (a market number typed in another server is "not found",
DOMAIN §2), applies the guild's permission rules to the member Discord described, and then calls
the one ledger or market service that does the work, with the interaction's idempotency key
(`discord:<interaction id>`). The money rules stay in `points` and `markets`; this module only
adds what only the Discord interface knows: who is asking and what they typed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from betting import services as betting_services
from betting.models import Trade
from betting.services import TradeRequest
from core.errors import DomainError
from markets import selectors as market_selectors
from markets import services as market_services
from markets.models import Market, MarketEvent
from markets.selectors import MarketSummary
from points import selectors as points_selectors
from points import services as points_services
from points.errors import InvalidInput, NotAllowed, validate_key, validate_snowflake
from points.models import GuildSettings, Transfer
from points.services import audit_record, guild_settings_get_or_create, wallet_get_or_create

from . import parsing
from .models import MemberPreference, NotificationCursor, NotificationDelivery
from .permissions import (
    MSG_FORCE,
    Actor,
    Policy,
    is_moderator,
    require_admin,
    require_creator,
    require_moderator,
    require_resolver,
)

MSG_LIQUIDITY_MODERATOR = (
    "Only moderators can choose a market's liquidity; leave it empty to use this server's "
    "default of {default:,} points."
)
MSG_SETTING_RANGE = "{name} must be a whole number from {low:,} to {high:,}."
MSG_SETTING_UNKNOWN = "There is no setting called “{name}”."

# The ranges GuildSettings' check constraint allows, with an upper bound that keeps amounts
# representable (points.errors.MAX_AMOUNT).
SETTING_RANGES: dict[str, tuple[int, int]] = {
    "starting_balance": (0, 10**12),
    "daily_bonus": (0, 10**12),
    "max_bet": (1, 10**15),
    "default_liquidity": (1, 1_000_000_000),
    "fee_bps": (0, 5000),
    "min_resolution_votes": (1, 25),
    "auto_refund_hours": (1, 24 * 365),
    "requests_per_minute": (1, 100_000),
}


def market_in_guild(*, guild_id: int, market: object) -> MarketSummary:
    """The market a member typed or picked, if it belongs to this guild."""
    return market_selectors.market_get(market_id=parsing.market_ref(market), guild_id=guild_id)


def policy_get(*, guild_id: int) -> Policy:
    return Policy.from_settings(points_selectors.guild_settings_get(guild_id=guild_id))


# --- Trading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TradeResult:
    market: MarketSummary
    """The market as it was before the trade (its id, question and outcomes)."""
    kind: str
    outcome: int
    label: str
    amount: int
    """Points paid (buy, stake) or returned before the fee (sell)."""
    fee: int
    shares: int
    """Micro-shares received (buy) or burned (sell)."""
    balance: int | None
    probability: float
    """The outcome's probability right after the trade (display)."""
    left_in_pool: int = 0
    """Sales: micro-shares sold beyond what the points cost, kept by the market (DOMAIN §4.4)."""


@dataclass(frozen=True)
class PreparedTrade:
    """A member's trade, checked against their guild and parsed: ready for `trades_apply`."""

    summary: MarketSummary
    request: TradeRequest


def trade_prepare_for_interaction(
    *,
    guild_id: int,
    user_id: int,
    market: object,
    outcome: object,
    kind: str,
    amount: int | None = None,
    shares: object = None,
    idempotency_key: str,
) -> PreparedTrade:
    """The market of this guild a member typed, the outcome, and what they asked for ("all" or a
    number of shares with up to 6 decimals for a sale), as one `TradeRequest`."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    ask = TradeAsk(guild_id, user_id, outcome, kind, idempotency_key, amount, shares)
    request = _trade_request(summary, ask)
    return PreparedTrade(summary=summary, request=request)


def bet_place_for_interaction(
    *,
    guild_id: int,
    user_id: int,
    market: object,
    outcome: object,
    amount: int,
    idempotency_key: str,
) -> TradeResult:
    """Buy (amm) or stake on (pool) an outcome of a market of this guild."""
    prepared = trade_prepare_for_interaction(
        guild_id=guild_id,
        user_id=user_id,
        market=market,
        outcome=outcome,
        kind="buy",
        amount=amount,
        idempotency_key=idempotency_key,
    )
    return _one_trade(guild_id, user_id, prepared)


def shares_sell_for_interaction(
    *,
    guild_id: int,
    user_id: int,
    market: object,
    outcome: object,
    shares: object,
    idempotency_key: str,
) -> TradeResult:
    """Sell shares ("all" or a number with up to 6 decimals) of an outcome back to the market."""
    prepared = trade_prepare_for_interaction(
        guild_id=guild_id,
        user_id=user_id,
        market=market,
        outcome=outcome,
        kind="sell",
        shares=shares,
        idempotency_key=idempotency_key,
    )
    return _one_trade(guild_id, user_id, prepared)


def _one_trade(guild_id: int, user_id: int, prepared: PreparedTrade) -> TradeResult:
    (result,) = betting_services.trades_apply(
        market_id=prepared.summary.id, requests=[prepared.request]
    )
    if isinstance(result, DomainError):
        raise result
    return trade_result_for_interaction(
        guild_id=guild_id, user_id=user_id, summary=prepared.summary, trade=result
    )


@dataclass(frozen=True)
class TradeAsk:
    """What a member asked for in one interaction, before anything was read: the bot queues it
    by market and `trades_for_interactions` serves a whole queue with one market read."""

    guild_id: int
    user_id: int
    outcome: object
    kind: str
    idempotency_key: str
    amount: int | None = None
    shares: object = None


def trades_for_interactions(
    *, market_id: int, asks: Sequence[TradeAsk]
) -> list[TradeResult | DomainError]:
    """Serve a batch of members' trades on one market (the bot's group commit, issue 16): the
    market is read once per guild asking (a market of another guild is "not found", DOMAIN
    §2), each ask is parsed as `trade_prepare_for_interaction` would, and the valid ones go to
    `trades_apply` together. Returns each ask's reply facts or its refusal, in order."""
    summaries: dict[int, MarketSummary | DomainError] = {}
    answers: list[TradeResult | DomainError | None] = [None] * len(asks)
    requests: list[TradeRequest] = []
    placed: list[int] = []
    for index, ask in enumerate(asks):
        if ask.guild_id not in summaries:
            try:
                summaries[ask.guild_id] = market_selectors.market_get(
                    market_id=market_id, guild_id=ask.guild_id
                )
            except DomainError as error:
                summaries[ask.guild_id] = error
        summary = summaries[ask.guild_id]
        if isinstance(summary, DomainError):
            answers[index] = summary
            continue
        try:
            request = _trade_request(summary, ask)
        except DomainError as error:
            answers[index] = error
            continue
        requests.append(request)
        placed.append(index)
    results = betting_services.trades_apply(market_id=market_id, requests=requests)
    for index, result in zip(placed, results, strict=True):
        ask = asks[index]
        summary = summaries[ask.guild_id]
        assert not isinstance(summary, DomainError)
        answers[index] = (
            result
            if isinstance(result, DomainError)
            else trade_result_for_interaction(
                guild_id=ask.guild_id, user_id=ask.user_id, summary=summary, trade=result
            )
        )
    return [a for a in answers if a is not None]


def _trade_request(summary: MarketSummary, ask: TradeAsk) -> TradeRequest:
    position = parsing.outcome_ref(
        ask.outcome, [o.label for o in summary.outcomes], market_id=summary.id
    )
    selling = ask.kind == "sell"
    return TradeRequest(
        kind="sell" if selling else "buy",
        user_id=ask.user_id,
        outcome=position,
        idempotency_key=ask.idempotency_key,
        amount=None if selling else ask.amount,
        shares=parsing.shares(ask.shares) if selling else None,
    )


def trade_result_for_interaction(
    *, guild_id: int, user_id: int, summary: MarketSummary, trade: Trade
) -> TradeResult:
    """The reply's facts, from the trade itself (its price after the trade, the member's balance
    right after it when the batch recorded it, else one query)."""
    balance = getattr(trade, "balance_after", None)
    if balance is None:
        balance = points_selectors.balance_get(guild_id=guild_id, user_id=user_id)
    return TradeResult(
        market=summary,
        kind=trade.kind,
        outcome=trade.outcome.position,
        label=trade.outcome.label,
        amount=trade.amount,
        fee=trade.fee,
        shares=trade.shares,
        balance=balance,
        probability=trade.price_after_ppm / 1_000_000,
        left_in_pool=betting_services.sale_left_in_pool(trade),
    )


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
    idempotency_key: str,
) -> MarketSummary:
    """Create a market if the guild lets this member (`creator_role_ids`, DOMAIN §2); only
    moderators choose the liquidity, since the treasury provides it."""
    gs = guild_settings_get_or_create(guild_id=guild_id)
    policy = Policy.from_settings(gs)
    require_creator(policy, actor)
    if liquidity is not None and not is_moderator(policy, actor):
        raise NotAllowed(MSG_LIQUIDITY_MODERATOR.format(default=gs.default_liquidity))
    labels = parsing.outcomes_text(outcomes) if isinstance(outcomes, str) else outcomes
    market = market_services.market_create(
        guild_id=guild_id,
        creator_id=actor.user_id,
        question=question,
        outcomes=labels,
        duration=duration,
        category=category or None,
        mechanism=mechanism,
        liquidity=liquidity,
        idempotency_key=idempotency_key,
    )
    return market_selectors.market_get(market_id=market.pk, guild_id=guild_id)


def market_message_set_for_interaction(*, market_id: int, channel_id: int, message_id: int) -> None:
    market_services.market_message_set(
        market_id=market_id, channel_id=channel_id, message_id=message_id
    )


def market_close_for_interaction(
    *, guild_id: int, actor: Actor, market: object, reason: str = "", idempotency_key: str
) -> MarketSummary:
    """Close trading early: the creator, or a moderator (DOMAIN §6)."""
    summary = market_in_guild(guild_id=guild_id, market=market)
    moderator = is_moderator(policy_get(guild_id=guild_id), actor)
    market_services.market_close(
        market_id=summary.id,
        actor_id=actor.user_id,
        moderator=moderator,
        reason=reason or "",
        idempotency_key=idempotency_key,
    )
    return market_selectors.market_get(market_id=summary.id, guild_id=guild_id)


@dataclass(frozen=True)
class VoteResult:
    market: MarketSummary
    outcome: int
    label: str
    votes: int
    needed: int

    @property
    def resolved(self) -> bool:
        return self.market.status == Market.Status.RESOLVED


def market_vote_for_interaction(
    *, guild_id: int, actor: Actor, market: object, outcome: object, idempotency_key: str
) -> VoteResult:
    """A resolver's vote on the winning outcome; enough agreeing votes resolve it (DOMAIN §6)."""
    gs = guild_settings_get_or_create(guild_id=guild_id)
    require_resolver(Policy.from_settings(gs), actor)
    summary = market_in_guild(guild_id=guild_id, market=market)
    position = parsing.outcome_ref(
        outcome, [o.label for o in summary.outcomes], market_id=summary.id
    )
    market_services.resolution_vote_cast(
        market_id=summary.id,
        voter_id=actor.user_id,
        outcome=position,
        idempotency_key=idempotency_key,
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
    )


def market_resolve_for_interaction(
    *,
    guild_id: int,
    actor: Actor,
    market: object,
    outcome: object,
    reason: str,
    idempotency_key: str,
) -> MarketSummary:
    """A member with Manage Server resolves a closed market directly, with a reason."""
    if not actor.manage_guild:
        raise NotAllowed(MSG_FORCE)
    summary = market_in_guild(guild_id=guild_id, market=market)
    position = parsing.outcome_ref(
        outcome, [o.label for o in summary.outcomes], market_id=summary.id
    )
    market_services.market_resolve(
        market_id=summary.id,
        outcome=position,
        actor_id=actor.user_id,
        reason=reason,
        idempotency_key=idempotency_key,
    )
    return market_selectors.market_get(market_id=summary.id, guild_id=guild_id)


def market_cancel_for_interaction(
    *, guild_id: int, actor: Actor, market: object, reason: str, idempotency_key: str
) -> MarketSummary:
    """Cancel and refund (DOMAIN §6): moderators only."""
    require_moderator(policy_get(guild_id=guild_id), actor)
    summary = market_in_guild(guild_id=guild_id, market=market)
    market_services.market_cancel(
        market_id=summary.id,
        actor_id=actor.user_id,
        reason=reason,
        idempotency_key=idempotency_key,
    )
    return market_selectors.market_get(market_id=summary.id, guild_id=guild_id)


# --- Members ---------------------------------------------------------------------------------


def balance_ensure_for_interaction(*, guild_id: int, user_id: int) -> int:
    """The member's balance; a first-time member receives the starting balance (DOMAIN §2)."""
    return wallet_get_or_create(guild_id=guild_id, user_id=user_id).balance


@dataclass(frozen=True)
class DailyClaim:
    amount: int
    balance: int
    next_at: dt.datetime


def daily_claim_for_interaction(*, guild_id: int, user_id: int) -> DailyClaim:
    """Claim the daily bonus; its key is `daily:<guild>:<user>:<date>` (DOMAIN §3), stronger than
    the interaction's, so two claims the same day from two interactions still pay once."""
    now = timezone.now()
    transfer = points_services.daily_claim(guild_id=guild_id, user_id=user_id, now=now)
    balance = points_selectors.balance_get(guild_id=guild_id, user_id=user_id) or 0
    return DailyClaim(transfer.amount, balance, points_services.next_daily_at(now))


def points_tip_for_interaction(
    *, guild_id: int, from_user_id: int, to_user_id: int, amount: int, idempotency_key: str
) -> Transfer:
    return points_services.points_tip(
        guild_id=guild_id,
        from_user_id=from_user_id,
        to_user_id=to_user_id,
        amount=amount,
        idempotency_key=idempotency_key,
    )


def notification_preference_set_for_interaction(
    *, guild_id: int, user_id: int, enabled: bool
) -> bool:
    """Turn the member's notification DMs on or off in this guild (idempotent)."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(user_id, what="user_id")
    MemberPreference.objects.update_or_create(
        guild_id=guild_id, user_id=user_id, defaults={"dm_notifications": bool(enabled)}
    )
    return bool(enabled)


# --- Guild settings (/settings) --------------------------------------------------------------


def guild_settings_update_for_interaction(
    *,
    guild_id: int,
    actor: Actor,
    idempotency_key: str,
    values: dict[str, int] | None = None,
    announce_channel_id: int | bool | None = False,
    role_kind: str | None = None,
    role_action: str | None = None,
    role_id: int | None = None,
) -> GuildSettings:
    """Change this guild's settings (members with Manage Server). `values` sets numeric
    defaults within `SETTING_RANGES`; `announce_channel_id` None clears the channel (False
    leaves it); roles are added to, removed from or cleared in `creator`/`resolver` lists.
    Audited with who did it."""
    require_admin(actor)
    validate_key(idempotency_key)
    values = values or {}
    for name, value in values.items():
        if name not in SETTING_RANGES:
            raise InvalidInput(MSG_SETTING_UNKNOWN.format(name=name))
        low, high = SETTING_RANGES[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidInput(
                MSG_SETTING_RANGE.format(
                    name=name.replace("_", " ").capitalize(), low=low, high=high
                )
            )
    if role_kind not in (None, "creator", "resolver") or role_action not in (
        None,
        "add",
        "remove",
        "clear",
    ):
        raise InvalidInput("Roles are “creator” or “resolver”, changed with add, remove or clear.")
    if role_action in ("add", "remove") and role_id is None:
        raise InvalidInput("Pick the role to add or remove.")
    guild_settings_get_or_create(guild_id=guild_id)
    with transaction.atomic(durable=True):
        gs = GuildSettings.objects.select_for_update().get(guild_id=guild_id)
        before = _settings_snapshot(gs)
        for name, value in values.items():
            setattr(gs, name, value)
        if announce_channel_id is not False:
            gs.announce_channel_id = announce_channel_id
        if role_kind and role_action:
            field = f"{role_kind}_role_ids"
            current = [int(r) for r in getattr(gs, field) or []]
            if role_action == "clear":
                current = []
            elif role_action == "add" and role_id not in current:
                current.append(int(role_id))
            elif role_action == "remove":
                current = [r for r in current if r != role_id]
            setattr(gs, field, current)
        gs.save()
        after = _settings_snapshot(gs)
        if after != before:
            audit_record(
                action="guild_settings_update",
                target_type="guild",
                target_id=guild_id,
                guild_id=guild_id,
                actor_id=actor.user_id,
                idempotency_key=idempotency_key,
                before=before,
                after=after,
            )
    return gs


def _settings_snapshot(gs: GuildSettings) -> dict:
    return {
        **{name: getattr(gs, name) for name in SETTING_RANGES},
        "announce_channel_id": str(gs.announce_channel_id) if gs.announce_channel_id else None,
        "creator_role_ids": [str(r) for r in gs.creator_role_ids or []],
        "resolver_role_ids": [str(r) for r in gs.resolver_role_ids or []],
    }


# --- Notifier bookkeeping --------------------------------------------------------------------


def notification_cursor_advance(*, name: str, event_id: int) -> int:
    """Move the cursor forward to `event_id` (never backward). Returns the new position."""
    NotificationCursor.objects.get_or_create(name=name)
    NotificationCursor.objects.filter(name=name, last_event_id__lt=event_id).update(
        last_event_id=event_id
    )
    return NotificationCursor.objects.values_list("last_event_id", flat=True).get(name=name)


def notification_cursor_start(*, name: str, after: dt.datetime) -> int:
    """The cursor of notifier `name`. A notifier running for the first time starts at the first
    event created after `after` (old news is not worth a notification)."""
    row = NotificationCursor.objects.filter(name=name).first()
    if row is not None:
        return row.last_event_id
    last_old = (
        MarketEvent.objects.filter(created_at__lt=after)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    ) or 0
    row, _ = NotificationCursor.objects.get_or_create(
        name=name, defaults={"last_event_id": last_old}
    )
    return row.last_event_id


def notification_delivery_record(
    *, event_id: int, target: str, status: str, detail: str = ""
) -> bool:
    """Remember one delivery; False if it was already recorded (by an earlier run)."""
    try:
        with transaction.atomic():
            NotificationDelivery.objects.create(
                event_id=event_id, target=target[:60], status=status, detail=detail[:200]
            )
    except IntegrityError:
        return False
    return True
