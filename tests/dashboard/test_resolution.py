"""The dashboard's face of proposed results (issue 14, docs/domain.md §6.1): tiles and the market
page say "Result proposed: “X” — pays out in …" or "Disputed: held for moderators", the
fragments the live script re-fetches follow the state, and the feed reads the new event types
(and still reads one it does not know)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from dashboard.events import event_message, event_summary
from dashboard.views import PAYOUT_DUE
from markets import services
from markets.models import Market, MarketEvent
from points.models import GuildSettings
from points.rules import Actor
from points.services import guild_settings_get_or_create, member_seen
from tests.admin_helpers import staff_user
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD
from tests.factories import BetFactory, MarketFactory

pytestmark = pytest.mark.django_db

MODERATOR = Actor.member(MOD, manage_guild=True)


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def staff_client(client):
    client.force_login(staff_user("watcher", "Viewers"))
    return client


def window(minutes: int, **changes: object) -> None:
    gs = guild_settings_get_or_create(guild_id=GUILD)
    gs.dispute_window_minutes = minutes
    for name, value in changes.items():
        setattr(gs, name, value)
    gs.save()


def closed_market(key: str) -> Market:
    market = MarketFactory(question=f"Will {key} launch?", idempotency_key=f"create:{key}")
    BetFactory(market=market, user_id=ALICE, outcome=0, amount=60, idempotency_key=f"{key}:a")
    BetFactory(market=market, user_id=BOB, outcome=1, amount=40, idempotency_key=f"{key}:b")
    BetFactory(market=market, user_id=CAROL, outcome=0, amount=30, idempotency_key=f"{key}:c")
    return services.market_close(
        market_id=market.pk, actor=MODERATOR, idempotency_key=f"close:{key}"
    )


def propose(market: Market) -> None:
    services.market_propose(
        market_id=market.pk,
        outcome=0,
        actor=MODERATOR,
        reason="On the news",
        idempotency_key=f"propose:{market.pk}",
    )


def dispute(market: Market, user_id: int = BOB, reason: str = "Only a <b>test</b> flight") -> None:
    services.market_dispute(
        market_id=market.pk,
        actor=Actor.member(user_id),
        reason=reason,
        idempotency_key=f"dispute:{market.pk}:{user_id}",
    )


@pytest.fixture
def markets() -> dict[str, Market]:
    """One market in its dispute window, one disputed, one waiting for a second resolver."""
    member_seen(guild_id=GUILD, user_id=BOB, display_name="Bob Brown", username="bob")
    window(60)
    in_window = closed_market("window")
    propose(in_window)
    disputed = closed_market("disputed")
    propose(disputed)
    dispute(disputed)
    window(0, resolution_mode=GuildSettings.ResolutionMode.CREATOR)
    waiting = closed_market("waiting")
    services.market_propose(
        market_id=waiting.pk,
        outcome=0,
        actor=Actor.member(CAROL),  # the factory's creator, who holds a position
        idempotency_key="propose:creator",
    )
    return {"window": in_window, "disputed": disputed, "waiting": waiting}


def card_of(html: str, market: Market) -> str:
    return re.search(rf'id="market-{market.pk}".*?</article>', html, re.S).group(0)


def test_index_has_a_result_proposed_section_and_tiles_say_where_each_stands(staff_client, markets):
    html = staff_client.get(reverse("dashboard:index")).content.decode()
    section = re.search(
        r'<section class="status-section" id="section-resolving".*?</section>', html, re.S
    ).group(0)
    for market in markets.values():
        assert f'id="market-{market.pk}"' in section
    assert 'data-count-for="resolving">3<' in html

    in_window = card_of(html, markets["window"])
    assert "Result proposed: “Yes” — pays out" in in_window
    assert re.search(r"data-prefix=\"in \"[^>]*>in (59m|1h 0m)", in_window)
    assert f'data-ended="{PAYOUT_DUE}"' in in_window
    assert 'class="badge badge-resolving">Result proposed<' in in_window

    disputed = card_of(html, markets["disputed"])
    assert "Disputed: held for moderators" in disputed and "1 dispute" in disputed
    assert (
        "“Yes” was proposed" in disputed
        and "data-closes-at" not in disputed.split("card-title")[1].split("<dl")[0]
    )

    waiting = card_of(html, markets["waiting"])
    assert "Result proposed: “Yes” — waits for a second resolver" in waiting


def test_index_queries_stay_bounded_with_proposed_markets(
    staff_client, markets, django_assert_max_num_queries
):
    staff_client.get(reverse("dashboard:index"))
    with django_assert_max_num_queries(16) as counted:
        staff_client.get(reverse("dashboard:index"))
    window(60, resolution_mode=GuildSettings.ResolutionMode.VOTE)
    for key in ("more1", "more2", "more3"):
        market = closed_market(key)
        propose(market)
        dispute(market)
    with django_assert_max_num_queries(len(counted.captured_queries)):
        staff_client.get(reverse("dashboard:index"))


def test_market_page_shows_the_proposal_and_every_dispute_escaped(staff_client, markets):
    market = markets["disputed"]
    dispute(market, ALICE, reason="Carol <script>x</script> saw it")
    html = staff_client.get(reverse("dashboard:market", args=[market.pk])).content.decode()

    assert "Disputed: held for moderators" in html and "2 disputes" in html
    assert "Bob Brown" in html and "Only a &lt;b&gt;test&lt;/b&gt; flight" in html
    assert "Carol &lt;script&gt;x&lt;/script&gt; saw it" in html and "<script>x" not in html
    calm = markets["window"]
    html = staff_client.get(reverse("dashboard:market", args=[calm.pk])).content.decode()
    assert "Result proposed: “Yes” — pays out" in html
    assert "Nobody has disputed the proposed result." in html


def test_fragments_follow_a_proposal_from_window_to_dispute_to_undo(staff_client, markets):
    """What the live script swaps in after `resolution_disputed` and `proposal_undone`."""
    market = markets["window"]
    card_url = reverse("dashboard:market_card", args=[market.pk])
    panel_url = reverse("dashboard:market_panel", args=[market.pk])
    assert "pays out" in staff_client.get(card_url).content.decode()

    dispute(market)
    card = staff_client.get(card_url).content.decode()
    assert 'data-status="resolving"' in card and "Disputed: held for moderators" in card
    panel = staff_client.get(panel_url).content.decode()
    assert "Disputed: held for moderators" in panel and "Bob Brown" in panel

    services.market_proposal_undo(
        market_id=market.pk, actor=MODERATOR, reason="Retracted", idempotency_key="undo"
    )
    card = staff_client.get(card_url).content.decode()
    assert 'data-status="closed"' in card and "Disputed" not in card and "proposed" not in card
    panel = staff_client.get(panel_url).content.decode()
    assert "Disputes" not in panel


def test_the_feed_reads_the_new_event_types_from_the_outbox(staff_client, markets):
    disputed = markets["disputed"]
    services.market_proposal_confirm(
        market_id=disputed.pk,
        actor=MODERATOR,
        outcome=1,
        reason="Test flight",
        idempotency_key="change",
    )
    lines = {
        e.type: event_message(e)["summary"]
        for e in MarketEvent.objects.filter(market=disputed).order_by("id")
    }
    assert lines[MarketEvent.Type.PROPOSED] == (
        f"#{disputed.pk}: result proposed by member #3333…: “Yes”, pays out after a 1 h "
        "dispute window"
    )
    assert lines[MarketEvent.Type.DISPUTED] == (
        f"#{disputed.pk}: Bob Brown disputed “Yes”: held for moderators (1 dispute)"
    )
    assert lines[MarketEvent.Type.RESOLVED].startswith(
        f"#{disputed.pk} resolved: “No” wins (changed from “Yes”), "
    )
    message = event_message(MarketEvent.objects.get(type=MarketEvent.Type.DISPUTED))
    assert message["member_name"] == "Bob Brown" and message["event"] == "resolution_disputed"
    html = staff_client.get(reverse("dashboard:market", args=[disputed.pk])).content.decode()
    assert 'class="feed-item feed-resolution_disputed"' in html
    assert "Bob Brown disputed “Yes”: held for moderators (1 dispute)" in html


@pytest.mark.parametrize(
    ("event", "payload", "expected"),
    [
        (
            "resolution_proposed",
            {
                "label": "Yes",
                "proposed_by": "5",
                "deadline": "2026-01-01T00:00:00+00:00",
                "window_minutes": 90,
            },
            "#3: result proposed by Alice: “Yes”, pays out after a 90 min dispute window",
        ),
        (
            "resolution_proposed",
            {"label": "Yes", "proposed_by": "5", "deadline": None, "conflicted": True},
            "#3: result proposed by Alice: “Yes”, waits for a second resolver",
        ),
        (
            "resolution_disputed",
            {"user_id": "5", "label": "Yes", "disputes": 2, "first": False},
            "#3: Alice disputed “Yes” (2 disputes)",
        ),
        (
            "proposal_undone",
            {"label": "Yes", "reason": "retracted", "proposed_by": "5"},
            "#3: proposed result “Yes” undone: retracted",
        ),
        (
            "market_resolved",
            {"label": "Yes", "total_paid": 10, "was_proposed": True},
            "#3 resolved: “Yes” wins (as proposed), 10 pts paid",
        ),
        ("resolution_disputed", {}, "#3: a member disputed “?” (1 dispute)"),
        ("a_type_from_the_future", {"x": 1}, "#3: a_type_from_the_future"),
    ],
)
def test_event_summary_of_the_resolution_events(event, payload, expected):
    assert event_summary(event, 3, payload, {5: "Alice"}) == expected
