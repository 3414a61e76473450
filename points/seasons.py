"""Seasons (docs/domain.md §10): a guild's setting, the season calendar, the lock that places
every settlement in exactly one season, the balance snapshots and the optional reset.

The ledger side only: `points` knows wallets and balances, not markets. The season tables
(profit, calibration) and the close that the market clock drives live in `betting.seasons`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .errors import InvalidInput, NotFound, validate_key, validate_reason, validate_snowflake
from .ledger import Leg, accounts_lock, post_many, starting_balance_of, treasury_get_or_create
from .models import Account, AuditEvent, GuildSettings, Season
from .rules import Action, Actor, require
from .services.accounts import audit_record, guild_settings_get_or_create
from .usecase import use_case

Length = GuildSettings.SeasonLength
MAX_CUSTOM_ENDS = 24
MIN_SEASON = dt.timedelta(days=1)
MSG_LENGTH = "Season length is “off”, “month”, “quarter” or “custom”."
MSG_ENDS_NEEDED = (
    "Custom seasons need their end dates: 1 to {n} dates like 2027-03-31, in order, each at "
    "least a day after the one before and after today."
)
MSG_ENDS_BAD = "“{text}” is not a date: write it as 2027-03-31 (year-month-day, UTC)."
MSG_ENDS_ORDER = (
    "Each season must end at least a day after the previous end and after today: {date} does not."
)
MSG_ENDS_ONLY_CUSTOM = "End dates are only for custom seasons; leave them out for {length}."
MSG_NO_SEASON = "There is no such season."
MSG_REPOST_RUNNING = "Season {number} is still running: its final table is posted when it ends."
MSG_REPOST_PENDING = (
    "Season {number}'s final table is not posted yet: the bot posts it within a minute or two "
    "of the close. Ask again once it says it was posted or why it was not."
)
NOT_POSTED = "not posted: "
"""How `Season.post_detail` starts when the table did not go out (the back office filters it)."""
CLAIM_SECONDS = 60
"""How long a claimed post of a final table belongs to the process that claimed it. Shorter than
the few minutes Discord remembers a message's enforced nonce, so a process taking over a claim
whose post went out sends the same nonce while Discord still answers it with that post."""


def month_end(start: dt.datetime, months: int) -> dt.datetime:
    """Midnight UTC at the start of the month `months` after `start`'s month (quarter: aligned
    to January, April, July, October)."""
    index = start.year * 12 + start.month - 1
    if months == 3:
        index -= index % 3
    index += months
    return dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC)


def parse_ends(raw: str | Sequence[str], now: dt.datetime) -> list[str]:
    """Custom end dates from "2027-03-31, 2027-06-30" (or a list): each a date at midnight UTC
    ending that day, strictly increasing, at least a day apart and after `now`."""
    parts = [p.strip() for p in (raw.replace(";", ",").split(",") if isinstance(raw, str) else raw)]
    parts = [p for p in parts if p]
    if not 1 <= len(parts) <= MAX_CUSTOM_ENDS:
        raise InvalidInput(MSG_ENDS_NEEDED.format(n=MAX_CUSTOM_ENDS))
    ends: list[dt.datetime] = []
    for text in parts:
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise InvalidInput(MSG_ENDS_BAD.format(text=text[:40])) from None
        # A season "ends on 31 March": it runs to the end of that day, UTC.
        end = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
        if end - (ends[-1] if ends else now) < MIN_SEASON:
            raise InvalidInput(MSG_ENDS_ORDER.format(date=text))
        ends.append(end)
    return [e.isoformat() for e in ends]


def next_end(gs: GuildSettings, start: dt.datetime) -> dt.datetime | None:
    """When a season starting at `start` ends under the guild's setting; None: no season."""
    if gs.season_length == Length.MONTH:
        return month_end(start, 1)
    if gs.season_length == Length.QUARTER:
        return month_end(start, 3)
    if gs.season_length == Length.CUSTOM:
        for text in gs.season_ends or []:
            end = dt.datetime.fromisoformat(text)
            if end - start >= MIN_SEASON:
                return end
    return None


def wallet_balances(guild_id: int) -> dict[str, int]:
    """Every wallet's balance now, by member id (1 query: one consistent snapshot)."""
    rows = Account.objects.filter(guild_id=guild_id, kind=Account.Kind.WALLET).values_list(
        "owner_id", "balance"
    )
    return {str(owner): balance for owner, balance in rows}


def season_open(
    gs: GuildSettings, start: dt.datetime, number: int, balances: dict[str, int] | None = None
) -> Season | None:
    """Open season `number` from `start` if the setting gives it an end (caller in a
    transaction, no season of the guild open). `balances`: the wallets as the season begins
    (the closing snapshot of the season before, so no transfer falls between two snapshots);
    by default read now."""
    end = next_end(gs, start)
    if end is None:
        return None
    return Season.objects.create(
        guild_id=gs.guild_id,
        number=number,
        starts_at=start,
        ends_at=end,
        balances_start=wallet_balances(gs.guild_id) if balances is None else balances,
    )


