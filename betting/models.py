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
