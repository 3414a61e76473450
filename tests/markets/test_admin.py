"""The market back office (issue 5): the list, the detail page, and the Resolve / Cancel and
refund / Close now confirmation pages, driven with the Django test client through the real
services; every test ends with the ledger audit (tests/conftest.py)."""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from betting import services as betting_services
from betting.models import Position, Trade
from markets import selectors, services
from markets.amm import SHARE_SCALE
from markets.errors import MSG_ALREADY_SETTLED, MSG_NOT_CLOSED_FOR_RESOLVE
from markets.models import Market, MarketEvent
from points.errors import DomainError
from points.models import AuditEvent, Transfer
from points.rules import Actor
from points.selectors import balance_get
from tests.admin_helpers import (
    breadcrumbs,
    csv_rows,
    log_entries,
    messages_of,
    request_id_of,
    staff_user,
)
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD
from tests.factories import BetFactory, MarketFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]

CHANGELIST = "admin:markets_market_changelist"


def make_market(key: str, *, outcomes=("Yes", "No"), mechanism="amm", question=None) -> Market:
    return MarketFactory(
        question=question or f"Will {key} happen?",
        outcomes=outcomes,
        duration="2d",
        mechanism=mechanism,
        idempotency_key=f"create:{key}",
    )


def bet(market: Market, user: int, outcome: int, amount: int, key: str):
    return BetFactory(
        market=market, user_id=user, outcome=outcome, amount=amount, idempotency_key=key
    )


def close(market: Market) -> Market:
    return services.market_close(
        market_id=market.pk,
        idempotency_key=f"close:{market.pk}",
        actor=Actor.member(MOD, manage_guild=True),
    )


@pytest.fixture
def traded_market() -> Market:
    """A closed amm market: Alice backed Yes twice, Bob backed No and sold part of it."""
    market = make_market("traded")
    bet(market, ALICE, 0, 120, "t1")
    bet(market, BOB, 1, 80, "t2")
    bet(market, ALICE, 0, 30, "t3")
    held = Position.objects.get(market=market, user_id=BOB).shares
    betting_services.shares_sell(
        market_id=market.pk, user_id=BOB, outcome=1, shares=held // 2, idempotency_key="t4"
    )
    return close(market)


def resolve_url(market: Market) -> str:
    return reverse("admin:markets_market_resolve", args=[market.pk])


def change_url(market: Market) -> str:
    return reverse("admin:markets_market_change", args=[market.pk])


# --- Resolve -------------------------------------------------------------------------------------


def test_moderator_resolves_through_the_confirmation_page_and_payouts_land(
    mod_client, moderator, traded_market
):
    market = traded_market
    page = mod_client.get(resolve_url(market))
    assert page.status_code == 200
    html = page.content.decode()
    # The page shows, for each outcome, who would be paid what: the selector's own numbers.
    for position in (0, 1):
        preview = selectors.settlement_preview(market_id=market.pk, outcome=position)
        assert preview.payments
        for user_id, amount in preview.payments:
            assert f'title="Discord id {user_id}"' in html and f">{amount:,}<" in html
    assert 'value="Resolve and pay out"' in html and 'name="reason"' in html
    assert f'href="{reverse("admin:markets_market_change", args=[market.pk])}"' in html
    alice_shares = sum(
        Position.objects.filter(market=market, user_id=ALICE).values_list("shares", flat=True)
    )
    before = balance_get(guild_id=GUILD, user_id=ALICE)

    response = mod_client.post(
        resolve_url(market),
        {"outcome": "0", "reason": "It happened (source: news)", "request_id": request_id_of(page)},
    )

    assert response.status_code == 302 and response["Location"] == change_url(market)
    market.refresh_from_db()
    assert market.status == "resolved" and market.winning_outcome.position == 0
    assert market.settled_by_user_id == moderator.pk
    paid = alice_shares // SHARE_SCALE
    assert balance_get(guild_id=GUILD, user_id=ALICE) == before + paid
    assert Transfer.objects.get(code="payout", destination__owner_id=ALICE).amount == paid
    assert not Transfer.objects.filter(code="payout", destination__owner_id=BOB).exists()
    audit = AuditEvent.objects.get(action="market_resolve", target_id=str(market.pk))
    assert audit.actor_user_id == moderator.pk and audit.reason == "It happened (source: news)"
    assert audit.idempotency_key == f"admin:{request_id_of(page)}"
    (entry,) = log_entries(market)
    assert entry.user_id == moderator.pk and entry.action_flag == 2
    assert "It happened (source: news)" in entry.get_change_message()
    assert f"{paid:,} points paid to 1 members" in messages_of(response)[-1]


