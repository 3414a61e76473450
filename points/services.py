"""Ledger services (DOMAIN §3). Every entry point is one durable transaction that locks every
account it touches in one query ordered by primary key, checks balances on the locked rows,
writes transfers and moves balances with `F()`. Every entry point is idempotent by its key;
the transaction, the retry and the replay rules are `points.usecase.use_case`'s."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from .db import integrity_constraint, retry_transient
from .errors import (
    MSG_DAILY_ALREADY_CLAIMED,
    MSG_DAILY_DISABLED,
    MSG_INSUFFICIENT_POINTS,
    MSG_TIP_SELF,
    AlreadyClaimed,
    DomainError,
    InsufficientPoints,
    InvalidAmount,
    InvalidInput,
    validate_amount,
    validate_key,
    validate_reason,
    validate_snowflake,
)
from .models import Account, AuditEvent, Guild, GuildSettings, Member, Transfer
from .rules import SETTINGS, Action, Actor, require, setting_check
from .usecase import IDEMPOTENCY_CONSTRAINTS, Call, stop_if_replayed, use_case

BIGINT_MAX = 2**63 - 1


# --- Guild settings and accounts (helpers; run inside the caller's transaction) -------------


def guild_settings_get_or_create(*, guild_id: int) -> GuildSettings:
    """The guild's settings row, created from `PM_GUILD_DEFAULTS` on first use (DOMAIN §2)."""
    validate_snowflake(guild_id, what="guild_id")
    found = GuildSettings.objects.filter(guild_id=guild_id).first()
    if found is not None:
        return found
    row, _ = GuildSettings.objects.get_or_create(
        guild_id=guild_id, defaults=dict(settings.PM_GUILD_DEFAULTS)
    )
    return row


def treasury_get_or_create(*, guild_id: int) -> Account:
    treasury = Account.objects.filter(guild_id=guild_id, kind=Account.Kind.TREASURY).first()
    if treasury is None:
        treasury, _ = Account.objects.get_or_create(guild_id=guild_id, kind=Account.Kind.TREASURY)
    return treasury


@dataclass(frozen=True)
class Leg:
    """One transfer to post. `source` and `destination` are locked `Account` rows."""

    source: Account
    destination: Account
    amount: int
    code: str
    idempotency_key: str
    memo: str = ""
    actor_id: int | None = None
    actor_user_id: int | None = None
    market_id: int | None = None


class Members:
    """Accounts prepared for a use case: the members' wallets, the legs that give a starting
    balance to the wallets this transaction created, and the treasury (fetched on first use)."""

    def __init__(
        self,
        guild_id: int,
        wallets: dict[int, Account],
        starting_legs: list[Leg],
        treasury: Account | None,
    ) -> None:
        self.guild_id = guild_id
        self.wallets = wallets
        self.starting_legs = starting_legs
        self._treasury = treasury

    @property
    def treasury(self) -> Account:
        if self._treasury is None:
            self._treasury = treasury_get_or_create(guild_id=self.guild_id)
        return self._treasury

    @property
    def account_ids(self) -> list[int]:
        ids = [w.pk for w in self.wallets.values()]
        if self.starting_legs:
            ids.append(self.treasury.pk)
        return ids


