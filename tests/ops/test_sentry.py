"""The Sentry scrubber (issue 7): Discord bot tokens, interaction tokens and webhook tokens never
leave the process — not in messages, exception values, stack variables, breadcrumbs, request
data or extra. Events are captured by a transport of our own; nothing goes over the network."""

from __future__ import annotations

import logging

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from ops.logging import error_capture, log_context
from ops.redaction import FILTERED, scrub, scrub_text
from ops.sentry import sentry_init

BOT_TOKEN = "MTA1NzY4OTQ4NjI1NjM4NDA4MA.GhK2bX.abcdefghijklmnopqrstuvwxyzABCDEFGH12"
INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OmFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6"
WEBHOOK_TOKEN = "Zx9_kQ-3pLmN0aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789abcdefghijKLMNOPQ"
APP_ID, INTERACTION_ID, WEBHOOK_ID = (
    "1057689486256384080",
    "1234567890123456789",
    "987654321098765432",
)
CALLBACK_URL = (
    f"https://discord.com/api/v10/interactions/{INTERACTION_ID}/{INTERACTION_TOKEN}/callback"
)
FOLLOWUP_URL = (
    f"https://discord.com/api/v10/webhooks/{APP_ID}/{INTERACTION_TOKEN}/messages/@original"
)
WEBHOOK_URL = f"https://discord.com/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"
SECRETS = [BOT_TOKEN, INTERACTION_TOKEN, WEBHOOK_TOKEN]


class CapturingTransport(Transport):
    """Keeps every envelope in memory instead of sending it."""

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    @property
    def events(self) -> list[dict]:
        return [e.get_event() for e in self.envelopes if e.get_event() is not None]

    def raw(self) -> bytes:
        return b"".join(e.serialize() for e in self.envelopes)


@pytest.fixture
def sentry():
    transport = CapturingTransport()
    assert sentry_init(
        dsn="https://public@sentry.example.invalid/1",
        environment="test",
        release="pm@1.2.3",
        transport=transport,
    )
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: an inactive client for the rest of the session


def assert_no_secrets(transport: CapturingTransport) -> None:
    raw = transport.raw()
    assert transport.envelopes, "something was captured"
    for secret in SECRETS:
        assert secret.encode() not in raw, f"{secret[:12]}… leaked"


def test_personal_data_is_not_sent(sentry):
    assert sentry_sdk.get_client().should_send_default_pii() is False


def test_no_dsn_means_no_sentry():
    assert sentry_init(dsn="", environment="production") is False


def test_scrub_text_keeps_ids_and_removes_tokens():
    text = f"POST {CALLBACK_URL} failed; followup {FOLLOWUP_URL}; hook {WEBHOOK_URL}"
    cleaned = scrub_text(text + f" token={BOT_TOKEN} Authorization: Bot {BOT_TOKEN}")
    for secret in SECRETS:
        assert secret not in cleaned
    assert f"/interactions/{INTERACTION_ID}/{FILTERED}/callback" in cleaned
    assert f"/webhooks/{APP_ID}/{FILTERED}/messages/@original" in cleaned
    assert f"/webhooks/{WEBHOOK_ID}/{FILTERED}" in cleaned
    assert "Bot [Filtered]" in cleaned
    assert scrub_text("market 42 resolved to Yes") == "market 42 resolved to Yes"


def test_scrub_filters_values_under_secret_names_and_header_pairs():
    data = {
        "token": "anything-at-all",
        "DISCORD_TOKEN": BOT_TOKEN,
        "nested": [{"password": "hunter2"}, ("Authorization", "Bearer abc")],
        "amount": 100,
        "guild_id": 111,
    }
    cleaned = scrub(data)
    assert cleaned["token"] == cleaned["DISCORD_TOKEN"] == FILTERED
    assert cleaned["nested"] == [{"password": FILTERED}, ("Authorization", FILTERED)]
    assert cleaned["amount"] == 100 and cleaned["guild_id"] == 111


def test_message_exception_and_stack_variables_are_scrubbed(sentry):
    sentry_sdk.capture_message(f"gateway refused token {BOT_TOKEN}")

    def call_discord(bot_token: str, url: str) -> None:
        note = f"while calling {url}"  # a local variable that holds the token inside a URL
        raise RuntimeError(f"404 Unknown interaction ({note})")

    try:
        call_discord(BOT_TOKEN, CALLBACK_URL)
    except RuntimeError:
        sentry_sdk.capture_exception()
    sentry_sdk.flush()

    assert_no_secrets(sentry)
    message_event, error_event = sentry.events
    assert message_event["message"] == f"gateway refused token {FILTERED}"
    value = error_event["exception"]["values"][-1]["value"]
    assert f"/interactions/{INTERACTION_ID}/{FILTERED}/callback" in value
    frame = error_event["exception"]["values"][-1]["stacktrace"]["frames"][-1]
    assert frame["vars"]["bot_token"] == FILTERED
    assert error_event["environment"] == "test" and error_event["release"] == "pm@1.2.3"


