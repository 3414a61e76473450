"""The fake Discord refuses what Discord refuses, with Discord's status, code, message and field
path, so its strictness cannot quietly regress (issue 11). These tests speak plain HTTP to the
fake, plus discord.py's own HTTP client where its parsing of the answer matters."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import aiohttp
import discord
import pytest

from .fake_discord import (
    APPLICATION_ID,
    CALLBACKS_ALLOWED,
    ROUTE_LIMITS,
    TOKEN_LIFETIME,
    FakeDiscord,
    VirtualClock,
    error_paths,
    snowflake,
    snowflake_time,
)

CHANNEL = 555_555_555_555_555_501
COMMAND, COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5


@pytest.fixture
def fake():
    f = FakeDiscord()
    f.start()
    yield f
    f.stop()


async def call(fake: FakeDiscord, method: str, path: str, body=None):
    """One request; returns (status, JSON body or None, headers)."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, fake.base_url + path, json=body) as resp,
    ):
        data = await resp.json() if resp.status != 204 else None
        return resp.status, data, resp.headers


def interaction(fake: FakeDiscord, kind: int, *, age: float = 0.0) -> dict:
    """Register an interaction of `kind` that Discord created `age` seconds ago."""
    payload = {
        "id": str(snowflake(fake.now() - age)),
        "application_id": str(APPLICATION_ID),
        "type": kind,
        "token": "tok-" + secrets.token_urlsafe(16),
        "channel_id": str(CHANNEL),
        "guild_id": "1",
    }
    if kind in (COMPONENT, MODAL_SUBMIT):
        clicked = fake._new_message(CHANNEL, {"content": "a market"})
        payload["message"] = clicked
    fake.register_interaction(payload)
    return payload


def callback_path(payload: dict) -> str:
    return f"/interactions/{payload['id']}/{payload['token']}/callback"


def body_for(kind: int) -> dict:
    data = {
        4: {"content": "hi"},
        5: {},
        6: {},
        7: {"content": "edited"},
        8: {"choices": []},
        9: {
            "title": "A form",
            "custom_id": "form",
            "components": [
                {"type": 1, "components": [{"type": 4, "custom_id": "a", "label": "A"}]}
            ],
        },
    }[kind]
    return {"type": kind, "data": data}


def assert_form_error(status: int, body: dict, path: str, says: str = "") -> None:
    assert status == 400, body
    assert body["code"] == 50035 and body["message"] == "Invalid Form Body", body
    assert path in error_paths(body), (path, body)
    assert says in json.dumps(body, ensure_ascii=False), (says, body)


# --- The interaction state machine -----------------------------------------------------------


@pytest.mark.parametrize("itype", [COMMAND, COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT])
@pytest.mark.parametrize("ctype", [4, 5, 6, 7, 8, 9])
async def test_each_interaction_type_accepts_only_its_callback_types(fake, itype, ctype):
    payload = interaction(fake, itype)

    status, body, _ = await call(fake, "POST", callback_path(payload), body_for(ctype))

    if ctype in CALLBACKS_ALLOWED[itype]:
        assert status == 200, body
    else:
        assert_form_error(status, body, "type")


def test_the_allowed_callback_table_is_discords():
    assert {
        COMMAND: {4, 5, 9},
        COMPONENT: {4, 5, 6, 7, 9},
        AUTOCOMPLETE: {8},
        MODAL_SUBMIT: {4, 5, 6, 7},
    } == CALLBACKS_ALLOWED


async def test_a_second_acknowledgement_is_refused(fake):
    payload = interaction(fake, COMMAND)
    assert (await call(fake, "POST", callback_path(payload), body_for(5)))[0] == 200

    status, body, _ = await call(fake, "POST", callback_path(payload), body_for(4))

    assert (status, body["code"]) == (400, 40060)
    assert body["message"] == "Interaction has already been acknowledged."


async def test_the_first_followup_after_a_defer_replaces_the_thinking_message(fake):
    payload = interaction(fake, COMMAND)
    _, deferred, _ = await call(
        fake, "POST", callback_path(payload), {"type": 5, "data": {"flags": 64}}
    )
    original_id = deferred["resource"]["message"]["id"]
    hook = f"/webhooks/{APPLICATION_ID}/{payload['token']}"

    _, first, _ = await call(fake, "POST", hook, {"content": "answer", "flags": 0})
    _, second, _ = await call(fake, "POST", hook, {"content": "more"})

    assert first["id"] == original_id and first["content"] == "answer"
    assert first["flags"] & 64, "the placeholder keeps its own ephemeral flag"
    assert not first["flags"] & 128, "no longer loading"
    assert second["id"] != original_id


