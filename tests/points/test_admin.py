"""The ledger back office (issue 5): roles from the groups migration, the adjust-balance page,
the member page, the read-only ledger and the audit log with its CSV export."""

from __future__ import annotations

import csv
import io

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group, Permission
from django.test import AsyncClient
from django.urls import reverse

from betting import services as betting_services
from core.adminkit import keyset_chunks
from markets import services as market_services
from points import services
from points.models import Account, AuditEvent, Transfer
from points.rules import SYSTEM, Actor
from points.selectors import balance_get
from tests.admin_helpers import (
    breadcrumbs,
    csv_rows,
    log_entries,
    messages_of,
    request_id_of,
    staff_user,
)
from tests.conftest import ALICE, BOB, GUILD, MOD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


def adjust_url(user_id: int = ALICE, guild_id: int = GUILD) -> str:
    return reverse("admin:points_adjust", args=[guild_id, user_id])


def member_url(user_id: int = ALICE, guild_id: int = GUILD) -> str:
    return reverse("admin:points_member", args=[guild_id, user_id])


def wallet(user_id: int = ALICE) -> Account:
    return services.wallet_get_or_create(guild_id=GUILD, user_id=user_id)


def adjust(client, direction: str, amount: object, reason: str = "Event prize", **extra):
    page = client.get(adjust_url())
    form = {"direction": direction, "amount": amount, "reason": reason}
    return client.post(adjust_url(), {**form, "request_id": request_id_of(page), **extra})


# --- Roles ----------------------------------------------------------------------------------------


def test_groups_migration_gives_moderators_the_four_actions_and_viewers_only_view():
    """…and both the dashboard (dashboard/migrations/0002, issue 12)."""

    def codenames(name):
        return set(Group.objects.get(name=name).permissions.values_list("codename", flat=True))

    moderators, viewers = codenames("Moderators"), codenames("Viewers")
    actions = {"resolve_market", "cancel_market", "close_market", "adjust_balance"}
    actions.add("resolve_driptransfer")  # drip migration 0002: deciding in-doubt transfers
    actions.add("announce_season")  # points migration 0020: a season's table posted again
    view_all = set(
        Permission.objects.filter(
            content_type__app_label__in=["points", "markets", "betting", "drip"],
            codename__startswith="view_",
        ).values_list("codename", flat=True)
    )
    assert {"view_market", "view_trade", "view_position", "view_auditevent"} <= view_all
    assert moderators == actions | view_all | {"view_dashboard"}
    assert viewers == view_all | {"view_dashboard"}


def test_superuser_has_every_action(client, django_user_model):
    boss = django_user_model.objects.create_superuser("boss", "b@example.org", "pw-long-enough-1")
    client.force_login(boss)
    wallet()
    html = client.get(reverse("admin:points_account_changelist")).content.decode()
    assert "adjust_balance" in html
    assert client.get(adjust_url()).status_code == 200


# --- Adjust balance -------------------------------------------------------------------------------


def test_grant_moves_points_with_a_reason_and_leaves_an_audit_event_and_a_log_entry(
    mod_client, moderator
):
    account = wallet()
    response = adjust(mod_client, "grant", 250)

    assert response.status_code == 302 and response["Location"] == member_url()
    assert balance_get(guild_id=GUILD, user_id=ALICE) == 1250
    transfer = Transfer.objects.get(code="grant")
    assert transfer.amount == 250 and transfer.actor_user_id == moderator.pk
    assert transfer.memo == "Event prize" and transfer.idempotency_key.startswith("admin:")
    event = AuditEvent.objects.get(action="points_grant")
    assert event.actor_user_id == moderator.pk and event.reason == "Event prize"
    assert event.before == {"balance": 1000} and event.after == {"balance": 1250}
    (entry,) = log_entries(account)
    assert entry.user_id == moderator.pk
    assert entry.get_change_message() == "Granted 250 points: Event prize"
    assert messages_of(response)[-1] == (
        "Granted 250 points: Event prize. New balance: 1,250 points."
    )


