"""Dashboard pages (dashboard/views.py): staff-only, grouped by status, text probabilities, the
chart and the fragments the live script re-fetches."""

import datetime as dt
import os
import re
import xml.etree.ElementTree as ET

import pytest
from django.contrib.auth import get_user_model
from django.urls import NoReverseMatch, reverse

from betting import services as betting_services
from dashboard.events import event_summary
from dashboard.views import closes_in, percent
from markets import services
from markets.selectors import market_get
from points.rules import Actor
from tests.admin_helpers import staff_user
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD

pytestmark = pytest.mark.django_db

OTHER_GUILD = GUILD + 7


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def staff_client(client):
    client.force_login(staff_user("watcher", "Viewers"))
    return client


def make_market(key, *, guild=GUILD, outcomes=("Yes", "No"), question="Will it rain?", **kw):
    return services.market_create(
        guild_id=guild,
        creator_id=ALICE,
        question=question,
        outcomes=list(outcomes),
        duration="2d",
        idempotency_key=key,
        **kw,
    )


def bet(market, user, outcome, amount, key):
    return betting_services.bet_place(
        market_id=market.pk, user_id=user, outcome=outcome, amount=amount, idempotency_key=key
    )


@pytest.mark.parametrize("name", ["index", "market", "market_card", "market_panel", "market_chart"])
def test_dashboard_pages_send_anonymous_and_non_staff_to_the_admin_login(client, name):
    market = make_market("m1")
    url = reverse(f"dashboard:{name}", args=[] if name == "index" else [market.pk])
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    member = get_user_model().objects.create_user("member", password="pw-12345-long")
    client.force_login(member)
    response = client.get(url)
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


def test_inactive_staff_is_refused(client):
    user = get_user_model().objects.create_user(
        "gone", password="pw-12345-long", is_staff=True, is_active=False
    )
    client.force_login(user)
    assert client.get(reverse("dashboard:index")).status_code == 302


def test_index_groups_markets_of_every_guild_by_status_with_text_probabilities(staff_client):
    open_market = make_market("open", question="Open <question> & more")
    other_guild = make_market("other", guild=OTHER_GUILD, question="Other guild market")
    closed = make_market("closed", question="Closed one")
    cancelled = make_market("cancelled", question="Cancelled one")
    bet(open_market, BOB, 0, 100, "b1")
    services.market_close(market_id=closed.pk, idempotency_key="close", actor=Actor.member(ALICE))
    services.market_cancel(
        market_id=cancelled.pk,
        reason="duplicate",
        idempotency_key="cancel",
        actor=Actor.member(MOD, manage_guild=True),
    )

    response = staff_client.get(reverse("dashboard:index"))
    assert response.status_code == 200
    html = response.content.decode()

    def section(status):
        match = re.search(
            rf'<section class="status-section" id="section-{status}".*?</section>', html, re.S
        )
        return match.group(0)

    assert f'id="market-{open_market.pk}"' in section("open")
    assert f'id="market-{other_guild.pk}"' in section("open")
    assert f'id="market-{closed.pk}"' in section("closed")
    assert f'id="market-{cancelled.pk}"' in section("cancelled")
    assert "No resolved markets." in section("resolved")
    # Questions are escaped; probabilities are text, not only a bar.
    assert "Open &lt;question&gt; &amp; more" in html
    probs = [o.probability for o in market_get(market_id=open_market.pk).outcomes]
    card = re.search(rf'id="market-{open_market.pk}".*?</article>', html, re.S).group(0)
    for p in probs:
        assert f'<span class="outcome-pct" data-pct>{percent(p)}</span>' in card
    assert "data-volume>100<" in card and "data-traders>1<" in card
    assert "in 1d 23h" in card  # countdown
    # The live feed starts with the newest event, and the page knows the cursor to replay from.
    feed = re.search(r'<ol id="feed".*?</ol>', html, re.S).group(0)
    assert 'aria-live="polite"' in feed
    ids = [int(i) for i in re.findall(r'data-event-id="(\d+)"', feed)]
    assert ids == sorted(ids, reverse=True) and len(ids) == 7
    assert f'data-last-event-id="{ids[0]}"' in html
    assert "cancelled, 0 pts refunded: duplicate" in feed
    # Landmarks for assistive technology.
    for landmark in ("<header", "<main", "<nav", "<aside", "<footer", 'role="status"'):
        assert landmark in html


def test_index_runs_a_bounded_number_of_queries(staff_client, django_assert_max_num_queries):
    for i in range(12):
        market = make_market(f"m{i}", outcomes=[f"O{j}" for j in range(2 + i % 5)])
        bet(market, BOB, 0, 10, f"b{i}")
    with django_assert_max_num_queries(14):
        assert staff_client.get(reverse("dashboard:index")).status_code == 200


