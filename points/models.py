"""The points ledger (DOMAIN §2–§3): guild settings, accounts and append-only transfers."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from core.directory import guild_fallback


def quick_amounts_default() -> list[int]:
    """Twitch-like presets (issue 26): 10, 100 and 1,000 points."""
    return [10, 100, 1000]


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
        help_text="The channel where the bot asks moderators to look at disputed results; "
        "empty: the announcement channel.",
    )
    requests_per_minute = models.PositiveIntegerField(
        default=100,
        help_text="Commands the whole server may send the bot in a minute; more wait for the "
        "next minute.",
    )

    class ResolutionMode(models.TextChoices):
        VOTE = "vote", "Resolvers vote"
        CREATOR = "creator", "The creator proposes"

    resolution_mode = models.CharField(
        max_length=10,
        choices=ResolutionMode.choices,
        default=ResolutionMode.VOTE,
        help_text="How a closed market's result is decided: resolvers vote, or "
        "the creator proposes it; moderators can always overrule.",
    )
    dispute_window_minutes = models.PositiveIntegerField(
        default=60,
        help_text="How long a proposed result waits for disputes before paying out, in minutes "
        "(0 = pay at once).",
    )
    dispute_hold_hours = models.PositiveIntegerField(
        default=48,
        help_text="How long a disputed result waits for moderators, in hours: they are reminded "
        "halfway, and at the end the market is cancelled and every trader refunded.",
    )
    conflict_of_interest = models.BooleanField(
        default=True,
        help_text="A resolver who holds a position in a market cannot decide it.",
    )

    class SeasonLength(models.TextChoices):
        OFF = "off", "No seasons"
        MONTH = "month", "Calendar months (UTC)"
        QUARTER = "quarter", "Calendar quarters (UTC)"
        CUSTOM = "custom", "Custom end dates"

    # docs/domain.md §10; help texts are read by moderators, so they say it in words.
    season_length = models.CharField(
        max_length=10,
        choices=SeasonLength.choices,
        default=SeasonLength.OFF,
        help_text="How long a season lasts; leaderboards are kept per season and all-time.",
    )
    season_ends = models.JSONField(
        default=list,
        blank=True,
        help_text="Custom seasons: the end of each season, ISO dates in UTC, in order.",
    )
    season_role_id = models.BigIntegerField(
        null=True, blank=True, help_text="A role the bot gives the top 3 of a season (optional)."
    )
    season_reset = models.BooleanField(
        default=False,
        help_text="At a season's end, every wallet goes back to the starting balance.",
    )
    quick_amounts = models.JSONField(
        default=quick_amounts_default,
        help_text="The one-click amounts under a market message, in points: a pool stakes at "
        "once (with a 10-second undo), a market maker opens the quote with the amount filled in.",
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        help_text="The server's time zone (an IANA name like Europe/Paris): a time of day typed "
        "for “known at” (the moment the outcome became known, e.g. 21:00) is read in it.",
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
        # The server's name where the query annotated it (the back office does), as everywhere
        # else people read a server; never "Guild 1111…".
        return getattr(self, "guild_name", None) or guild_fallback(self.guild_id)


class Account(models.Model):
    """A balance holder. Treasury may go negative; wallets and escrows never (DOMAIN §3).

    `drip` is a guild's DRIP clearing account (docs/drip.md): like the treasury it is an issuer
    and may go negative — `-balance` is the DRIP currency the guild's members hold here.

    `orders` is a market's order account (DOMAIN §4.7): it holds the budgets of the market's
    resting buy orders, outside the escrow's collateral, and is never negative."""

    class Kind(models.TextChoices):
        TREASURY = "treasury", "Treasury"
        WALLET = "wallet", "Wallet"
        ESCROW = "escrow", "Escrow"
        DRIP = "drip", "DRIP clearing"
        ORDERS = "orders", "Order account"

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
                    | Q(kind="orders", owner_id__isnull=True, market__isnull=False)
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
            models.UniqueConstraint(
                fields=["market"], condition=Q(kind="orders"), name="one_order_account_per_market"
            ),
        ]

    def __str__(self) -> str:
        if self.kind == self.Kind.WALLET:
            return f"wallet {self.owner_id} @ {self.guild_id}"
        if self.kind == self.Kind.ESCROW:
            return f"escrow of market {self.market_id}"
        if self.kind == self.Kind.DRIP:
            return f"DRIP clearing @ {self.guild_id}"
        if self.kind == self.Kind.ORDERS:
            return f"order account of market {self.market_id}"
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
        ORDER_PLACE = "order_place"
        ORDER_RELEASE = "order_release"
        # A trade made after the outcome was known, undone at settlement (docs/domain.md §6.2).
        REVERSAL = "reversal"
        REVERSAL_SHORTFALL = "reversal_shortfall"
        SEASON_RESET = "season_reset"

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


class Season(models.Model):
    """One season of a guild (docs/domain.md §10): open while it runs, then closed with its
    final table archived. Markets settled while it is open carry its number (their trades count
    in it); a settlement takes this row's lock for a moment, the close takes it for good, so a
    market settles either before the close (in this season) or after (in the next)."""

    class Status(models.TextChoices):
        OPEN = "open", "Running"
        CLOSED = "closed", "Closed"

    guild_id = models.BigIntegerField()
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=6, choices=Status.choices, default=Status.OPEN)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    balances_start = models.JSONField(
        default=dict, blank=True, help_text="Every wallet's balance when the season began."
    )
    balances_end = models.JSONField(
        default=dict, blank=True, help_text="Every wallet's balance when the season closed."
    )
    table = models.JSONField(
        default=dict, blank=True, help_text="The final leaderboards, as posted at the end."
    )
    announced_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When a bot process claimed the post of the final table (a claim older than "
        "a minute without a post is taken over).",
    )
    posted_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the bot was done with the final table: posted, or given up for the "
        "reason below.",
    )
    post_detail = models.CharField(
        max_length=200, blank=True, help_text="Why the final table was not posted (empty: it was)."
    )
    post_round = models.PositiveIntegerField(
        default=0, help_text="How often staff asked for the table to be posted again."
    )
    rewarded = models.JSONField(
        default=list, blank=True, help_text="The members the bot gave the reward role to."
    )

    class Meta:
        ordering = ["guild_id", "number"]
        permissions = [("announce_season", "Can post a season's final table again")]
        constraints = [
            models.UniqueConstraint(fields=["guild_id", "number"], name="season_number_unique"),
            models.UniqueConstraint(
                fields=["guild_id"], condition=Q(status="open"), name="one_open_season"
            ),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="season_ends_after_start"
            ),
        ]

    def __str__(self) -> str:
        # The server's name where the query annotated it (the back office does).
        server = getattr(self, "guild_name", None) or guild_fallback(self.guild_id)
        return f"Season {self.number} of {server}"
