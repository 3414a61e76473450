"""The bot's configuration: every setting it runs with, read from Django settings by
`BotConfig.from_settings` (tests override any of them)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.db import connection

EXTENSIONS = (
    "discordbot.cogs.markets",
    "discordbot.cogs.orders",
    "discordbot.cogs.community",
    "discordbot.cogs.points",
    "discordbot.cogs.settings",
    "discordbot.cogs.seasons",
    "discordbot.cogs.notifications",
    "discordbot.cogs.privacy",
    "discordbot.cogs.scheduler",
    "discordbot.cogs.drip",
)


def _default_db_workers() -> int:
    return 1 if connection.vendor == "sqlite" else 8


@dataclass(frozen=True)
class BotConfig:
    """Everything the bot needs, read from settings by `from_settings` (tests override)."""

    token: str = ""
    dev_guild_id: int | None = None
    sync_on_start: bool = True
    sync_global: bool = False
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None
    background_tasks: bool = True
    tick_seconds: float = 30.0
    notify_seconds: float = 5.0
    dm_interval: float = 0.5
    db_workers: int = 1
    extensions: tuple[str, ...] = EXTENSIONS
    notifier_name: str = "default"
    http_connections: int = 128
    answer_budget: float = 8.0
    """Seconds an interaction's work may take before the member reads "still working" (the
    result follows); also the client-side budget of bounded `db` calls."""
    gate_budget: float = 1.0
    """Seconds the cache may take before the acknowledgement (delivery gate, rate limits)."""
    answer_retry_base: float = 1.0
    answer_retry_max: float = 60.0
    """Backoff of a reply Discord did not take (and of re-checks of an unknown outcome)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, **overrides: Any) -> BotConfig:
        dev = str(getattr(settings, "DISCORD_DEV_GUILD_ID", "") or "").strip()
        base = cls(
            token=getattr(settings, "DISCORD_TOKEN", "") or "",
            dev_guild_id=int(dev) if dev.isdigit() else None,
            tick_seconds=float(getattr(settings, "DISCORD_TICK_SECONDS", 30.0)),
            notify_seconds=float(getattr(settings, "DISCORD_NOTIFY_SECONDS", 5.0)),
            dm_interval=float(getattr(settings, "DISCORD_DM_INTERVAL", 0.5)),
            db_workers=int(getattr(settings, "DISCORD_DB_WORKERS", 0) or _default_db_workers()),
            answer_budget=float(getattr(settings, "DISCORD_ANSWER_BUDGET_SECONDS", 8.0)),
        )
        return replace(base, **overrides)

    @property
    def holds_shard_zero(self) -> bool:
        """The process that syncs commands at start (one, not every shard). The notifier and
        the market clock run wherever their lease is (`discordbot.leases`)."""
        return self.shard_ids is None or 0 in self.shard_ids
