"""The points ledger (DOMAIN §2–§3): guild settings, accounts and append-only transfers."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class GuildSettings(models.Model):
    """Per-guild configuration (DOMAIN §2); created on first use from `PM_GUILD_DEFAULTS`."""

    guild_id = models.BigIntegerField(primary_key=True)
    starting_balance = models.BigIntegerField()
    daily_bonus = models.BigIntegerField()
    max_bet = models.BigIntegerField()
    default_liquidity = models.BigIntegerField()
    fee_bps = models.PositiveIntegerField()
    min_resolution_votes = models.PositiveIntegerField()
    auto_refund_hours = models.PositiveIntegerField()
    slippage_bps = models.PositiveIntegerField(
        default=200,
        help_text="How far a confirmed trade may fall short of its quote, in basis points "
        "(200 = 2 %); a price that moved further is refused.",
    )
    creator_role_ids = models.JSONField(default=list, blank=True)
    resolver_role_ids = models.JSONField(default=list, blank=True)
    announce_channel_id = models.BigIntegerField(null=True, blank=True)
    moderator_channel_id = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Where the bot asks moderators to look at disputed results (docs/domain.md "
        "§6.1); empty: the announcement channel.",
    )
    requests_per_minute = models.PositiveIntegerField(
        default=100, help_text="Commands the whole server may send the bot a minute (DOMAIN §7)"
    )

    class ResolutionMode(models.TextChoices):
        VOTE = "vote", "Resolvers vote"
        CREATOR = "creator", "The creator proposes"

    resolution_mode = models.CharField(
        max_length=10,
        choices=ResolutionMode.choices,
        default=ResolutionMode.VOTE,
        help_text="How a closed market's result is decided (DOMAIN §6.1): resolvers vote, or "
        "the creator proposes it; moderators can always overrule.",
    )
    dispute_window_minutes = models.PositiveIntegerField(
        default=60,
        help_text="How long a proposed result waits for disputes before paying out, in minutes "
        "(0 = pay at once) (DOMAIN §6.1).",
    )
    conflict_of_interest = models.BooleanField(
        default=True,
        help_text="A resolver who holds a position in a market cannot decide it (DOMAIN §6.1).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "guild settings"
        verbose_name_plural = "guild settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(starting_balance__gte=0)
                & Q(daily_bonus__gte=0)
                & Q(max_bet__gte=1)
                & Q(default_liquidity__gte=1)
                & Q(fee_bps__lte=5000)
                & Q(min_resolution_votes__gte=1)
                & Q(auto_refund_hours__gte=1),
                name="guildsettings_values_in_range",
            ),
            models.CheckConstraint(
                condition=Q(requests_per_minute__gte=1),
                name="guildsettings_requests_per_minute_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"Guild {self.guild_id}"


class Account(models.Model):
    """A balance holder. Treasury may go negative; wallets and escrows never (DOMAIN §3).

    `drip` is a guild's DRIP clearing account (docs/drip.md): like the treasury it is an issuer
    and may go negative — `-balance` is the DRIP currency the guild's members hold here."""

    class Kind(models.TextChoices):
        TREASURY = "treasury", "Treasury"
        WALLET = "wallet", "Wallet"
        ESCROW = "escrow", "Escrow"
        DRIP = "drip", "DRIP clearing"

    ISSUER_KINDS = frozenset({Kind.TREASURY, Kind.DRIP})
    """Kinds that may go negative (they issue points into the guild's wallets)."""

    guild_id = models.BigIntegerField(db_index=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    owner_id = models.BigIntegerField(null=True, blank=True, help_text="Discord user id (wallets)")
    market = models.ForeignKey(
        "markets.Market", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    balance = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [("adjust_balance", "Can grant or deduct points from a member's wallet")]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["treasury", "drip"]) | Q(balance__gte=0),
                name="account_balance_nonnegative",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind__in=["treasury", "drip"], owner_id__isnull=True, market__isnull=True)
                    | Q(kind="wallet", owner_id__isnull=False, market__isnull=True)
                    | Q(kind="escrow", owner_id__isnull=True, market__isnull=False)
                ),
                name="account_kind_shape",
            ),
            models.UniqueConstraint(
                fields=["guild_id"], condition=Q(kind="treasury"), name="one_treasury_per_guild"
            ),
            models.UniqueConstraint(
                fields=["guild_id"], condition=Q(kind="drip"), name="one_drip_clearing_per_guild"
            ),
            models.UniqueConstraint(
                fields=["guild_id", "owner_id"],
                condition=Q(kind="wallet"),
                name="one_wallet_per_member",
            ),
            models.UniqueConstraint(
                fields=["market"], condition=Q(kind="escrow"), name="one_escrow_per_market"
            ),
        ]

    def __str__(self) -> str:
        if self.kind == self.Kind.WALLET:
            return f"wallet {self.owner_id} @ {self.guild_id}"
        if self.kind == self.Kind.ESCROW:
            return f"escrow of market {self.market_id}"
        if self.kind == self.Kind.DRIP:
            return f"DRIP clearing @ {self.guild_id}"
        return f"treasury @ {self.guild_id}"


