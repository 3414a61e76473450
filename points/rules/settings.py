"""Which values a guild's settings may take (docs/domain.md §2): one table, `SETTINGS`, read by
every place that writes or offers a setting — the core service `guild_settings_update`, the
bot's `/settings`, the back office's form and the start-up check of `PM_GUILD_DEFAULTS`. A range
changes here and nowhere else, so all of them refuse the same value with the same words.

The ranges sit inside `GuildSettings`' check constraints, and amounts stay at most
`points.errors.MAX_AMOUNT` so they remain representable."""

from __future__ import annotations

import functools
import re
import zoneinfo
from dataclasses import dataclass
from typing import Literal

from ..errors import MAX_AMOUNT, InvalidInput

MSG_SETTING_RANGE = "{title} must be a whole number from {low:,} to {high:,}."
MSG_SETTING_CHOICE = "{title} is {choices}."
MSG_SETTING_BOOL = "{title} is on (true) or off (false)."
MSG_SETTING_UNKNOWN = "There is no setting called “{name}”."
MSG_SETTING_ZONE = (
    "{title} is a name from the IANA time zone database, like UTC, Europe/Paris or "
    "America/New_York."
)
MSG_ZONE_UNKNOWN = "“{value}” is not a time zone name. {allowed}"
MSG_ZONE_SUGGEST = " Did you mean {names}?"
MSG_SETTING_AMOUNTS = (
    "{title} are {low} to {high} different whole numbers of points, each from 1 to {most:,}, "
    "like 10, 100, 1,000."
)


