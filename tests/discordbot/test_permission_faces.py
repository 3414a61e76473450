"""The permission table (docs/domain.md §6.1) gives the same answer on every face: what
`points.rules.allowed` says — and the core services enforce (tests/points/test_rules.py) — is what
a member reads in Discord and what a staff member meets in the back office.

Discord: every Discord actor kind of `PERMISSION_TABLE` × every action the bot offers, in the
guild with creator and resolver roles (and, for proposals, the one that resolves by creator),
through the strict fake Discord. A refusal must be the rules' words exactly; an allowed action
must have happened. The back office: every staff kind × every action it offers, through the
Django test client; refused means no page and nothing changed, allowed means it happened."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from betting.services import bet_place
from markets.models import Market
from markets.services import market_close, market_create
from points.models import AuditEvent, GuildSettings
from points.rules import Action, Actor, allowed
from points.services import guild_settings_update, wallet_get_or_create
from tests.points.test_rules import (
    CREATOR_ROLE,
    GUILDS,
    PERMISSION_TABLE,
    RESOLVER_ROLE,
    STAFF_KINDS,
    Expectation,
)

from .conftest import db
from .harness import MOD_PERMISSIONS, Harness, Member

MEMBERS = {
    "member": Member(777_777_777_777_777_701, "member"),
    "creator": Member(777_777_777_777_777_702, "creator", roles=(CREATOR_ROLE,)),
    "resolver": Member(777_777_777_777_777_703, "resolver", roles=(RESOLVER_ROLE,)),
    "manage": Member(777_777_777_777_777_704, "manage", MOD_PERMISSIONS),
}
TRADER = 777_777_777_777_777_710
MOD = Actor.member(777_777_777_777_777_799, manage_guild=True)

BOT_ACTIONS = [
    Action.CREATE,
    Action.CLOSE,
    Action.VOTE,
    Action.PROPOSE,
    Action.CONFIRM,
    Action.RESOLVE,
    Action.CANCEL,
    Action.SETTINGS,
]
BOT_ROWS = [
    row
    for row in PERMISSION_TABLE
    if row.action in BOT_ACTIONS
    and row.kind in MEMBERS
    and row.guild == ("creator_mode" if row.action == Action.PROPOSE else "roles")
]


def actor_of(member: Member) -> Actor:
    return Actor.member(
        member.id,
        role_ids=member.roles,
        manage_guild=bool(member.permissions.manage_guild),
    )


def setup_guild(guild_id: int, guild: str) -> GuildSettings:
    settings_row = guild_settings_update(
        guild_id=guild_id,
        actor=MOD,
        idempotency_key=f"test:{uuid.uuid4().hex}",
        values={
            "resolution_mode": GUILDS[guild]["resolution_mode"],
            "dispute_window_minutes": 60,  # proposals stay proposed: confirm has one to confirm
            "min_resolution_votes": 1,  # an allowed vote decides at once
        },
        creator_role_ids=GUILDS[guild]["creator_role_ids"],
        resolver_role_ids=GUILDS[guild]["resolver_role_ids"],
    )
    return settings_row


def market_in(guild_id: int, status: str) -> Market:
    """A market of the creator's in `status` ("open", "closed", "resolving"), with a trader."""
    key = uuid.uuid4().hex
    market = market_create(
        guild_id=guild_id,
        creator_id=MEMBERS["creator"].id,
        question="Will the permission table hold?",
        outcomes=["Yes", "No"],
        duration="1d",
        idempotency_key=f"create:{key}",
        actor=MOD,
    )
    bet_place(
        market_id=market.pk, user_id=TRADER, outcome=0, amount=10, idempotency_key=f"bet:{key}"
    )
    if status != "open":
        market_close(market_id=market.pk, actor=MOD, idempotency_key=f"close:{key}")
    if status == "resolving":
        from markets.services import market_propose

        market_propose(market_id=market.pk, outcome=0, actor=MOD, idempotency_key=f"prop:{key}")
    return Market.objects.get(pk=market.pk)


STARTS_IN = {
    Action.CLOSE: "open",
    Action.VOTE: "closed",
    Action.PROPOSE: "closed",
    Action.CONFIRM: "resolving",
    Action.RESOLVE: "closed",
    Action.CANCEL: "closed",
}


def command_for(h: Harness, row: Expectation, member: Member, market: Market | None) -> dict:
    ref = str(market.pk) if market else ""
    if row.action == Action.CREATE:
        return h.command(
            "market create", member, question="Who creates?", outcomes="Yes|No", duration="1d"
        )
    if row.action == Action.CLOSE:
        return h.command("market close", member, market=ref)
    if row.action in (Action.VOTE, Action.PROPOSE):
        return h.command("market resolve", member, market=ref, outcome="1")
    if row.action == Action.CONFIRM:
        return h.command("market confirm", member, market=ref, reason="Checked the source")
    if row.action == Action.RESOLVE:
        return h.command(
            "market resolve", member, market=ref, outcome="1", force=True, reason="Clear result"
        )
    if row.action == Action.CANCEL:
        return h.command("market cancel", member, market=ref, reason="Question was unclear")
    assert row.action == Action.SETTINGS
    return h.command("settings set", member, setting="max_bet", value=4321)