class Transfer(models.Model):
    """One movement of points. Append-only: never updated or deleted (DOMAIN §3)."""

    class Code(models.TextChoices):
        STARTING_BALANCE = "starting_balance"
        DAILY_BONUS = "daily_bonus"
        GRANT = "grant"
        DEDUCT = "deduct"
        TIP = "tip"
        LIQUIDITY = "liquidity"
        BUY = "buy"
        SELL = "sell"
        FEE = "fee"
        PAYOUT = "payout"
        REFUND = "refund"
        LIQUIDITY_RETURN = "liquidity_return"
        CORRECTION = "correction"
        DRIP_DEPOSIT = "drip_deposit"
        DRIP_WITHDRAW = "drip_withdraw"

    guild_id = models.BigIntegerField(db_index=True)
    source = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="outgoing")
    destination = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="incoming")
    amount = models.BigIntegerField()
    code = models.CharField(max_length=20, choices=Code.choices)
    idempotency_key = models.CharField(max_length=200)
    memo = models.CharField(max_length=500, blank=True)
    actor_id = models.BigIntegerField(null=True, blank=True, help_text="Discord user who acted")
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Django user who acted (admin)",
    )
    market = models.ForeignKey(
        "markets.Market", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="transfer_amount_positive"),
            models.CheckConstraint(
                condition=~Q(source=F("destination")), name="transfer_distinct_accounts"
            ),
            models.UniqueConstraint(fields=["idempotency_key"], name="transfer_idempotency_key"),
        ]
        indexes = [
            models.Index(fields=["source", "-id"], name="transfer_source_recent"),
            models.Index(fields=["destination", "-id"], name="transfer_dest_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.amount} #{self.pk}"


class AuditEvent(models.Model):
    """Who did what, when and why: append-only, written in the same transaction as the change."""

    actor_discord_id = models.BigIntegerField(null=True, blank=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    guild_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    action = models.CharField(max_length=40, db_index=True)
    target_type = models.CharField(max_length=40)
    target_id = models.CharField(max_length=40)
    reason = models.CharField(max_length=500, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id}"

    @property
    def actor_label(self) -> str:
        if self.actor_user_id:
            return f"admin user #{self.actor_user_id}"
        if self.actor_discord_id:
            return f"Discord <@{self.actor_discord_id}>"
        return "system"


class Guild(models.Model):
    """A Discord server as the bot last saw it (the member and guild directory, issue 13): its
    name and icon, so that people read "Book club" rather than an 18-digit id."""

    id = models.BigIntegerField(primary_key=True, help_text="Discord guild id")
    name = models.CharField(max_length=100, blank=True)
    icon = models.URLField(max_length=500, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name or f"server #{str(self.id)[:4]}…"


class Member(models.Model):
    """Who holds a wallet, as the bot last saw them (issue 13). Upserted from interactions at
    most once per member per `PM_MEMBER_SEEN_EVERY` seconds (`points.services.member_seen`).
    `/privacy forget` blanks the stored name, username and avatar and sets `forgotten`, which
    the upsert honours: the member then shows as "member #1234…" everywhere."""

    guild_id = models.BigIntegerField()
    user_id = models.BigIntegerField()
    display_name = models.CharField(max_length=100, blank=True)
    username = models.CharField(max_length=100, blank=True)
    avatar = models.URLField(max_length=500, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    forgotten = models.BooleanField(
        default=False, help_text="The member asked the bot to forget their name (/privacy forget)"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["guild_id", "user_id"], name="one_member_per_guild")
        ]
        indexes = [models.Index(fields=["user_id"], name="member_user")]

    def __str__(self) -> str:
        return self.display_name or self.username or f"member #{str(self.user_id)[:4]}…"


class StaffLink(models.Model):
    """A back-office account's Discord identity, so the back office can show a moderator their
    own position before they decide a market (docs/domain.md §6.1). Set by a superuser."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="discord_link"
    )
    discord_user_id = models.BigIntegerField(help_text="The staff member's Discord user id")

    class Meta:
        verbose_name = "staff Discord link"

    def __str__(self) -> str:
        return f"{self.user} ↔ {self.discord_user_id}"
