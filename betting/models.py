"""Positions and the trade log (the trade log is the price history)."""

from django.db import models
from django.db.models import Q


class Position(models.Model):
    """What one member holds of one outcome. `shares` are micro-shares (amm); for pari-mutuel
    markets the stake is `points_spent`."""

    market = models.ForeignKey("markets.Market", on_delete=models.PROTECT, related_name="positions")
    outcome = models.ForeignKey("markets.Outcome", on_delete=models.PROTECT, related_name="+")
    guild_id = models.BigIntegerField()
    user_id = models.BigIntegerField(db_index=True)
    shares = models.BigIntegerField(default=0)
    points_spent = models.BigIntegerField(default=0)
    points_received = models.BigIntegerField(default=0)
    payout = models.BigIntegerField(default=0, help_text="Points paid at settlement")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["market", "user_id", "outcome"], name="one_position_per_outcome"
            ),
            models.CheckConstraint(
                condition=Q(shares__gte=0)
                & Q(points_spent__gte=0)
                & Q(points_received__gte=0)
                & Q(payout__gte=0),
                name="position_nonnegative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.outcome_id}"


class Trade(models.Model):
    class Kind(models.TextChoices):
        BUY = "buy", "Buy"
        SELL = "sell", "Sell"
        STAKE = "stake", "Stake"

    market = models.ForeignKey("markets.Market", on_delete=models.PROTECT, related_name="trades")
    outcome = models.ForeignKey("markets.Outcome", on_delete=models.PROTECT, related_name="+")
    guild_id = models.BigIntegerField()
    user_id = models.BigIntegerField(db_index=True)
    kind = models.CharField(max_length=5, choices=Kind.choices)
    amount = models.BigIntegerField(
        help_text="Points paid (buy, stake) or returned (sell), gross; 0 for a sale that closes "
        "a position worth less than a point"
    )
    shares = models.BigIntegerField(default=0, help_text="Micro-shares received or burned")
    fee = models.BigIntegerField(default=0)
    # Probabilities in parts per million, for display and the price chart only (DOMAIN §1).
    price_before_ppm = models.PositiveIntegerField()
    price_after_ppm = models.PositiveIntegerField()
    prices_after_ppm = models.JSONField(default=list)
    idempotency_key = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # DOMAIN §4.7; help texts are read by moderators, so they say it in words.
    order = models.ForeignKey(
        "betting.Order",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="trades",
        help_text="The limit order (placed with /order) that this trade filled; empty for a "
        "trade made at the market price.",
    )
    # Not stored: set by `trades_apply` on the trades it has just written, so a reply needs no
    # query (absent on trades read back, e.g. a replay).
    left_in_pool: int
    """Sales: micro-shares sold beyond what the points cost, kept by the pool (DOMAIN §4.4)."""
    balance_after: int
    """The member's wallet balance right after this trade."""

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="trade_idempotency_key"),
            models.CheckConstraint(
                # A 0-point sale closes a position worth less than a point (DOMAIN §4.4).
                condition=(Q(amount__gt=0) | Q(kind="sell", amount=0))
                & Q(shares__gte=0)
                & Q(fee__gte=0),
                name="trade_amounts_valid",
            ),
        ]
        indexes = [models.Index(fields=["market", "id"], name="trade_market_order")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} on {self.outcome_id}"


class TradeReversal(models.Model):
    """The mark of a trade reversed at settlement because it came after the outcome was known
    (docs/domain.md §6.2), linked to the transfer that settled it with its member's wallet.

    A narrow table of its own rather than columns on `Trade`: a settlement reversing a thousand
    trades writes a thousand small rows with `COPY` instead of updating a thousand wide rows
    of a table with nine indexes (docs/performance.md, "Reversal marks")."""

    trade = models.OneToOneField(
        Trade, primary_key=True, on_delete=models.PROTECT, related_name="reversal"
    )
    # docs/domain.md §6.2, in words for moderators.
    reversed_at = models.DateTimeField(
        help_text="When settlement undid this trade before the payout: it came after the "
        "moment the outcome became publicly known.",
    )
    transfer = models.ForeignKey(
        "points.Transfer",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reversed_trades",
        help_text="The transfer that settled this reversed trade with its member's wallet (one "
        "per member and market: the net of their reversed trades; empty when they net to 0).",
    )

    def __str__(self) -> str:
        return f"trade {self.trade_id} reversed"


class Order(models.Model):
    """A limit order (DOMAIN §4.7): conditional trading with the market maker while the price is
    on its side of `limit_ppm`. A buy order's `remaining` is points of its budget still in the
    market's order account; a sell order's `remaining` is micro-shares of the position it still
    reserves."""

    class Side(models.TextChoices):
        BUY = "buy", "Buy"
        SELL = "sell", "Sell"

    class Status(models.TextChoices):
        RESTING = "resting", "Resting"
        FILLED = "filled", "Filled"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"
        RELEASED = "released", "Released (market left open)"

    market = models.ForeignKey("markets.Market", on_delete=models.PROTECT, related_name="orders")
    outcome = models.ForeignKey("markets.Outcome", on_delete=models.PROTECT, related_name="+")
    guild_id = models.BigIntegerField()
    user_id = models.BigIntegerField(db_index=True)
    side = models.CharField(max_length=4, choices=Side.choices)
    limit_ppm = models.PositiveIntegerField(help_text="The limit price in parts per million")
    size = models.BigIntegerField(help_text="Budget in points (buy) or micro-shares (sell)")
    remaining = models.BigIntegerField(help_text="Budget or micro-shares not yet filled")
    filled_points = models.BigIntegerField(default=0, help_text="Points paid (buy) or received")
    filled_shares = models.BigIntegerField(default=0, help_text="Micro-shares bought or sold")
    fills = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.RESTING)
    expires_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="order_idempotency_key"),
            models.CheckConstraint(
                condition=Q(limit_ppm__gt=0, limit_ppm__lt=1_000_000)
                & Q(size__gt=0)
                & Q(remaining__gte=0)
                & Q(remaining__lte=models.F("size")),
                name="order_values_valid",
            ),
        ]
        indexes = [
            models.Index(
                fields=["market", "status"],
                condition=Q(status="resting"),
                name="order_resting",
            )
        ]

    def __str__(self) -> str:
        return f"{self.side} order #{self.pk} on {self.outcome_id} at {self.limit_ppm} ppm"
