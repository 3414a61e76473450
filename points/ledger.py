"""The one posting path of the ledger (DOMAIN §3): the only code that writes transfers, moves
balances and opens wallets. Every balance change in the project goes through `post_many` —
`points.services.transfers_post` for the use cases, `Journal.post` for `betting.trades_apply`'s
batches — so the checks (no wallet or escrow below 0, no bigint overflow, at least 1 point per
transfer) and the writes exist once.

Set-based: `post_many` writes any number of transfers in one statement (`INSERT … RETURNING`, or
`COPY` when the caller needs no rows back) and moves every balance in one
`UPDATE … FROM (VALUES …)`; `wallets_open` opens any number of wallets in one
`INSERT … ON CONFLICT DO NOTHING`. Callers run inside their use case's transaction and lock the
accounts first (`accounts_lock`, one query ordered by primary key)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from core.sql import add_by_pk, db_time, delete_by_pk, insert_rows

from .errors import MSG_INSUFFICIENT_POINTS, InsufficientPoints, InvalidAmount
from .models import Account, GuildSettings, Transfer

BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True)
class Leg:
    """One transfer to post. `source` and `destination` are `Account` rows the caller locked."""

    source: Account
    destination: Account
    amount: int
    code: str
    idempotency_key: str
    memo: str = ""
    actor_id: int | None = None
    actor_user_id: int | None = None
    market_id: int | None = None


def issuer_get_or_create(*, guild_id: int, kind: str) -> Account:
    """The guild's one account of an issuer kind (`Account.ISSUER_KINDS`: the treasury, the
    `drip` clearing account), opened on first use; a twin opening it meanwhile is read."""
    if kind not in Account.ISSUER_KINDS:
        raise ValueError(f"{kind!r} is not an issuer account kind")
    found = Account.objects.filter(guild_id=guild_id, kind=kind).first()
    if found is None:
        found, _ = Account.objects.get_or_create(guild_id=guild_id, kind=kind)
    return found


def order_account_get_or_create(*, guild_id: int, market_id: int) -> Account:
    """The market's order account (DOMAIN §4.7): the budgets of its resting buy orders, opened
    when the market's first order is placed; a twin opening it meanwhile is read."""
    found = Account.objects.filter(kind=Account.Kind.ORDERS, market_id=market_id).first()
    if found is None:
        found, _ = Account.objects.get_or_create(
            guild_id=guild_id, kind=Account.Kind.ORDERS, market_id=market_id
        )
    return found


def treasury_get_or_create(*, guild_id: int) -> Account:
    """The guild's treasury account (the issuer of starting balances, bonuses and fees)."""
    return issuer_get_or_create(guild_id=guild_id, kind=Account.Kind.TREASURY)


def starting_balance_of(guild_id: int) -> int:
    """The starting balance a new wallet of the guild receives (1 query, no write): the guild's
    setting, or `PM_GUILD_DEFAULTS` when it has no settings row yet."""
    value = (
        GuildSettings.objects.filter(guild_id=guild_id)
        .values_list("starting_balance", flat=True)
        .first()
    )
    return int(settings.PM_GUILD_DEFAULTS["starting_balance"]) if value is None else value


def accounts_lock(account_ids: Iterable[int], *, also: Q | None = None) -> dict[int, Account]:
    """Lock accounts with one `SELECT … FOR UPDATE` ordered by primary key (DOMAIN §3, STYLE §5)
    and return them by id with their current balances; `also` locks the rows it matches too (a
    market's escrow, say) in the same query. Caller is in a transaction."""
    wanted = Q(pk__in=set(account_ids))
    if also is not None:
        wanted |= also
    rows = Account.objects.select_for_update().filter(wanted).order_by("pk")
    return {row.pk: row for row in rows}


@dataclass
class Opened:
    """What `wallets_open` found or opened: every member's wallet id (lock them before posting),
    and for each wallet this transaction opened the leg that gives its starting balance
    (treasury → wallet, key `start:<guild>:<user>`), to be posted with the caller's other legs."""

    guild_id: int
    wallets: dict[int, int]
    """user id → wallet account id"""
    starting_legs: dict[int, Leg] = field(default_factory=dict)
    created: set[int] = field(default_factory=set)
    treasury: Account | None = None


def wallets_open(
    guild_id: int, user_ids: Iterable[int], *, starting_balance: int | None = None
) -> Opened:
    """Get the wallets of `user_ids`, opening the missing ones in one statement (in user order,
    so two transactions opening the same wallets cannot deadlock; a wallet another transaction
    opened meanwhile is read, not opened twice). A wallet opened here is owed its starting
    balance (`starting_balance`, default the guild's setting): `Opened.starting_legs`, posted by
    the caller through `post_many` like any transfer. One query when every wallet exists."""
    wanted = sorted(set(user_ids))
    wallets = _wallets_of(guild_id, wanted)
    missing = [u for u in wanted if u not in wallets]
    if not missing:
        return Opened(guild_id, wallets)
    created = _wallets_insert(guild_id, missing)
    wallets.update({user_id: wallet.pk for user_id, wallet in created.items()})
    lost = [u for u in missing if u not in created]
    if lost:  # opened meanwhile by another transaction, which gave the starting balance
        wallets.update(_wallets_of(guild_id, lost))
    treasury = treasury_get_or_create(guild_id=guild_id)
    amount = starting_balance_of(guild_id) if starting_balance is None else starting_balance
    legs = {}
    if amount > 0:
        legs = {
            user_id: Leg(
                source=treasury,
                destination=wallet,
                amount=amount,
                code=Transfer.Code.STARTING_BALANCE,
                idempotency_key=f"start:{guild_id}:{user_id}",
                memo="Starting balance",
            )
            for user_id, wallet in created.items()
        }
    return Opened(guild_id, wallets, legs, set(created), treasury)


