"""Structured logs (issue 7): one JSON line per event carrying the request or interaction
context and the error id; readable lines in development; tokens never written."""

from __future__ import annotations

import io
import json
import logging
import secrets
import types

import pytest

from ops.logging import (
    ConsoleFormatter,
    ContextFilter,
    JsonFormatter,
    error_capture,
    log_context,
    log_context_get,
    logging_config,
)
from ops.middleware import MSG_LOGIN_RATE_LIMITED, client_ip_from
from tests.ops.test_sentry import BOT_TOKEN, CALLBACK_URL, INTERACTION_ID

GUILD_ID, USER_ID = 111_111_111_111_111_111, 222_222_222_222_222_201


@pytest.fixture
def captured():
    """A handler like production's (context filter + formatter) on a fresh logger."""

    def attach(name: str, formatter: logging.Formatter):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.addFilter(ContextFilter())
        handler.setFormatter(formatter)
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        attached.append((logger, handler))
        return logger, stream

    attached: list = []
    yield attach
    for logger, handler in attached:
        logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict]:
    text = stream.getvalue()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_line_carries_the_interaction_context(captured):
    logger, stream = captured("test.json", JsonFormatter())
    with log_context(interaction_id=INTERACTION_ID, guild_id=GUILD_ID, user_id=USER_ID):
        with log_context(market_id=42, command="bet"):
            logger.info("bet placed", extra={"duration_ms": 12.5})
        logger.info("outer only")
    logger.info("no context")
    first, second, third = lines(stream)
    assert first["msg"] == "bet placed" and first["level"] == "INFO"
    assert first["logger"] == "test.json" and first["ts"].endswith("+00:00")
    assert first["interaction_id"] == INTERACTION_ID
    assert first["guild_id"] == str(GUILD_ID)  # snowflakes as strings: JS keeps every digit
    assert first["user_id"] == str(USER_ID) and first["market_id"] == "42"
    assert first["command"] == "bet" and first["duration_ms"] == 12.5
    assert "market_id" not in second and second["guild_id"] == str(GUILD_ID)
    assert set(third) == {"ts", "level", "logger", "msg"}
    assert log_context_get() == {}


def test_exception_is_one_line_with_an_error_id_and_no_token(captured):
    logger, stream = captured("test.errors", JsonFormatter())
    with log_context(interaction_id=INTERACTION_ID):
        try:
            raise ConnectionError(f"POST {CALLBACK_URL} failed with token {BOT_TOKEN}")
        except ConnectionError as exc:
            error_id = error_capture(exc, logger=logger, message="reply failed")
    raw = stream.getvalue()
    assert raw.count("\n") == 1, "one line per event, traceback included"
    assert BOT_TOKEN not in raw and "aW50ZXJhY3Rpb24" not in raw
    (line,) = lines(stream)
    assert line["error_id"] == error_id and len(error_id) == 8
    assert line["msg"] == f"reply failed (error id {error_id})"
    assert line["exc_type"] == "ConnectionError"
    assert "Traceback" in line["exc"] and "[Filtered]" in line["exc"]
    assert line["interaction_id"] == INTERACTION_ID


def test_console_lines_are_readable_with_context_appended(captured):
    logger, stream = captured("test.console", ConsoleFormatter())
    with log_context(request_id="abc123def456", guild_id=GUILD_ID):
        logger.warning("slow query for %s", BOT_TOKEN)
    line = stream.getvalue().strip()
    assert "WARNING" in line and "slow query for [Filtered]" in line
    assert line.endswith(f"[request_id=abc123def456 guild_id={GUILD_ID}]")


def test_logging_config_switches_formatter():
    assert logging_config(json_lines=True)["handlers"]["console"]["formatter"] == "json"
    assert logging_config(json_lines=False)["handlers"]["console"]["formatter"] == "console"


@pytest.mark.django_db
def test_every_request_gets_an_id_in_its_log_line_and_response(client, captured):
    _logger, stream = captured("pm.request", JsonFormatter())
    response = client.get("/admin/login/", HTTP_X_REQUEST_ID="edge-req-0001", secure=True)
    assert response["X-Request-ID"] == "edge-req-0001"
    generated = client.get("/admin/login/", HTTP_X_REQUEST_ID="bad id\nwith newline", secure=True)
    assert generated["X-Request-ID"] != "bad id\nwith newline"
    assert len(generated["X-Request-ID"]) == 32
    first, second = lines(stream)
    assert first["request_id"] == "edge-req-0001"
    assert first["method"] == "GET" and first["path"] == "/admin/login/"
    assert first["status"] == 200 and first["duration_ms"] >= 0
    assert second["request_id"] == generated["X-Request-ID"]


@pytest.mark.django_db
def test_probe_requests_are_logged_at_debug_only(client, captured):
    _logger, stream = captured("pm.request", JsonFormatter())
    client.get("/health/live")
    assert lines(stream)[0]["level"] == "DEBUG"


def test_client_address_behind_a_trusted_proxy():
    assert client_ip_from("127.0.0.1", "198.51.100.1, 203.0.113.7") == "203.0.113.7"
    assert client_ip_from("203.0.113.7", "127.0.0.1") == "203.0.113.7"  # not a proxy of ours
    assert client_ip_from("127.0.0.1", "garbage") == "127.0.0.1"
    assert client_ip_from("127.0.0.1", None) == "127.0.0.1"


@pytest.mark.django_db
def test_admin_login_is_rate_limited_per_address_with_a_clear_page(client, captured, monkeypatch):
    # django-ratelimit counts in fixed windows: freeze its clock at a window no earlier run used,
    # so the eleven posts can neither straddle a window boundary nor meet an earlier run's count
    # in a shared Redis. (`secrets`, not `random`: pytest-randomly reseeds `random` with the run's
    # seed before each test, so a replayed seed would meet its own earlier count.)
    frozen = 1_000_000_000 + secrets.randbelow(10**8) * 60
    monkeypatch.setattr("django_ratelimit.core.time", types.SimpleNamespace(time=lambda: frozen))
    _logger, stream = captured("pm.request", JsonFormatter())
    address = f"198.51.100.{1 + secrets.randbelow(254)}"
    attempt = {"username": "mod", "password": "wrong-password"}
    for _ in range(10):
        response = client.post("/admin/login/", attempt, REMOTE_ADDR=address, secure=True)
        assert response.status_code == 200  # the form again, with its error
    limited = client.post("/admin/login/", attempt, REMOTE_ADDR=address, secure=True)
    assert limited.status_code == 429
    assert limited["Retry-After"] == "60"
    assert MSG_LOGIN_RATE_LIMITED.encode() in limited.content
    assert b"Traceback" not in limited.content
    # Another address, and reading the form, are unaffected.
    assert (
        client.post("/admin/login/", attempt, REMOTE_ADDR="192.0.2.77", secure=True).status_code
        == 200
    )
    assert client.get("/admin/login/", REMOTE_ADDR=address, secure=True).status_code == 200
    warning = next(line for line in lines(stream) if line["msg"] == "admin login rate limited")
    assert warning["client_ip"] == address and warning["request_id"] == limited["X-Request-ID"]
