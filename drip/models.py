"""The DRIP bridge's state (docs/drip.md): each guild's link to a DRIP realm, and the durable
outbox of point moves between DRIP and the local ledger."""

from django.db import models
from django.db.models import Q


class DripLink(models.Model):
    """A guild's DRIP realm. `api_key_encrypted` is a Fernet token (`drip.crypto`); the key itself
    is never stored, shown, logged or sent anywhere but DRIP's `Authorization` header."""

    guild_id = models.BigIntegerField(primary_key=True)
    realm_id = models.CharField(max_length=64)
    realm_point_id = models.CharField(max_length=64, blank=True)
    api_key_encrypted = models.TextField()
    deposit_limit_per_day = models.BigIntegerField(
        default=0, help_text="Points one member may deposit per UTC day (0 = no limit)"
    )
    withdraw_limit_per_day = models.BigIntegerField(
        default=0, help_text="Points one member may withdraw per UTC day (0 = no limit)"
    )
    auto_withdraw_payouts = models.BooleanField(
        default=False, help_text="Withdraw market payouts and refunds to DRIP automatically"
    )
    auto_withdraw_after = models.BigIntegerField(
        default=0, help_text="Last ledger transfer id the automatic withdrawals considered"
    )
    enabled = models.BooleanField(default=True)
    last_error = models.CharField(max_length=300, blank=True)
    linked_by = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "DRIP link"
        constraints = [
            models.CheckConstraint(
                condition=Q(deposit_limit_per_day__gte=0) & Q(withdraw_limit_per_day__gte=0),
                name="driplink_limits_nonnegative",
            )
        ]

    def __str__(self) -> str:
        return f"guild {self.guild_id} → realm {self.realm_id}"


class DripTransfer(models.Model):
    """One move between a member's DRIP balance and their wallet here; the outbox row the worker
    sends (withdrawals) and the record of a deposit. State machine (docs/drip.md):

        deposit:  sending → confirmed | failed | in_doubt
        withdraw: pending → sending → confirmed | failed (reversed) | pending (not applied,
                  retried later) | in_doubt
        in_doubt → confirmed | failed (a moderator decides; withdrawals are then reversed)
    """

    class Direction(models.TextChoices):
        DEPOSIT = "deposit", "DRIP → here"
        WITHDRAW = "withdraw", "here → DRIP"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        CONFIRMED = "confirmed"
        FAILED = "failed"
        IN_DOUBT = "in_doubt"

    just_created: bool = False
    """Not stored: set on the row `drip_deposit_begin` created (a replay returns one without),
    so the caller sends only a deposit it recorded itself."""

    guild_id = models.BigIntegerField()
    user_id = models.BigIntegerField()
    direction = models.CharField(max_length=8, choices=Direction.choices)
    amount = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, db_index=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    batch_id = models.CharField(max_length=40, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    drip_balance_before = models.BigIntegerField(
        null=True, blank=True, help_text="The member's DRIP balance DRIP showed before the send"
    )
    drip_balance_after = models.BigIntegerField(null=True, blank=True)
    initiator_id = models.CharField(
        max_length=64,
        blank=True,
        help_text="The initiatorId sent with the write: find it in DRIP's activity log",
    )
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    request_id = models.CharField(max_length=100, blank=True)
    recheck_note = models.CharField(max_length=300, blank=True)
    resolution = models.CharField(max_length=30, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    member_notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When the member was DMed that a withdrawal came back"
    )

    class Meta:
        verbose_name = "DRIP transfer"
        ordering = ["-id"]
        permissions = [("resolve_driptransfer", "Can decide in-doubt DRIP transfers")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="driptransfer_amount_positive"),
        ]
        indexes = [
            models.Index(fields=["guild_id", "status", "next_attempt_at"], name="drip_due"),
            models.Index(fields=["guild_id", "user_id", "created_at"], name="drip_member_day"),
        ]

    def __str__(self) -> str:
        return f"DRIP {self.direction} #{self.pk} {self.amount} ({self.status})"

    @property
    def signed_amount(self) -> int:
        """The change to the member's DRIP balance this transfer asks for."""
        return -self.amount if self.direction == self.Direction.DEPOSIT else self.amount