def _wallets_of(guild_id: int, user_ids: list[int]) -> dict[int, int]:
    rows = Account.objects.filter(
        guild_id=guild_id, kind=Account.Kind.WALLET, owner_id__in=user_ids
    ).values_list("owner_id", "pk")
    # A wallet always has an owner (a check constraint); the field is nullable for the others.
    return {owner: pk for owner, pk in rows if owner is not None}


def _wallets_insert(guild_id: int, users: list[int]) -> dict[int, Account]:
    """Insert wallets for `users` in one statement, skipping any that exist; returns the ones
    this statement created, by user id."""
    table = connection.ops.quote_name(Account._meta.db_table)
    now = timezone.now()
    rows = ", ".join(["(%s, %s, %s, NULL, 0, %s)"] * len(users))
    params: list[Any] = []
    for user_id in users:
        params += [guild_id, Account.Kind.WALLET, user_id, db_time(now)]
    sql = (
        f"INSERT INTO {table} (guild_id, kind, owner_id, market_id, balance, created_at) "
        f"VALUES {rows} ON CONFLICT DO NOTHING RETURNING owner_id, id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        created = cursor.fetchall()
    return {
        owner: Account(
            pk=pk,
            guild_id=guild_id,
            kind=Account.Kind.WALLET,
            owner_id=owner,
            balance=0,
            created_at=now,
        )
        for owner, pk in created
    }


def wallets_discard(opened: Opened, user_ids: Iterable[int]) -> None:
    """Remove wallets `wallets_open` opened in this transaction and that no leg touched (one
    statement): for a batch whose every request of a new member was refused, as if that
    member's own transaction had rolled back."""
    pks = [opened.wallets[u] for u in user_ids if u in opened.created]
    delete_by_pk(Account, pks)


def _deltas(legs: Sequence[Leg]) -> dict[int, int]:
    delta: dict[int, int] = {}
    for leg in legs:
        if isinstance(leg.amount, bool) or not isinstance(leg.amount, int) or leg.amount <= 0:
            raise InvalidAmount(f"A transfer must move at least 1 point (got {leg.amount}).")
        delta[leg.source.pk] = delta.get(leg.source.pk, 0) - leg.amount
        delta[leg.destination.pk] = delta.get(leg.destination.pk, 0) + leg.amount
    return delta


def _check(delta: dict[int, int], locked: dict[int, Account], pending: dict[int, int]) -> None:
    """The balances after `delta` (on top of `pending`) on the locked rows: no wallet or escrow
    below 0, nothing beyond a bigint."""
    for account_id, change in delta.items():
        account = locked.get(account_id)
        if account is None:
            raise RuntimeError(f"account {account_id} was not locked before posting")
        balance = account.balance + pending.get(account_id, 0)
        new_balance = balance + change
        if account.kind not in Account.ISSUER_KINDS and new_balance < 0:
            raise InsufficientPoints(
                MSG_INSUFFICIENT_POINTS.format(balance=balance, needed=-change),
                details={"balance": balance, "needed": -change, "account": account_id},
            )
        if abs(new_balance) > BIGINT_MAX:
            raise InvalidAmount("That amount would overflow an account; use a smaller amount.")


def post_many(
    legs: Sequence[Leg], locked: dict[int, Account], *, returning: bool = True
) -> list[Transfer]:
    """Post `legs`: the caller holds row locks on every account in them (`accounts_lock`) and
    `locked` holds those rows. Checks the resulting balances on the locked rows, writes the
    transfers in one statement and moves every balance in one statement; the locked rows'
    `balance` is updated in memory so the caller sees the new balances. Returns the transfers
    with their pks; `returning=False` (batches) writes them with `COPY` and returns nothing."""
    delta = _deltas(legs)
    _check(delta, locked, {})
    if not legs:
        return []
    rows = [
        {
            "guild_id": leg.source.guild_id,
            "source_id": leg.source.pk,
            "destination_id": leg.destination.pk,
            "amount": leg.amount,
            "code": leg.code,
            "idempotency_key": leg.idempotency_key,
            "memo": leg.memo[:500],
            "actor_id": leg.actor_id,
            "actor_user_id": leg.actor_user_id,
            "market_id": leg.market_id,
        }
        for leg in legs
    ]
    if returning:
        transfers = Transfer.objects.bulk_create([Transfer(**row) for row in rows])
    else:
        transfers = []
        insert_rows(Transfer, rows, timezone.now())
    moved = {pk: change for pk, change in delta.items() if change}
    add_by_pk(Account, "balance", moved)
    for account_id, change in moved.items():
        locked[account_id].balance += change
    return transfers


class Journal:
    """Legs staged on locked accounts, posted together by `post` through `post_many`: for a
    caller that decides many things in one transaction and must see each one's balances before
    the next (`betting.trades_apply`). `stage` checks a group of legs as `post_many` would and
    either takes all of them or raises and takes none."""

    def __init__(self, locked: dict[int, Account]) -> None:
        self.locked = locked
        self.legs: list[Leg] = []
        self.pending: dict[int, int] = {}

    def balance(self, account_id: int) -> int:
        """The account's balance with the staged legs."""
        return self.locked[account_id].balance + self.pending.get(account_id, 0)

    def stage(self, legs: Sequence[Leg]) -> None:
        delta = _deltas(legs)
        _check(delta, self.locked, self.pending)
        for account_id, change in delta.items():
            self.pending[account_id] = self.pending.get(account_id, 0) + change
        self.legs.extend(legs)

    def post(self) -> None:
        """Write every staged leg (one statement for the transfers, one for the balances)."""
        if self.legs:
            post_many(self.legs, self.locked, returning=False)
            self.legs, self.pending = [], {}