def members_prepare(*, guild_id: int, user_ids: Iterable[int]) -> Members:
    """Get or create the wallets of `user_ids` (in id order, so two transactions creating the same
    pair cannot deadlock). A wallet created here receives the guild's starting balance once
    (key `start:<guild>:<user>`) when the caller posts `starting_legs`. Caller is in a transaction
    and must lock `account_ids` before posting. One query when every wallet exists."""
    wanted = sorted(set(user_ids))
    for user_id in wanted:
        validate_snowflake(user_id, what="user_id")
    # A wallet always has an owner (a check constraint); the model field is nullable for the
    # treasury and escrows.
    wallets: dict[int, Account] = {
        w.owner_id: w  # type: ignore[misc]
        for w in Account.objects.filter(
            guild_id=guild_id, kind=Account.Kind.WALLET, owner_id__in=wanted
        )
    }
    starting_legs: list[Leg] = []
    treasury = None
    missing = [u for u in wanted if u not in wallets]
    if missing:
        treasury = treasury_get_or_create(guild_id=guild_id)
        gs = guild_settings_get_or_create(guild_id=guild_id)
        for user_id in missing:
            wallet, created = Account.objects.get_or_create(
                guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id
            )
            if created and gs.starting_balance > 0:
                starting_legs.append(
                    Leg(
                        source=treasury,
                        destination=wallet,
                        amount=gs.starting_balance,
                        code=Transfer.Code.STARTING_BALANCE,
                        idempotency_key=f"start:{guild_id}:{user_id}",
                        memo="Starting balance",
                    )
                )
            wallets[user_id] = wallet
    return Members(guild_id, wallets, starting_legs, treasury)


def accounts_lock(account_ids: Iterable[int]) -> dict[int, Account]:
    """Lock accounts with one `SELECT … FOR UPDATE` ordered by primary key (DOMAIN §3, STYLE §5)
    and return them by id with their current balances. Caller is in a transaction."""
    rows = Account.objects.select_for_update().filter(pk__in=set(account_ids)).order_by("pk")
    return {row.pk: row for row in rows}


def transfers_post(legs: Sequence[Leg], locked: dict[int, Account]) -> list[Transfer]:
    """Caller holds row locks on every account in `legs` (`accounts_lock`), and `locked` holds
    those rows. Checks the resulting balances on the locked rows (no wallet or escrow below 0),
    writes the transfers and moves balances with `F()`. The locked rows' `balance` is updated
    in memory so the caller sees the new balances."""
    delta: dict[int, int] = defaultdict(int)
    for leg in legs:
        if leg.amount <= 0:
            raise InvalidAmount(f"A transfer must move at least 1 point (got {leg.amount}).")
        delta[leg.source.pk] -= leg.amount
        delta[leg.destination.pk] += leg.amount
    for account_id, change in delta.items():
        account = locked.get(account_id)
        if account is None:
            raise RuntimeError(f"account {account_id} was not locked before posting")
        new_balance = account.balance + change
        if account.kind not in Account.ISSUER_KINDS and new_balance < 0:
            raise InsufficientPoints(
                MSG_INSUFFICIENT_POINTS.format(balance=account.balance, needed=-change),
                details={"balance": account.balance, "needed": -change, "account": account_id},
            )
        if abs(new_balance) > BIGINT_MAX:
            raise InvalidAmount("That amount would overflow an account; use a smaller amount.")
    transfers = Transfer.objects.bulk_create(
        [
            Transfer(
                guild_id=leg.source.guild_id,
                source_id=leg.source.pk,
                destination_id=leg.destination.pk,
                amount=leg.amount,
                code=leg.code,
                idempotency_key=leg.idempotency_key,
                memo=leg.memo[:500],
                actor_id=leg.actor_id,
                actor_user_id=leg.actor_user_id,
                market_id=leg.market_id,
            )
            for leg in legs
        ]
    )
    for account_id, change in delta.items():
        if change:
            Account.objects.filter(pk=account_id).update(balance=F("balance") + change)
            locked[account_id].balance += change
    return transfers


def transfer_create(
    *,
    source: Account,
    destination: Account,
    amount: int,
    code: str,
    idempotency_key: str,
    memo: str = "",
    actor_id: int | None = None,
    market_id: int | None = None,
) -> Transfer:
    """Post one transfer. Caller holds row locks on `source` and `destination`."""
    locked = {source.pk: source, destination.pk: destination}
    leg = Leg(source, destination, amount, code, idempotency_key, memo, actor_id, None, market_id)
    return transfers_post([leg], locked)[0]