CRITERIA = "Resolves Yes if <b>it</b> rains & the news says so.\nOtherwise No."
CRITERIA_HTML = (
    "Resolves Yes if &lt;b&gt;it&lt;/b&gt; rains &amp; the news says so.<br>Otherwise No."
)


def test_moderators_read_the_description_before_resolving_or_cancelling(mod_client):
    """The criteria are on the detail page and both confirmation pages, escaped, line breaks
    kept, so a moderator settles by the rules the traders saw."""
    market = MarketFactory(
        question="Will it rain?", description=CRITERIA, idempotency_key="create:criteria"
    )
    plain = make_market("plain")
    detail = mod_client.get(change_url(market)).content.decode()
    cancel = mod_client.get(
        f"{reverse('admin:markets_market_cancel')}?ids={market.pk},{plain.pk}"
    ).content.decode()
    close(market)
    resolve = mod_client.get(resolve_url(market)).content.decode()

    for html in (detail, cancel, resolve):
        assert CRITERIA_HTML in html
        assert "<b>it</b>" not in html
    assert "Description and resolution criteria" in resolve
    assert cancel.count("Description and resolution criteria") == 1, "none shown for plain"
    close(plain)
    plain_page = mod_client.get(resolve_url(plain)).content.decode()
    assert "none given" in plain_page


def test_confirmation_pages_lead_back_to_the_list_and_the_market(mod_client, traded_market):
    markets = reverse(CHANGELIST)
    trail = breadcrumbs(mod_client.get(resolve_url(traded_market)))
    assert [link for link, _ in trail] == [
        reverse("admin:index"),
        reverse("admin:app_list", args=["markets"]),
        markets,
        change_url(traded_market),
        None,
    ]
    assert trail[3][1] == f"#{traded_market.pk}" and trail[4][1].startswith("Resolve market #")
    cancel_page = f"{reverse('admin:markets_market_cancel')}?ids={traded_market.pk}"
    bulk = breadcrumbs(mod_client.get(cancel_page))
    assert bulk[2] == (markets, "Markets") and bulk[3][0] is None  # no one market to link


def test_a_double_post_of_the_same_confirmation_settles_once(mod_client, traded_market):
    market = traded_market
    form = {
        "outcome": "1",
        "reason": "No it did not",
        "request_id": request_id_of(mod_client.get(resolve_url(market))),
    }
    first = mod_client.post(resolve_url(market), form)
    balances = {u: balance_get(guild_id=GUILD, user_id=u) for u in (ALICE, BOB)}
    second = mod_client.post(resolve_url(market), form)

    assert first.status_code == second.status_code == 302
    assert {u: balance_get(guild_id=GUILD, user_id=u) for u in (ALICE, BOB)} == balances
    assert Transfer.objects.filter(code="payout", market=market).count() == 1
    assert AuditEvent.objects.filter(action="market_resolve").count() == 1
    assert len(log_entries(market)) == 1
    assert MarketEvent.objects.filter(market=market, type="market_resolved").count() == 1
    assert "already submitted" in messages_of(second)[-1]


def test_a_resolve_racing_a_discord_vote_settles_once_and_says_why(mod_client, traded_market):
    market = traded_market
    page = mod_client.get(resolve_url(market))
    # Meanwhile two resolvers agree in Discord (min_resolution_votes = 2): the market resolves.
    for voter, key in ((MOD, "v1"), (MOD + 1, "v2")):
        services.resolution_vote_cast(
            market_id=market.pk,
            outcome=0,
            idempotency_key=key,
            actor=Actor.member(voter, manage_guild=True),
        )
    paid = Transfer.objects.filter(code="payout", market=market).count()

    response = mod_client.post(
        resolve_url(market), {"outcome": "1", "reason": "late", "request_id": request_id_of(page)}
    )

    assert response.status_code == 302
    assert messages_of(response)[-1] == MSG_ALREADY_SETTLED.format(
        market_id=market.pk, status="resolved"
    )
    market.refresh_from_db()
    assert market.winning_outcome.position == 0
    assert Transfer.objects.filter(code="payout", market=market).count() == paid
    assert log_entries(market) == []


