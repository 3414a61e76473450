"""Input rules of DOMAIN §7, as pure functions: each returns the clean value or raises
`InvalidMarketInput` with a message that says what was wrong and what is allowed."""

from __future__ import annotations

import datetime as dt
import re

from points.errors import check_text

from .amm import MAX_OUTCOMES, MIN_OUTCOMES
from .errors import (
    MSG_CATEGORY,
    MSG_DESCRIPTION_LENGTH,
    MSG_DESCRIPTION_TYPE,
    MSG_DURATION_FORMAT,
    MSG_DURATION_RANGE,
    MSG_KNOWN_AT_FUTURE,
    MSG_KNOWN_AT_RANGE,
    MSG_KNOWN_AT_TYPE,
    MSG_OUTCOME_COUNT,
    MSG_OUTCOME_DUPLICATE,
    MSG_OUTCOME_LABEL,
    MSG_QUESTION,
    InvalidMarketInput,
)

MAX_DESCRIPTION = 1000
MIN_DURATION_MINUTES = 1
MAX_DURATION_MINUTES = 43_200
MAX_DURATION_TEXT = 40
_UNITS = re.compile(r"(\d+)\s*([dhm])", re.IGNORECASE)
_UNITS_WHOLE = re.compile(r"^(\s*\d+\s*[dhm]\s*)+$", re.IGNORECASE)
_OLD_FORM = re.compile(r"^\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*$")


def clean_question(question: object) -> str:
    text = question.strip() if isinstance(question, str) else ""
    if not 1 <= len(text) <= 500:
        raise InvalidMarketInput(MSG_QUESTION, details={"length": len(text)})
    return check_text(text, what="The question", error=InvalidMarketInput)


def clean_description(description: object) -> str:
    """What the question means and what counts as each outcome (DOMAIN §7): optional, at most
    `MAX_DESCRIPTION` characters after trimming, the question's character rules except that it
    may span lines. Line breaks are stored as `\n` whatever the form sent (`\r\n`, `\r`)."""
    if description is None:
        return ""
    if not isinstance(description, str):
        raise InvalidMarketInput(MSG_DESCRIPTION_TYPE)
    text = description.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > MAX_DESCRIPTION:
        raise InvalidMarketInput(
            MSG_DESCRIPTION_LENGTH.format(length=len(text)), details={"length": len(text)}
        )
    return check_text(
        text, what="The description", error=InvalidMarketInput, allow_line_breaks=True
    )


def clean_outcomes(outcomes: object) -> list[str]:
    if isinstance(outcomes, str) or not isinstance(outcomes, list | tuple):
        raise InvalidMarketInput(MSG_OUTCOME_COUNT.format(count=0))
    if not MIN_OUTCOMES <= len(outcomes) <= MAX_OUTCOMES:
        raise InvalidMarketInput(MSG_OUTCOME_COUNT.format(count=len(outcomes)))
    labels: list[str] = []
    seen: dict[str, str] = {}
    for position, raw in enumerate(outcomes, start=1):
        label = raw.strip() if isinstance(raw, str) else ""
        if not 1 <= len(label) <= 100:
            raise InvalidMarketInput(MSG_OUTCOME_LABEL.format(position=position))
        check_text(label, what=f"Outcome {position}", error=InvalidMarketInput)
        folded = label.casefold()
        if folded in seen:
            raise InvalidMarketInput(MSG_OUTCOME_DUPLICATE.format(label=label))
        seen[folded] = label
        labels.append(label)
    return labels


def split_outcomes(text: str) -> list[str]:
    """Outcomes typed in one field: separated by `|`, new lines, or commas (in that order of
    preference, so "Yes, definitely | No" keeps its comma)."""
    for separator in ("|", "\n", ","):
        if separator in text:
            return [part for part in (p.strip() for p in text.split(separator)) if part]
    return [text.strip()] if text.strip() else []


def parse_duration(value: object) -> dt.timedelta:
    """Minutes as an int, or text: `90m`, `2h`, `1d2h30m`, the old `d,h,m` form (`1,2,30`), or a
    bare number of minutes. Between 1 minute and 30 days (43,200 minutes)."""
    if isinstance(value, dt.timedelta):
        minutes_exact = value.total_seconds() / 60
        minutes = int(minutes_exact)
        if minutes != minutes_exact:
            minutes = -1 if minutes_exact < 1 else minutes
    elif isinstance(value, int) and not isinstance(value, bool):
        minutes = value
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_DURATION_TEXT:  # int() of thousands of digits raises ValueError
            raise InvalidMarketInput(MSG_DURATION_FORMAT.format(value=text[:40]))
        if text.isdecimal():  # not isdigit(): "²" is a digit that int() refuses
            minutes = int(text)
        elif match := _OLD_FORM.match(text):
            d, h, m = (int(g) for g in match.groups())
            minutes = d * 1440 + h * 60 + m
        elif _UNITS_WHOLE.match(text):
            factor = {"d": 1440, "h": 60, "m": 1}
            minutes = sum(int(n) * factor[u.lower()] for n, u in _UNITS.findall(text))
        else:
            raise InvalidMarketInput(MSG_DURATION_FORMAT.format(value=text[:40]))
    else:
        raise InvalidMarketInput(MSG_DURATION_FORMAT.format(value=str(value)[:40]))
    if not MIN_DURATION_MINUTES <= minutes <= MAX_DURATION_MINUTES:
        raise InvalidMarketInput(MSG_DURATION_RANGE.format(minutes=minutes))
    return dt.timedelta(minutes=minutes)


def clean_category(category: object) -> str:
    if category is None:
        return ""
    text = category.strip() if isinstance(category, str) else None
    if text is None or len(text) > 50:
        raise InvalidMarketInput(MSG_CATEGORY)
    return check_text(text, what="The category", error=InvalidMarketInput)


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clean_known_at(
    known_at: object,
    *,
    market_id: int,
    opened: dt.datetime,
    closed: dt.datetime,
    now: dt.datetime,
) -> dt.datetime | None:
    """The moment the outcome became known (docs/domain.md §6.2), or None: an aware datetime not
    in the future, not before the market `opened`, not after it `closed`."""
    if known_at is None:
        return None
    if not isinstance(known_at, dt.datetime) or known_at.tzinfo is None:
        raise InvalidMarketInput(MSG_KNOWN_AT_TYPE)
    span = {"known_at": _utc(known_at), "opened": _utc(opened), "closed": _utc(closed)}
    if known_at > now:
        raise InvalidMarketInput(MSG_KNOWN_AT_FUTURE.format(**span), details={"bound": "now"})
    if known_at < opened:
        raise InvalidMarketInput(
            MSG_KNOWN_AT_RANGE.format(side="before", verb="opened", market_id=market_id, **span),
            details={"bound": "opened"},
        )
    if known_at > closed:
        raise InvalidMarketInput(
            MSG_KNOWN_AT_RANGE.format(side="after", verb="closed", market_id=market_id, **span),
            details={"bound": "closed"},
        )
    return known_at
