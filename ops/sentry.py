"""Sentry error reporting, with the Discord secrets scrubbed out of every event.

`sentry_init()` runs from settings when `SENTRY_DSN` is set: Django and logging integrations
(ERROR log records become events, INFO ones breadcrumbs), environment and release from settings,
no personal data (`send_default_pii` stays at its default, off). The bot calls
`sentry_asyncio_enable()` once inside its event loop, because Sentry's asyncio integration
patches the running loop and settings load before there is one.

Every event passes `before_send` (and every breadcrumb `before_breadcrumb`): `scrub`
(`ops.redaction`) walks the whole event — message, exception values, stack-frame variables,
breadcrumbs, request data, extra, tags — and removes Discord tokens and the values of keys that
name a secret. The same `scrub_text` cleans log lines (`ops.logging`). Events are tagged with the
log context (request id, interaction id, guild, user, market, error id) so the error id a user saw
finds its event.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ops.logging import CONTEXT_FIELDS, log_context_get
from ops.redaction import scrub


def _context_tags(event: dict[str, Any]) -> None:
    """Tag the event with the log context (and an `error_id` passed as a log record extra)."""
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
