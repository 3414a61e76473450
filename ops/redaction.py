"""Redaction of Discord secrets from text and nested data, shared by the log formatters
(`ops.logging`) and the Sentry hooks (`ops.sentry`). A leaf: it imports nothing of ours, so
both can use it without importing each other.

`scrub_text` removes

- Discord bot tokens (`<base64 user id>.<timestamp>.<hmac>`),
- interaction tokens (`aW50ZXJhY3Rpb246…`, base64 of "interaction:"),
- the token part of interaction and webhook URLs (`/interactions/<id>/<token>/callback`,
  `/webhooks/<id>/<token>/…`), which is what discord.py puts in its HTTP error messages,
- `Bot …`/`Bearer …` authorization values and `token=…`-style parameters;

`scrub` also replaces the values of keys that name a secret.

Shapes are not enough (issue 12: a token with an unusual last segment, held in an innocently
named variable, reached Sentry), so both also remove the configured secrets by value, wherever
they appear: `DISCORD_TOKEN`, the DRIP API key (`DRIP_API_KEY`, from settings or the
environment), `SENTRY_DSN` and its key, the database password, and `SECRET_KEY`
(`configured_secrets`). Values shorter than `MIN_SECRET_LENGTH` are left to the shape rules
(redacting a two-letter password would blank every word containing it); passwords in URLs
(`scheme://user:password@host`) are removed by shape whatever their length.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

FILTERED = "[Filtered]"

# A bot token: base64 of the bot's user id, a base64 timestamp and an HMAC. The first part is
# 23–28 characters for today's snowflakes; the last part 27–38.
BOT_TOKEN_RE = re.compile(
    r"(?<![A-Za-z\d_-])[MNO][A-Za-z\d_-]{23,27}\.[A-Za-z\d_-]{6,7}\.[A-Za-z\d_-]{27,38}"
    r"(?![A-Za-z\d_-])"
)
# An interaction token is base64 of "interaction:<id>:<secret>"; it always starts like this.
INTERACTION_TOKEN_RE = re.compile(r"aW50ZXJhY3Rpb246[A-Za-z\d_\-.=]+")
# The token segment of interaction and webhook URLs, whatever its shape.
URL_TOKEN_RE = re.compile(r"(/(?:interactions|webhooks)/\d+/)[^/\s?#\"'<>]+")
AUTH_VALUE_RE = re.compile(r"\b(Bot|Bearer)\s+[A-Za-z\d_\-.=]{20,}")
# `token=…` in query strings and form bodies (`?wait=true&token=…`, `password=…`).
PARAM_RE = re.compile(r"(?i)\b([\w-]*(?:token|secret|password|api[_-]?key)[\w-]*)=([^&\s\"']+)")

# The password of a URL's userinfo: postgres://pm:secret@db/pm, redis://:secret@cache:6379/0.
URL_PASSWORD_RE = re.compile(r"(\b[a-z][a-z\d+.-]*://[^:/\s@]*:)[^@\s/]+(@)", re.IGNORECASE)

MIN_SECRET_LENGTH = 6
SECRET_SETTINGS = ("DISCORD_TOKEN", "DRIP_API_KEY", "SENTRY_DSN", "SECRET_KEY")
SECRET_ENVIRONMENT = ("DISCORD_TOKEN", "DRIP_API_KEY", "SENTRY_DSN", "DJANGO_SECRET_KEY")

_value_cache: tuple[tuple[str, ...], re.Pattern[str] | None] = ((), None)


def configured_secrets() -> list[str]:
    """The secret values this process is configured with (settings and environment), longest
    first, each at least `MIN_SECRET_LENGTH` long."""
    values: set[str] = set()
    try:
        from django.conf import settings

        if settings.configured:
            for name in SECRET_SETTINGS:
                values.add(str(getattr(settings, name, "") or ""))
            for db in getattr(settings, "DATABASES", {}).values():
                values.add(str(db.get("PASSWORD") or ""))
    except Exception:  # settings unreadable (early start-up): the environment still counts
        pass
    for name in SECRET_ENVIRONMENT:
        values.add(os.environ.get(name, ""))
    for dsn in list(values):
        if "://" in dsn and "@" in dsn:  # a DSN's key and password are secrets of their own
            with_parts = urlsplit(dsn)
            values.update({with_parts.username or "", with_parts.password or ""})
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def _value_pattern() -> re.Pattern[str] | None:
    global _value_cache
    secrets = tuple(configured_secrets())
    if secrets != _value_cache[0]:
        pattern = re.compile("|".join(re.escape(v) for v in secrets)) if secrets else None
        _value_cache = (secrets, pattern)
    return _value_cache[1]


SECRET_KEY_RE = re.compile(
    r"(token|secret|password|passwd|authorization|api[_-]?key|dsn|cookie|session|csrf)",
    re.IGNORECASE,
)


def scrub_text(text: str) -> str:
    """`text` with every configured secret, Discord token, URL token and URL password replaced
    by `[Filtered]`."""
    if not text or not isinstance(text, str):
        return text
    by_value = _value_pattern()
    if by_value is not None:
        text = by_value.sub(FILTERED, text)
    text = URL_PASSWORD_RE.sub(rf"\g<1>{FILTERED}\g<2>", text)
    text = URL_TOKEN_RE.sub(rf"\g<1>{FILTERED}", text)
    text = BOT_TOKEN_RE.sub(FILTERED, text)
    text = INTERACTION_TOKEN_RE.sub(FILTERED, text)
    text = AUTH_VALUE_RE.sub(rf"\g<1> {FILTERED}", text)
    return PARAM_RE.sub(rf"\g<1>={FILTERED}", text)


def scrub(value: Any, *, key: str | None = None, depth: int = 0) -> Any:
    """A copy of `value` with secrets removed: strings are scrubbed, and any value stored under a
    key that names a secret (`token`, `password`, `authorization`, …) is replaced whole. Header
    lists (`[name, value]` pairs) are judged by the name."""
    if depth > 20:  # a pathological event; Sentry trims depth anyway
        return value
    if (
        key is not None
        and SECRET_KEY_RE.search(key)
        and value not in (None, "", [], {})
        and not isinstance(value, bool | int | float)
    ):
        return FILTERED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            k: scrub(v, key=k if isinstance(k, str) else None, depth=depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        if len(value) == 2 and isinstance(value[0], str) and SECRET_KEY_RE.search(value[0]):
            return type(value)([value[0], scrub(value[1], key=value[0], depth=depth + 1)])  # type: ignore[misc]
        return type(value)(scrub(v, depth=depth + 1) for v in value)
    return value