def happened(row: Expectation, guild_id: int, market: Market | None) -> bool:
    if row.action == Action.CREATE:
        return Market.objects.filter(guild_id=guild_id, question="Who creates?").exists()
    if row.action == Action.SETTINGS:
        return GuildSettings.objects.get(guild_id=guild_id).max_bet == 4321
    assert market is not None
    status = Market.objects.get(pk=market.pk).status
    return {
        Action.CLOSE: status == "closed",
        Action.VOTE: status == "resolving",
        Action.PROPOSE: status == "resolving",
        Action.CONFIRM: status == "resolved",
        Action.RESOLVE: status == "resolved",
        Action.CANCEL: status == "cancelled",
    }[row.action]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("row", BOT_ROWS, ids=lambda row: row.id)
async def test_discord_gives_the_rules_answer(harness: Harness, row: Expectation):
    guild_id = harness.guild_id
    member = MEMBERS[row.kind]
    await db(harness, setup_guild, guild_id=guild_id, guild=row.guild)
    market = None
    if row.action in STARTS_IN:
        market = await db(harness, market_in, guild_id=guild_id, status=STARTS_IN[row.action])
    gs = await db(harness, GuildSettings.objects.get, guild_id=guild_id)
    refusal = allowed(row.action, actor_of(member), gs, market)
    assert (refusal is None) == row.allowed, "the rules disagree with the table"

    ex = await harness.send(command_for(harness, row, member, market))

    done = await db(harness, happened, row=row, guild_id=guild_id, market=market)
    if row.allowed:
        assert done, ex.text
    else:
        assert ex.text == refusal
        assert not done


# --- The back office ------------------------------------------------------------------------

ADMIN_ROWS = [
    row
    for row in PERMISSION_TABLE
    if row.kind in STAFF_KINDS
    and row.kind != "staff+markets.add_market"
    and row.action
    in (Action.CLOSE, Action.CONFIRM, Action.RESOLVE, Action.CANCEL, Action.ADJUST, Action.SETTINGS)
]


def staff_user(django_user_model, kind: str):
    name = f"u{uuid.uuid4().hex[:12]}"
    if kind == "superuser":
        return django_user_model.objects.create_superuser(name, f"{name}@example.org", "pw-1-long")
    user = django_user_model.objects.create_user(name, password="pw-1-long", is_staff=True)
    # Every back-office user may look (as the Viewers group); a kind adds one action.
    views = Permission.objects.filter(codename__startswith="view_")
    user.user_permissions.add(*views)
    if kind.startswith("staff+"):
        app, codename = kind.removeprefix("staff+").split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    return user


def admin_post(client, row: Expectation, guild_id: int, market: Market | None):
    """The back-office form for the action, submitted as its confirmation page would."""
    key = str(uuid.uuid4())
    if row.action == Action.SETTINGS:
        url = reverse("admin:points_guildsettings_change", args=[guild_id])
        page = client.get(url)
        if page.status_code != 200:
            return page
        form = page.context["adminform"].form
        data = {
            name: ("" if value is None else value)
            for name, value in form.initial.items()
            if name in form.fields
        }
        data.update(max_bet=4321)
        for name, value in list(data.items()):
            if isinstance(value, list):
                data[name] = json.dumps(value)
            if isinstance(value, bool) and not value:
                data.pop(name)
        return client.post(url, data)
    if row.action == Action.ADJUST:
        url = reverse("admin:points_adjust", args=[guild_id, TRADER])
        return client.post(
            url,
            {"direction": "grant", "amount": 7, "reason": "Prize", "request_id": key},
        )
    assert market is not None
    pk = market.pk
    if row.action == Action.CONFIRM:
        url = reverse("admin:markets_market_review", args=[pk])
        data = {"decision": "confirm", "reason": "Checked", "request_id": key}
    elif row.action == Action.RESOLVE:
        url = reverse("admin:markets_market_resolve", args=[pk])
        data = {"outcome": 0, "reason": "Clear", "request_id": key}
    else:
        verb = {Action.CLOSE: "close", Action.CANCEL: "cancel"}[row.action]
        url = reverse(f"admin:markets_market_{verb}")
        data = {"ids": str(pk), "reason": "Because", "request_id": key}
    return client.post(url, data)


ADMIN_STARTS_IN = {**STARTS_IN, Action.CLOSE: "open"}


@pytest.mark.django_db
@pytest.mark.usefixtures("plain_http")
@pytest.mark.parametrize("row", ADMIN_ROWS, ids=lambda row: row.id)
def test_the_back_office_gives_the_rules_answer(client, django_user_model, row: Expectation):
    guild_id = 777_000_000_000_000_001
    setup_guild(guild_id, row.guild)
    market = market_in(guild_id, ADMIN_STARTS_IN[row.action]) if row.action in STARTS_IN else None
    before = wallet_get_or_create(guild_id=guild_id, user_id=TRADER).balance
    user = staff_user(django_user_model, row.kind)
    gs = GuildSettings.objects.get(guild_id=guild_id)
    assert (allowed(row.action, Actor.from_user(user), gs, market) is None) == row.allowed
    client.force_login(user)
    audits = AuditEvent.objects.count()

    response = admin_post(client, row, guild_id, market)

    if row.action == Action.ADJUST:
        changed = wallet_get_or_create(guild_id=guild_id, user_id=TRADER).balance != before
    elif row.action == Action.SETTINGS:
        changed = GuildSettings.objects.get(guild_id=guild_id).max_bet == 4321
    else:
        changed = happened(row, guild_id, market)
    if row.allowed:
        form = (getattr(response, "context", None) or {}).get("adminform")
        assert changed, form.form.errors if form else response.status_code
        assert AuditEvent.objects.count() > audits
    else:
        assert response.status_code in (302, 403), response.status_code
        assert not changed
        assert AuditEvent.objects.count() == audits
