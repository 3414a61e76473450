"""Read-only queries over the ledger; each runs a constant number of queries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import CharField, Exists, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, NullIf

from core.directory import guild_fallback, member_fallback
from core.replicas import lag_tolerant

from .models import Account, Guild, GuildSettings, Member, StaffLink, Transfer


def balance_get(*, guild_id: int, user_id: int) -> int | None:
    """The member's wallet balance, or None when they have no wallet yet (1 query)."""
    return (
        Account.objects.filter(guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id)
        .values_list("balance", flat=True)
        .first()
    )


def balances_get(*, guild_id: int, user_ids: Iterable[int]) -> dict[int, int]:
    """The wallet balances of these members, by user id; a member without a wallet is absent
    (1 query, however many members: a rush's quotes read their balances together)."""
    rows = Account.objects.filter(
        guild_id=guild_id, kind=Account.Kind.WALLET, owner_id__in=set(user_ids)
    ).values_list("owner_id", "balance")
    return {owner: balance for owner, balance in rows if owner is not None}


def guild_settings_get(*, guild_id: int) -> GuildSettings | None:
    return GuildSettings.objects.filter(guild_id=guild_id).first()


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int
    user_id: int
    balance: int


@lag_tolerant
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


def _account_label(account: Account, name: str | None) -> str:
    """How a counterparty reads: a member by name (issue 13), a market's escrow, the treasury."""
    if account.kind == Account.Kind.WALLET:
        return name or member_fallback(account.owner_id)
    if account.kind == Account.Kind.ESCROW:
        return f"market #{account.market_id}"
    return "treasury"


@lag_tolerant
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
        .annotate(
            source_name=member_name_subquery(
                guild_field="source__guild_id", user_field="source__owner_id"
            ),
            destination_name=member_name_subquery(
                guild_field="destination__guild_id", user_field="destination__owner_id"
            ),
        )
        .order_by("-id")
    )
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    rows = []
    for t in qs[: max(1, min(limit, 100))]:
        incoming = t.destination_id == wallet
        other = t.source if incoming else t.destination
        # Annotated above (`member_name_subquery`).
        other_name = getattr(t, "source_name" if incoming else "destination_name", None)
        rows.append(
            HistoryRow(
                transfer_id=t.pk,
                created_at=t.created_at,
                code=t.code,
                amount=t.amount if incoming else -t.amount,
                counterparty=_account_label(other, other_name),
                memo=t.memo,
                market_id=t.market_id,
            )
        )
    return rows


# --- The member and guild directory (issue 13) ----------------------------------------------


def member_names(*, guild_id: int, user_ids: Iterable[int]) -> dict[int, str]:
    """user id → the name to show, for every id asked (1 query; none when no ids): the display
    name, else the username, else `member_fallback` (never stored, or forgotten)."""
    ids = {int(u) for u in user_ids if u}
    found: dict[int, str] = {}
    if ids:
        rows = Member.objects.filter(guild_id=guild_id, user_id__in=ids).values_list(
            "user_id", "display_name", "username"
        )
        found = {user: display or username for user, display, username in rows}
    return {user: found.get(user) or member_fallback(user) for user in ids}


def member_get(*, guild_id: int, user_id: int) -> Member | None:
    return Member.objects.filter(guild_id=guild_id, user_id=user_id).first()


def guild_names(*, guild_ids: Iterable[int]) -> dict[int, str]:
    """guild id → its name, else `guild_fallback` (1 query; none when no ids)."""
    ids = {int(g) for g in guild_ids if g}
    found = dict(Guild.objects.filter(id__in=ids).values_list("id", "name")) if ids else {}
    return {g: found.get(g) or guild_fallback(g) for g in ids}


def member_name_subquery(*, guild_field: str, user_field: str) -> Subquery:
    """An annotation holding the member's stored name ('' or NULL when unknown or forgotten),
    for querysets that show members (admin lists, trade feeds): no query per row. Wrap the
    result with `member_fallback` when it is empty."""
    return Subquery(
        Member.objects.filter(guild_id=OuterRef(guild_field), user_id=OuterRef(user_field))
        .annotate(shown=Coalesce(NullIf("display_name", Value("")), NullIf("username", Value(""))))
        .values("shown")[:1],
        output_field=CharField(),
    )


def guild_name_subquery(*, guild_field: str) -> Subquery:
    return Subquery(
        Guild.objects.filter(id=OuterRef(guild_field)).values("name")[:1],
        output_field=CharField(),
    )


def member_name_matches(*, text: str, guild_field: str, user_field: str) -> Exists:
    """A filter: the row's member has a display name or username containing `text`
    (case-insensitive), for the back office's search by name; forgotten members match nothing."""
    return Exists(
        Member.objects.filter(
            Q(display_name__icontains=text) | Q(username__icontains=text),
            guild_id=OuterRef(guild_field),
            user_id=OuterRef(user_field),
            forgotten=False,
        )
    )


# --- Staff accounts linked to Discord members (docs/domain.md §6.1) -------------------------


def staff_discord_id(*, user_id: int | None) -> int | None:
    """The Discord id a superuser linked to back-office user `user_id` (`StaffLink`), or None
    when the account is not linked (1 query)."""
    if user_id is None:
        return None
    return (
        StaffLink.objects.filter(user_id=user_id).values_list("discord_user_id", flat=True).first()
    )