def audit_record(
    *,
    action: str,
    target_type: str,
    target_id: object,
    guild_id: int | None,
    actor_id: int | None = None,
    actor_user_id: int | None = None,
    reason: str = "",
    idempotency_key: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Write an append-only audit record. Caller is in the transaction that makes the change."""
    return AuditEvent.objects.create(
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        guild_id=guild_id,
        actor_discord_id=actor_id,
        actor_user_id=actor_user_id,
        reason=reason[:500],
        idempotency_key=idempotency_key,
        before=before or {},
        after=after or {},
    )


# --- Guild settings ------------------------------------------------------------------------

MSG_ROLE_KIND = "Roles are “creator” or “resolver”, changed with add, remove or clear."
MSG_ROLE_PICK = "Pick the role to add or remove."


@use_case()
def guild_settings_update(
    *,
    guild_id: int,
    actor: Actor,
    idempotency_key: str,
    values: dict[str, object] | None = None,
    announce_channel_id: int | Literal[False] | None = False,
    moderator_channel_id: int | Literal[False] | None = False,
    role_kind: str | None = None,
    role_action: str | None = None,
    role_id: int | None = None,
    creator_role_ids: list[int] | None = None,
    resolver_role_ids: list[int] | None = None,
) -> GuildSettings:
    """Change a guild's settings (docs/domain.md §2): `Action.SETTINGS` decides who may (Manage
    Server on Discord, `points.change_guildsettings` in the back office), the table of
    `points.rules.settings` which values. `values` maps setting names to new values;
    `announce_channel_id` (and `moderator_channel_id`, where disputes are reported) None clears
    the channel (False, the default, leaves it); a role is
    added to, removed from or cleared in the `creator`/`resolver` list (the bot), or a whole list
    replaced (the back office). Every value is checked before anything is written: all of it
    changes, or none. One `guild_settings_update` audit record with before/after snapshots, only
    when something changed."""
    validate_snowflake(guild_id, what="guild_id")
    current = GuildSettings.objects.filter(guild_id=guild_id).first() or GuildSettings(
        guild_id=guild_id, **settings.PM_GUILD_DEFAULTS
    )
    require(Action.SETTINGS, actor, current)
    validate_key(idempotency_key)
    values = dict(values or {})
    for name, value in values.items():
        setting_check(name, value)
    if role_kind not in (None, "creator", "resolver") or role_action not in (
        None,
        "add",
        "remove",
        "clear",
    ):
        raise InvalidInput(MSG_ROLE_KIND)
    if role_action in ("add", "remove"):
        if role_id is None:
            raise InvalidInput(MSG_ROLE_PICK)
        validate_snowflake(role_id, what="role_id")
    lists = {"creator_role_ids": creator_role_ids, "resolver_role_ids": resolver_role_ids}
    for ids in lists.values():
        for one in ids or []:
            validate_snowflake(one, what="role_id")
    for channel_id in (announce_channel_id, moderator_channel_id):
        if channel_id not in (False, None):
            validate_snowflake(channel_id, what="channel_id")

    guild_settings_get_or_create(guild_id=guild_id)
    gs = GuildSettings.objects.select_for_update().get(guild_id=guild_id)
    before = _settings_snapshot(gs)
    for name, value in values.items():
        setattr(gs, name, value)
    if announce_channel_id is not False:
        gs.announce_channel_id = announce_channel_id
    if moderator_channel_id is not False:
        gs.moderator_channel_id = moderator_channel_id
    for field, ids in lists.items():
        if ids is not None:
            setattr(gs, field, list(dict.fromkeys(int(i) for i in ids)))
    if role_kind and role_action:
        field = f"{role_kind}_role_ids"
        roles = [int(r) for r in getattr(gs, field) or []]
        if role_action == "clear":
            roles = []
        elif role_action == "add" and role_id not in roles:
            roles.append(int(role_id))  # type: ignore[arg-type]
        elif role_action == "remove":
            roles = [r for r in roles if r != role_id]
        setattr(gs, field, roles)
    gs.save()
    after = _settings_snapshot(gs)
    if after != before:
        audit_record(
            action="guild_settings_update",
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


def _settings_snapshot(gs: GuildSettings) -> dict:
    return {
        **{spec.name: getattr(gs, spec.name) for spec in SETTINGS},
        "announce_channel_id": str(gs.announce_channel_id) if gs.announce_channel_id else None,
        "moderator_channel_id": (str(gs.moderator_channel_id) if gs.moderator_channel_id else None),
        "creator_role_ids": [str(r) for r in gs.creator_role_ids or []],
        "resolver_role_ids": [str(r) for r in gs.resolver_role_ids or []],
    }


# --- Idempotency -----------------------------------------------------------------------------


def transfer_by_key(key: str) -> Transfer | None:
    """The transfer a use case wrote under `key`, if any (its first result)."""
    return (
        Transfer.objects.select_related("source", "destination").filter(idempotency_key=key).first()
    )


# --- Entry points ----------------------------------------------------------------------------


@retry_transient()
def wallet_get_or_create(*, guild_id: int, user_id: int) -> Account:
    """The member's wallet; a new one receives the guild's `starting_balance` once."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(user_id, what="user_id")
    wallet = Account.objects.filter(
        guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id
    ).first()
    if wallet is not None:
        return wallet
    try:
        with transaction.atomic(durable=True):
            members = members_prepare(guild_id=guild_id, user_ids=[user_id])
            locked = accounts_lock(members.account_ids)
            transfers_post(members.starting_legs, locked)
            return locked[members.wallets[user_id].pk]
    except IntegrityError as exc:
        if integrity_constraint(exc) not in IDEMPOTENCY_CONSTRAINTS | {"one_wallet_per_member"}:
            raise
    return Account.objects.get(guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id)


