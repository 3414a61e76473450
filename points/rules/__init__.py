"""A server's rules in one place (docs/domain.md §2, §6.1): who may do what (`permissions`) and
which values a guild's settings may take (`settings`). The core services enforce them, so the
bot, the back office and any future interface get the same answer for the same actor."""

from .permissions import (
    SYSTEM,
    Action,
    Actor,
    allowed,
    is_moderator,
    is_resolver,
    require,
    resolution_how,
)
from .settings import (
    SETTINGS,
    SETTINGS_BY_NAME,
    SettingSpec,
    amounts_parse,
    setting_check,
    setting_spec,
    time_zone_names,
    zone_parse,
)

__all__ = [
    "SETTINGS",
    "SETTINGS_BY_NAME",
    "SYSTEM",
    "Action",
    "Actor",
    "SettingSpec",
    "allowed",
    "amounts_parse",
    "is_moderator",
    "is_resolver",
    "require",
    "resolution_how",
    "setting_check",
    "setting_spec",
    "time_zone_names",
    "zone_parse",
]