def test_deduct_refuses_to_overdraw_with_a_message(mod_client):
    account = wallet()
    response = adjust(mod_client, "deduct", 1001, reason="Penalty")

    assert response.status_code == 200
    # In a moderator's words, not the member-facing "You don't have enough points".
    assert messages_of(response)[-1] == (
        "The member has only 1,000 points; you can deduct at most 1,000."
    )
    assert balance_get(guild_id=GUILD, user_id=ALICE) == 1000
    assert not Transfer.objects.filter(code="deduct").exists()
    assert not AuditEvent.objects.filter(action="points_deduct").exists()
    assert log_entries(account) == []
    # Exactly the balance is allowed.
    assert adjust(mod_client, "deduct", 1000, reason="Penalty").status_code == 302
    assert balance_get(guild_id=GUILD, user_id=ALICE) == 0


@pytest.mark.parametrize(
    ("amount", "reason", "field"),
    [("", "ok", "amount"), ("0", "ok", "amount"), ("1.5", "ok", "amount"), ("10", "   ", "reason")],
)
def test_adjust_form_refuses_bad_input_without_moving_points(mod_client, amount, reason, field):
    wallet()
    response = adjust(mod_client, "grant", amount, reason=reason)
    assert response.status_code == 200 and field in response.context["form"].errors
    assert Transfer.objects.filter(code="grant").count() == 0


def test_adjust_double_submit_moves_points_once(mod_client):
    account = wallet()
    page = mod_client.get(adjust_url())
    form = {"direction": "grant", "amount": 40, "reason": "r", "request_id": request_id_of(page)}
    mod_client.post(adjust_url(), form)
    second = mod_client.post(adjust_url(), form)
    assert balance_get(guild_id=GUILD, user_id=ALICE) == 1040
    assert Transfer.objects.filter(code="grant").count() == 1
    assert len(log_entries(account)) == 1
    assert "already submitted" in messages_of(second)[-1]


def test_adjust_action_on_the_account_list_opens_the_page_for_one_wallet(mod_client):
    alice, bob = wallet(ALICE), wallet(BOB)
    url = reverse("admin:points_account_changelist")
    one = mod_client.post(url, {"action": "adjust_balance", "_selected_action": [alice.pk]})
    assert one.status_code == 302 and one["Location"] == adjust_url(ALICE)
    two = mod_client.post(url, {"action": "adjust_balance", "_selected_action": [alice.pk, bob.pk]})
    assert messages_of(two)[-1] == "Select exactly one wallet to adjust its balance."
    treasury = Account.objects.get(kind="treasury")
    not_wallet = mod_client.post(
        url, {"action": "adjust_balance", "_selected_action": [treasury.pk]}
    )
    assert messages_of(not_wallet)[-1] == "Select exactly one wallet to adjust its balance."


def test_a_viewer_cannot_adjust_or_edit_the_ledger(viewer_client):
    account = wallet()
    listing = viewer_client.get(reverse("admin:points_account_changelist"))
    assert listing.status_code == 200 and "adjust_balance" not in listing.content.decode()
    posted = viewer_client.post(
        reverse("admin:points_account_changelist"),
        {"action": "adjust_balance", "_selected_action": [account.pk]},
    )
    assert posted.status_code == 403
    assert viewer_client.get(adjust_url()).status_code == 403
    form = {"direction": "grant", "amount": 5, "reason": "r", "request_id": "0" * 32}
    assert viewer_client.post(adjust_url(), form).status_code == 403
    page = viewer_client.get(member_url()).content.decode()
    assert "1,000 points" in page and adjust_url() not in page
    change = reverse("admin:points_account_change", args=[account.pk])
    assert viewer_client.post(change, {"balance": 10**6}).status_code == 403
    assert balance_get(guild_id=GUILD, user_id=ALICE) == 1000


def test_ledger_rows_are_read_only_even_for_a_superuser(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "r@e.org", "pw-long-1"))
    account = wallet()
    transfer = Transfer.objects.get(code="starting_balance")
    assert client.get(reverse("admin:points_transfer_add")).status_code == 403
    for name, obj in (("points_account", account), ("points_transfer", transfer)):
        change = reverse(f"admin:{name}_change", args=[obj.pk])
        assert client.post(change, {"amount": 1, "balance": 1}).status_code == 403
        delete = reverse(f"admin:{name}_delete", args=[obj.pk])
        assert client.post(delete, {"post": "yes"}).status_code == 403
    event = AuditEvent.objects.create(action="x", target_type="t", target_id="1")
    audit_change = reverse("admin:points_auditevent_change", args=[event.pk])
    assert client.post(audit_change, {"reason": "rewritten"}).status_code == 403