async def test_an_interaction_past_three_seconds_from_its_id_is_unknown(fake):
    late = interaction(fake, COMMAND, age=3.1)
    fresh = interaction(fake, COMMAND, age=2.5)

    status, body, _ = await call(fake, "POST", callback_path(late), body_for(5))
    assert (status, body["code"], body["message"]) == (404, 10062, "Unknown interaction")
    assert (await call(fake, "POST", callback_path(fresh), body_for(5)))[0] == 200


async def test_tokens_expire_after_fifteen_minutes(fake):
    payload = interaction(fake, COMMAND)
    await call(fake, "POST", callback_path(payload), body_for(5))
    original = f"/webhooks/{APPLICATION_ID}/{payload['token']}/messages/@original"
    assert (await call(fake, "PATCH", original, {"content": "in time"}))[0] == 200

    fake.advance(TOKEN_LIFETIME + 1)
    status, body, _ = await call(fake, "PATCH", original, {"content": "too late"})
    assert (status, body["code"], body["message"]) == (401, 50027, "Invalid Webhook Token")

    status, body, _ = await call(fake, "PATCH", f"/webhooks/{APPLICATION_ID}/nope/messages/1", {})
    assert (status, body["code"], body["message"]) == (404, 10015, "Unknown Webhook")


async def test_the_harness_dates_interactions_back_by_the_gateway_delay(harness, members):
    payload = harness.command("balance", members.alice)
    age = time.time() - snowflake_time(payload["id"])
    assert harness.fake.gateway_delay == 0.3
    assert 0.29 <= age < 1.0


# --- Rate limits -----------------------------------------------------------------------------


async def test_a_route_bucket_answers_429_with_discords_headers_and_body(fake):
    path = f"/channels/{CHANNEL}/messages"
    seen = []
    for _ in range(5):
        status, _, headers = await call(fake, "POST", path, {"content": "x"})
        assert status == 200
        seen.append(headers["X-RateLimit-Remaining"])
    assert seen == ["4", "3", "2", "1", "0"]
    assert headers["X-RateLimit-Limit"] == "5"
    assert 0 < float(headers["X-RateLimit-Reset-After"]) <= 5
    assert float(headers["X-RateLimit-Reset"]) > time.time()
    bucket = headers["X-RateLimit-Bucket"]

    status, body, headers = await call(fake, "POST", path, {"content": "x"})

    assert status == 429
    assert body["message"] == "You are being rate limited." and body["global"] is False
    assert 0 < body["retry_after"] <= 5
    assert headers["X-RateLimit-Scope"] == "user" and headers["X-RateLimit-Bucket"] == bucket
    other = await call(fake, "POST", f"/channels/{CHANNEL + 1}/messages", {"content": "x"})
    assert other[0] == 200, "buckets are per channel"
    assert len(fake.invalid_requests) == 1


async def test_on_a_virtual_clock_a_bucket_refills_when_the_test_moves_time_not_before():
    fake = FakeDiscord(
        clock=VirtualClock(), route_limits={("POST", "/channels/{channel_id}/messages"): (2, 60.0)}
    )
    fake.start()
    try:
        path = f"/channels/{CHANNEL}/messages"
        assert [(await call(fake, "POST", path, {"content": "x"}))[0] for _ in range(2)] == [
            200,
            200,
        ]
        status, body, headers = await call(fake, "POST", path, {"content": "x"})
        assert status == 429 and body["retry_after"] == 60.0
        assert headers["X-RateLimit-Reset-After"] == "60.000"
        fake.advance(59.9)
        status, body, _ = await call(fake, "POST", path, {"content": "x"})
        assert status == 429 and body["retry_after"] == pytest.approx(0.1)
        fake.advance(0.1)
        status, _, headers = await call(fake, "POST", path, {"content": "x"})
        assert status == 200 and headers["X-RateLimit-Remaining"] == "1"
        # Deadlines run on the same clock: a fresh interaction is answerable however long the
        # machine takes, until Discord's clock passes its 3 seconds.
        payload = interaction(fake, COMMAND)
        fake.advance(3.1)
        status, body, _ = await call(fake, "POST", callback_path(payload), body_for(5))
        assert (status, body["code"]) == (404, 10062)
    finally:
        fake.stop()


async def test_the_global_limit_answers_a_global_429(fake):
    fake.global_limit = 3
    statuses = [(await call(fake, "GET", "/users/@me"))[0] for _ in range(3)]
    status, body, headers = await call(fake, "GET", "/users/@me")

    assert statuses == [200, 200, 200] and status == 429
    assert body["global"] is True and 0 < body["retry_after"] <= 1
    assert headers["X-RateLimit-Global"] == "true" and headers["X-RateLimit-Scope"] == "global"


