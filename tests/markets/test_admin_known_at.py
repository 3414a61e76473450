"""The back office's "outcome known at" (docs/domain.md §6.2): on the Resolve page a moderator
who states the moment first sees which trades it reverses and what each member gets back, with
nothing moved; submitting that same moment settles with it. Through the real services; every
test ends with the ledger audit."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from betting.models import Trade, TradeReversal
from markets import services
from markets.models import Market
from points.models import Transfer
from points.rules import Actor
from points.selectors import balance_get
from tests.admin_helpers import csv_rows, request_id_of
from tests.conftest import ALICE, BOB, GUILD, MOD
from tests.factories import BetFactory, MarketFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


def late_market() -> tuple[Market, str]:
    market = MarketFactory(question="Known?", idempotency_key="create:known")
    BetFactory(market=market, user_id=ALICE, outcome=0, amount=100, idempotency_key="k:a")
    known_at = timezone.now()
    BetFactory(market=market, user_id=BOB, outcome=0, amount=300, idempotency_key="k:b")
    services.market_close(
        market_id=market.pk, actor=Actor.member(MOD, manage_guild=True), idempotency_key="k:c"
    )
    return market, known_at.strftime("%Y-%m-%d %H:%M:%S.%f")


def test_resolve_with_known_at_previews_first_then_settles_that_moment(mod_client):
    market, typed = late_market()
    url = reverse("admin:markets_market_resolve", args=[market.pk])
    page = mod_client.get(url)
    form = {
        "request_id": request_id_of(page),
        "outcome": "0",
        "reason": "The launch was streamed",
        "known_at": typed,
    }

    preview = mod_client.post(url, form)

    assert preview.status_code == 200
    shown = preview.context["known_at_preview"]
    assert shown["trades"] == 1
    assert [(user, amount) for user, _, amount, _ in shown["rows"]] == [(BOB, 300)]
    assert "Reversal preview: 1 trade after" in preview.content.decode()
    market.refresh_from_db()
    assert market.status == "closed" and not Transfer.objects.filter(code="reversal").exists()

    done = mod_client.post(url, {**form, "previewed_known_at": shown["known_at"].isoformat()})

    assert done.status_code == 302
    market.refresh_from_db()
    assert market.status == "resolved" and market.known_at == shown["known_at"]
    assert TradeReversal.objects.filter(trade__idempotency_key="k:b").exists()
    assert balance_get(guild_id=GUILD, user_id=BOB) == 1000


def test_a_known_at_after_the_close_is_refused_with_the_span(mod_client):
    market, _ = late_market()
    url = reverse("admin:markets_market_resolve", args=[market.pk])
    page = mod_client.get(url)
    later = timezone.now().strftime("%Y-%m-%d %H:%M:%S.%f")
    form = {"request_id": request_id_of(page), "outcome": "0", "reason": "r", "known_at": later}
    preview = mod_client.post(url, form)
    known_at = preview.context["known_at_preview"]["known_at"].isoformat()
    refused = mod_client.post(url, {**form, "previewed_known_at": known_at}, follow=True)
    text = refused.content.decode()
    assert "after market #" in text and "closed" in text
    market.refresh_from_db()
    assert market.status == "closed"


def test_reversed_trades_are_marked_in_the_lists_and_the_csv(mod_client):
    """The mark lives in its own table (`TradeReversal`); the trade list, the market page's
    trades and the trades CSV show it, and the list reads it with the trades (no query per
    row: `list_select_related`)."""
    market, _ = late_market()
    known_at = timezone.now()
    services.market_resolve(
        market_id=market.pk,
        outcome=0,
        actor=Actor.member(MOD, manage_guild=True),
        reason="known",
        idempotency_key="k:r",
        known_at=Trade.objects.get(idempotency_key="k:a").created_at,
    )
    mark = TradeReversal.objects.get(trade__idempotency_key="k:b")
    assert mark.reversed_at <= timezone.now() and mark.reversed_at >= known_at
    assert mark.transfer.code == "reversal" and mark.transfer.amount == 300
    shown = f"{mark.reversed_at:%Y-%m-%d %H:%M:%S} UTC"

    listing = mod_client.get(reverse("admin:betting_trade_changelist") + f"?market={market.pk}")
    rows = listing.context["cl"].result_list
    assert listing.status_code == 200 and shown in listing.content.decode()
    assert {t.idempotency_key for t in rows} == {"k:a", "k:b"}
    page = mod_client.get(reverse("admin:markets_market_change", args=[market.pk]))
    assert shown in page.content.decode()

    response = mod_client.get(reverse("admin:markets_market_trades_csv", args=[market.pk]))
    header, *body = csv_rows(response)
    column = {name: i for i, name in enumerate(header)}
    by_key = {row[column["idempotency_key"]]: row[column["reversed_at"]] for row in body}
    assert by_key == {"k:a": "", "k:b": mark.reversed_at.isoformat()}