# --- Member page ----------------------------------------------------------------------------------


def test_member_page_shows_wallet_positions_and_history_with_paging(mod_client):
    market = market_services.market_create(
        guild_id=GUILD,
        creator_id=BOB,
        question="Will the ferry run on time?",
        outcomes=["Yes", "No"],
        duration="1d",
        idempotency_key="m1",
    )
    betting_services.bet_place(
        market_id=market.pk, user_id=ALICE, outcome=1, amount=70, idempotency_key="m2"
    )
    for i in range(55):
        services.points_grant(
            guild_id=GUILD,
            user_id=ALICE,
            amount=1,
            reason=f"g{i}",
            idempotency_key=f"g{i}",
            actor=SYSTEM,
        )
    response = mod_client.get(member_url())
    assert response.status_code == 200
    html = response.content.decode()
    assert f"{1000 - 70 + 55:,} points" in html
    assert "Will the ferry run on time?" in html
    (position_view,) = response.context["portfolio"].positions
    assert position_view.label == "No" and position_view.points_spent == 70
    history = response.context["history"]
    assert len(history) == 50 and history[0].memo == "g54"
    older = response.context["older_before"]
    assert f"?before={older}" in html
    rest = mod_client.get(member_url(), {"before": older}).context["history"]
    # 57 transfers touch the wallet: start, the bet, 55 grants.
    assert [h.code for h in rest] == ["grant"] * 5 + ["buy", "starting_balance"]
    assert len(response.context["audit"]) == 20  # latest moderator actions on this wallet


def test_member_page_of_someone_without_a_wallet_says_so(mod_client):
    html = mod_client.get(member_url(BOB)).content.decode()
    assert "has no wallet in this guild yet" in html
    assert not Account.objects.filter(kind="wallet", owner_id=BOB).exists()


# --- Audit log ------------------------------------------------------------------------------------


def test_member_and_adjust_pages_lead_back_through_their_breadcrumbs(mod_client):
    wallet()
    accounts = reverse("admin:points_account_changelist")
    home = (reverse("admin:index"), "Home")
    app = (reverse("admin:app_list", args=["points"]), "Points ledger")
    member = breadcrumbs(mod_client.get(member_url()))
    assert member[:3] == [home, app, (accounts, "Accounts")]
    assert len(member) == 4 and member[3][0] is None and member[3][1].startswith("Member: ")
    adjust = breadcrumbs(mod_client.get(adjust_url()))
    assert adjust[:3] == [home, app, (accounts, "Accounts")]
    assert adjust[3][0] == member_url() and adjust[4] == (None, "Adjust balance")


def test_audit_log_filters_by_actor_kind(mod_client, moderator):
    wallet()
    services.points_grant(
        guild_id=GUILD,
        user_id=ALICE,
        amount=5,
        reason="bot",
        idempotency_key="d1",
        actor=Actor.member(MOD, manage_guild=True),
    )
    adjust(mod_client, "grant", 7, reason="admin")
    url = reverse("admin:points_auditevent_changelist")
    admin_rows = mod_client.get(url, {"actor": "admin"}).context["cl"].result_list
    assert [e.reason for e in admin_rows] == ["admin"]
    discord_rows = mod_client.get(url, {"actor": "discord"}).context["cl"].result_list
    assert [e.reason for e in discord_rows] == ["bot"]
    html = mod_client.get(url).content.decode()
    assert "Export CSV" in html and ">mod<" in html


