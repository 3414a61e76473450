"""Issue 23 item 20: what Discord refuses and the fake used to accept. One test per rule, plain HTTP
to the fake, Discord's 400/50035 with the field path (the rules are cited in fake_discord.py's
"Issue 23 item 20" section: Discord's "Application Command Option Structure")."""

from __future__ import annotations

import pytest

from .fake_discord import APPLICATION_ID
from .test_fake_discord import (
    AUTOCOMPLETE,
    CHANNEL,
    COMMAND,
    assert_form_error,
    call,
    callback_path,
    fake,  # noqa: F401 (fixture)
    interaction,
)

SYNC = f"/applications/{APPLICATION_ID}/commands"


def command(**option) -> dict:
    return {
        "name": "probe",
        "description": "A probe",
        "options": [{"name": "value", "description": "A value", **option}],
    }


BAD_OPTIONS = {
    "max_value_beyond_2_53": ({"type": 4, "max_value": 2**60}, "0.options.0.max_value"),
    "min_value_beyond_2_53": ({"type": 10, "min_value": -(2**60)}, "0.options.0.min_value"),
    "min_above_max": ({"type": 4, "min_value": 5, "max_value": 1}, "0.options.0.min_value"),
    "autocomplete_on_boolean": ({"type": 5, "autocomplete": True}, "0.options.0.autocomplete"),
    "string_choice_on_integer": (
        {"type": 4, "choices": [{"name": "one", "value": "1"}]},
        "0.options.0.choices.0.value",
    ),
    "min_length_on_integer": ({"type": 4, "min_length": 1}, "0.options.0.min_length"),
    "channel_types_on_string": ({"type": 3, "channel_types": [0]}, "0.options.0.channel_types"),
    "value_range_on_string": ({"type": 3, "max_value": 3}, "0.options.0.max_value"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
async def test_an_option_definition_discord_refuses_is_refused(fake, case):  # noqa: F811
    option, path = BAD_OPTIONS[case]
    status, body, _ = await call(fake, "PUT", SYNC, [command(**option)])
    assert_form_error(status, body, path)
    assert fake.commands.get(None) is None  # nothing was stored


async def test_the_limits_themselves_are_accepted(fake):  # noqa: F811
    ok = command(type=4, min_value=-(2**53), max_value=2**53, autocomplete=True)
    status, body, _ = await call(fake, "PUT", SYNC, [ok, {**command(type=3), "name": "other"}])
    assert status == 200, body


BAD_META = {
    "contexts_unknown": ({"contexts": [0, 7]}, "0.contexts.1"),
    "contexts_not_a_list": ({"contexts": 0}, "0.contexts"),
    "integration_types_unknown": ({"integration_types": [2]}, "0.integration_types.0"),
    "permissions_not_a_bit_set": (
        {"default_member_permissions": "manage"},
        "0.default_member_permissions",
    ),
    "permissions_a_list": ({"default_member_permissions": [32]}, "0.default_member_permissions"),
    "permissions_a_bool": ({"default_member_permissions": True}, "0.default_member_permissions"),
}


@pytest.mark.parametrize("case", sorted(BAD_META))
async def test_command_metadata_discord_refuses_is_refused(fake, case):  # noqa: F811
    meta, path = BAD_META[case]
    status, body, _ = await call(fake, "PUT", SYNC, [{**command(type=3), **meta}])
    assert_form_error(status, body, path)


async def test_contexts_and_integration_types_in_range_are_accepted(fake):  # noqa: F811
    ok = {**command(type=3), "contexts": [0], "integration_types": [0]}
    ok["default_member_permissions"] = "32"
    status, body, _ = await call(fake, "PUT", SYNC, [ok])
    assert status == 200, body


def autocomplete_on(fake, option_type: int) -> dict:  # noqa: F811
    payload = interaction(fake, AUTOCOMPLETE)
    payload["data"] = {
        "name": "probe",
        "type": 1,
        "options": [{"name": "value", "type": option_type, "value": "1", "focused": True}],
    }
    return payload


@pytest.mark.parametrize(("option_type", "value"), [(4, "12"), (3, 12), (10, "1.5"), (4, True)])
async def test_autocomplete_choices_of_the_wrong_type_are_refused(fake, option_type, value):  # noqa: F811
    payload = autocomplete_on(fake, option_type)
    status, body, _ = await call(
        fake,
        "POST",
        callback_path(payload),
        {"type": 8, "data": {"choices": [{"name": "x", "value": value}]}},
    )
    assert_form_error(status, body, "data.choices.0.value")
    assert fake.interactions[payload["token"]].callback_type is None  # not acknowledged


async def test_autocomplete_choices_of_the_option_type_are_accepted(fake):  # noqa: F811
    payload = autocomplete_on(fake, 4)
    status, body, _ = await call(
        fake,
        "POST",
        callback_path(payload),
        {"type": 8, "data": {"choices": [{"name": "x", "value": 12}]}},
    )
    assert status == 200, body


@pytest.mark.parametrize("flags", [1 << 2, (1 << 6) | (1 << 12), "64"])
async def test_a_defer_takes_only_the_ephemeral_flag(fake, flags):  # noqa: F811
    payload = interaction(fake, COMMAND)
    status, body, _ = await call(
        fake, "POST", callback_path(payload), {"type": 5, "data": {"flags": flags}}
    )
    assert status == 400 and body["code"] == 50035, body
    status, body, _ = await call(
        fake, "POST", callback_path(payload), {"type": 5, "data": {"flags": 64}}
    )
    assert status == 200, body


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", f"/channels/{CHANNEL}/messages", ["not", "an", "object"]),
        ("POST", f"/channels/{CHANNEL}/messages", {"content": 12}),
        ("POST", f"/channels/{CHANNEL}/messages", {"embeds": {"title": "x"}}),
        ("POST", "/users/@me/channels", {"recipient_id": "not a number"}),
        ("PUT", SYNC, {"name": "probe"}),
    ],
)
async def test_a_wrong_json_type_is_a_form_error_not_a_500(fake, method, path, body):  # noqa: F811
    status, answer, _ = await call(fake, method, path, body)
    assert status == 400 and answer["code"] == 50035, (status, answer)


async def test_a_refused_edit_changes_nothing(fake):  # noqa: F811
    payload = interaction(fake, COMMAND)
    status, _, _ = await call(
        fake, "POST", callback_path(payload), {"type": 4, "data": {"content": "kept"}}
    )
    assert status == 200
    webhook = f"/webhooks/{APPLICATION_ID}/{payload['token']}/messages/@original"
    status, body, _ = await call(fake, "PATCH", webhook, {"content": "", "embeds": []})
    assert status == 400 and body["code"] == 50006, body
    status, body, _ = await call(fake, "GET", webhook)
    assert body["content"] == "kept" and body["edited_timestamp"] is None, body


async def test_a_body_that_is_not_json_is_50109(fake):  # noqa: F811
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fake.base_url + f"/channels/{CHANNEL}/messages",
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        ) as resp,
    ):
        assert resp.status == 400
        assert (await resp.json())["code"] == 50109
