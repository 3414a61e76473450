"""Writing a batch's positions (`betting.services.batch`): one statement whatever the batch size."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.db import connection

from markets.models import Market

from ..models import Position

if TYPE_CHECKING:
    from .batch import _Holding


def positions_upsert(market: Market, holdings: list[_Holding], now: dt.datetime) -> None:
    """Insert or update the positions a batch changed, in one statement: their new values
    (computed under the market lock, so absolute values are safe)."""
    if connection.vendor != "postgresql":
        Position.objects.bulk_create(
            [
                Position(
                    market=market,
                    outcome=h.outcome,
                    guild_id=market.guild_id,
                    user_id=h.user_id,
                    shares=h.shares,
                    points_spent=h.points_spent,
                    points_received=h.points_received,
                    updated_at=now,
                )
                for h in holdings
            ],
            update_conflicts=True,
            unique_fields=["market", "user_id", "outcome"],
            update_fields=["shares", "points_spent", "points_received", "updated_at"],
        )
        return
    table = connection.ops.quote_name(Position._meta.db_table)
    sql = (
        f"INSERT INTO {table} (market_id, outcome_id, guild_id, user_id, shares, points_spent, "
        "points_received, payout, created_at, updated_at) "
        "SELECT %s, o, %s, u, s, sp, r, 0, %s, %s FROM unnest("
        "%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) "
        "AS v(o, u, s, sp, r) "
        "ON CONFLICT (market_id, user_id, outcome_id) DO UPDATE SET shares = EXCLUDED.shares, "
        "points_spent = EXCLUDED.points_spent, points_received = EXCLUDED.points_received, "
        "updated_at = EXCLUDED.updated_at"
    )
    params: list[Any] = [
        market.pk,
        market.guild_id,
        now,
        now,
        [h.outcome.pk for h in holdings],
        [h.user_id for h in holdings],
        [h.shares for h in holdings],
        [h.points_spent for h in holdings],
        [h.points_received for h in holdings],
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
