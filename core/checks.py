"""Where a domain app offers the rules `ops`' start-up checks apply to configuration.

`ops` checks the settings file but imports no domain app (docs/architecture.md); the app that
owns a rule registers it here in its `AppConfig.ready()`:

    guild_setting_check_register(setting_check)   # (name, value) -> value, or raises DomainError

`points` registers the table of guild settings (`points/rules/settings.py`), so a bad
`PM_GUILD_DEFAULTS` entry is refused at start-up with the same words as a bad `/settings` value.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

SettingCheck = Callable[[str, object], object]

_lock = threading.Lock()
_guild_setting_check: list[SettingCheck] = []


def guild_setting_check_register(check: SettingCheck) -> None:
    """Set the function that checks one guild setting's value (raises a DomainError if bad)."""
    with _lock:
        _guild_setting_check[:] = [check]


def guild_setting_check_get() -> SettingCheck | None:
    with _lock:
        return _guild_setting_check[0] if _guild_setting_check else None
