"""Markets, their outcomes, resolution votes and the event outbox (DOMAIN §4–§6)."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Market(models.Model):
    class Mechanism(models.TextChoices):
        AMM = "amm", "Market maker"
        PARIMUTUEL = "parimutuel", "Pool"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"
        RESOLVING = "resolving", "Result proposed"
        RESOLVED = "resolved", "Resolved"
        CANCELLED = "cancelled", "Cancelled"

    guild_id = models.BigIntegerField(db_index=True)
    creator_id = models.BigIntegerField()
    question = models.CharField(max_length=500)
    description = models.TextField(
        max_length=1000,
        blank=True,
        help_text="What the question means and what counts as each outcome; resolvers and "
        "moderators decide by it.",
    )
    category = models.CharField(max_length=50, blank=True, db_index=True)
    mechanism = models.CharField(max_length=10, choices=Mechanism.choices, default=Mechanism.AMM)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    closes_at = models.DateTimeField(db_index=True)
    liquidity = models.BigIntegerField(default=0, help_text="Points the treasury put in (amm)")
    fee_bps = models.PositiveIntegerField(default=0)
    winning_outcome = models.ForeignKey(
        "markets.Outcome", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    volume = models.BigIntegerField(default=0, help_text="Points traded, buys and sells")
    trade_count = models.PositiveIntegerField(default=0)
    trader_count = models.PositiveIntegerField(default=0)
    idempotency_key = models.CharField(max_length=200)
    channel_id = models.BigIntegerField(null=True, blank=True)
    message_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by_id = models.BigIntegerField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    settled_by_id = models.BigIntegerField(null=True, blank=True)
    settled_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    settle_reason = models.CharField(max_length=500, blank=True)
    # A proposed result (status `resolving`, DOMAIN §6.1): who proposed which outcome, and when it
    # pays out unless disputed (`dispute_deadline` NULL: it waits for a second resolver).
    # `proposal_round` counts proposals, so disputes of an undone proposal do not carry over.
    proposed_outcome = models.ForeignKey(
        "markets.Outcome", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    proposed_at = models.DateTimeField(null=True, blank=True)
    proposed_by_id = models.BigIntegerField(null=True, blank=True)
    proposal_reason = models.CharField(max_length=500, blank=True)
    proposal_conflicted = models.BooleanField(
        default=False,
        help_text="Whether the member who proposed the result held a position in this market "
        "when proposing.",
    )
    dispute_deadline = models.DateTimeField(null=True, blank=True, db_index=True)
    disputed_at = models.DateTimeField(null=True, blank=True)
    proposal_round = models.PositiveIntegerField(default=0)
    known_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the outcome became publicly known, as the proposal or the settlement "
        "stated it: trades after it are reversed when the market settles.",
    )
    # docs/domain.md §10; help texts are read by moderators, so they say it in words.
    season = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The server's season in which it was settled; its trades count in that "
        "season's leaderboards.",
    )

    # Filled by the selectors' Prefetch("outcomes", to_attr="ordered"): outcomes by position.
    ordered: list["Outcome"]

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("resolve_market", "Can resolve markets"),
            ("cancel_market", "Can cancel and refund markets"),
            ("close_market", "Can close markets early"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="market_idempotency_key"),
            models.CheckConstraint(
                condition=Q(status="resolved", winning_outcome__isnull=False)
                | (~Q(status="resolved") & Q(winning_outcome__isnull=True)),
                name="market_winner_iff_resolved",
            ),
            models.CheckConstraint(
                condition=Q(status="resolving", proposed_outcome__isnull=False)
                | (~Q(status="resolving") & Q(proposed_outcome__isnull=True)),
                name="market_proposal_iff_resolving",
            ),
        ]
        indexes = [models.Index(fields=["guild_id", "status", "-id"], name="market_guild_status")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.question[:60]}"

    @property
    def is_settled(self) -> bool:
        return self.status in (self.Status.RESOLVED, self.Status.CANCELLED)


class Outcome(models.Model):
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="outcomes")
    position = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=100)
    pool = models.BigIntegerField(default=0, help_text="Micro-shares held by the market maker")
    staked = models.BigIntegerField(default=0, help_text="Points staked (pari-mutuel)")

    class Meta:
        ordering = ["market_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["market", "position"], name="outcome_position_unique"),
            models.CheckConstraint(
                condition=Q(pool__gte=0) & Q(staked__gte=0), name="outcome_nonnegative"
            ),
        ]

    def __str__(self) -> str:
        return self.label


class ResolutionVote(models.Model):
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="votes")
    voter_id = models.BigIntegerField()
    outcome = models.ForeignKey(Outcome, on_delete=models.PROTECT, related_name="+")
    known_at = models.DateTimeField(
        null=True, blank=True, help_text="When the voter says the outcome became known."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["market", "voter_id"], name="one_vote_per_voter")
        ]

    def __str__(self) -> str:
        return f"{self.voter_id} → {self.outcome_id}"


class Dispute(models.Model):
    """A member's objection to a proposed result (DOMAIN §6.1): one per member per proposal."""

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="disputes")
    proposal_round = models.PositiveIntegerField()
    user_id = models.BigIntegerField()
    reason = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["market", "proposal_round", "user_id"], name="one_dispute_per_member"
            )
        ]

    def __str__(self) -> str:
        return f"dispute of #{self.market_id} by {self.user_id}"


class MarketEvent(models.Model):
    """The append-only outbox (DOMAIN §6): written in the same transaction as the change it
    describes; the bot's notifier and the dashboard read it by increasing id."""

    class Type(models.TextChoices):
        CREATED = "market_created"
        TRADE = "trade"
        CLOSED = "market_closed"
        VOTE = "vote_cast"
        PROPOSED = "resolution_proposed"
        DISPUTED = "resolution_disputed"
        UNDONE = "proposal_undone"
        RESOLVED = "market_resolved"
        CANCELLED = "market_cancelled"
        ORDERS = "orders_changed"
        """A limit order was placed, cancelled or expired (DOMAIN §4.7; its fills are trades)."""

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="events")
    guild_id = models.BigIntegerField(db_index=True)
    type = models.CharField(max_length=20, choices=Type.choices)
    payload = models.JSONField(default=dict)
    # Two keys, NULL (not "") when absent so the unique constraints ignore them:
    # `idempotency_key` is the natural key of a state change that may happen once per market
    # (`create:<m>`, `close:<m>`, `resolve:<m>`, `cancel:<m>`); `request_key` is the key of the
    # request that caused the event (`discord:<interaction>`, `admin:<uuid>`), so a replayed
    # request finds its first result.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    request_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    actor_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="marketevent_idempotency_key"),
            models.UniqueConstraint(fields=["request_key"], name="marketevent_request_key"),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"