def test_resolve_on_an_open_market_shows_a_message_not_an_error(mod_client):
    market = make_market("open")
    bet(market, ALICE, 0, 50, "o1")
    expected = MSG_NOT_CLOSED_FOR_RESOLVE.format(market_id=market.pk, status="open")

    page = mod_client.get(resolve_url(market))
    assert page.status_code == 302 and messages_of(page) == [expected]

    # A form posted anyway (say, from a page rendered before a reopen) reaches the service,
    # whose refusal becomes the same message.
    response = mod_client.post(
        resolve_url(market),
        {
            "outcome": "0",
            "reason": "too early",
            "request_id": "2d9e5a5e-7c55-4a8b-9b0e-3c1d7e0f8a11",
        },
    )
    assert response.status_code == 302 and messages_of(response)[-1] == expected
    market.refresh_from_db()
    assert market.status == "open"
    assert not AuditEvent.objects.filter(action="market_resolve").exists()
    assert log_entries(market) == []


def test_resolve_form_requires_a_reason_and_a_valid_outcome(mod_client, traded_market):
    page = mod_client.get(resolve_url(traded_market))
    response = mod_client.post(
        resolve_url(traded_market),
        {"outcome": "7", "reason": "  ", "request_id": request_id_of(page)},
    )
    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"outcome", "reason"}
    traded_market.refresh_from_db()
    assert traded_market.status == "closed"


def test_resolve_action_needs_exactly_one_market(mod_client, traded_market):
    other = close(make_market("other"))
    url = reverse(CHANGELIST)
    both = mod_client.post(
        url, {"action": "resolve_selected", "_selected_action": [traded_market.pk, other.pk]}
    )
    assert both.status_code == 302
    assert messages_of(both)[-1] == "Resolving needs exactly one market: select one."
    one = mod_client.post(url, {"action": "resolve_selected", "_selected_action": [other.pk]})
    assert one.status_code == 302 and one["Location"] == resolve_url(other)


# --- Permissions -----------------------------------------------------------------------------


def test_a_viewer_sees_markets_but_no_action_and_gets_403_when_posting_one(
    viewer_client, traded_market
):
    market = traded_market
    listing = viewer_client.get(reverse(CHANGELIST))
    assert listing.status_code == 200
    assert market.question in listing.content.decode()
    for action in ("resolve_selected", "cancel_selected", "close_selected"):
        assert action not in listing.content.decode()
        posted = viewer_client.post(
            reverse(CHANGELIST), {"action": action, "_selected_action": [market.pk]}
        )
        assert posted.status_code == 403
    detail = viewer_client.get(change_url(market)).content.decode()
    assert market.question in detail
    assert resolve_url(market) not in detail and "Cancel and refund" not in detail
    form = {"outcome": "0", "reason": "r", "request_id": "2d9e5a5e-7c55-4a8b-9b0e-3c1d7e0f8a11"}
    assert viewer_client.get(resolve_url(market)).status_code == 403
    assert viewer_client.post(resolve_url(market), form).status_code == 403
    for name in ("admin:markets_market_cancel", "admin:markets_market_close"):
        url = f"{reverse(name)}?ids={market.pk}"
        assert viewer_client.get(url).status_code == 403
        assert viewer_client.post(url, {**form, "ids": str(market.pk)}).status_code == 403
    market.refresh_from_db()
    assert market.status == "closed" and not LogEntry.objects.exists()


def test_a_moderator_sees_the_actions_that_fit_the_market(mod_client, traded_market):
    html = mod_client.get(reverse(CHANGELIST)).content.decode()
    for action in ("resolve_selected", "cancel_selected", "close_selected"):
        assert action in html
    detail = mod_client.get(change_url(traded_market)).content.decode()
    assert resolve_url(traded_market) in detail and "Cancel and refund…" in detail
    assert "Close now…" not in detail  # already closed


