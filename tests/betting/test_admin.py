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
