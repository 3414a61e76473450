"""Back-office wording (issue 13): "View site" opens the dashboard, the treasury is explained,
shares read with two decimals (the exact count in the tooltip), and reasons are shown where
the help text says."""

from __future__ import annotations

import pytest
from django.urls import reverse

from betting import services as betting_services
from discordbot import render
from markets import services as market_services
from markets.admin.forms import CancelForm, CloseForm, ResolveForm
from points import selectors, services
from points.admin.member_pages import AdjustBalanceForm
from points.rules import SYSTEM
from tests.conftest import ALICE, GUILD

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, settings):
    from django.contrib.auth import get_user_model

    settings.SECURE_SSL_REDIRECT = False
    user = get_user_model().objects.create_superuser("root", password="pw-12345-long")
    client.force_login(user)
    return client


def test_view_site_opens_the_dashboard(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert 'href="/dashboard/"' in html and "View site" in html


def test_the_treasury_reads_as_points_in_circulation(admin_client):
    services.wallet_get_or_create(guild_id=GUILD, user_id=ALICE)
    html = admin_client.get(reverse("admin:points_account_changelist")).content.decode()
    assert "points in circulation: 1,000" in html


def test_position_shares_read_with_two_decimals_and_the_exact_count_as_tooltip(admin_client):
    market = market_services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Two decimals?",
        outcomes=["Yes", "No"],
        duration="2d",
        idempotency_key="bo:m",
    )
    trade = betting_services.bet_place(
        market_id=market.pk, user_id=ALICE, outcome=0, amount=100, idempotency_key="bo:b"
    )
    html = admin_client.get(reverse("admin:betting_position_changelist")).content.decode()
    two = f"{trade.shares / 1_000_000:,.2f}"
    exact = market_services.format_shares(trade.shares)
    assert exact != two  # the trade bought a fraction with more than two decimals
    assert f'<span title="exactly {exact} shares">{two}</span>' in html
    detail = admin_client.get(
        reverse("admin:markets_market_change", args=[market.pk])
    ).content.decode()
    assert "%" in detail and f">{two}</span>" in detail


def test_reason_help_text_says_where_members_see_it():
    assert "/history" in AdjustBalanceForm().fields["reason"].help_text
    assert "market's Discord message" in CancelForm().fields["reason"].help_text
    assert "market's Discord message" in ResolveForm(outcomes=[]).fields["reason"].help_text
    assert "audit log only" in CloseForm().fields["reason"].help_text


def test_history_shows_the_moderators_reason_as_the_help_text_promises():
    services.points_grant(
        guild_id=GUILD,
        user_id=ALICE,
        amount=50,
        reason="Won the quiz night",
        idempotency_key="bo:g",
        actor=SYSTEM,
    )
    rows = selectors.transfers_for_user(guild_id=GUILD, user_id=ALICE)
    text = render.history_embed(rows, page=0).description
    assert "+50" in text and "“Won the quiz night”" in text
    assert text.count("“") == 1  # the starting balance has no reason to show
