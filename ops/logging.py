"""Structured logs: one line per event, carrying who and what it was about.

The context of the work in hand — request id or Discord interaction id, guild, user, market —
lives in context variables, so every log line written while handling it carries the same fields
without passing them around. The web middleware (`ops.middleware.RequestContextMiddleware`)
binds `request_id`; the bot binds `interaction_id`, `guild_id`, `user_id` (and `market_id` when
known) around each interaction:

    with log_context(interaction_id=interaction.id, guild_id=interaction.guild_id,
                     user_id=interaction.user.id):
        ...

contextvars follow asyncio tasks and `asgiref`'s thread hops, so the fields also reach code run
through `database_sync_to_async`.

An unexpected error gets an *error id* (`error_capture`): a short code the user is shown ("error
id 7f3a9c2e"), written into the log line (`error_id`) and tagged on the Sentry event, so the
support question "it said error 7f3a9c2e" leads straight to the trace.

In production (`LOG_JSON=1`) lines are JSON objects; in development a readable line with the
context appended. Both scrub Discord tokens (`ops.redaction.scrub_text`) from the message.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import secrets
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ops.redaction import scrub_text

# The context fields, in the order they appear in a line.
CONTEXT_FIELDS = (
    "request_id",
    "interaction_id",
    "command",
    "guild_id",
    "user_id",
    "market_id",
    "error_id",
)
# Fields a caller may pass with `extra={...}` that are worth a column of their own.
EXTRA_FIELDS = (
    "duration_ms",
    "status",
    "method",
    "path",
    "client_ip",
    "outcome",
    "check",
    "attempt",
)

_context: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "pm_log_context", default=None
)


def _bound() -> Mapping[str, Any]:
    return _context.get() or {}


def log_context_get() -> dict[str, Any]:
    """The fields bound in the current context (a copy)."""
    return dict(_bound())


def log_context_bind(**fields: Any) -> contextvars.Token:
    """Add fields to the current context until `log_context_reset(token)`; `None` values are
    dropped. Prefer the `log_context` context manager; this form is for middleware that sets and
    resets in different methods."""
    merged = {**_bound(), **{k: v for k, v in fields.items() if v is not None}}
    return _context.set(merged)


def log_context_reset(token: contextvars.Token) -> None:
    _context.reset(token)


@contextmanager
def log_context(**fields: Any) -> Iterator[dict[str, Any]]:
    """Bind `fields` for the duration of the block (nested blocks add to the outer fields)."""
    token = log_context_bind(**fields)
    try:
        yield log_context_get()
    finally:
        _context.reset(token)


def new_error_id() -> str:
    """An 8-hex-digit id, short enough to read out, unique enough to find one line."""
    return secrets.token_hex(4)


def error_capture(
    exc: BaseException,
    *,
    logger: logging.Logger | None = None,
    message: str = "unexpected error",
    **fields: Any,
) -> str:
    """Log `exc` with its traceback under a new error id and return the id for the user.

    The id is bound into the log context while the record is written, so the JSON line carries
    `error_id`, and the Sentry event created from the record (logging integration) is tagged with
    it by `ops.sentry.before_send`."""
    error_id = new_error_id()
    log = logger or logging.getLogger("pm.errors")
    with log_context(error_id=error_id, **fields):
        log.error(
            "%s (error id %s)", message, error_id, exc_info=(type(exc), exc, exc.__traceback__)
        )
    return error_id


class ContextFilter(logging.Filter):
    """Copy the bound context fields onto each record (as attributes), so any formatter, and
    Sentry's logging integration, can see them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _bound().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    context = _bound()
    for key in (*CONTEXT_FIELDS, *EXTRA_FIELDS):
        value = getattr(record, key, None)
        if value is None:
            value = context.get(key)
        if value is not None:
            fields[key] = value
    for key, value in context.items():  # fields bound by name outside the known set
        fields.setdefault(key, value)
    return fields


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `ts`, `level`, `logger`, `msg`, the context fields, and `exc`
    (the formatted traceback, newlines escaped by JSON) when there is one. Snowflakes are
    written as strings so JavaScript-based log viewers keep every digit."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "msg": scrub_text(record.getMessage()),
        }
        for key, value in _record_fields(record).items():
            if key.endswith("_id") and isinstance(value, int):
                value = str(value)
            line[key] = _jsonable(value)
        if record.exc_info:
            line["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            line["exc"] = scrub_text("".join(traceback.format_exception(*record.exc_info)))
        elif record.exc_text:
            line["exc"] = scrub_text(record.exc_text)
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


class ConsoleFormatter(logging.Formatter):
    """Readable development lines: `time level logger message [key=value …]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = scrub_text(super().format(record))
        fields = _record_fields(record)
        if fields:
            first, _, rest = text.partition("\n")
            suffix = " ".join(f"{k}={v}" for k, v in fields.items())
            text = f"{first} [{suffix}]" + (f"\n{rest}" if rest else "")
        return text


def logging_config(*, level: str = "INFO", json_lines: bool = True) -> dict[str, Any]:
    """The `LOGGING` dict for settings: everything to stderr through one handler."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "ops.logging.ContextFilter"}},
        "formatters": {
            "json": {"()": "ops.logging.JsonFormatter"},
            "console": {"()": "ops.logging.ConsoleFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json" if json_lines else "console",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's own request logger repeats what our request line says, with less context.
            "django.request": {"level": "ERROR"},
            "django.db.backends": {"level": "WARNING"},
            "daphne": {"level": "WARNING"},
            "discord": {"level": "INFO"},
            "discord.gateway": {"level": "WARNING"},
        },
    }
