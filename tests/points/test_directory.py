"""The member and guild directory (issue 13): names kept cheaply from interactions, shown in
the back office, the dashboard and the CSV exports, and erased on `/privacy forget`."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from betting import services as betting_services
from markets import services as market_services
from points import selectors, services
from points.models import Guild, Member
from points.rules import SYSTEM
from tests.conftest import ALICE, BOB, GUILD

pytestmark = pytest.mark.django_db

ALICE_SEEN = {"display_name": "Alice Liddell", "username": "alice", "avatar": ""}


def seen(user_id: int = ALICE, **fields) -> bool:
    return services.member_seen(guild_id=GUILD, user_id=user_id, **{**ALICE_SEEN, **fields})


@pytest.fixture
def plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def staff_client(client, plain_http):
    user = get_user_model().objects.create_user("watcher", password="pw-12345-long", is_staff=True)
    user.is_superuser = True
    user.save()
    client.force_login(user)
    return client


def market_with_trade(key: str = "dir"):
    market = market_services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Will the directory work?",
        outcomes=["Yes", "No"],
        duration="2d",
        idempotency_key=f"{key}:m",
    )
    betting_services.bet_place(
        market_id=market.pk, user_id=ALICE, outcome=0, amount=100, idempotency_key=f"{key}:b"
    )
    return market


# --- The upsert and its gate ----------------------------------------------------------------


def test_member_seen_stores_the_member_and_the_guild():
    assert seen(guild_name="Book club", guild_icon="https://cdn.example/icon.png")

    member = Member.objects.get(guild_id=GUILD, user_id=ALICE)
    assert (member.display_name, member.username, member.forgotten) == (
        "Alice Liddell",
        "alice",
        False,
    )
    assert member.last_seen is not None
    assert Guild.objects.get(id=GUILD).name == "Book club"


def test_a_second_interaction_within_the_window_writes_nothing(django_assert_num_queries):
    assert seen()
    with django_assert_num_queries(0):
        assert not seen(display_name="Alice Renamed")
    assert Member.objects.get(guild_id=GUILD, user_id=ALICE).display_name == "Alice Liddell"


def test_after_the_window_the_new_name_is_stored(settings, django_assert_num_queries):
    assert seen()
    settings.PM_DIRECTORY_NAMESPACE += ":later"  # the gate's entry expired
    with django_assert_num_queries(2):
        assert seen(display_name="Alice Renamed", guild_name="Book club")
    assert Member.objects.get(guild_id=GUILD, user_id=ALICE).display_name == "Alice Renamed"


def test_member_seen_drops_characters_no_name_holds_and_trims():
    seen(display_name="Al\x00ice\u200b" + "x" * 200, username="alice\n")
    member = Member.objects.get(guild_id=GUILD, user_id=ALICE)
    assert member.display_name.startswith("Alice") and len(member.display_name) == 100
    assert member.username == "alice"


# --- The name selector ----------------------------------------------------------------------


def test_member_names_in_one_query_with_a_fallback_for_unknown_members(django_assert_num_queries):
    seen()
    seen(BOB, display_name="", username="bob")
    stranger = 900_000_000_000_001_004
    with django_assert_num_queries(1):
        names = selectors.member_names(guild_id=GUILD, user_ids=[ALICE, BOB, stranger])
    assert names == {ALICE: "Alice Liddell", BOB: "bob", stranger: "member #9000…"}
    with django_assert_num_queries(0):
        assert selectors.member_names(guild_id=GUILD, user_ids=[]) == {}


def test_names_are_per_guild():
    seen()
    assert selectors.member_names(guild_id=GUILD + 1, user_ids=[ALICE]) == {ALICE: "member #2222…"}


# --- Forget ---------------------------------------------------------------------------------


def test_forget_erases_the_name_in_every_guild_and_it_is_never_stored_again(settings):
    seen()
    services.member_seen(guild_id=GUILD + 1, user_id=ALICE, **ALICE_SEEN)

    services.member_forget(guild_id=GUILD, user_id=ALICE)

    rows = Member.objects.filter(user_id=ALICE)
    assert rows.count() == 2
    assert all(
        (m.display_name, m.username, m.avatar, m.forgotten) == ("", "", "", True) for m in rows
    )
    settings.PM_DIRECTORY_NAMESPACE += ":later"
    seen()  # the next interaction after the gate reopens
    services.member_seen(guild_id=GUILD + 2, user_id=ALICE, **ALICE_SEEN)  # a new server
    assert not Member.objects.filter(user_id=ALICE).exclude(display_name="").exists()
    assert not Member.objects.filter(guild_id=GUILD + 2, user_id=ALICE).exists()
    assert selectors.member_names(guild_id=GUILD, user_ids=[ALICE]) == {ALICE: "member #2222…"}


def test_forget_of_a_member_never_seen_still_keeps_them_out():
    services.member_forget(guild_id=GUILD, user_id=BOB)
    seen(BOB, display_name="Bob Builder")
    assert selectors.member_names(guild_id=GUILD, user_ids=[BOB]) == {BOB: "member #2222…"}


# --- The back office ------------------------------------------------------------------------


def test_admin_search_finds_a_member_by_display_name(staff_client):
    market_with_trade()
    seen()
    seen(BOB, display_name="Bob Builder", username="bob")
    services.wallet_get_or_create(guild_id=GUILD, user_id=BOB)

    accounts = staff_client.get(reverse("admin:points_account_changelist"), {"q": "liddell"})
    html = accounts.content.decode()
    assert accounts.status_code == 200
    assert "Alice Liddell" in html and f'title="Discord id {ALICE}"' in html
    assert "Bob Builder" not in html

    directory = staff_client.get(reverse("admin:points_member_changelist"), {"q": "Liddell"})
    assert "Alice Liddell" in directory.content.decode()
    trades = staff_client.get(reverse("admin:betting_trade_changelist"), {"q": "alice"})
    assert "Alice Liddell" in trades.content.decode()


def test_member_page_shows_the_name_username_and_ids(staff_client):
    seen(guild_name="Book club")
    page = staff_client.get(reverse("admin:points_member", args=[GUILD, ALICE])).content.decode()
    assert "Member: Alice Liddell" in page
    assert "@alice" in page and str(ALICE) in page and "Book club" in page


def test_market_list_shows_the_guild_name_and_creator_name(staff_client):
    market = market_with_trade()
    seen(guild_name="Book club")
    listing = staff_client.get(reverse("admin:markets_market_changelist")).content.decode()
    assert "Book club" in listing and f'title="Discord server id {GUILD}"' in listing
    detail = staff_client.get(
        reverse("admin:markets_market_change", args=[market.pk])
    ).content.decode()
    assert "Alice Liddell" in detail


def test_trades_csv_has_id_and_name_columns(staff_client):
    market = market_with_trade()
    seen(guild_name="Book club")
    response = staff_client.get(reverse("admin:markets_market_trades_csv", args=[market.pk]))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0]["user_id"] == str(ALICE) and rows[0]["user_name"] == "Alice Liddell"
    assert rows[0]["guild_id"] == str(GUILD) and rows[0]["guild_name"] == "Book club"


def test_dashboard_feed_and_trades_show_names(staff_client):
    market = market_with_trade()
    seen()  # no guild name known: the server reads "server #1111…"
    index = staff_client.get(reverse("dashboard:index")).content.decode()
    assert "Alice Liddell bought 100 pts" in index
    page = staff_client.get(reverse("dashboard:market", args=[market.pk])).content.decode()
    assert "Alice Liddell" in page and f'title="Discord id {ALICE}"' in page
    assert "created by <span" in page and f">{selectors.guild_fallback(GUILD)}<" in page


def test_dashboard_cards_show_the_server_name(staff_client):
    market_with_trade()
    seen(guild_name="Book club")
    index = staff_client.get(reverse("dashboard:index")).content.decode()
    assert f'title="Discord server id {GUILD}">Book club<' in index


def test_audit_log_names_the_member_an_adjustment_targeted(staff_client):
    seen()
    services.points_grant(
        guild_id=GUILD,
        user_id=ALICE,
        amount=5,
        reason="Prize",
        idempotency_key="dir:g",
        actor=SYSTEM,
    )
    html = staff_client.get(reverse("admin:points_auditevent_changelist")).content.decode()
    assert f'title="Discord id {ALICE}">Alice Liddell</a>' in html