def season_for_settlement(guild_id: int) -> int | None:
    """The number of the guild's running season, locked until the caller's transaction ends
    (a settlement calls it, so a season's close waits for it): None without seasons."""
    for _ in range(2):
        row = (
            Season.objects.select_for_update(no_key=True)
            .filter(guild_id=guild_id, status=Season.Status.OPEN)
            .values_list("number", flat=True)
            .first()
        )
        if row is not None:
            return row
        # None twice means no season. Once may be a close that committed while this statement
        # waited for the row: PostgreSQL re-checks the row it waited for (now closed) but cannot
        # see the next season, inserted after this statement's snapshot. A new statement does.
    return None


def season_lock(season_id: int) -> Season | None:
    """The season row locked for its close, None if it is no longer open."""
    return (
        Season.objects.select_for_update().filter(pk=season_id, status=Season.Status.OPEN).first()
    )


def season_archive(
    season: Season, *, now: dt.datetime, balances: dict[str, int], table: dict[str, object]
) -> None:
    """Close `season` (locked by `season_lock`) with its closing snapshot and final tables."""
    season.status = Season.Status.CLOSED
    season.closed_at = now
    season.balances_end = balances
    season.table = table
    season.save()


def season_unclaim(*, season_id: int) -> None:
    """Give back a claimed post that Discord refused, for the next pass."""
    Season.objects.filter(pk=season_id).update(announced_at=None)


def seasons_due(now: dt.datetime) -> list[int]:
    return list(
        Season.objects.filter(status=Season.Status.OPEN, ends_at__lte=now).values_list(
            "pk", flat=True
        )
    )


def balances_reset(season: Season, actor_id: int | None = None) -> tuple[dict[str, int], int]:
    """Every wallet back to the guild's starting balance: the difference moves to or from the
    treasury (code `season_reset`), one transfer per wallet, keyed by the season; audited.
    Caller holds the season's lock. Locks every wallet of the guild first, so the balances it
    returns (the season's closing snapshot) are exactly what it reset; and the starting balance."""
    start = starting_balance_of(season.guild_id)
    treasury = treasury_get_or_create(guild_id=season.guild_id)
    wallet_ids = list(
        Account.objects.filter(guild_id=season.guild_id, kind=Account.Kind.WALLET).values_list(
            "pk", flat=True
        )
    )
    locked = accounts_lock([*wallet_ids, treasury.pk])
    wallets = [locked[pk] for pk in wallet_ids if pk in locked]
    snapshot = {str(w.owner_id): w.balance for w in wallets}
    legs = []
    for wallet in wallets:
        if wallet.balance == start:
            continue
        key = f"season-reset:{season.guild_id}:{season.number}:{wallet.owner_id}"
        memo = f"Season {season.number} ended: balance reset to {start:,}"
        source, destination = (
            (wallet, locked[treasury.pk])
            if wallet.balance > start
            else (locked[treasury.pk], wallet)
        )
        legs.append(
            Leg(source, destination, abs(wallet.balance - start), "season_reset", key, memo)
        )
    post_many(legs, locked)
    audit_record(
        action="season_reset",
        target_type="season",
        target_id=season.number,
        guild_id=season.guild_id,
        actor_id=actor_id,
        idempotency_key=f"season-reset:{season.guild_id}:{season.number}",
        before={"wallets_changed": len(legs)},
        after={"starting_balance": start},
    )
    return snapshot, start


@use_case()
def season_configure(
    *,
    guild_id: int,
    actor: Actor,
    idempotency_key: str,
    length: str,
    ends: str | Sequence[str] = "",
    role_id: int | None = None,
    reset: bool | None = None,
    now: dt.datetime | None = None,
) -> GuildSettings:
    """Set the guild's seasons (Manage Server, like every setting). Turning seasons on opens
    season 1 (or the next number) at once; "off" stops the running season now (its table is
    posted at the next tick, like any season's end); changing the length keeps the running
    season's end. `role_id` None leaves the reward role; 0 removes it."""
    validate_snowflake(guild_id, what="guild_id")
    now = now or timezone.now()
    current = GuildSettings.objects.filter(guild_id=guild_id).first() or GuildSettings(
        guild_id=guild_id, **settings.PM_GUILD_DEFAULTS
    )
    require(Action.SETTINGS, actor, current)
    validate_key(idempotency_key)
    if length not in Length.values:
        raise InvalidInput(MSG_LENGTH)
    if length == Length.CUSTOM:
        custom = parse_ends(ends, now)
    elif ends:
        raise InvalidInput(MSG_ENDS_ONLY_CUSTOM.format(length=f"“{length}”"))
    else:
        custom = []
    if role_id:
        validate_snowflake(role_id, what="role_id")
    guild_settings_get_or_create(guild_id=guild_id)
    gs = GuildSettings.objects.select_for_update().get(guild_id=guild_id)
    before = _season_snapshot(gs)
    gs.season_length, gs.season_ends = length, custom
    if role_id is not None:
        gs.season_role_id = role_id or None
    if reset is not None:
        gs.season_reset = reset
    gs.save()
    running = Season.objects.select_for_update().filter(
        guild_id=guild_id, status=Season.Status.OPEN
    )
    if length == Length.OFF:
        running.filter(ends_at__gt=now).update(ends_at=now)
    elif not running.exists():
        last = Season.objects.filter(guild_id=guild_id).order_by("-number").first()
        season_open(gs, now, (last.number + 1) if last else 1)
    after = _season_snapshot(gs)
    if after != before:
        audit_record(
            action="season_settings",
            target_type="guild",
            target_id=guild_id,
            guild_id=guild_id,
            actor_id=actor.user_id,
            actor_user_id=actor.admin_user_id,
            idempotency_key=idempotency_key,
            before=before,
            after=after,
        )
    return gs