def _same_adjustment(code: str) -> Callable[[Transfer, Call], bool]:
    def matches(t: Transfer, call: Call) -> bool:
        wallet = t.destination if code == Transfer.Code.GRANT else t.source
        return (t.code, t.amount, t.guild_id, wallet.owner_id) == (
            code,
            call["amount"],
            call["guild_id"],
            call["user_id"],
        )

    return matches


def _adjust(
    *,
    guild_id: int,
    user_id: int,
    amount: int,
    reason: str,
    actor: Actor,
    idempotency_key: str,
    code: str,
) -> Transfer:
    """A moderator's grant or deduction between the treasury and a wallet, audited. Caller is
    the use case's durable transaction."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(user_id, what="user_id")
    validate_amount(amount)
    reason = validate_reason(reason)
    require(Action.ADJUST, actor, guild_settings_get_or_create(guild_id=guild_id))
    actor_id, actor_user_id = actor.user_id, actor.admin_user_id
    members = members_prepare(guild_id=guild_id, user_ids=[user_id])
    locked = accounts_lock([*members.account_ids, members.treasury.pk])
    stop_if_replayed(transfer_by_key, idempotency_key)
    treasury, wallet = locked[members.treasury.pk], locked[members.wallets[user_id].pk]
    transfers_post(members.starting_legs, locked)
    before = wallet.balance
    source, destination = (treasury, wallet) if code == Transfer.Code.GRANT else (wallet, treasury)
    leg = Leg(source, destination, amount, code, idempotency_key, reason, actor_id, actor_user_id)
    (transfer,) = transfers_post([leg], locked)
    audit_record(
        action=f"points_{code}",
        target_type="wallet",
        target_id=user_id,
        guild_id=guild_id,
        actor_id=actor_id,
        actor_user_id=actor_user_id,
        reason=reason,
        idempotency_key=idempotency_key,
        before={"balance": before},
        after={"balance": wallet.balance},
    )
    return transfer


@use_case(lookup=transfer_by_key, matches=_same_adjustment(Transfer.Code.GRANT))
def points_grant(
    *,
    guild_id: int,
    user_id: int,
    amount: int,
    reason: str,
    actor: Actor,
    idempotency_key: str,
) -> Transfer:
    """A moderator adds points to a member's wallet (treasury → wallet, `grant`), audited."""
    return _adjust(
        guild_id=guild_id,
        user_id=user_id,
        amount=amount,
        reason=reason,
        actor=actor,
        idempotency_key=idempotency_key,
        code=Transfer.Code.GRANT,
    )


