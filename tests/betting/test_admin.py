"""Positions and trades in the back office (issue 5): read-only lists, filterable by market."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.conftest import ALICE, BOB, GUILD
from tests.factories import BetFactory, MarketFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


def market_with_bets(key: str):
    market = MarketFactory(question=f"Question {key}?")
    BetFactory(market=market, user_id=ALICE, outcome=0, amount=30)
    BetFactory(market=market, user_id=BOB, outcome=1, amount=20)
    return market


@pytest.mark.parametrize("model", ["position", "trade"])
def test_lists_filter_by_market_and_link_members_and_markets(viewer_client, model):
    first, second = market_with_bets("m1"), market_with_bets("m2")
    url = reverse(f"admin:betting_{model}_changelist")
    response = viewer_client.get(url, {"market": first.pk})
    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert {r.market_id for r in rows} == {first.pk} and len(rows) == 2
    html = response.content.decode()
    assert reverse("admin:markets_market_change", args=[first.pk]) in html
    assert reverse("admin:points_member", args=[GUILD, ALICE]) in html
    by_member = viewer_client.get(url, {"q": str(BOB)}).context["cl"].result_list
    assert {r.user_id for r in by_member} == {BOB} and len(by_member) == 2
    assert second.pk in {r.market_id for r in by_member}


@pytest.mark.parametrize("model", ["position", "trade"])
def test_positions_and_trades_are_read_only(viewer_client, model):
    market = market_with_bets("ro")
    assert viewer_client.get(reverse(f"admin:betting_{model}_add")).status_code == 403
    obj = market.positions.first() if model == "position" else market.trades.first()
    change = reverse(f"admin:betting_{model}_change", args=[obj.pk])
    assert viewer_client.get(change).status_code == 200
    assert viewer_client.post(change, {"shares": 1, "amount": 1}).status_code == 403


def test_the_market_page_and_the_order_list_show_limit_orders(viewer_client):
    """DOMAIN §4.7: resting, filled and released orders, read-only, on the market's page."""
    from betting.services import order_cancel, order_place

    market = market_with_bets("orders")
    waiting = order_place(
        market_id=market.pk,
        user_id=ALICE,
        outcome=0,
        side="buy",
        limit_ppm=100_000,
        budget=25,
        idempotency_key="admin-order-1",
    )
    cancelled = order_place(
        market_id=market.pk,
        user_id=BOB,
        outcome=1,
        side="sell",
        limit_ppm=990_000,
        idempotency_key="admin-order-2",
    )
    order_cancel(order_id=cancelled.pk, user_id=BOB)
    page = viewer_client.get(reverse("admin:markets_market_change", args=[market.pk]))
    html = page.content.decode()
    assert "Limit orders (waiting first)" in html
    assert "≤ 10.0 %" in html and "25 pts" in html and "≥ 99.0 %" in html
    assert "resting" in html.lower() and "cancelled" in html.lower()
    listing = viewer_client.get(reverse("admin:betting_order_changelist"), {"market": market.pk})
    assert {o.pk for o in listing.context["cl"].result_list} == {waiting.pk, cancelled.pk}
    assert viewer_client.get(reverse("admin:betting_order_add")).status_code == 403
