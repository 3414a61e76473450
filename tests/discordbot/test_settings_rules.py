"""One table of guild settings (`points/rules/settings.py`, issue 14): the core service, the back
office's form and `/settings` refuse the same value with the same words, and `/settings
resolution` sets how results are decided."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from discordbot.cogs.settings import MSG_RESOLUTION_NOTHING
from points import services
from points.errors import InvalidInput
from points.models import AuditEvent, GuildSettings
from points.rules import SETTINGS, Actor, SettingSpec
from points.services import guild_settings_get_or_create
from tests.admin_helpers import guild_settings_form, settings_editor

from .conftest import db

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("plain_http")]


def bad_values(spec: SettingSpec) -> list[object]:
    if spec.kind == "int":
        return [spec.low - 1, spec.high + 1]
    if spec.kind == "choice":
        return ["sometimes"]
    if spec.kind == "amounts":  # issue 26: a list of 1–5 different amounts
        return [[5, 5], [0], [1, 2, 3, 4, 5, 6], [10**16]]
    if spec.kind == "zone":  # issue 25: an IANA name, exactly as the database spells it
        return ["Mars/Olympus_Mons", "europe/paris", 1]
    return [1, "yes"]


def slash_commands(spec: SettingSpec, value: object) -> list[tuple[str, dict]]:
    """How a Discord admin can type `value` for `spec` ("" and {} when Discord cannot express
    it: a boolean option only ever carries true or false)."""
    commands = []
    if spec.kind == "int":
        commands.append(("settings set", {"setting": spec.name, "value": value}))
    if spec.kind == "amounts":
        commands.append(("settings quick_amounts", {"amounts": ", ".join(map(str, value))}))
    if spec.name == "dispute_window_minutes":
        commands.append(("settings resolution", {"dispute_window_minutes": value}))
    if spec.name == "resolution_mode":
        commands.append(("settings resolution", {"mode": value}))
    return commands


def audited() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="guild_settings_update"))


def snapshot(guild_id: int) -> dict:
    gs = GuildSettings.objects.get(guild_id=guild_id)
    return {spec.name: getattr(gs, spec.name) for spec in SETTINGS}


@pytest.mark.parametrize("spec", SETTINGS, ids=lambda spec: spec.name)
async def test_every_interface_refuses_a_value_outside_the_table_in_the_same_words(
    harness, members, spec
):
    guild = harness.guild_id
    await db(harness, guild_settings_get_or_create, guild_id=guild)
    before = await db(harness, snapshot, guild_id=guild)
    editor = await db(harness, settings_editor)
    client = Client()

    def through_the_service(value: object) -> str:
        with pytest.raises(InvalidInput) as refused:
            services.guild_settings_update(
                guild_id=guild,
                actor=Actor.member(members.mod.id, manage_guild=True),
                idempotency_key=f"test:{spec.name}:{value!r}",
                values={spec.name: value},
            )
        return refused.value.message

    def through_the_admin(value: object) -> list[str] | None:
        if spec.kind == "bool":
            return None  # a checkbox is ticked or not: nothing else can be posted
        client.force_login(editor)
        gs = GuildSettings.objects.get(guild_id=guild)
        url = reverse("admin:points_guildsettings_change", args=[guild])
        response = client.post(url, guild_settings_form(gs, **{spec.name: value}))
        assert response.status_code == 200, response.status_code
        return response.context["adminform"].form.errors[spec.name]

    for value in bad_values(spec):
        assert await db(harness, through_the_service, value=value) == spec.message
        admin_errors = await db(harness, through_the_admin, value=value)
        assert admin_errors in (None, [spec.message])
        for name, options in slash_commands(spec, value):
            refused = await harness.send(harness.command(name, members.mod, **options))
            assert refused.rejected == []
            assert refused.text == spec.message, (name, options)

    assert await db(harness, snapshot, guild_id=guild) == before
    assert not await db(harness, audited)


async def test_settings_resolution_sets_the_three_rules_and_says_so(harness, members):
    ex = await harness.send(
        harness.command(
            "settings resolution",
            members.mod,
            mode="creator",
            dispute_window_minutes=90,
            conflict_of_interest=False,
        )
    )

    assert ex.rejected == []
    assert "Saved." in ex.text
    assert (
        "the creator proposes the result · dispute window 1 hour 30 minutes · a dispute holds "
        "it at most 2 days · conflict-of-interest rule off"
    ) in ex.text
    gs = await db(harness, guild_settings_get_or_create, guild_id=harness.guild_id)
    assert (gs.resolution_mode, gs.dispute_window_minutes, gs.conflict_of_interest) == (
        "creator",
        90,
        False,
    )
    (record,) = await db(harness, audited)
    assert record.actor_discord_id == members.mod.id and record.actor_user_id is None
    assert record.before["resolution_mode"] == "vote"
    assert record.after["resolution_mode"] == "creator"
    assert record.after["dispute_window_minutes"] == 90
    assert record.after["conflict_of_interest"] is False

    # One option alone changes only that rule.
    ex = await harness.send(
        harness.command("settings resolution", members.mod, conflict_of_interest=True)
    )
    assert "conflict-of-interest rule on" in ex.text
    gs = await db(harness, guild_settings_get_or_create, guild_id=harness.guild_id)
    assert (gs.resolution_mode, gs.dispute_window_minutes) == ("creator", 90)


async def test_settings_resolution_without_an_option_says_what_to_choose(harness, members):
    ex = await harness.send(harness.command("settings resolution", members.mod))

    assert ex.text == MSG_RESOLUTION_NOTHING
    assert not await db(harness, audited)


async def test_settings_set_offers_every_number_of_the_table(harness, members):
    ex = await harness.send(
        harness.command("settings set", members.mod, setting="dispute_window_minutes", value=0)
    )

    assert "no dispute window" in ex.text
    show = await harness.send(harness.command("settings show", members.mod))
    assert (
        "resolvers vote (2 votes needed) · no dispute window · a dispute holds it at most 2 days "
        "· conflict-of-interest rule on"
    ) in show.text


async def test_a_member_without_manage_server_cannot_change_the_rules(harness, members):
    ex = await harness.send(harness.command("settings resolution", members.alice, mode="creator"))

    assert (
        ex.text == "Only members with the Manage Server permission can change the bot's settings."
    )
    gs = await db(harness, guild_settings_get_or_create, guild_id=harness.guild_id)
    assert gs.resolution_mode == "vote"