def test_breadcrumbs_extra_and_request_data_are_scrubbed(sentry):
    logging.getLogger("discord.webhook").info("sent to %s", WEBHOOK_URL)  # becomes a breadcrumb
    sentry_sdk.add_breadcrumb(category="http", data={"url": FOLLOWUP_URL, "method": "PATCH"})
    sentry_sdk.set_extra("interaction_token", INTERACTION_TOKEN)
    sentry_sdk.set_extra("payload", {"content": f"debug {BOT_TOKEN}", "webhook": WEBHOOK_URL})
    sentry_sdk.capture_event(
        {
            "message": "follow-up failed",
            "level": "error",
            "request": {
                "url": FOLLOWUP_URL,
                "method": "POST",
                "headers": {"Authorization": f"Bot {BOT_TOKEN}", "User-Agent": "DiscordBot"},
                "data": {"token": INTERACTION_TOKEN, "type": 4},
                "query_string": f"wait=true&token={WEBHOOK_TOKEN}",
            },
        }
    )
    sentry_sdk.flush()

    assert_no_secrets(sentry)
    (event,) = sentry.events
    crumbs = event["breadcrumbs"]["values"]
    assert any(f"/webhooks/{WEBHOOK_ID}/{FILTERED}" in (c.get("message") or "") for c in crumbs)
    assert any(
        (c.get("data") or {}).get("url", "").endswith(f"/{FILTERED}/messages/@original")
        for c in crumbs
    )
    assert event["extra"]["interaction_token"] == FILTERED
    assert event["extra"]["payload"]["content"] == f"debug {FILTERED}"
    request = event["request"]
    assert request["headers"]["Authorization"] == FILTERED
    assert request["headers"]["User-Agent"] == "DiscordBot"
    assert request["data"] == {"token": FILTERED, "type": 4}
    assert request["url"].endswith(f"/webhooks/{APP_ID}/{FILTERED}/messages/@original")


def test_error_id_and_log_context_tag_the_event(sentry):
    logger = logging.getLogger("discordbot.test")
    with log_context(interaction_id=INTERACTION_ID, guild_id=111, user_id=222, market_id=42):
        try:
            raise ValueError(f"boom near {WEBHOOK_URL}")
        except ValueError as exc:
            error_id = error_capture(exc, logger=logger, message="bet command failed")
    sentry_sdk.flush()

    assert_no_secrets(sentry)
    (event,) = sentry.events  # the ERROR log record, through the logging integration
    assert event["tags"]["error_id"] == error_id
    assert event["tags"]["interaction_id"] == INTERACTION_ID
    assert event["tags"]["guild_id"] == "111" and event["tags"]["market_id"] == "42"
    assert error_id in event["logentry"]["formatted"] or error_id in str(event.get("logentry"))


# --- Secrets by value (issue 12) ------------------------------------------------------------------

ODD_TOKEN = "MTA1NzY4OTQ4NjI1NjM4NDA4MA.GhK2bX.short~odd!segment"  # no token shape matches it
DRIP_KEY = "drip_live_7f3a9c2e55b1"
DB_PASSWORD = "correct-horse-battery"
DJANGO_KEY = "k3y-that-signs-cookies-0123456789"
SENTRY_DSN = "https://a1b2c3d4e5f6@o123.ingest.sentry.example.invalid/42"


@pytest.fixture
def configured(settings, monkeypatch):
    settings.DISCORD_TOKEN = ODD_TOKEN
    settings.SENTRY_DSN = SENTRY_DSN
    settings.SECRET_KEY = DJANGO_KEY
    monkeypatch.setitem(settings.DATABASES["default"], "PASSWORD", DB_PASSWORD)
    monkeypatch.setenv("DRIP_API_KEY", DRIP_KEY)
    return [ODD_TOKEN, DRIP_KEY, DB_PASSWORD, DJANGO_KEY, SENTRY_DSN, "a1b2c3d4e5f6"]


def test_configured_secrets_are_redacted_by_value_in_text(configured):
    for secret in configured:
        assert secret not in scrub_text(f"harmless = {secret!r} (held by an innocent name)")
    assert scrub_text("pm is a short word") == "pm is a short word"
    assert scrub_text("postgres://pm:pm@db:5432/pm") == f"postgres://pm:{FILTERED}@db:5432/pm"


def test_configured_secrets_never_reach_sentry(configured, sentry):
    def innocent(value: str, more: dict) -> None:
        raise RuntimeError(f"could not use {value}")

    for secret in configured:
        try:
            innocent(secret, {"note": secret})
        except RuntimeError:
            sentry_sdk.capture_exception()
    sentry_sdk.capture_message(f"settings: {configured}")
    sentry_sdk.flush()
    raw = sentry.raw()
    assert sentry.events
    for secret in configured:
        assert secret.encode() not in raw, f"{secret[:6]}… leaked"


def test_configured_secrets_are_redacted_in_log_lines(configured):
    from ops.logging import JsonFormatter

    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "using %s", (ODD_TOKEN,), None)
    line = JsonFormatter().format(record)
    assert ODD_TOKEN not in line and FILTERED in line


def test_a_fake_server_stopped_mid_request_leaves_no_task_to_be_destroyed_pending(caplog):
    """The cause of this file's order-dependent failure (issue 20 §5, issue 28): a local fake
    server (the fake Discord; drip/fake.py had the same shape) stopped while a request was in
    flight closed its loop with the handler pending; the garbage collector later destroyed the
    task ("Task was destroyed but it is pending!", an ERROR through the logging integration),
    and whichever test was running — one of these, with Sentry on — saw one event too many."""
    import asyncio
    import contextlib
    import gc
    import threading
    import urllib.error
    import urllib.request

    from tests.discordbot.fake_discord import FakeDiscord

    fake = FakeDiscord(latency=30.0)
    base = fake.start()

    def call() -> None:
        with contextlib.suppress(urllib.error.URLError, OSError):
            urllib.request.urlopen(base + "/users/@me", timeout=5)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    loop = fake._loop
    # The request is in the fake's hands once its handler task exists (polled: the fake's
    # loop is another thread's, with nothing to await from here).
    for _ in range(500):
        if any(not t.done() for t in asyncio.all_tasks(loop)):
            break
        threading.Event().wait(0.01)
    fake.stop()
    caller.join(10)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        gc.collect()
    assert [t for t in asyncio.all_tasks(loop) if not t.done()] == []
    assert "destroyed but it is pending" not in caplog.text
