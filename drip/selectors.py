"""DRIP bridge reads (docs/drip.md)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q, Sum
from django.utils import timezone

from core.secrets import secret_register
from points.models import Account

from . import crypto
from .errors import MSG_DISABLED, MSG_NOT_LINKED, DripNotLinked
from .models import DripLink, DripTransfer

Status, Direction = DripTransfer.Status, DripTransfer.Direction


@dataclass(frozen=True)
class LinkCredentials:
    guild_id: int
    realm_id: str
    realm_point_id: str
    api_key: str

    def __repr__(self) -> str:  # never print the key, even in a traceback's locals
        return f"LinkCredentials(guild_id={self.guild_id}, realm_id={self.realm_id!r})"


def drip_link_get(*, guild_id: int) -> DripLink | None:
    return DripLink.objects.filter(guild_id=guild_id).first()


def drip_link_credentials(*, guild_id: int) -> LinkCredentials:
    """The guild's realm and its decrypted API key (registered with the log/Sentry scrubber)."""
    link = drip_link_get(guild_id=guild_id)
    if link is None:
        raise DripNotLinked(MSG_NOT_LINKED)
    if not link.enabled:
        raise DripNotLinked(MSG_DISABLED, code="drip_disabled")
    api_key = crypto.secret_decrypt(link.api_key_encrypted)
    secret_register(api_key)
    return LinkCredentials(guild_id, link.realm_id, link.realm_point_id, api_key)


def drip_transfer_by_key(*, idempotency_key: str) -> DripTransfer | None:
    return DripTransfer.objects.filter(idempotency_key=idempotency_key).first()


def drip_links_unusable() -> dict[int, str]:
    """Enabled links whose stored key cannot be decrypted, by guild, with the host's words (for
    the worker's `/health/ready`). Decrypts each key; nothing is kept."""
    out: dict[int, str] = {}
    for link in DripLink.objects.filter(enabled=True).order_by("guild_id"):
        try:
            crypto.secret_decrypt(link.api_key_encrypted)
        except crypto.EncryptionUnavailable as exc:
            out[link.guild_id] = str(exc.details.get("host") or exc.message)
    return out


def drip_guilds_auto_withdraw() -> list[int]:
    return list(
        DripLink.objects.filter(enabled=True, auto_withdraw_payouts=True)
        .order_by("guild_id")
        .values_list("guild_id", flat=True)
    )


def drip_guilds_due(*, now: dt.datetime | None = None) -> list[int]:
    """Guilds with an enabled link and withdrawals due for sending."""
    now = now or timezone.now()
    linked = DripLink.objects.filter(enabled=True).values_list("guild_id", flat=True)
    return sorted(
        set(
            DripTransfer.objects.filter(
                guild_id__in=list(linked),
                direction=Direction.WITHDRAW,
                status=Status.PENDING,
            )
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .values_list("guild_id", flat=True)
        )
    )


def drip_backlog() -> dict[str, int]:
    """Open transfers by status (pending, sending, in_doubt), over every guild."""
    rows = (
        DripTransfer.objects.filter(status__in=[Status.PENDING, Status.SENDING, Status.IN_DOUBT])
        .values("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    out = {Status.PENDING: 0, Status.SENDING: 0, Status.IN_DOUBT: 0}
    out.update({r["status"]: r["n"] for r in rows})
    return {str(k): v for k, v in out.items()}


@dataclass(frozen=True)
class DripTotals:
    clearing_balance: int
    confirmed_deposits: int
    confirmed_withdrawals: int
    open_withdrawals: int

    @property
    def held_here(self) -> int:
        """DRIP currency held on the local ledger: −clearing balance."""
        return -self.clearing_balance


def drip_totals(*, guild_id: int) -> DripTotals:
    """The conservation check of docs/drip.md: −clearing = confirmed deposits − confirmed
    withdrawals − withdrawals still open (pending, sending or in doubt)."""
    clearing = Account.objects.filter(guild_id=guild_id, kind=Account.Kind.DRIP).first()
    sums = {
        (r["direction"], r["status"]): r["s"]
        for r in DripTransfer.objects.filter(guild_id=guild_id)
        .values("direction", "status")
        .annotate(s=Sum("amount"))
        .order_by()
    }
    open_w = sum(
        sums.get((Direction.WITHDRAW, s), 0) or 0
        for s in (Status.PENDING, Status.SENDING, Status.IN_DOUBT)
    )
    return DripTotals(
        clearing_balance=clearing.balance if clearing else 0,
        confirmed_deposits=sums.get((Direction.DEPOSIT, Status.CONFIRMED), 0) or 0,
        confirmed_withdrawals=sums.get((Direction.WITHDRAW, Status.CONFIRMED), 0) or 0,
        open_withdrawals=open_w,
    )


@dataclass(frozen=True)
class MemberDrip:
    wallet: int
    pending_withdrawals: int
    in_doubt: int


def drip_member_summary(*, guild_id: int, user_id: int) -> MemberDrip:
    wallet = Account.objects.filter(
        guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id
    ).first()
    rows = DripTransfer.objects.filter(guild_id=guild_id, user_id=user_id)
    pending = (
        rows.filter(
            direction=Direction.WITHDRAW, status__in=[Status.PENDING, Status.SENDING]
        ).aggregate(s=Sum("amount"))["s"]
        or 0
    )
    return MemberDrip(
        wallet=wallet.balance if wallet else 0,
        pending_withdrawals=pending,
        in_doubt=rows.filter(status=Status.IN_DOUBT).count(),
    )


def drip_reversals_to_notify(*, limit: int = 50) -> list[DripTransfer]:
    """Withdrawals that failed (their points came back) whose member was not DMed yet."""
    return list(
        DripTransfer.objects.filter(
            direction=Direction.WITHDRAW, status=Status.FAILED, member_notified_at__isnull=True
        ).order_by("pk")[:limit]
    )


def drip_in_doubt_unchecked(*, limit: int = 50) -> list[DripTransfer]:
    """In-doubt transfers without re-check evidence yet."""
    return list(DripTransfer.objects.filter(status=Status.IN_DOUBT, recheck_note="")[:limit])


def drip_transfers_in_doubt(*, guild_id: int | None = None) -> list[DripTransfer]:
    qs = DripTransfer.objects.filter(status=Status.IN_DOUBT)
    if guild_id is not None:
        qs = qs.filter(guild_id=guild_id)
    return list(qs.order_by("pk"))
