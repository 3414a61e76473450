"""Every interaction gets its final answer (issue 12), the bookkeeping half: the database rows of
answers a member has not seen yet, and the cache entries that make a re-delivered interaction
count once and show its first answer.

`interactions.respond` does the talking; these functions run in the bot's database threads
(`keep`, `settle`, `unseen_take`) or next to the cache (`first_delivery`, `remember`,
`remembered`)."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from .models import PendingAnswer

TOKEN_LIFETIME = dt.timedelta(minutes=15)
"""Discord's interaction tokens are valid for 15 minutes after the interaction was created."""

ANSWER_TTL = 15 * 60
"""How long a delivered answer is remembered for re-deliveries of its interaction (seconds)."""


def _seen_key(interaction_id: int) -> str:
    return f"pm:interaction:seen:{interaction_id}"


def _answer_key(interaction_id: int) -> str:
    return f"pm:interaction:answer:{interaction_id}"


def first_delivery(*, interaction_id: int) -> bool:
    """True for the first delivery of an interaction, False for every re-delivery of the same id
    (`cache.add` is atomic on Redis and in-process). A cache outage answers True: each delivery
    is then treated as new, which the idempotency keys make harmless. (django-redis with
    `IGNORE_EXCEPTIONS` answers None rather than False during an outage.)"""
    try:
        return cache.add(_seen_key(interaction_id), 1, ANSWER_TTL) is not False
    except Exception:
        return True


def remember(*, interaction_id: int, answer: dict[str, Any]) -> None:
    """Keep the final answer (`content`, `embeds` as dicts, `ephemeral`) for re-deliveries."""
    with contextlib.suppress(Exception):
        cache.set(_answer_key(interaction_id), answer, ANSWER_TTL)


def remembered(*, interaction_id: int) -> dict[str, Any] | None:
    try:
        return cache.get(_answer_key(interaction_id))
    except Exception:
        return None


def keep(
    *,
    interaction_id: int,
    token: str,
    guild_id: int,
    user_id: int,
    action: str,
    summary: str,
    created_at: dt.datetime,
    error: str,
) -> PendingAnswer:
    """Record (or count another failed attempt of) an answer not delivered yet."""
    with transaction.atomic():
        row, made = PendingAnswer.objects.select_for_update().get_or_create(
            interaction_id=interaction_id,
            defaults={
                "token": token,
                "guild_id": guild_id,
                "user_id": user_id,
                "action": action[:60],
                "summary": summary,
                "created_at": created_at,
                "expires_at": created_at + TOKEN_LIFETIME,
                "attempts": 1,
                "last_error": error[:200],
            },
        )
        if not made:
            row.attempts += 1
            row.summary = summary
            row.last_error = error[:200]
            row.save(update_fields=["attempts", "summary", "last_error", "updated_at"])
    return row


def settle(*, interaction_id: int, state: str, error: str = "") -> int:
    """Mark the kept answer of an interaction delivered, sent by DM, or waiting for the member's
    next reply. Returns the rows changed (0 when nothing was kept)."""
    fields: dict[str, Any] = {"state": state, "updated_at": timezone.now()}
    if error:
        fields["last_error"] = error[:200]
    return PendingAnswer.objects.filter(interaction_id=interaction_id).update(**fields)


def unseen_take(*, guild_id: int, user_id: int) -> list[str]:
    """The summaries waiting for this member's next reply, marked shown."""
    with transaction.atomic():
        rows = list(
            PendingAnswer.objects.select_for_update()
            .filter(guild_id=guild_id, user_id=user_id, state=PendingAnswer.State.NEXT_REPLY)
            .order_by("created_at")
        )
        PendingAnswer.objects.filter(pk__in=[r.pk for r in rows]).update(
            state=PendingAnswer.State.SHOWN, updated_at=timezone.now()
        )
    return [r.summary for r in rows]


def unseen_members() -> set[tuple[int, int]]:
    """(guild, member) pairs with answers waiting for their next reply (loaded at start-up)."""
    return set(
        PendingAnswer.objects.filter(state=PendingAnswer.State.NEXT_REPLY).values_list(
            "guild_id", "user_id"
        )
    )