def test_markets_cannot_be_added_changed_or_deleted_by_hand(mod_client, traded_market):
    assert mod_client.get(reverse("admin:markets_market_add")).status_code == 403
    assert mod_client.post(change_url(traded_market), {"question": "Edited"}).status_code == 403
    delete = reverse("admin:markets_market_delete", args=[traded_market.pk])
    assert mod_client.post(delete, {"post": "yes"}).status_code == 403
    traded_market.refresh_from_db()
    assert traded_market.question == "Will traded happen?"


# --- Cancel and refund, Close now ------------------------------------------------------------


def test_cancel_refunds_every_trader_exactly_in_bulk_and_reports_refusals(mod_client, moderator):
    amm_market = make_market("amm")
    bet(amm_market, ALICE, 0, 200, "c1")
    bet(amm_market, BOB, 1, 90, "c2")
    held = Position.objects.get(market=amm_market, user_id=ALICE).shares
    betting_services.shares_sell(
        market_id=amm_market.pk, user_id=ALICE, outcome=0, shares=held // 3, idempotency_key="c3"
    )
    pool = make_market("pool", mechanism="parimutuel", outcomes=("A", "B", "C"))
    bet(pool, BOB, 2, 40, "c4")
    bet(pool, CAROL, 0, 75, "c5")
    close(pool)
    settled = make_market("settled")
    services.market_cancel(
        market_id=settled.pk,
        reason="dup",
        idempotency_key="x",
        actor=Actor.member(MOD, manage_guild=True),
    )
    ids = ",".join(str(m.pk) for m in (amm_market, pool, settled))
    url = f"{reverse('admin:markets_market_cancel')}?ids={ids}"

    page = mod_client.get(url)
    assert page.status_code == 200
    previews = {m.pk: p for m, p, _ in page.context["rows"]}
    assert previews[settled.pk] is None  # already cancelled: shown, not previewed
    owed = {
        m.pk: dict(selectors.settlement_preview(market_id=m.pk).payments)
        for m in (amm_market, pool)
    }
    response = mod_client.post(
        url,
        {"ids": ids, "reason": "Question was ambiguous", "request_id": request_id_of(page)},
    )

    assert response.status_code == 302 and response["Location"] == reverse(CHANGELIST)
    for market in (amm_market, pool):
        market.refresh_from_db()
        assert market.status == "cancelled"
        refunds = dict(
            Transfer.objects.filter(
                market=market, code="refund", destination__kind="wallet"
            ).values_list("destination__owner_id", "amount")
        )
        assert refunds == owed[market.pk]
        audit = AuditEvent.objects.get(action="market_cancel", target_id=str(market.pk))
        assert audit.actor_user_id == moderator.pk and audit.reason == "Question was ambiguous"
        assert len(log_entries(market)) == 1
    # Nobody else moved points: every trader is back exactly at the starting balance.
    for user in (ALICE, BOB, CAROL):
        assert balance_get(guild_id=GUILD, user_id=user) == 1000
    shown = messages_of(response)
    assert MSG_ALREADY_SETTLED.format(market_id=settled.pk, status="cancelled") in shown
    total = sum(sum(o.values()) for o in owed.values())
    assert (
        f"Cancelled and refunded 2 markets: #{amm_market.pk}, #{pool.pk} ({total:,}" in (shown[-1])
    )
    assert log_entries(settled) == []


def test_cancel_double_submit_refunds_once(mod_client):
    market = make_market("twice")
    bet(market, ALICE, 0, 100, "d1")
    url = f"{reverse('admin:markets_market_cancel')}?ids={market.pk}"
    form = {
        "ids": str(market.pk),
        "reason": "void",
        "request_id": request_id_of(mod_client.get(url)),
    }
    mod_client.post(url, form)
    second = mod_client.post(url, form)
    assert Transfer.objects.filter(code="refund", market=market).count() == 1
    assert balance_get(guild_id=GUILD, user_id=ALICE) == 1000
    assert "already submitted" in messages_of(second)[-1]
    assert len(log_entries(market)) == 1


def test_cancel_requires_a_reason(mod_client):
    market = make_market("noreason")
    url = f"{reverse('admin:markets_market_cancel')}?ids={market.pk}"
    page = mod_client.get(url)
    response = mod_client.post(
        url, {"ids": str(market.pk), "reason": "", "request_id": request_id_of(page)}
    )
    assert response.status_code == 200 and "reason" in response.context["form"].errors
    market.refresh_from_db()
    assert market.status == "open"