def test_audit_csv_streams_the_filtered_rows_and_neutralises_formulas(mod_client):
    wallet()
    services.points_grant(
        guild_id=GUILD,
        user_id=ALICE,
        amount=3,
        reason="=1+1",
        idempotency_key="f1",
        actor=Actor.member(MOD, manage_guild=True),
    )
    services.points_deduct(
        guild_id=GUILD,
        user_id=ALICE,
        amount=2,
        reason="fine",
        idempotency_key="f2",
        actor=Actor.member(MOD, manage_guild=True),
    )
    export = reverse("admin:points_auditevent_export")
    everything = csv_rows(mod_client.get(export))
    assert everything[0][:3] == ["id", "created_at", "guild_id"]
    assert len(everything) == 1 + AuditEvent.objects.count()
    grants = csv_rows(mod_client.get(export, {"action__exact": "points_grant"}))
    header, (row,) = grants[0], grants[1:]
    record = dict(zip(header, row, strict=True))
    assert record["reason"] == "'=1+1" and record["actor_kind"] == "discord"
    assert record["actor_discord_id"] == str(MOD) and record["target_id"] == str(ALICE)
    assert record["before"] == '{"balance": 1000}' and record["after"] == '{"balance": 1003}'


def test_keyset_chunks_pages_by_primary_key_without_losing_or_repeating_rows():
    wallet()
    for i in range(20):
        services.points_grant(
            guild_id=GUILD,
            user_id=ALICE,
            amount=1,
            reason=f"r{i}",
            idempotency_key=f"k{i}",
            actor=SYSTEM,
        )
    everything = AuditEvent.objects.all()
    newest = list(keyset_chunks(everything, size=7))
    assert [len(c) for c in newest] == [7, 7, 6]
    ids = [e.pk for chunk in newest for e in chunk]
    assert ids == sorted(everything.values_list("id", flat=True), reverse=True)
    oldest = [
        e.pk for chunk in keyset_chunks(everything, size=5, newest_first=False) for e in chunk
    ]
    assert oldest == sorted(ids)
    assert list(keyset_chunks(everything.none())) == []


def test_audit_csv_needs_view_permission(client):
    client.force_login(staff_user("nobody", None))
    assert client.get(reverse("admin:points_auditevent_export")).status_code == 403


@pytest.mark.django_db(transaction=True)
async def test_audit_csv_streams_asynchronously_under_asgi(django_user_model):
    user = await sync_to_async(staff_user)("async-mod", "Moderators")
    await sync_to_async(wallet)()
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.get(reverse("admin:points_auditevent_export"))
    assert response.status_code == 200 and response.is_async
    body = b"".join([chunk async for chunk in response.streaming_content]).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][0] == "id" and len(rows) == 1 + await AuditEvent.objects.acount()


def test_audit_event_page_shows_who_what_and_the_before_after_summary(mod_client, moderator):
    wallet()
    adjust(mod_client, "grant", 12, reason="Quiz winner")
    market = market_services.market_create(
        guild_id=GUILD,
        creator_id=BOB,
        question="Q?",
        outcomes=["A", "B"],
        duration="1h",
        idempotency_key="q1",
    )
    event = AuditEvent.objects.get(action="points_grant")
    html = mod_client.get(reverse("admin:points_auditevent_change", args=[event.pk])).content
    text = html.decode()
    assert "Quiz winner" in text and "&quot;balance&quot;: 1012" in text and "<pre>" in text
    listing = mod_client.get(reverse("admin:points_auditevent_changelist")).content.decode()
    assert member_url() in listing  # wallet targets link to the member page
    assert reverse("admin:markets_market_change", args=[market.pk]) in listing
    accounts = mod_client.get(reverse("admin:points_account_changelist")).content.decode()
    assert f"market #{market.pk}" in accounts and "treasury" in accounts


def test_audit_log_filters_system_actions_and_refuses_bad_export_filters(mod_client):
    services.audit_record(action="scheduler_note", target_type="guild", target_id=1, guild_id=GUILD)
    wallet()
    adjust(mod_client, "grant", 1, reason="x")
    url = reverse("admin:points_auditevent_changelist")
    system = mod_client.get(url, {"actor": "system"}).context["cl"].result_list
    assert [e.action for e in system] == ["scheduler_note"]
    export = reverse("admin:points_auditevent_export")
    assert mod_client.get(export, {"no_such_field": "1"}).status_code == 404


def test_member_page_needs_view_permission(client):
    client.force_login(staff_user("nobody", None))
    assert client.get(member_url()).status_code == 403
