"""State the Discord bot keeps for itself: where the notifier stands in the `MarketEvent`
outbox, which notifications it already delivered, and each member's notification choice."""

from django.db import models


class NotificationCursor(models.Model):
    """The id of the last outbox event the notifier finished. One row per notifier (`name`), so
    a restart continues after it instead of losing or repeating events."""

    name = models.CharField(max_length=50, primary_key=True)
    last_event_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_event_id}"


class NotificationDelivery(models.Model):
    """One message the notifier owes for one event: a row of the delivery queue while
    `pending`, then the record that it was sent (or deliberately skipped, or given up). The
    unique (event, target) pair is what makes every message go out at most once: planning an
    event again (after a restart) adds nothing, and the workers send only pending rows.

    Two lanes, each with its own worker: `channel` (announcements, settlement summaries) and
    `dm` (paced for Discord's anti-spam), so a settlement of thousands of DMs never holds up an
    announcement."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        SKIPPED = "skipped"
        FAILED = "failed"

    class Lane(models.TextChoices):
        CHANNEL = "channel"
        DM = "dm"

    class Kind(models.TextChoices):
        ANNOUNCE = "announce", "New market post (rendered when sent)"
        SETTLEMENT = "settlement", "Resolution or cancellation summary (rendered when sent)"
        DM = "dm", "Direct message (`content`)"
        FILLS = "fills", "A member's limit order fills on one market, coalesced (`content`)"

    event_id = models.BigIntegerField()
    target = models.CharField(max_length=60, help_text="dm:<user>, channel:<id> or edit:<id>")
    status = models.CharField(max_length=8, choices=Status.choices)
    detail = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    lane = models.CharField(max_length=8, choices=Lane.choices, default=Lane.CHANNEL)
    kind = models.CharField(max_length=12, choices=Kind.choices, blank=True)
    market_id = models.BigIntegerField(null=True, blank=True)
    content = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event_id", "target"], name="one_delivery_per_target")
        ]
        indexes = [
            models.Index(
                fields=["lane", "next_attempt_at", "id"],
                condition=models.Q(status="pending"),
                name="delivery_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.target} for event {self.event_id}: {self.status}"


class MemberPreference(models.Model):
    """A member's choices about the bot in one guild (`/notifications on|off`)."""

    guild_id = models.BigIntegerField()
    user_id = models.BigIntegerField()
    dm_notifications = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["guild_id", "user_id"], name="one_preference_per_member"
            )
        ]

    def __str__(self) -> str:
        state = "on" if self.dm_notifications else "off"
        return f"{self.user_id} @ {self.guild_id}: DMs {state}"


class MarketMessage(models.Model):
    """One copy of a market's message in Discord (the `/market create` reply, the
    announcement, a `/market show`). Every active copy is refreshed when the market changes;
    a copy Discord says is gone or out of reach (403/404) is retired. A row without a message
    id is a claim: the copy is being posted in that channel, so the announcement does not post
    a second one there."""

    market_id = models.BigIntegerField(db_index=True)
    channel_id = models.BigIntegerField()
    message_id = models.BigIntegerField(null=True, blank=True)
    active = models.BooleanField(default=True)
    detail = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel_id", "message_id"], name="one_row_per_market_message"
            )
        ]

    def __str__(self) -> str:
        return f"market {self.market_id} in {self.channel_id}/{self.message_id}"


class PendingAnswer(models.Model):
    """An interaction's final answer the member has not seen yet (issue 12: every interaction
    gets its final answer). Kept when the reply could not be delivered at once: the bot retries
    the edit with backoff while the interaction token is valid (`expires_at`, 15 minutes after
    Discord created the interaction), then sends `summary` as a DM, or — DMs closed — shows it
    in the member's next reply."""

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        DM = "dm"
        NEXT_REPLY = "next_reply"
        SHOWN = "shown"

    interaction_id = models.BigIntegerField(unique=True)
    token = models.CharField(max_length=500)
    guild_id = models.BigIntegerField()
    user_id = models.BigIntegerField()
    action = models.CharField(max_length=60)
    summary = models.TextField(help_text="What happened, as the member will read it")
    attempts = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    last_error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["guild_id", "user_id", "state"])]

    def __str__(self) -> str:
        return f"answer to {self.interaction_id}: {self.state}"


class MarketThread(models.Model):
    """A market's discussion thread (issue 26), started from its first market message where
    the bot may create threads. One per market (`market_id` unique): a row without a
    `thread_id` is a claim (the thread is being started), so a restart or a second copy never
    starts a second one. Proposals, disputes (without a moderators' channel) and the settlement
    summary are posted in the thread; `detail` says why a market has none (a missing
    permission)."""

    market_id = models.BigIntegerField(unique=True)
    channel_id = models.BigIntegerField()
    message_id = models.BigIntegerField()
    thread_id = models.BigIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"market {self.market_id}: thread {self.thread_id or '-'}"