async def test_discord_py_reads_the_headers_and_waits_instead_of_hitting_429():
    # Discord's 5 messages per 5 seconds, scaled to a 1-second window: the same headers, the
    # same pre-emptive wait, a fifth of the time.
    fake = FakeDiscord(
        route_limits={**ROUTE_LIMITS, ("POST", "/channels/{channel_id}/messages"): (5, 1.0)}
    )
    fake.start()
    discord.http.Route.BASE = fake.base_url
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    await http.static_login("fake-token")
    try:
        started = time.monotonic()
        for i in range(7):
            await http.send_message(
                CHANNEL,
                params=discord.http.MultipartParameters(
                    payload={"content": f"message {i}"}, multipart=None, files=None
                ),
            )
        waited = time.monotonic() - started
    finally:
        await http.close()
        fake.stop()

    assert len(fake.channel_posts(CHANNEL)) == 7
    assert fake.invalid_requests == [], "discord.py waited on Remaining: 0, no 429"
    assert waited >= 0.8, "the sixth message waited for the window"


async def test_dm_anti_spam_refuses_new_dm_channels_past_its_limit(fake):
    fake.anti_spam(2, 60)
    for user in (1, 2):
        assert (await call(fake, "POST", "/users/@me/channels", {"recipient_id": str(user)}))[
            0
        ] == 200
    again = await call(fake, "POST", "/users/@me/channels", {"recipient_id": "1"})

    status, body, _ = await call(fake, "POST", "/users/@me/channels", {"recipient_id": "3"})

    assert again[0] == 200, "an existing DM channel is not a new one"
    assert (status, body["code"]) == (403, 40003)
    assert body["message"] == "You are opening direct messages too fast."


async def test_the_invalid_request_budget_fails_a_test_above_it(fake):
    fake.set_permissions(CHANNEL, view=False)
    for _ in range(2):
        await call(fake, "POST", f"/channels/{CHANNEL}/messages", {"content": "x"})
    fake.fail("GET", "^/users/@me$", 401, {"message": "401: Unauthorized", "code": 0})
    await call(fake, "GET", "/users/@me")

    fake.assert_invalid_within(2)  # the injected 401 is the test's own, not counted
    with pytest.raises(AssertionError, match="2 401/403/429 responses"):
        fake.assert_invalid_within(1)


# --- Permissions -----------------------------------------------------------------------------


async def test_channel_permissions_give_missing_access_and_missing_permissions(fake):
    path = f"/channels/{CHANNEL}/messages"
    embed = {"embeds": [{"title": "t"}]}

    fake.set_permissions(CHANNEL, view=False)
    hidden = await call(fake, "POST", path, {"content": "x"})
    fake.set_permissions(CHANNEL, send=False)
    mute = await call(fake, "POST", path, {"content": "x"})
    fake.set_permissions(CHANNEL, embed_links=False)
    no_embeds = await call(fake, "POST", path, embed)
    plain = await call(fake, "POST", path, {"content": "x"})

    assert (hidden[0], hidden[1]) == (403, {"code": 50001, "message": "Missing Access"})
    assert (mute[0], mute[1]) == (403, {"code": 50013, "message": "Missing Permissions"})
    assert (no_embeds[0], no_embeds[1]["code"]) == (403, 50013)
    assert plain[0] == 200


async def test_the_bot_cannot_edit_a_message_it_did_not_write(fake):
    theirs = fake.post_as(CHANNEL, {"id": "42", "username": "someone"}, "hello")
    ours = fake._new_message(CHANNEL, {"content": "mine"})
    base = f"/channels/{CHANNEL}/messages/"

    status, body, _ = await call(fake, "PATCH", base + theirs["id"], {"content": "x"})

    assert (status, body["code"]) == (403, 50005)
    assert body["message"] == "Cannot edit a message authored by another user"
    assert (await call(fake, "PATCH", base + ours["id"], {"content": "x"}))[0] == 200
    fake.set_permissions(CHANNEL, view=False)
    assert (await call(fake, "PATCH", base + ours["id"], {"content": "y"}))[1]["code"] == 50001


# --- Payload rules ---------------------------------------------------------------------------


def button(**fields) -> dict:
    return {"type": 2, "style": 1, "label": "B", "custom_id": "b", **fields}


def rows(*components) -> list[dict]:
    return [{"type": 1, "components": list(components)}]