def test_close_now_closes_open_markets_and_leaves_others(mod_client, moderator, traded_market):
    first, second = make_market("c-one"), make_market("c-two")
    changelist = mod_client.post(
        reverse(CHANGELIST),
        {"action": "close_selected", "_selected_action": [first.pk, second.pk, traded_market.pk]},
    )
    assert changelist.status_code == 302
    url = changelist["Location"]
    page = mod_client.get(url)
    assert page.status_code == 200
    response = mod_client.post(
        url,
        {
            "ids": f"{first.pk},{second.pk},{traded_market.pk}",
            "reason": "",
            "request_id": request_id_of(page),
        },
    )
    assert response.status_code == 302
    for market in (first, second):
        market.refresh_from_db()
        assert market.status == "closed" and market.closed_at is not None
        audit = AuditEvent.objects.get(action="market_close", target_id=str(market.pk))
        assert audit.actor_user_id == moderator.pk
        assert log_entries(market)[0].get_change_message() == "Closed early"
    assert any(f"Market #{traded_market.pk} is already" in m for m in messages_of(response))


# --- List and detail -------------------------------------------------------------------------


def test_changelist_shows_status_leading_outcome_and_searches_by_number(mod_client):
    leading = make_market("lead", question="Will the bridge open in May?")
    bet(leading, ALICE, 1, 300, "l1")
    other = make_market("other", question="Is the café open on Sunday?")
    url = reverse(CHANGELIST)
    html = mod_client.get(url).content.decode()
    probability = selectors.market_get(market_id=leading.pk).outcomes[1].probability
    assert f"No {probability:.0%}" in html
    assert ">Open</span>" in html
    by_number = mod_client.get(url, {"q": f"#{other.pk}"}).context["cl"].result_list
    assert [m.pk for m in by_number] == [other.pk]
    by_text = mod_client.get(url, {"q": "bridge"}).context["cl"].result_list
    assert [m.pk for m in by_text] == [leading.pk]
    filtered = mod_client.get(url, {"status__exact": "closed"}).context["cl"].result_list
    assert list(filtered) == []
    # Digits that int() refuses are plain search text, never a server error.
    for odd in ("²", "9" * 5000, "99999999999999999999"):
        response = mod_client.get(url, {"q": odd})
        assert response.status_code == 200 and list(response.context["cl"].result_list) == []
    assert mod_client.get(reverse("admin:markets_market_change", args=["²"])).status_code in (
        302,
        404,
    )


def test_changelist_of_500_markets_runs_a_constant_number_of_queries(
    mod_client, django_assert_num_queries
):
    url = reverse(CHANGELIST) + "?all="
    first = make_market("m0", outcomes=("A", "B", "C"))
    bet(first, ALICE, 2, 10, "b0")
    mod_client.get(url)  # warm the session and the content-type cache
    with CaptureQueriesContext(connection) as small:
        assert mod_client.get(url).status_code == 200
    baseline = len(small.captured_queries)

    started = time.monotonic()
    for i in range(1, 500):
        market = make_market(f"m{i}", mechanism="parimutuel" if i % 3 == 0 else "amm")
        if i % 10 == 0:
            bet(market, BOB, i % 2, 5, f"b{i}")
        if i % 50 == 0:
            close(market)
    created_in = time.monotonic() - started

    with django_assert_num_queries(baseline):
        response = mod_client.get(url)
    assert response.content.decode().count('class="field-short_question"') == 500
    assert created_in < 120, f"creating 499 markets took {created_in:.1f}s"


def test_detail_pages_through_positions_trades_and_events(mod_client):
    market = make_market("big", mechanism="parimutuel")
    members = [ALICE + 1000 + i for i in range(45)]
    for i, member in enumerate(members):
        bet(market, member, i % 2, 10 + i, f"p{i}")
    url = change_url(market)

    first = mod_client.get(url)
    assert first.status_code == 200
    formsets = {f.formset.prefix: f.formset for f in first.context["inline_admin_formsets"]}
    positions = formsets["positions"]
    assert positions.paginator.count == 45 and len(positions.forms) == 20
    # Largest stakes first: the last member staked the most.
    assert positions.forms[0].instance.user_id == members[-1]
    third = mod_client.get(url, {"positions_page": 3})
    page3 = next(
        f.formset for f in third.context["inline_admin_formsets"] if f.formset.prefix == "positions"
    )
    assert [f.instance.user_id for f in page3.forms] == members[4::-1]
    html = third.content.decode()
    assert "positions_page=2" in html and f"?market={market.pk}" in html
    trades = formsets["trades"]
    assert trades.paginator.count == 45 and trades.forms[0].instance == Trade.objects.last()
    assert formsets["events"].paginator.count == 46  # created + 45 trades