@use_case(lookup=transfer_by_key, matches=_same_adjustment(Transfer.Code.DEDUCT))
def points_deduct(
    *,
    guild_id: int,
    user_id: int,
    amount: int,
    reason: str,
    actor: Actor,
    idempotency_key: str,
) -> Transfer:
    """A moderator removes points (wallet → treasury, `deduct`), audited; never overdraws."""
    return _adjust(
        guild_id=guild_id,
        user_id=user_id,
        amount=amount,
        reason=reason,
        actor=actor,
        idempotency_key=idempotency_key,
        code=Transfer.Code.DEDUCT,
    )


def _same_tip(t: Transfer, call: Call) -> bool:
    return (t.code, t.amount, t.source.owner_id, t.destination.owner_id, t.guild_id) == (
        Transfer.Code.TIP,
        call["amount"],
        call["from_user_id"],
        call["to_user_id"],
        call["guild_id"],
    )


@use_case(lookup=transfer_by_key, matches=_same_tip)
def points_tip(
    *, guild_id: int, from_user_id: int, to_user_id: int, amount: int, idempotency_key: str
) -> Transfer:
    """One member gives points to another (wallet → wallet, `tip`); not to themselves, not more
    than they have."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(from_user_id, what="from_user_id")
    validate_snowflake(to_user_id, what="to_user_id")
    if from_user_id == to_user_id:
        raise InvalidInput(MSG_TIP_SELF)
    validate_amount(amount)
    members = members_prepare(guild_id=guild_id, user_ids=[from_user_id, to_user_id])
    locked = accounts_lock(members.account_ids)
    stop_if_replayed(transfer_by_key, idempotency_key)
    transfers_post(members.starting_legs, locked)
    source = locked[members.wallets[from_user_id].pk]
    destination = locked[members.wallets[to_user_id].pk]
    leg = Leg(source, destination, amount, Transfer.Code.TIP, idempotency_key, "Tip")
    return transfers_post([leg], locked)[0]


def next_daily_at(now: dt.datetime) -> dt.datetime:
    """The start of the next UTC day after `now`."""
    day = now.astimezone(dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def daily_claim(*, guild_id: int, user_id: int, now: dt.datetime | None = None) -> Transfer:
    """Claim the guild's daily bonus, once per UTC day (key `daily:<guild>:<user>:<date>`).
    A second claim the same day is refused with the time of the next one."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(user_id, what="user_id")
    now = now or timezone.now()
    key = f"daily:{guild_id}:{user_id}:{now.astimezone(dt.UTC).date().isoformat()}"
    return _daily_bonus_pay(guild_id=guild_id, user_id=user_id, now=now, idempotency_key=key)


def _already_claimed(_: Transfer, call: Call) -> bool:
    next_at = next_daily_at(call["now"])
    raise AlreadyClaimed(
        MSG_DAILY_ALREADY_CLAIMED.format(next_at=f"<t:{int(next_at.timestamp())}:R>"),
        details={"next_at": next_at.isoformat()},
    )


@use_case(lookup=transfer_by_key, matches=_already_claimed)
def _daily_bonus_pay(
    *, guild_id: int, user_id: int, now: dt.datetime, idempotency_key: str
) -> Transfer:
    """The daily bonus under its day's key; a replay is the refusal of a second claim."""
    gs = guild_settings_get_or_create(guild_id=guild_id)
    if gs.daily_bonus <= 0:
        raise DomainError(MSG_DAILY_DISABLED, code="daily_disabled")
    members = members_prepare(guild_id=guild_id, user_ids=[user_id])
    locked = accounts_lock([*members.account_ids, members.treasury.pk])
    stop_if_replayed(transfer_by_key, idempotency_key)
    transfers_post(members.starting_legs, locked)
    treasury, wallet = locked[members.treasury.pk], locked[members.wallets[user_id].pk]
    leg = Leg(
        treasury, wallet, gs.daily_bonus, Transfer.Code.DAILY_BONUS, idempotency_key, "Daily bonus"
    )
    return transfers_post([leg], locked)[0]


