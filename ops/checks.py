"""System checks that turn bad configuration into a start-up error naming the variable.

Registered by `OpsConfig.ready()`. The ids keep their `config.` prefix: operators may list them
in `DJANGO_SILENCED_SYSTEM_CHECKS`, and the move to `ops` must not un-silence anything."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

GUILD_DEFAULT_RANGES = {
    "starting_balance": (0, 10**12),
    "daily_bonus": (0, 10**12),
    "max_bet": (1, 10**12),
    "default_liquidity": (1, 10**9),
    "fee_bps": (0, 5000),
    "min_resolution_votes": (1, 100),
    "auto_refund_hours": (1, 24 * 365),
}


@register()
def check_guild_defaults(app_configs: Any, **kwargs) -> list:
    errors = []
    for name, (low, high) in GUILD_DEFAULT_RANGES.items():
        value = settings.PM_GUILD_DEFAULTS[name]
        if not low <= value <= high:
            errors.append(
                Error(
                    f"PM_{name.upper()} is {value}; it must be between {low} and {high}.",
                    id="config.E002",
                )
            )
    return errors


@register()
def check_database_url(app_configs: Any, **kwargs) -> list:
    engine = settings.DATABASES["default"]["ENGINE"]
    if not engine.endswith(("postgresql", "sqlite3")):
        return [
            Error(
                f"DATABASE_URL selects {engine}; only postgres:// and sqlite:// are supported.",
                id="config.E003",
            )
        ]
    return []