def test_detail_query_count_does_not_grow_with_positions(mod_client, django_assert_num_queries):
    market = make_market("growth")
    for i in range(25):
        bet(market, ALICE + 2000 + i, i % 2, 10, f"g{i}")
    url = change_url(market)
    mod_client.get(url)
    with CaptureQueriesContext(connection) as few:
        mod_client.get(url)
    for i in range(25, 60):
        bet(market, ALICE + 2000 + i, i % 2, 10, f"g{i}")
    with django_assert_num_queries(len(few.captured_queries)):
        assert mod_client.get(url).status_code == 200


# --- CSV export ----------------------------------------------------------------------------------


def test_trades_csv_streams_every_trade_and_neutralises_formulas(mod_client):
    market = make_market("csv", outcomes=("=HYPERLINK(1)", "No"))
    bet(market, ALICE, 0, 25, "e1")
    bet(market, BOB, 1, 40, "e2")
    held = Position.objects.get(market=market, user_id=ALICE).shares
    betting_services.shares_sell(
        market_id=market.pk, user_id=ALICE, outcome=0, shares=held, idempotency_key="e3"
    )
    response = mod_client.get(reverse("admin:markets_market_trades_csv", args=[market.pk]))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = csv_rows(response)
    header, body = rows[0], rows[1:]
    assert header[:3] == ["trade_id", "created_at", "market_id"]
    trades = list(Trade.objects.filter(market=market).order_by("id"))
    assert [int(r[0]) for r in body] == [t.pk for t in trades]
    column = {name: i for i, name in enumerate(header)}
    assert [r[column["kind"]] for r in body] == ["buy", "buy", "sell"]
    assert [int(r[column["amount"]]) for r in body] == [t.amount for t in trades]
    assert [int(r[column["micro_shares"]]) for r in body] == [t.shares for t in trades]
    assert body[0][column["outcome_label"]] == "'=HYPERLINK(1)"
    assert body[0][column["user_id"]] == str(ALICE)


def test_betting_adds_its_inlines_and_the_trades_csv_to_the_market_page(mod_client, traded_market):
    """Through markets.admin_hooks: the market admin imports nothing of betting."""
    detail = mod_client.get(change_url(traded_market))
    models = [f.opts.model._meta.model_name for f in detail.context["inline_admin_formsets"]]
    assert models == [
        "outcome",
        "resolutionvote",
        "dispute",
        "position",
        "trade",
        "order",
        "marketevent",
    ]
    csv_url = reverse("admin:markets_market_trades_csv", args=[traded_market.pk])
    assert f'<a href="{csv_url}">Trades CSV</a>' in detail.content.decode()


def test_trades_csv_needs_view_permission(client, traded_market):
    client.force_login(staff_user("nobody", None))
    url = reverse("admin:markets_market_trades_csv", args=[traded_market.pk])
    assert client.get(url).status_code == 403


def test_settled_markets_show_the_winner_who_settled_and_what_was_paid(mod_client, traded_market):
    page = mod_client.get(resolve_url(traded_market))
    mod_client.post(
        resolve_url(traded_market),
        {"outcome": "0", "reason": "confirmed", "request_id": request_id_of(page)},
    )
    cancelled = make_market("gone")
    services.market_cancel(
        market_id=cancelled.pk,
        reason="dup",
        idempotency_key="g",
        actor=Actor.member(MOD, manage_guild=True),
    )

    listing = mod_client.get(reverse(CHANGELIST)).content.decode()
    assert "✔ Yes" in listing
    detail = mod_client.get(change_url(traded_market))
    html = detail.content.decode()
    assert "admin mod" in html and "confirmed" in html and "✔ winner" in html
    positions = next(
        f for f in detail.context["inline_admin_formsets"] if f.formset.prefix == "positions"
    )
    inline = positions.opts
    paid = {p.user_id: p.payout for p in Position.objects.filter(market=traded_market)}
    for form in positions.formset.forms:
        assert inline.value(form.instance) == f"{paid[form.instance.user_id]:,}"
    cancelled_html = mod_client.get(change_url(cancelled)).content.decode()
    assert f'title="Discord id {MOD}"' in cancelled_html  # settled by the Discord moderator