EMOJI = "🎲"
BAD_MESSAGES = {
    "content over 2000": ({"content": "x" * 2001}, "content"),
    "embed title over 256": ({"embeds": [{"title": "x" * 257}]}, "embeds.0.title"),
    "6000 across embeds": (
        {"embeds": [{"description": "x" * 3001}, {"description": "x" * 3000}]},
        "embeds",
        "6000",
    ),
    "unknown parse type": ({"content": "x", "allowed_mentions": {"parse": ["all"]}}, None),
    "parse and list of users": (
        {"content": "x", "allowed_mentions": {"parse": ["users"], "users": ["1"]}},
        "allowed_mentions",
    ),
    "more than 100 users": (
        {"content": "x", "allowed_mentions": {"users": [str(i) for i in range(101)]}},
        "allowed_mentions.users",
    ),
    "link button with custom_id": (
        {"components": rows(button(style=5, url="https://example.com"))},
        "components.0.components.0.custom_id",
    ),
    "link button without url": (
        {"components": rows({"type": 2, "style": 5, "label": "L"})},
        "components.0.components.0.url",
    ),
    "button without custom_id": (
        {"components": rows({"type": 2, "style": 1, "label": "B"})},
        "components.0.components.0.custom_id",
    ),
    "button with a url": (
        {"components": rows(button(url="https://example.com"))},
        "components.0.components.0.url",
    ),
    "custom_id over 100 UTF-16 units": (
        {"components": rows(button(custom_id="pm:" + EMOJI * 49))},
        "components.0.components.0.custom_id",
    ),
    "duplicate custom_id": (
        {"components": rows(button(), button())},
        "components.0.components.1.custom_id",
    ),
    "six action rows": (
        {"components": [rows(button(custom_id=str(i)))[0] for i in range(6)]},
        "components",
        "5 or fewer",
    ),
    "more than 40 components": (
        {
            "components": [
                {"type": 1, "components": [button(custom_id=f"{r}.{c}") for c in range(5)]}
                for r in range(8)
            ]
        },
        "components",
        "40 or fewer",
    ),
    "select with max_values above its options": (
        {
            "components": rows(
                {
                    "type": 3,
                    "custom_id": "s",
                    "max_values": 3,
                    "options": [{"label": "a", "value": "a"}, {"label": "b", "value": "b"}],
                }
            )
        },
        "components.0.components.0.max_values",
    ),
    "select with 26 options": (
        {
            "components": rows(
                {
                    "type": 3,
                    "custom_id": "s",
                    "options": [{"label": str(i), "value": str(i)} for i in range(26)],
                }
            )
        },
        "components.0.components.0.options",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_MESSAGES))
async def test_a_message_discord_would_refuse_is_refused_with_its_field(fake, case):
    data, path, *says = BAD_MESSAGES[case]

    status, body, _ = await call(fake, "POST", f"/channels/{CHANNEL}/messages", data)

    assert_form_error(status, body, path or "allowed_mentions.parse.0", *says)
    assert fake.channel_posts(CHANNEL) == []


def modal_with(text_input: dict) -> dict:
    return {
        "type": 9,
        "data": {
            "title": "Form",
            "custom_id": "form",
            "components": [{"type": 18, "label": "Amount", "component": text_input}],
        },
    }


BAD_INPUTS = {
    "min above max": ({"min_length": 10, "max_length": 5}, "max_length"),
    "max over 4000": ({"max_length": 4001}, "max_length"),
    "value over max": ({"max_length": 3, "value": "abcd"}, "value"),
    "unknown style": ({"style": 3}, "style"),
    "no custom_id": ({"custom_id": None}, "custom_id"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
async def test_a_text_input_out_of_bounds_is_refused(fake, case):
    extra, field = BAD_INPUTS[case]
    text_input = {"type": 4, "custom_id": "amount", "style": 1, **extra}
    payload = interaction(fake, COMMAND)

    status, body, _ = await call(fake, "POST", callback_path(payload), modal_with(text_input))

    assert_form_error(status, body, f"data.components.0.component.{field}")


async def test_discord_py_reports_the_field_path_of_a_form_error(fake):
    discord.http.Route.BASE = fake.base_url
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    await http.static_login("fake-token")
    try:
        with pytest.raises(discord.HTTPException) as caught:
            await http.send_message(
                CHANNEL,
                params=discord.http.MultipartParameters(
                    payload={"embeds": [{"title": "x" * 300}]}, multipart=None, files=None
                ),
            )
    finally:
        await http.close()

    assert caught.value.status == 400 and caught.value.code == 50035
    assert "In embeds.0.title: Must be 256 or fewer in length." in str(caught.value)
