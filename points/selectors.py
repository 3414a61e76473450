"""Read-only queries over the ledger; each runs a constant number of queries."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from .models import Account, GuildSettings, Transfer


def balance_get(*, guild_id: int, user_id: int) -> int | None:
    """The member's wallet balance, or None when they have no wallet yet (1 query)."""
    return (
        Account.objects.filter(guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id)
        .values_list("balance", flat=True)
        .first()
    )


def guild_settings_get(*, guild_id: int) -> GuildSettings | None:
    return GuildSettings.objects.filter(guild_id=guild_id).first()


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int
    user_id: int
    balance: int


def leaderboard(*, guild_id: int, limit: int = 10) -> list[LeaderboardRow]:
    """Top wallets of a guild by balance (1 query); ties by who joined first."""
    rows = (
        Account.objects.filter(guild_id=guild_id, kind=Account.Kind.WALLET)
        .order_by("-balance", "pk")
        .values_list("owner_id", "balance")[: max(1, min(limit, 100))]
    )
    return [
        LeaderboardRow(rank, owner, balance)
        for rank, (owner, balance) in enumerate(rows, 1)
        if owner is not None
    ]


@dataclass(frozen=True)
class HistoryRow:
    transfer_id: int
    created_at: object
    code: str
    amount: int
    """Signed: positive when points came into the wallet."""
    counterparty: str
    memo: str
    market_id: int | None


def transfers_for_user(
    *, guild_id: int, user_id: int, limit: int = 20, before_id: int | None = None
) -> list[HistoryRow]:
    """The member's transfer history, newest first (2 queries), paginated by `before_id`."""
    wallet = (
        Account.objects.filter(guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id)
        .values_list("pk", flat=True)
        .first()
    )
    if wallet is None:
        return []
    qs: QuerySet[Transfer] = (
        Transfer.objects.filter(Q(source_id=wallet) | Q(destination_id=wallet))
        .select_related("source", "destination")
        .order_by("-id")
    )
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    rows = []
    for t in qs[: max(1, min(limit, 100))]:
        incoming = t.destination_id == wallet
        other = t.source if incoming else t.destination
        rows.append(
            HistoryRow(
                transfer_id=t.pk,
                created_at=t.created_at,
                code=t.code,
                amount=t.amount if incoming else -t.amount,
                counterparty=str(other),
                memo=t.memo,
                market_id=t.market_id,
            )
        )
    return rows