def test_votes_inline_lists_each_resolver(mod_client, traded_market):
    services.resolution_vote_cast(
        market_id=traded_market.pk,
        outcome=1,
        idempotency_key="vote",
        actor=Actor.member(MOD, manage_guild=True),
    )
    html = mod_client.get(change_url(traded_market)).content.decode()
    assert f'title="Discord id {MOD}"' in html and "2. No" in html


def test_confirmation_pages_handle_unknown_markets(mod_client):
    assert (
        mod_client.get(reverse("admin:markets_market_resolve", args=[999_999])).status_code == 404
    )
    huge = reverse("admin:markets_market_resolve", args=[2**70])
    assert mod_client.get(huge).status_code == 404
    csv_url = reverse("admin:markets_market_trades_csv", args=[999_999])
    assert mod_client.get(csv_url).status_code == 404
    empty = mod_client.get(reverse("admin:markets_market_cancel") + "?ids=abc,-3,999999")
    assert empty.status_code == 302 and messages_of(empty)[-1] == "Select at least one market."
    assert mod_client.get(reverse("admin:markets_market_change", args=[2**70])).status_code == 302


def test_cancel_action_from_the_list_opens_the_confirmation_for_the_selection(mod_client):
    first, second = make_market("a1"), make_market("a2")
    response = mod_client.post(
        reverse(CHANGELIST),
        {"action": "cancel_selected", "_selected_action": [second.pk, first.pk]},
    )
    assert response["Location"] == (
        f"{reverse('admin:markets_market_cancel')}?ids={first.pk},{second.pk}"
    )


def test_market_events_list_links_each_event_to_its_market(mod_client, traded_market):
    html = mod_client.get(reverse("admin:markets_marketevent_changelist")).content.decode()
    assert change_url(traded_market) in html and "market_closed" in html


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_admin_resolve_and_the_deciding_discord_vote_at_the_same_moment_settle_once():
    """Two requests race for one market: the moderator's confirmation (outcome 2) and the
    second resolver vote (outcome 1). Whichever commits first wins; the other is refused or
    replayed, and the payouts happen once (the ledger audit runs after the test)."""
    market = make_market("race")
    bet(market, ALICE, 0, 60, "r1")
    bet(market, BOB, 1, 40, "r2")
    close(market)
    services.resolution_vote_cast(
        market_id=market.pk,
        outcome=0,
        idempotency_key="first-vote",
        actor=Actor.member(MOD, manage_guild=True),
    )
    moderator = staff_user("racer", "Moderators")
    client = Client()
    client.force_login(moderator)
    page = client.get(resolve_url(market))
    form = {"outcome": "1", "reason": "admin says No", "request_id": request_id_of(page)}
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def admin_resolves():
        barrier.wait()
        try:
            results["admin"] = client.post(resolve_url(market), form).status_code
        finally:
            connection.close()

    def discord_vote():
        barrier.wait()
        try:
            services.resolution_vote_cast(
                market_id=market.pk,
                outcome=0,
                idempotency_key="second-vote",
                actor=Actor.member(MOD + 1, manage_guild=True),
            )
            results["vote"] = "cast"
        except DomainError as exc:
            results["vote"] = exc.message
        finally:
            connection.close()

    threads = [threading.Thread(target=admin_resolves), threading.Thread(target=discord_vote)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert results["admin"] == 302
    market.refresh_from_db()
    assert market.status == "resolved"
    assert MarketEvent.objects.filter(market=market, type="market_resolved").count() == 1
    winner = market.winning_outcome.position
    winners = {p.user_id for p in Position.objects.filter(market=market, outcome__position=winner)}
    paid = set(
        Transfer.objects.filter(market=market, code="payout").values_list(
            "destination__owner_id", flat=True
        )
    )
    assert paid == winners
    admin_won = winner == 1
    assert len(log_entries(market)) == (1 if admin_won else 0)
    assert AuditEvent.objects.filter(action="market_resolve").count() == 1
