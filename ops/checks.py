"""System checks that turn bad configuration into a start-up error naming the variable.

Registered by `OpsConfig.ready()`. The ids keep their `config.` prefix: operators may list them
in `DJANGO_SILENCED_SYSTEM_CHECKS`, and the move to `ops` must not un-silence anything."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from core.checks import guild_setting_check_get
from core.errors import DomainError

# `PM_GUILD_DEFAULTS[name]` comes from the environment variable `PM_<NAME>`, except these.
GUILD_DEFAULT_VARIABLES = {"requests_per_minute": "PM_GUILD_REQUESTS_PER_MINUTE"}


def guild_default_variable(name: str) -> str:
    return GUILD_DEFAULT_VARIABLES.get(name, f"PM_{name.upper()}")


@register()
def check_guild_defaults(app_configs: Any, **kwargs) -> list:
    """Every `PM_GUILD_DEFAULTS` entry against the table of guild settings that `points`
    registers (`points/rules/settings.py`), so a default no admin could set is a start-up error
    naming its variable, in the words `/settings` and the back office use."""
    check = guild_setting_check_get()
    if check is None:
        return []
    errors = []
    for name, value in settings.PM_GUILD_DEFAULTS.items():
        try:
            check(name, value)
        except DomainError as exc:
            errors.append(
                Error(f"{guild_default_variable(name)} is {value}; {exc.message}", id="config.E002")
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