def test_market_page_shows_outcomes_chart_trades_votes_and_admin_link(staff_client):
    market = make_market("m", outcomes=[f"Option {i}" for i in range(10)])
    for k in range(30):
        bet(market, [BOB, CAROL][k % 2], k % 10, 10 + k, f"b{k}")
    services.market_close(market_id=market.pk, idempotency_key="close", actor=Actor.member(ALICE))
    services.resolution_vote_cast(
        market_id=market.pk,
        outcome=3,
        idempotency_key="v",
        actor=Actor.member(MOD, manage_guild=True),
    )

    response = staff_client.get(reverse("dashboard:market", args=[market.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Option 9" in html and "Closed" in html
    svg = re.search(r'<div class="chart-wide">(.*?)</div>', html, re.S).group(1)
    root = ET.fromstring(svg)
    assert len(root.findall(".//{http://www.w3.org/2000/svg}polyline")) == 10
    assert "30 trades" in root.find("{http://www.w3.org/2000/svg}desc").text
    assert html.count('class="legend-item"') == 10
    trades = re.search(r'<tbody id="trades-body">(.*?)</tbody>', html, re.S).group(1)
    assert trades.count("<tr") == 25  # newest 25
    assert 'data-label="Points">39<' in trades  # the last bet comes first
    votes = re.search(r'id="votes-title".*?</section>', html, re.S).group(0)
    assert str(MOD) in votes and "Option 3" in votes
    try:
        admin_url = reverse("admin:markets_market_change", args=[market.pk])
    except NoReverseMatch:  # built without the market admin: no dead link either
        assert "Open in admin" not in html
    else:
        assert f'href="{admin_url}">Open in admin</a>' in html


def test_market_page_and_tile_show_the_description_escaped(staff_client):
    criteria = "Yes if <script>alert(1)</script> & it rains.\nSource: MeteoSwiss."
    market = make_market("described", description=criteria)
    plain = make_market("plain", question="Will it snow?")

    page = staff_client.get(reverse("dashboard:market", args=[market.pk])).content.decode()
    index = staff_client.get(reverse("dashboard:index")).content.decode()
    card = staff_client.get(reverse("dashboard:market_card", args=[market.pk])).content.decode()
    plain_page = staff_client.get(reverse("dashboard:market", args=[plain.pk])).content.decode()

    section = re.search(r'<section class="market-description".*?</section>', page, re.S).group(0)
    assert "Description and resolution criteria" in section
    assert (
        "Yes if &lt;script&gt;alert(1)&lt;/script&gt; &amp; it rains.<br>Source: MeteoSwiss."
        in (section)
    )
    for html in (page, index, card):
        assert "<script>alert(1)</script>" not in html
    assert 'class="card-description"' in index and "Yes if &lt;script&gt;" in card
    assert "market-description" not in plain_page


def test_market_page_of_unknown_market_is_404(staff_client):
    assert staff_client.get(reverse("dashboard:market", args=[999_999])).status_code == 404
    assert staff_client.get(reverse("dashboard:market_card", args=[999_999])).status_code == 404


def connection_indicator(html: str) -> tuple[str, str | None]:
    """The header's label for a connected socket and its hover note (None when there is none)."""
    tag = re.search(r'<p id="connection"[^>]*>', html).group(0)
    label = re.search(r'data-live-label="([^"]*)"', tag).group(1)
    note = re.search(r'title="([^"]*)"', tag)
    return label, note and note.group(1)


def pages_of(staff_client) -> list[str]:
    market = make_market("m")
    return [
        staff_client.get(reverse(name, args=args)).content.decode()
        for name, args in (("dashboard:index", []), ("dashboard:market", [market.pk]))
    ]


def test_header_says_live_for_this_process_only_on_the_in_memory_layer(staff_client, settings):
    # Events the bot or run_scheduler write in their own processes never reach this layer.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    for html in pages_of(staff_client):
        label, note = connection_indicator(html)
        assert label == "Live (this process only)"
        assert "bot" in note and "REDIS_URL" in note


@pytest.mark.redis
def test_header_says_live_on_the_redis_layer(staff_client, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["REDIS_URL"]]},
        }
    }
    for html in pages_of(staff_client):
        assert connection_indicator(html) == ("Live", None)


def test_fragments_render_the_current_state(staff_client):
    market = make_market("m")
    bet(market, BOB, 1, 200, "b")
    card = staff_client.get(reverse("dashboard:market_card", args=[market.pk]))
    assert card.status_code == 200
    assert card.content.decode().lstrip().startswith("<article")
    assert 'data-status="open"' in card.content.decode()
    services.market_close(market_id=market.pk, idempotency_key="close", actor=Actor.member(ALICE))
    panel = staff_client.get(reverse("dashboard:market_panel", args=[market.pk])).content.decode()
    assert 'id="market-panel"' in panel and 'data-status="closed"' in panel
    chart = staff_client.get(reverse("dashboard:market_chart", args=[market.pk]))
    assert chart["Cache-Control"] == "no-store"
    body = chart.content.decode()
    assert body.count("<svg") == 2  # wide and compact renderings
    assert 'id="chart-wide-title"' in body and 'id="chart-compact-title"' in body


