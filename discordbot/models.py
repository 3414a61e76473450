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
    """One message the notifier sent (or deliberately skipped) for one event. A restart in the
    middle of an event re-reads these and sends only what is missing."""

    class Status(models.TextChoices):
        SENT = "sent"
        SKIPPED = "skipped"
        FAILED = "failed"

    event_id = models.BigIntegerField()
    target = models.CharField(max_length=60, help_text="dm:<user>, channel:<id> or edit:<id>")
    status = models.CharField(max_length=8, choices=Status.choices)
    detail = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event_id", "target"], name="one_delivery_per_target")
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
