"""A season's leaderboards and its close (docs/domain.md §10), driven by the market clock.

A market belongs to the season that was running when it settled (`Market.season`, stamped under
the season row's lock by every settlement), and its trades with it: so every trade of a settled
market counts in exactly one season. Balance change is measured between two snapshots of every
wallet taken in one statement each, at the season's start and at its close, so every transfer
falls on one side of each snapshot.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from points import seasons as ledger_seasons
from points.ledger import starting_balance_of
from points.models import Account, GuildSettings, Season, Transfer

from .calibration import leaderboard_calibration
from .selectors import MARKET_IN, MARKET_OUT

TABLE_SIZE = 10


@dataclass(frozen=True)
class SeasonTables:
    number: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    closed: bool
    balance: list[tuple[int, int]]
    """(member, balance change), best first."""
    profit: list[tuple[int, int]]
    """(member, realised profit in the markets settled this season), best first."""
    calibration: list[tuple[int, float, int]]
    """(member, Brier score, markets), best first (at least 5 markets)."""


def _ranked(values: dict[int, int]) -> list[tuple[int, int]]:
    return sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:TABLE_SIZE]


def season_profit(guild_id: int, number: int) -> dict[int, int]:
    """Each member's points back minus points in, over the markets settled in season `number`
    (1 query)."""
    flows = (
        Transfer.objects.filter(
            guild_id=guild_id, market__season=number, code__in=(*MARKET_IN, *MARKET_OUT)
        )
        .filter(Q(source__kind=Account.Kind.WALLET) | Q(destination__kind=Account.Kind.WALLET))
        .values_list("code", "source__owner_id", "destination__owner_id")
        .annotate(s=Sum("amount"))
        .order_by()
    )
    out: dict[int, int] = {}
    for code, source_owner, destination_owner, amount in flows:
        if code in MARKET_IN and destination_owner is not None:
            out[destination_owner] = out.get(destination_owner, 0) + amount
        elif code in MARKET_OUT and source_owner is not None:
            out[source_owner] = out.get(source_owner, 0) - amount
    return out


def balance_changes(guild_id: int, start: dict[str, int], end: dict[str, int]) -> dict[int, int]:
    """End minus start per member; a wallet opened during the season starts from the starting
    balance it was given."""
    opening = starting_balance_of(guild_id)
    return {int(user): balance - start.get(user, opening) for user, balance in end.items()}


def season_tables(
    season: Season,
    balances_end: dict[str, int] | None = None,
    *,
    closed_at: dt.datetime | None = None,
) -> SeasonTables:
    """The season's three leaderboards, live for a running season (4 queries); `closed_at`:
    drawn as the season closes."""
    end = (
        balances_end
        if balances_end is not None
        else ledger_seasons.wallet_balances(season.guild_id)
    )
    calibration = leaderboard_calibration(
        guild_id=season.guild_id, season=season.number, limit=TABLE_SIZE
    )
    return SeasonTables(
        number=season.number,
        starts_at=season.starts_at,
        ends_at=closed_at or season.closed_at or season.ends_at,
        closed=closed_at is not None or season.status == Season.Status.CLOSED,
        balance=_ranked(balance_changes(season.guild_id, season.balances_start, end)),
        profit=_ranked(season_profit(season.guild_id, season.number)),
        calibration=[(r.user_id, r.brier, r.markets) for r in calibration],
    )


def tables_json(t: SeasonTables) -> dict[str, object]:
    return {
        "balance": [[str(u), v] for u, v in t.balance],
        "profit": [[str(u), v] for u, v in t.profit],
        "calibration": [[str(u), b, m] for u, b, m in t.calibration],
    }


def tables_from_archive(season: Season) -> SeasonTables:
    table = season.table or {}
    return SeasonTables(
        number=season.number,
        starts_at=season.starts_at,
        ends_at=season.closed_at or season.ends_at,
        closed=True,
        balance=[(int(u), int(v)) for u, v in table.get("balance", [])],
        profit=[(int(u), int(v)) for u, v in table.get("profit", [])],
        calibration=[(int(u), float(b), int(m)) for u, b, m in table.get("calibration", [])],
    )


def season_close(season_id: int, now: dt.datetime) -> bool:
    """Close one due season, exactly once: its row lock waits for every settlement that is
    stamping it, the conditional status change makes a second closer a no-op. Archives the
    final table, resets balances if the guild chose so, opens the next season."""
    with transaction.atomic(durable=True):
        season = ledger_seasons.season_lock(season_id)
        if season is None:
            return False
        gs = GuildSettings.objects.filter(guild_id=season.guild_id).first()
        if gs is not None and gs.season_reset:
            balances, start = ledger_seasons.balances_reset(season)
            following = dict.fromkeys(balances, start)
        else:
            # One statement: every transfer is before this snapshot or after it.
            balances = following = ledger_seasons.wallet_balances(season.guild_id)
        table = tables_json(season_tables(season, balances, closed_at=now))
        ledger_seasons.season_archive(season, now=now, balances=balances, table=table)
        if gs is not None:
            ledger_seasons.season_open(gs, now, season.number + 1, following)
    return True


def seasons_tick(*, now: dt.datetime | None = None) -> list[int]:
    """Close every season whose end has come; the ids closed by this call."""
    now = now or timezone.now()
    return [sid for sid in ledger_seasons.seasons_due(now) if season_close(sid, now)]


def seasons_tick_hook(now: dt.datetime) -> list[int]:
    """The market clock's hook (`markets.services.scheduler.tick_hook_register`)."""
    return seasons_tick(now=now)


def season_tables_for(*, guild_id: int, number: int | None) -> SeasonTables | None:
    """Season `number`'s tables (the archive once closed; live while running), or the running
    season's when `number` is None; None if there is no such season."""
    season = (
        ledger_seasons.season_get(guild_id=guild_id, number=number)
        if number is not None
        else ledger_seasons.season_running(guild_id=guild_id)
    )
    if season is None:
        return None
    if season.status == Season.Status.CLOSED:
        return tables_from_archive(season)
    return season_tables(season)
