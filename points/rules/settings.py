"""Which values a guild's settings may take (docs/domain.md §2): one table, `SETTINGS`, read by
every place that writes or offers a setting — the core service `guild_settings_update`, the
bot's `/settings`, the back office's form and the start-up check of `PM_GUILD_DEFAULTS`. A range
changes here and nowhere else, so all of them refuse the same value with the same words.

The ranges sit inside `GuildSettings`' check constraints, and amounts stay at most
`points.errors.MAX_AMOUNT` so they remain representable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import MAX_AMOUNT, InvalidInput

MSG_SETTING_RANGE = "{title} must be a whole number from {low:,} to {high:,}."
MSG_SETTING_CHOICE = "{title} is {choices}."
MSG_SETTING_BOOL = "{title} is on (true) or off (false)."
MSG_SETTING_UNKNOWN = "There is no setting called “{name}”."


@dataclass(frozen=True)
class SettingSpec:
    """One editable guild setting. `unit` is what the number counts (shown with the label in
    messages: "Dispute window (minutes)"); `hint` a short note for pickers ("0 = off")."""

    name: str
    label: str
    kind: Literal["int", "bool", "choice"]
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
        quoted = [f"“{value}”" for value, _ in self.choices]
        listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        return MSG_SETTING_CHOICE.format(title=self.title, choices=listed)

    def allows(self, value: object) -> bool:
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            return isinstance(value, str) and value in {v for v, _ in self.choices}
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
    SettingSpec("conflict_of_interest", "Conflict-of-interest rule", "bool"),
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