# --- The member and guild directory (issue 13) ----------------------------------------------


_NAME_MAX = 100
_URL_MAX = 500


def _clean(text: object, limit: int) -> str:
    """A name as stored: printable text only (Discord names cannot hold control characters, but
    the directory never trusts that), trimmed to the column."""
    value = text if isinstance(text, str) else ""
    return "".join(ch for ch in value if ch.isprintable())[:limit]


def _seen_gate_key(guild_id: int, user_id: int) -> str:
    return f"member-seen:{settings.PM_DIRECTORY_NAMESPACE}:{guild_id}:{user_id}"


def member_seen(
    *,
    guild_id: int,
    user_id: int,
    display_name: str,
    username: str,
    avatar: str = "",
    guild_name: str | None = None,
    guild_icon: str = "",
    now: dt.datetime | None = None,
) -> bool:
    """Record the member's (and the guild's) current name and avatar; True when it wrote.

    Gated: at most one write per member per `PM_MEMBER_SEEN_EVERY` seconds (names change rarely,
    interactions are frequent), by an atomic cache
    `add` (no database query when the gate is shut). A member who asked to be forgotten is
    never stored again: the insert and the update both skip rows of a `forgotten` member, in
    the same statement, so a forget racing with this write still ends forgotten. One statement
    per row; no transaction of its own (each statement is atomic)."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(user_id, what="user_id")
    if not cache.add(_seen_gate_key(guild_id, user_id), 1, timeout=settings.PM_MEMBER_SEEN_EVERY):
        return False
    now = now or timezone.now()
    if guild_name is not None:
        guild_table = Guild._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {guild_table} (id, name, icon, last_seen) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET name = excluded.name, icon = excluded.icon, "
                "last_seen = excluded.last_seen",
                [guild_id, _clean(guild_name, _NAME_MAX), _clean(guild_icon, _URL_MAX), now],
            )
    table = Member._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} "
            "(guild_id, user_id, display_name, username, avatar, last_seen, forgotten) "
            "SELECT %s, %s, %s, %s, %s, %s, false "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE user_id = %s AND forgotten) "
            "ON CONFLICT (guild_id, user_id) DO UPDATE SET display_name = excluded.display_name, "
            "username = excluded.username, avatar = excluded.avatar, "
            f"last_seen = excluded.last_seen WHERE NOT {table}.forgotten",
            [
                guild_id,
                user_id,
                _clean(display_name, _NAME_MAX),
                _clean(username, _NAME_MAX),
                _clean(avatar, _URL_MAX),
                now,
                user_id,
            ],
        )
    return True


@use_case()
def member_forget(*, guild_id: int, user_id: int) -> int:
    """`/privacy forget`: erase the member's stored display name, username and avatar in every
    server, and mark them `forgotten` so that `member_seen` never stores them again. They show
    as "member #1234…" afterwards (`points.selectors.member_fallback`). Returns how many rows
    were erased (the asking guild's row is created, forgotten, if it did not exist)."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(user_id, what="user_id")
    table = Member._meta.db_table
    with connection.cursor() as cursor:
        # An upsert, not get_or_create: a `member_seen` insert racing with this one cannot
        # leave the asking guild's row named.
        cursor.execute(
            f"INSERT INTO {table} "
            "(guild_id, user_id, display_name, username, avatar, forgotten) "
            "VALUES (%s, %s, '', '', '', true) ON CONFLICT (guild_id, user_id) DO UPDATE SET "
            "display_name = '', username = '', avatar = '', forgotten = true",
            [guild_id, user_id],
        )
    return Member.objects.filter(user_id=user_id).update(
        display_name="", username="", avatar="", forgotten=True
    )
