"""`points.services.guild_settings_update` and the back office's guild settings page (issue 14):
one service for every interface, so an admin edit obeys the table of `points/rules/settings.py`
and the rule `Action.SETTINGS`, and writes the same `guild_settings_update` audit record."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from points import services
from points.errors import InvalidInput, NotAllowed
from points.models import AuditEvent, GuildSettings
from points.rules import SETTINGS_BY_NAME, SYSTEM, Actor, setting_check
from points.rules.permissions import MSG_ADMIN_PERMISSION, MSG_SETTINGS
from points.rules.settings import MSG_SETTING_UNKNOWN
from tests.admin_helpers import guild_settings_form, settings_editor, staff_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]

GUILD = 444_444_444_444_444_401
OTHER_GUILD = 444_444_444_444_444_402
ADMIN = Actor.member(555_555_555_555_555_501, manage_guild=True)


def update(actor: Actor = ADMIN, key: str = "test:settings", **kwargs) -> GuildSettings:
    return services.guild_settings_update(
        guild_id=GUILD, actor=actor, idempotency_key=key, **kwargs
    )


def audited() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="guild_settings_update").order_by("id"))


# --- The table -------------------------------------------------------------------------------


def test_the_table_words_the_new_rules_as_the_brief_says():
    assert SETTINGS_BY_NAME["dispute_window_minutes"].message == (
        "Dispute window (minutes) must be a whole number from 0 to 10,080."
    )
    assert SETTINGS_BY_NAME["resolution_mode"].message == "Resolution mode is “vote” or “creator”."
    assert SETTINGS_BY_NAME["conflict_of_interest"].message == (
        "Conflict-of-interest rule is on (true) or off (false)."
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("fee_bps", True), ("fee_bps", "100"), ("fee_bps", 1.0), ("conflict_of_interest", 1),
     ("conflict_of_interest", "true"), ("resolution_mode", "VOTE"), ("resolution_mode", None)],
)  # fmt: skip
def test_setting_check_is_strict_about_types(name, value):
    with pytest.raises(InvalidInput) as refused:
        setting_check(name, value)
    assert refused.value.message == SETTINGS_BY_NAME[name].message


def test_an_unknown_setting_is_named():
    with pytest.raises(InvalidInput) as refused:
        update(values={"bonus_multiplier": 2})
    assert refused.value.message == MSG_SETTING_UNKNOWN.format(name="bonus_multiplier")


def test_the_table_fits_the_database_check_constraints():
    """Every edge the table allows is a row PostgreSQL accepts."""
    for edge in ("low", "high"):
        values = {
            spec.name: getattr(spec, edge)
            for spec in SETTINGS_BY_NAME.values()
            if spec.kind == "int"
        }
        update(key=f"test:{edge}", values=values)
        gs = GuildSettings.objects.get(guild_id=GUILD)
        assert all(getattr(gs, name) == value for name, value in values.items())


# --- The service -----------------------------------------------------------------------------


def test_the_service_changes_all_or_nothing_and_audits_before_and_after():
    with pytest.raises(InvalidInput):
        update(values={"fee_bps": 100, "dispute_window_minutes": 10_081})
    assert audited() == []
    gs = GuildSettings.objects.filter(guild_id=GUILD).first()
    assert gs is None or gs.fee_bps == settings.PM_GUILD_DEFAULTS["fee_bps"]

    gs = update(
        values={"fee_bps": 100, "resolution_mode": "creator", "conflict_of_interest": False}
    )

    assert (gs.fee_bps, gs.resolution_mode, gs.conflict_of_interest) == (100, "creator", False)
    (record,) = audited()
    assert record.actor_discord_id == ADMIN.user_id and record.actor_user_id is None
    assert record.idempotency_key == "test:settings"
    assert record.before["fee_bps"] == settings.PM_GUILD_DEFAULTS["fee_bps"]
    assert record.after["fee_bps"] == 100
    assert (record.before["resolution_mode"], record.after["resolution_mode"]) == (
        "vote",
        "creator",
    )
    assert record.after["conflict_of_interest"] is False


def test_nothing_changed_writes_no_record():
    update(values={"fee_bps": 100})
    update(key="test:again", values={"fee_bps": 100})
    assert len(audited()) == 1


@pytest.mark.parametrize(
    ("actor", "refusal"),
    [
        (Actor.member(555_555_555_555_555_502, role_ids=[1]), MSG_SETTINGS),
        (Actor(admin_user_id=1), MSG_ADMIN_PERMISSION.format(perm="points.change_guildsettings")),
    ],
)
def test_who_may_not_change_settings_is_refused_before_anything_is_checked(actor, refusal):
    with pytest.raises(NotAllowed) as refused:
        update(actor=actor, values={"fee_bps": 99_999})
    assert refused.value.message == refusal
    assert audited() == []
    assert not GuildSettings.objects.filter(guild_id=GUILD).exists()


def test_the_system_may_change_settings():
    assert update(actor=SYSTEM, values={"daily_bonus": 0}).daily_bonus == 0


def test_the_idempotency_key_is_validated():
    with pytest.raises(InvalidInput):
        update(key="", values={"fee_bps": 1})


def test_roles_change_one_at_a_time_or_as_whole_lists():
    update(role_kind="resolver", role_action="add", role_id=7)
    update(key="k2", creator_role_ids=[5, 6, 5])
    gs = GuildSettings.objects.get(guild_id=GUILD)
    assert (gs.resolver_role_ids, gs.creator_role_ids) == ([7], [5, 6])
    with pytest.raises(InvalidInput):
        update(key="k3", role_kind="resolver", role_action="add")
    with pytest.raises(InvalidInput):
        update(key="k4", creator_role_ids=[-1])


# --- The back office -------------------------------------------------------------------------


def change_url(guild_id: int = GUILD) -> str:
    return reverse("admin:points_guildsettings_change", args=[guild_id])


def test_an_admin_edit_goes_through_the_service_and_is_audited(client):
    gs = services.guild_settings_get_or_create(guild_id=GUILD)
    editor = settings_editor()
    client.force_login(editor)

    response = client.post(
        change_url(),
        guild_settings_form(
            gs,
            dispute_window_minutes=120,
            resolution_mode="creator",
            conflict_of_interest=False,
            resolver_role_ids="[42]",
        ),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    gs.refresh_from_db()
    assert (gs.dispute_window_minutes, gs.resolution_mode, gs.conflict_of_interest) == (
        120,
        "creator",
        False,
    )
    assert gs.resolver_role_ids == [42]
    (record,) = audited()
    assert record.actor_user_id == editor.pk and record.actor_discord_id is None
    assert record.idempotency_key.startswith("admin:")
    assert record.before["dispute_window_minutes"] == 0  # the tests' default
    assert record.after["dispute_window_minutes"] == 120
    assert record.after["resolver_role_ids"] == ["42"]


def test_a_staff_user_without_the_permission_is_refused(client):
    gs = services.guild_settings_get_or_create(guild_id=GUILD)
    client.force_login(staff_user("viewer", "Viewers"))

    response = client.post(change_url(), guild_settings_form(gs, fee_bps=100))

    assert response.status_code == 403
    gs.refresh_from_db()
    assert gs.fee_bps == settings.PM_GUILD_DEFAULTS["fee_bps"]
    assert audited() == []


def test_the_guild_id_cannot_be_edited(client):
    gs = services.guild_settings_get_or_create(guild_id=GUILD)
    client.force_login(settings_editor())
    form = {**guild_settings_form(gs, fee_bps=7), "guild_id": str(OTHER_GUILD)}

    assert client.post(change_url(), form).status_code == 302

    assert not GuildSettings.objects.filter(guild_id=OTHER_GUILD).exists()
    assert GuildSettings.objects.get(guild_id=GUILD).fee_bps == 7


def test_adding_a_guild_goes_through_the_table_and_the_service(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", "r@example.org", "pw-long-1")
    client.force_login(root)
    defaults = GuildSettings(guild_id=GUILD, slippage_bps=200, **settings.PM_GUILD_DEFAULTS)
    url = reverse("admin:points_guildsettings_add")

    page = client.get(url)
    assert page.context["adminform"].form.initial["resolution_mode"] == "vote"

    bad = client.post(url, {**guild_settings_form(defaults, max_bet=0), "guild_id": str(GUILD)})
    assert bad.status_code == 200
    assert bad.context["adminform"].form.errors["max_bet"] == [SETTINGS_BY_NAME["max_bet"].message]
    bad_id = client.post(url, {**guild_settings_form(defaults), "guild_id": "-5"})
    assert bad_id.context["adminform"].form.errors["guild_id"] == [
        "That is not a valid Discord id: use a positive whole number."
    ]
    assert not GuildSettings.objects.exists()

    good = client.post(url, {**guild_settings_form(defaults, fee_bps=250), "guild_id": str(GUILD)})
    assert good.status_code == 302
    assert GuildSettings.objects.get(guild_id=GUILD).fee_bps == 250
    (record,) = audited()
    assert record.actor_user_id == root.pk
    assert (record.before["fee_bps"], record.after["fee_bps"]) == (0, 250)

    twice = client.post(url, {**guild_settings_form(defaults), "guild_id": str(GUILD)})
    assert twice.status_code == 200 and "already exists" in twice.content.decode()


def test_adding_needs_the_change_permission_too(client):
    from django.contrib.auth.models import Permission

    user = staff_user("adder", None)
    user.user_permissions.add(Permission.objects.get(codename="add_guildsettings"))
    client.force_login(user)

    assert client.get(reverse("admin:points_guildsettings_add")).status_code == 403