def test_fragments_refuse_post(staff_client):
    market = make_market("m")
    assert staff_client.post(reverse("dashboard:market_card", args=[market.pk])).status_code == 405


def test_resolved_market_marks_the_winner_in_text(staff_client):
    market = make_market("m")
    bet(market, BOB, 1, 50, "b")
    services.market_close(market_id=market.pk, idempotency_key="close", actor=Actor.member(ALICE))
    services.market_resolve(
        market_id=market.pk,
        outcome=1,
        reason="It rained",
        idempotency_key="r",
        actor=Actor.member(MOD, manage_guild=True),
    )
    html = staff_client.get(reverse("dashboard:market", args=[market.pk])).content.decode()
    assert "✓ Winner" in html and "It rained" in html


def test_closes_in_formats_a_short_countdown():
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert closes_in(now + dt.timedelta(days=2, hours=3, minutes=5), now) == "2d 3h"
    assert closes_in(now + dt.timedelta(hours=5, minutes=7), now) == "5h 7m"
    assert closes_in(now + dt.timedelta(minutes=3, seconds=4), now) == "3m 4s"
    assert closes_in(now + dt.timedelta(seconds=9), now) == "9s"
    assert closes_in(now - dt.timedelta(seconds=1), now) == "closing"


@pytest.mark.parametrize(
    ("event", "payload", "expected"),
    [
        (
            "trade",
            {
                "user_id": "5",
                "kind": "buy",
                "outcome": 1,
                "label": "No",
                "amount": 1500,
                "probabilities": [0.25, 0.75],
            },
            "#3: Alice bought 1,500 pts on “No” → 75.0%",
        ),
        (
            "trade",
            {
                "user_id": "5",
                "kind": "sell",
                "outcome": 0,
                "label": "Yes",
                "amount": 7,
                "probabilities": [0.4, 0.6],
            },
            "#3: Alice sold 7 pts for “Yes” → 40.0%",
        ),
        (
            "trade",
            {
                "user_id": "5",
                "kind": "buy",
                "outcome": 0,
                "label": "Yes",
                "amount": 47,
                "probabilities": [0.4, 0.6],
                "order_id": 12,
            },
            "#3: Alice bought 47 pts on “Yes” → 40.0% (limit order #12)",
        ),
        (
            "orders_changed",
            {
                "change": "placed",
                "user_id": "5",
                "side": "buy",
                "label": "Yes",
                "limit_ppm": 400_000,
            },
            "#3: Alice placed a buy order on “Yes” ≤ 40 %",
        ),
        (
            "orders_changed",
            {
                "change": "cancelled",
                "user_id": "5",
                "side": "sell",
                "label": "No",
                "limit_ppm": 8e5,
            },
            "#3: Alice cancelled a sell order on “No” ≥ 80 %",
        ),
        ("orders_changed", {"change": "expired", "orders": 2}, "#3: 2 limit order(s) expired"),
        ("market_created", {"question": "Q?"}, "#3 opened: Q?"),
        ("market_closed", {"automatic": True}, "#3 closed automatically"),
        ("market_closed", {"reason": "early"}, "#3 closed early: early"),
        (
            "vote_cast",
            {"voter_id": "9", "label": "Yes", "votes": 1, "needed": 2},
            "#3: member #9… voted “Yes” (1/2)",
        ),
        (
            "market_resolved",
            {"label": "Yes", "total_paid": 1234},
            "#3 resolved: “Yes” wins, 1,234 pts paid",
        ),
        ("market_cancelled", {"total_refunded": 10}, "#3 cancelled, 10 pts refunded"),
        ("something_new", {}, "#3: something_new"),
    ],
)
def test_event_summary_reads_like_a_sentence(event, payload, expected):
    """Members by name from the directory; one it does not know by the first digits of the id."""
    assert event_summary(event, 3, payload, {5: "Alice"}) == expected


@pytest.mark.parametrize("name", ["dashboard:index"])
def test_staff_without_the_dashboard_permission_get_403(client, name):
    """An active staff user in no group is refused like the admin refuses them; Moderators and
    Viewers get the page (issue 12)."""
    client.force_login(staff_user("nogroup", None))
    assert client.get(reverse(name)).status_code == 403
    client.force_login(staff_user("mod", "Moderators"))
    assert client.get(reverse(name)).status_code == 200