def _season_snapshot(gs: GuildSettings) -> dict[str, object]:
    return {
        "season_length": gs.season_length,
        "season_ends": list(gs.season_ends or []),
        "season_role_id": str(gs.season_role_id) if gs.season_role_id else None,
        "season_reset": gs.season_reset,
    }


def season_running(*, guild_id: int) -> Season | None:
    return Season.objects.filter(guild_id=guild_id, status=Season.Status.OPEN).first()


def season_get(*, guild_id: int, number: int) -> Season | None:
    return Season.objects.filter(guild_id=guild_id, number=number).first()


def _claimable(now: dt.datetime) -> Q:
    """Closed, not posted, and unclaimed or claimed by a process that has not finished within
    `CLAIM_SECONDS` (it stopped between its claim and its post)."""
    stale = now - dt.timedelta(seconds=CLAIM_SECONDS)
    return Q(status=Season.Status.CLOSED, posted_at__isnull=True) & (
        Q(announced_at__isnull=True) | Q(announced_at__lt=stale)
    )


def season_announced(*, season_id: int, now: dt.datetime | None = None) -> bool:
    """Claim the post of a closed season's table: True for one caller at a time (a conditional
    update), and again after `CLAIM_SECONDS` if the claimer never recorded its post."""
    now = now or timezone.now()
    return bool(Season.objects.filter(_claimable(now), pk=season_id).update(announced_at=now))


def season_posted(*, season_id: int, rewarded: Sequence[int], detail: str = "") -> None:
    """Record that the bot is done with the season's table: posted (`detail` empty) or given up
    for good (`detail` says why: no announcement channel, Discord refused it), and who it gave
    the reward role to."""
    Season.objects.filter(pk=season_id).update(
        posted_at=timezone.now(), post_detail=detail[:200], rewarded=[str(u) for u in rewarded]
    )


def seasons_unannounced(now: dt.datetime | None = None) -> list[Season]:
    """Closed seasons whose table waits for its post (see `season_announced`)."""
    return list(Season.objects.filter(_claimable(now or timezone.now())).order_by("pk"))


@use_case()
def season_repost(*, season_id: int, actor: Actor, reason: str, idempotency_key: str) -> Season:
    """Have a closed season's final table posted again (a post Discord refused, or one someone
    deleted): the bot's next pass posts it, with a new nonce, and gives the reward role again
    (Discord keeps a role given twice once). Moderators (`Action.ANNOUNCE_SEASON`); audited;
    the same key twice asks once. Locks the season's row."""
    validate_key(idempotency_key)
    reason = validate_reason(reason)
    season = Season.objects.select_for_update().filter(pk=season_id).first()
    if season is None:
        raise NotFound(MSG_NO_SEASON)
    gs = GuildSettings.objects.filter(guild_id=season.guild_id).first() or GuildSettings(
        guild_id=season.guild_id, **settings.PM_GUILD_DEFAULTS
    )
    require(Action.ANNOUNCE_SEASON, actor, gs)
    if AuditEvent.objects.filter(idempotency_key=idempotency_key).exists():
        return season  # this request already asked
    if season.status != Season.Status.CLOSED:
        raise InvalidInput(MSG_REPOST_RUNNING.format(number=season.number))
    if season.posted_at is None:
        raise InvalidInput(MSG_REPOST_PENDING.format(number=season.number))
    before = {
        "posted_at": season.posted_at.isoformat(),
        "post_detail": season.post_detail,
        "rewarded": list(season.rewarded or []),
    }
    season.posted_at = season.announced_at = None
    season.post_detail = ""
    season.post_round += 1
    season.save(update_fields=["posted_at", "announced_at", "post_detail", "post_round"])
    audit_record(
        action="season_repost",
        target_type="season",
        target_id=season.number,
        guild_id=season.guild_id,
        actor_id=actor.user_id,
        actor_user_id=actor.admin_user_id,
        reason=reason,
        idempotency_key=idempotency_key,
        before=before,
        after={"post_round": season.post_round},
    )
    return season
