"""Sentry error reporting, with the Discord secrets scrubbed out of every event.

`sentry_init()` runs from settings when `SENTRY_DSN` is set: Django and logging integrations
(ERROR log records become events, INFO ones breadcrumbs), environment and release from settings,
no personal data (`send_default_pii` stays at its default, off). The bot calls
`sentry_asyncio_enable()` once inside its event loop, because Sentry's asyncio integration
patches the running loop and settings load before there is one.

Every event passes `before_send` (and every breadcrumb `before_breadcrumb`): `scrub` walks the
whole event — message, exception values, stack-frame variables, breadcrumbs, request data,
extra, tags — and removes

- Discord bot tokens (`<base64 user id>.<timestamp>.<hmac>`),
- interaction tokens (`aW50ZXJhY3Rpb246…`, base64 of "interaction:"),
- the token part of interaction and webhook URLs (`/interactions/<id>/<token>/callback`,
  `/webhooks/<id>/<token>/…`), which is what discord.py puts in its HTTP error messages,
- `Bot …`/`Bearer …` authorization values, `token=…`-style parameters, and the values of keys
  that name a secret,
- every value registered with `secret_register` (DRIP API keys: their shape is DRIP's business,
  so the bridge registers each key it decrypts or receives, and any copy of it is removed).

The same `scrub_text` cleans log lines (`config.logging`). Events are tagged with the log
context (request id, interaction id, guild, user, market, error id) so the error id a user saw
finds its event.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

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

SECRET_KEY_RE = re.compile(
    r"(token|secret|password|passwd|authorization|api[_-]?key|dsn|cookie|session|csrf)",
    re.IGNORECASE,
)


_registered: set[str] = set()
MIN_REGISTERED_LENGTH = 8


def secret_register(value: str) -> None:
    """Filter every later occurrence of `value` (a secret whose shape no pattern knows) from log
    lines and Sentry events. Values shorter than 8 characters are ignored (they would filter
    ordinary words)."""
    if isinstance(value, str) and len(value) >= MIN_REGISTERED_LENGTH:
        _registered.add(value)


def scrub_text(text: str) -> str:
    """`text` with every Discord token, URL token and registered secret replaced by
    `[Filtered]`."""
    if not text or not isinstance(text, str):
        return text
    for secret in tuple(_registered):
        if secret in text:
            text = text.replace(secret, FILTERED)
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
            return type(value)([value[0], scrub(value[1], key=value[0], depth=depth + 1)])
        return type(value)(scrub(v, depth=depth + 1) for v in value)
    return value


def _context_tags(event: dict[str, Any]) -> None:
    """Tag the event with the log context (and an `error_id` passed as a log record extra)."""
    from config.logging import CONTEXT_FIELDS, log_context_get

    context = log_context_get()
    extra = event.get("extra") or {}
    tags = event.setdefault("tags", {})
    if not isinstance(tags, dict):  # Sentry also accepts a list of pairs
        return
    for name in CONTEXT_FIELDS:
        value = context.get(name)
        if value is None and isinstance(extra, dict):
            value = extra.get(name)
        if value is not None:
            tags.setdefault(name, str(value))


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """Sentry `before_send`: tag with the log context, then scrub every secret."""
    with contextlib.suppress(Exception):  # tagging is a nicety; never lose the event for it
        _context_tags(event)
    return scrub(event)


def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    return scrub(crumb)


def sentry_init(
    *,
    dsn: str,
    environment: str,
    release: str = "",
    traces_sample_rate: float = 0.0,
    transport: Any = None,
    extra_integrations: list[Any] | None = None,
) -> bool:
    """Initialise Sentry when `dsn` is set; returns whether it did. `transport` replaces the HTTP
    transport (tests capture envelopes with it; nothing is sent)."""
    if not dsn:
        return False
    import logging

    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    # Personal data stays off: `send_default_pii` defaults to False (and newer SDKs deprecate
    # setting it), so it is left unset rather than set; a test checks the client's verdict.
    options: dict[str, Any] = {
        "dsn": dsn,
        "environment": environment,
        "release": release or None,
        "traces_sample_rate": traces_sample_rate,
        "before_send": before_send,
        "before_send_transaction": before_send,
        "before_breadcrumb": before_breadcrumb,
        "integrations": [
            DjangoIntegration(),
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
            *(extra_integrations or []),
        ],
        # Frame variables are where a token held by the bot would surface; the scrubber covers
        # them, but a local `token` variable is also filtered by Sentry's own denylist.
        "include_local_variables": True,
    }
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(**options)
    return True


def sentry_asyncio_enable() -> None:
    """Call once from inside the bot's running event loop: reports exceptions of tasks nobody
    awaited. Does nothing when Sentry is not initialised."""
    from sentry_sdk.integrations.asyncio import enable_asyncio_integration

    enable_asyncio_integration()