@dataclass(frozen=True)
class SettingSpec:
    """One editable guild setting. `unit` is what the number counts (shown with the label in
    messages: "Dispute window (minutes)"); `hint` a short note for pickers ("0 = off")."""

    name: str
    label: str
    kind: Literal["int", "bool", "choice", "amounts", "zone"]
    low: int = 0
    high: int = 0
    choices: tuple[tuple[str, str], ...] = ()
    """(value, words) pairs of a "choice" setting."""
    unit: str = ""
    hint: str = ""

    @property
    def title(self) -> str:
        """The label with its unit, as messages name the setting."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    @property
    def picker_name(self) -> str:
        """The label with its unit and hint, as a picker offers it (≤ 100 characters)."""
        notes = ", ".join(n for n in (self.unit, self.hint) if n)
        return f"{self.label} ({notes})" if notes else self.label

    @property
    def message(self) -> str:
        """What is allowed, as the refusal of any other value says it."""
        if self.kind == "int":
            return MSG_SETTING_RANGE.format(title=self.title, low=self.low, high=self.high)
        if self.kind == "bool":
            return MSG_SETTING_BOOL.format(title=self.title)
        if self.kind == "zone":
            return MSG_SETTING_ZONE.format(title=self.title)
        if self.kind == "amounts":
            return MSG_SETTING_AMOUNTS.format(
                title=self.title, low=self.low, high=self.high, most=MAX_AMOUNT
            )
        quoted = [f"“{value}”" for value, _ in self.choices]
        listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        return MSG_SETTING_CHOICE.format(title=self.title, choices=listed)

    def allows(self, value: object) -> bool:
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            return isinstance(value, str) and value in {v for v, _ in self.choices}
        if self.kind == "zone":
            return isinstance(value, str) and value in time_zone_names()
        if self.kind == "amounts":
            return (
                isinstance(value, list)
                and self.low <= len(value) <= self.high
                and all(
                    isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_AMOUNT
                    for v in value
                )
                and len(set(value)) == len(value)
            )
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and self.low <= value <= self.high
        )


WEEK_MINUTES = 7 * 24 * 60

SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("starting_balance", "Starting balance", "int", 0, 10**12, unit="points"),
    SettingSpec("daily_bonus", "Daily bonus", "int", 0, 10**12, unit="points", hint="0 = off"),
    SettingSpec("max_bet", "Max bet", "int", 1, MAX_AMOUNT, unit="points"),
    SettingSpec("default_liquidity", "Default liquidity", "int", 1, 10**9, unit="points"),
    SettingSpec("fee_bps", "Fee", "int", 0, 5000, unit="basis points", hint="100 = 1%"),
    SettingSpec("min_resolution_votes", "Votes needed to resolve", "int", 1, 25),
    SettingSpec("auto_refund_hours", "Auto-refund after", "int", 1, 24 * 365, unit="hours"),
    SettingSpec(
        "slippage_bps", "Slippage limit", "int", 0, 5000, unit="basis points", hint="200 = 2%"
    ),
    SettingSpec(
        "requests_per_minute", "Server commands a minute", "int", 1, 100_000, hint="rate limit"
    ),
    SettingSpec(
        "resolution_mode",
        "Resolution mode",
        "choice",
        choices=(("vote", "resolvers vote"), ("creator", "the creator proposes")),
    ),
    SettingSpec(
        "dispute_window_minutes",
        "Dispute window",
        "int",
        0,
        WEEK_MINUTES,
        unit="minutes",
        hint="0 = pay at once",
    ),
    SettingSpec(
        "dispute_hold_hours",
        "Dispute hold",
        "int",
        1,
        24 * 30,
        unit="hours",
        hint="then cancelled and refunded",
    ),
    SettingSpec("conflict_of_interest", "Conflict-of-interest rule", "bool"),
    # Issue 26: the one-click amounts under a market message (a list: `low`–`high` of them).
    SettingSpec("quick_amounts", "Quick amounts", "amounts", 1, 5, hint="one-click stakes"),
    # Issue 25: where a time of day typed for "known at" (docs/domain.md §6.2) is read.
    SettingSpec("time_zone", "Time zone", "zone", hint="IANA name, e.g. Europe/Paris"),
)

SETTINGS_BY_NAME: dict[str, SettingSpec] = {spec.name: spec for spec in SETTINGS}


def setting_spec(name: str) -> SettingSpec:
    """The spec of setting `name`; `InvalidInput` if there is none."""
    spec = SETTINGS_BY_NAME.get(name)
    if spec is None:
        raise InvalidInput(MSG_SETTING_UNKNOWN.format(name=name), details={"setting": name})
    return spec


def setting_check(name: str, value: object) -> object:
    """`value` if setting `name` may take it, else `InvalidInput` naming the setting and what is
    allowed. Strict about types: True is not 1, "60" is not 60 (interfaces convert first)."""
    spec = setting_spec(name)
    if not spec.allows(value):
        raise InvalidInput(spec.message, details={"setting": name, "value": repr(value)[:100]})
    return value


@functools.cache
def time_zone_names() -> frozenset[str]:
    """The IANA time zone names this machine knows (Python's `zoneinfo`: the system's database,
    else the `tzdata` package)."""
    return frozenset(zoneinfo.available_timezones())


def zone_parse(name: str, text: str) -> str:
    """A "zone" setting as a member types it: an IANA name in any case ("europe/paris" is
    Europe/Paris). Anything else is `InvalidInput` that says what is allowed and, when the text
    is the end of some names ("Paris"), suggests them."""
    spec = setting_spec(name)
    typed = text.strip()
    by_fold = {zone.casefold(): zone for zone in time_zone_names()}
    found = by_fold.get(typed.casefold())
    if found is None:
        tail = "/" + typed.casefold().replace(" ", "_")
        near = sorted(z for f, z in by_fold.items() if f.endswith(tail))[:3]
        hint = MSG_ZONE_SUGGEST.format(names=" or ".join(near)) if near else ""
        raise InvalidInput(
            MSG_ZONE_UNKNOWN.format(value=typed[:40], allowed=spec.message) + hint,
            details={"setting": name},
        )
    setting_check(name, found)
    return found


_AMOUNT_SEPARATORS = re.compile(r"[\s|;/]+|,\s+")
_AMOUNT = re.compile(r"\d{1,3}(?:,\d{3})+|\d+")


def amounts_parse(name: str, text: str) -> list[int]:
    """An "amounts" setting as a member types it: numbers separated by spaces, `|`, `;` or a
    comma and a space (a comma between digits groups thousands: “10, 100, 1,000”), in the order
    given. Anything else is `InvalidInput` with the setting's words; the result is checked."""
    spec = setting_spec(name)
    tokens = [t for t in _AMOUNT_SEPARATORS.split(text.strip()) if t]
    values: list[int] = []
    for token in tokens:
        if not _AMOUNT.fullmatch(token):
            raise InvalidInput(
                f"“{token[:30]}” is not a whole number of points. {spec.message}",
                details={"setting": name},
            )
        values.append(int(token.replace(",", "")))
    setting_check(name, values)
    return values
