"""The back office's face of proposed results and disputes (issue 14, docs/domain.md §6.1):
the Review proposal page (confirm, change, undo), the disputed-markets filter and list columns,
the direct-resolution page on a proposed market with the moderator's own position, the read-only
disputes, and the staff Discord links. Driven with the Django test client as staff users from
the Moderators and Viewers groups, through the real services on PostgreSQL; every test ends with
the ledger audit (tests/conftest.py)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.contrib.admin.models import CHANGE
from django.db import connection
from django.test import Client
from django.urls import reverse

from betting.models import Position
from markets import services
from markets.amm import SHARE_SCALE
from markets.models import Dispute, Market, MarketEvent, ResolutionVote
from points.models import AuditEvent, GuildSettings, StaffLink, Transfer
from points.rules import Actor
from points.selectors import balance_get
from points.services import guild_settings_get_or_create, member_seen
from tests.admin_helpers import log_entries, messages_of, request_id_of, staff_user
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD
from tests.factories import BetFactory, MarketFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]

MODERATOR = Actor.member(MOD, manage_guild=True)
CRITERIA = "Yes if the <b>launch</b> happens before June.\nNo otherwise."


def window(minutes: int = 60, **changes: object) -> GuildSettings:
    """Open a dispute window on the guild's settings row (tests default to none)."""
    gs = guild_settings_get_or_create(guild_id=GUILD)
    gs.dispute_window_minutes = minutes
    for name, value in changes.items():
        setattr(gs, name, value)
    gs.save()
    return gs


def traded(key: str, **kwargs: object) -> Market:
    """A closed amm market: Alice and Carol backed Yes, Bob backed No."""
    market = MarketFactory(
        question=f"Will {key} launch?", idempotency_key=f"create:{key}", **kwargs
    )
    BetFactory(market=market, user_id=ALICE, outcome=0, amount=120, idempotency_key=f"{key}:a")
    BetFactory(market=market, user_id=BOB, outcome=1, amount=80, idempotency_key=f"{key}:b")
    BetFactory(market=market, user_id=CAROL, outcome=0, amount=40, idempotency_key=f"{key}:c")
    return services.market_close(
        market_id=market.pk, actor=MODERATOR, idempotency_key=f"close:{key}"
    )


def propose(market: Market, outcome: int = 0, key: str | None = None) -> Market:
    return services.market_propose(
        market_id=market.pk,
        outcome=outcome,
        actor=MODERATOR,
        reason="The launch was on the news",
        idempotency_key=key or f"propose:{market.pk}",
    )


def dispute(market: Market, user_id: int = BOB, reason: str = "It was only a test flight") -> None:
    services.market_dispute(
        market_id=market.pk,
        actor=Actor.member(user_id),
        reason=reason,
        idempotency_key=f"dispute:{market.pk}:{user_id}",
    )


@pytest.fixture
def named() -> None:
    for user_id, name in ((ALICE, "Alice Adams"), (BOB, "Bob Brown"), (MOD, "Mo Derator")):
        member_seen(guild_id=GUILD, user_id=user_id, display_name=name, username=name.lower())


@pytest.fixture
def proposed(named) -> Market:
    """A market with “Yes” proposed by a moderator, in a 60-minute window, disputed by Bob."""
    window(60)
    market = traded("rocket", description=CRITERIA)
    propose(market)
    dispute(market)
    market.refresh_from_db()
    assert market.status == Market.Status.RESOLVING and market.disputed_at is not None
    return market


def review_url(market: Market) -> str:
    return reverse("admin:markets_market_review", args=[market.pk])


def resolve_url(market: Market) -> str:
    return reverse("admin:markets_market_resolve", args=[market.pk])


def change_url(market: Market) -> str:
    return reverse("admin:markets_market_change", args=[market.pk])


def decide(client, market: Market, page=None, **form: str):
    page = page or client.get(review_url(market))
    return client.post(review_url(market), {"request_id": request_id_of(page), **form}), page


def payouts(market: Market) -> list[Transfer]:
    return list(Transfer.objects.filter(market=market, code="payout").order_by("id"))


def shares_of(market: Market, user_id: int, outcome: int) -> int:
    return (
        Position.objects.filter(market=market, user_id=user_id, outcome__position=outcome)
        .values_list("shares", flat=True)
        .first()
        or 0
    )


# --- The Review proposal page ------------------------------------------------------------------


def test_review_page_shows_criteria_proposal_every_dispute_and_the_own_position(
    mod_client, proposed
):
    dispute(proposed, ALICE, reason="Carol <script>alert(1)</script> knows")
    html = mod_client.get(review_url(proposed)).content.decode()

    assert proposed.question in html
    assert "launch&lt;/b&gt; happens before June.<br>No otherwise." in html  # escaped, lines kept
    assert "“Yes”" in html and "Mo Derator" in html  # the proposal and its proposer, by name
    assert "disputed: held for moderators" in html
    assert "Bob Brown" in html and "It was only a test flight" in html
    assert "Alice Adams" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    assert "is not linked to a Discord member" in html
    assert reverse("admin:points_stafflink_changelist") in html
    for value in ("confirm", "change", "undo"):
        assert f'value="{value}"' in html
    # The change page offers the review to a moderator, and lists the disputes with names.
    detail = mod_client.get(change_url(proposed)).content.decode()
    assert f'href="{review_url(proposed)}"' in detail and "Review proposal…" in detail
    assert "Bob Brown" in detail and "It was only a test flight" in detail


def test_confirm_settles_once_audited_and_a_double_submit_does_nothing_twice(
    mod_client, moderator, proposed
):
    alice_before = balance_get(guild_id=GUILD, user_id=ALICE)
    alice_shares = shares_of(proposed, ALICE, 0)
    form = {"decision": "confirm", "reason": "Checked the launch log"}

    response, page = decide(mod_client, proposed, **form)

    assert response.status_code == 302 and response["Location"] == change_url(proposed)
    proposed.refresh_from_db()
    assert proposed.status == "resolved" and proposed.winning_outcome.position == 0
    assert proposed.settled_by_user_id == moderator.pk
    assert balance_get(guild_id=GUILD, user_id=ALICE) == alice_before + alice_shares // SHARE_SCALE
    paid = payouts(proposed)
    assert {t.destination.owner_id for t in paid} == {ALICE, CAROL}
    (event,) = MarketEvent.objects.filter(market=proposed, type=MarketEvent.Type.RESOLVED)
    assert event.request_key == f"admin:{request_id_of(page)}"
    assert event.payload["was_proposed"] and event.payload["disputed"]
    assert event.payload["changed_from"] is None
    audit = AuditEvent.objects.get(action="market_resolve", target_id=str(proposed.pk))
    assert audit.actor_user_id == moderator.pk and "Checked the launch log" in audit.reason
    (entry,) = log_entries(proposed)
    assert entry.user_id == moderator.pk and entry.action_flag == CHANGE
    assert "Confirmed the proposed result “Yes”: Checked the launch log" in (
        entry.get_change_message()
    )
    assert "resolved to “Yes”" in messages_of(response)[-1]

    again, _ = decide(mod_client, proposed, page=page, **form)

    assert again.status_code == 302
    assert "already submitted" in messages_of(again)[-1]
    assert payouts(proposed) == paid
    assert MarketEvent.objects.filter(market=proposed, type=MarketEvent.Type.RESOLVED).count() == 1
    assert len(log_entries(proposed)) == 1
    assert balance_get(guild_id=GUILD, user_id=ALICE) == alice_before + alice_shares // SHARE_SCALE


def test_change_pays_the_other_outcome_once_and_says_what_it_overruled(
    mod_client, moderator, proposed
):
    bob_before = balance_get(guild_id=GUILD, user_id=BOB)
    bob_shares = shares_of(proposed, BOB, 1)
    form = {"decision": "change", "outcome": "1", "reason": "It was a test flight"}

    response, page = decide(mod_client, proposed, **form)
    again, _ = decide(mod_client, proposed, page=page, **form)

    proposed.refresh_from_db()
    assert proposed.status == "resolved" and proposed.winning_outcome.position == 1
    assert balance_get(guild_id=GUILD, user_id=BOB) == bob_before + bob_shares // SHARE_SCALE
    assert [t.destination.owner_id for t in payouts(proposed)] == [BOB]
    (event,) = MarketEvent.objects.filter(market=proposed, type=MarketEvent.Type.RESOLVED)
    assert event.payload["changed_from"] == "Yes" and event.payload["label"] == "No"
    audit = AuditEvent.objects.get(action="market_resolve", target_id=str(proposed.pk))
    assert audit.actor_user_id == moderator.pk and "It was a test flight" in audit.reason
    (entry,) = log_entries(proposed)
    assert "Changed the proposed result from “Yes” to “No”: It was a test flight" in (
        entry.get_change_message()
    )
    assert "resolved to “No”" in messages_of(response)[-1]
    assert "already submitted" in messages_of(again)[-1]


def test_undo_reopens_the_decision_once_moves_nothing_and_can_be_proposed_again(
    mod_client, moderator, proposed
):
    escrow_before = Transfer.objects.filter(market=proposed).count()
    form = {"decision": "undo", "reason": "The news story was retracted"}

    response, page = decide(mod_client, proposed, **form)
    again, _ = decide(mod_client, proposed, page=page, **form)

    proposed.refresh_from_db()
    assert proposed.status == "closed" and proposed.proposed_outcome is None
    assert proposed.disputed_at is None and proposed.dispute_deadline is None
    assert Transfer.objects.filter(market=proposed).count() == escrow_before  # nothing moved
    assert not ResolutionVote.objects.filter(market=proposed).exists()
    (event,) = MarketEvent.objects.filter(market=proposed, type=MarketEvent.Type.UNDONE)
    assert event.payload["label"] == "Yes" and event.payload["disputes"] == 1
    audit = AuditEvent.objects.get(action="market_proposal_undo", target_id=str(proposed.pk))
    assert audit.actor_user_id == moderator.pk and audit.reason == "The news story was retracted"
    (entry,) = log_entries(proposed)
    assert "Undid the proposed result “Yes”: The news story was retracted" in (
        entry.get_change_message()
    )
    assert "undone" in messages_of(response)[-1]
    assert "already submitted" in messages_of(again)[-1]
    # A new proposal is a new round: Bob's dispute of the old one does not carry over.
    propose(proposed, outcome=1, key="propose:again")
    proposed.refresh_from_db()
    assert proposed.status == "resolving" and proposed.proposal_round == 2
    assert proposed.disputed_at is None
    html = mod_client.get(review_url(proposed)).content.decode()
    assert "Nobody has disputed it." in html


def test_change_without_an_outcome_or_reason_is_refused_with_a_message_and_nothing_moves(
    mod_client, proposed
):
    response, _ = decide(mod_client, proposed, decision="change", reason="")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Choose the outcome to change the result to (another than “Yes”)." in html
    assert "This field is required." in html
    proposed.refresh_from_db()
    assert proposed.status == "resolving" and not payouts(proposed)
    assert log_entries(proposed) == []


def test_a_domain_refusal_is_an_admin_error_not_a_crash(mod_client, proposed):
    """The page rendered while the market was resolving; a Discord moderator undid the proposal
    before the form came back: the service's refusal reads as an admin error."""
    page = mod_client.get(review_url(proposed))
    services.market_proposal_undo(
        market_id=proposed.pk, actor=MODERATOR, reason="Retracted", idempotency_key="undo:discord"
    )

    response, _ = decide(mod_client, proposed, page=page, decision="confirm", reason="Looks right")

    assert response.status_code == 302
    assert f"Market #{proposed.pk} has no proposed result" in messages_of(response)[-1]
    proposed.refresh_from_db()
    assert proposed.status == "closed" and not payouts(proposed)
    assert log_entries(proposed) == []


def test_a_viewer_gets_403_on_the_review_page_and_its_post(viewer_client, proposed):
    assert viewer_client.get(review_url(proposed)).status_code == 403
    response = viewer_client.post(
        review_url(proposed),
        {
            "request_id": "3f0b7f8e-1a1b-4c1d-9e0f-123456789abc",
            "decision": "confirm",
            "reason": "x",
        },
    )
    assert response.status_code == 403
    proposed.refresh_from_db()
    assert proposed.status == "resolving"
    detail = viewer_client.get(change_url(proposed)).content.decode()
    assert "Review proposal…" not in detail and "Bob Brown" in detail


def test_review_of_a_market_without_a_proposal_goes_back_with_a_warning(mod_client, named):
    market = traded("calm")
    response = mod_client.get(review_url(market))
    assert response.status_code == 302 and response["Location"] == change_url(market)
    assert f"Market #{market.pk} has no proposed result to review; it is closed." in (
        messages_of(response)
    )


# --- The market list ---------------------------------------------------------------------------


def test_disputed_filter_lists_exactly_the_disputed_markets(mod_client, named):
    window(60)
    disputed = traded("disputed")
    propose(disputed)
    dispute(disputed)
    in_window = traded("window")
    propose(in_window)
    closed = traded("closed")
    # Creator mode, no window, the creator (Carol) holds a position: the proposal waits for a
    # second resolver (dispute_deadline NULL).
    window(0, resolution_mode=GuildSettings.ResolutionMode.CREATOR)
    waiting = traded("waiting")
    services.market_propose(
        market_id=waiting.pk,
        outcome=0,
        actor=Actor.member(CAROL),
        reason="",
        idempotency_key="propose:creator",
    )
    waiting.refresh_from_db()
    assert waiting.status == "resolving" and waiting.dispute_deadline is None

    changelist = reverse("admin:markets_market_changelist")

    def listed(query: str) -> set[int]:
        response = mod_client.get(changelist + query)
        assert response.status_code == 200
        return {m.pk for m in response.context["cl"].result_list}

    assert listed("?proposal=disputed") == {disputed.pk}
    assert listed("?proposal=second_resolver") == {waiting.pk}
    assert listed("?proposal=window") == {in_window.pk}
    assert listed("?status__exact=resolving") == {disputed.pk, in_window.pk, waiting.pk}
    assert closed.pk in listed("")

    html = mod_client.get(changelist).content.decode()
    assert "Result proposed" in html  # the status filter's choice
    assert "Disputed markets: 1 waits for moderators" in html
    assert 'href="?proposal=disputed"' in html
    assert "Waiting for a second resolver" in html
    # The proposal column: the outcome, who proposed it, and what it waits for.
    assert "“Yes” by" in html and "Mo Derator" in html
    assert "disputed: held for moderators" in html
    assert "pays out in 59 min unless disputed" in html or "pays out in 1 h" in html
    assert "waits for a second resolver" in html
    dispute_link = f"{reverse('admin:markets_dispute_changelist')}?market={disputed.pk}"
    assert f'href="{dispute_link}">1<' in html


def test_the_list_stays_at_a_constant_number_of_queries_with_proposals(
    mod_client, named, django_assert_max_num_queries
):
    window(60)
    for key in ("q1", "q2", "q3"):
        market = traded(key)
        propose(market)
        dispute(market)
    changelist = reverse("admin:markets_market_changelist")
    mod_client.get(changelist)  # warm the session and content types
    with django_assert_max_num_queries(20) as few:
        mod_client.get(changelist)
    for key in ("q4", "q5", "q6", "q7"):
        market = traded(key)
        propose(market)
        dispute(market, ALICE)
    with django_assert_max_num_queries(len(few.captured_queries)):
        mod_client.get(changelist)


# --- Direct resolution (force) with the moderator's own position ---------------------------------


def test_force_page_works_on_a_proposed_market_and_overrules_it(mod_client, moderator, proposed):
    page = mod_client.get(resolve_url(proposed))
    assert page.status_code == 200
    html = page.content.decode()
    assert "overrules the proposed result" in html and "“Yes”" in html
    assert "It was only a test flight" in html
    assert "is not linked to a Discord member" in html

    response = mod_client.post(
        resolve_url(proposed),
        {"outcome": "1", "reason": "Overruled: test flight", "request_id": request_id_of(page)},
    )

    assert response.status_code == 302
    proposed.refresh_from_db()
    assert proposed.status == "resolved" and proposed.winning_outcome.position == 1
    (event,) = MarketEvent.objects.filter(market=proposed, type=MarketEvent.Type.RESOLVED)
    assert event.payload["changed_from"] == "Yes"
    assert [t.destination.owner_id for t in payouts(proposed)] == [BOB]


def test_force_page_shows_the_linked_moderators_own_position(mod_client, moderator, named):
    market = MarketFactory(question="Will MOD win?", idempotency_key="create:own")
    BetFactory(market=market, user_id=MOD, outcome=1, amount=60, idempotency_key="own:1")
    BetFactory(market=market, user_id=ALICE, outcome=0, amount=30, idempotency_key="own:2")
    services.market_close(market_id=market.pk, actor=MODERATOR, idempotency_key="close:own")
    StaffLink.objects.create(user=moderator, discord_user_id=MOD)
    held = Position.objects.get(market=market, user_id=MOD)

    html = mod_client.get(resolve_url(market)).content.decode()

    assert "is not linked" not in html
    assert "Mo Derator" in html and "you hold a position here" in html
    assert "conflict of interest" in html
    assert services.format_shares(held.shares) in html
    assert f">{held.points_spent:,}<" in html and "2. No" in html

    # A linked moderator with nothing in the market reads so.
    other = traded("clean")
    html = mod_client.get(resolve_url(other)).content.decode()
    assert "you hold no position in this market" in html


def test_force_page_still_refuses_an_open_market(mod_client):
    market = MarketFactory(idempotency_key="create:open")
    response = mod_client.get(resolve_url(market))
    assert response.status_code == 302
    assert "only a closed market can be resolved" in messages_of(response)[-1]


# --- Disputes, read-only -----------------------------------------------------------------------


def test_viewers_and_moderators_read_disputes_and_nobody_edits_them(
    viewer_client, proposed, django_user_model
):
    changelist = reverse("admin:markets_dispute_changelist")
    response = viewer_client.get(f"{changelist}?market={proposed.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Bob Brown" in html and "It was only a test flight" in html
    assert f"#{proposed.pk}" in html
    (row,) = Dispute.objects.all()
    assert viewer_client.get(reverse("admin:markets_dispute_add")).status_code == 403
    change = reverse("admin:markets_dispute_change", args=[row.pk])
    assert viewer_client.post(change, {"reason": "edited"}).status_code == 403
    row.refresh_from_db()
    assert row.reason == "It was only a test flight"
    nobody = staff_user("nobody", None)
    viewer_client.force_login(nobody)
    assert viewer_client.get(changelist).status_code == 403


# --- Staff Discord links -----------------------------------------------------------------------


@pytest.fixture
def boss_client(client, django_user_model):
    boss = django_user_model.objects.create_superuser("boss", "b@example.org", "pw-long-enough-1")
    client.force_login(boss)
    return client


@pytest.mark.parametrize(
    ("typed", "stored"),
    [(str(MOD), MOD), (f"<@{MOD}>", MOD), (f"  <@!{MOD}> ", MOD)],
)
def test_a_superuser_links_a_staff_account_by_id_or_pasted_mention(
    boss_client, moderator, typed, stored
):
    add = reverse("admin:points_stafflink_add")
    response = boss_client.post(add, {"user": moderator.pk, "discord_user_id": typed})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert StaffLink.objects.get(user=moderator).discord_user_id == stored


@pytest.mark.parametrize(
    "typed",
    [
        "mo#1234",
        "12345",
        "-" + str(MOD),
        "9" * 20,
        "２２２２２２２２２２２２２２２２２２",
        "0" * 18,
        "",
    ],
)
def test_a_staff_link_refuses_what_is_not_a_discord_id_with_a_clear_message(
    boss_client, moderator, typed
):
    add = reverse("admin:points_stafflink_add")
    response = boss_client.post(add, {"user": moderator.pk, "discord_user_id": typed})
    assert response.status_code == 200
    html = response.content.decode()
    assert "is not a Discord user id" in html or "This field is required." in html
    if typed:
        assert "17 to 19 digits" in html and "Copy User ID" in html
    assert not StaffLink.objects.exists()


def test_one_discord_member_links_to_one_staff_account(boss_client, moderator):
    StaffLink.objects.create(user=moderator, discord_user_id=MOD)
    other = staff_user("other-mod", "Moderators")
    response = boss_client.post(
        reverse("admin:points_stafflink_add"), {"user": other.pk, "discord_user_id": str(MOD)}
    )
    assert response.status_code == 200
    assert f"Discord user id {MOD} is already linked to the staff account “mod”" in (
        response.content.decode()
    )
    assert StaffLink.objects.count() == 1


def test_moderators_may_read_staff_links_but_only_superusers_change_them(mod_client, moderator):
    link = StaffLink.objects.create(user=moderator, discord_user_id=MOD)
    assert mod_client.get(reverse("admin:points_stafflink_changelist")).status_code == 200
    assert mod_client.get(reverse("admin:points_stafflink_add")).status_code == 403
    change = reverse("admin:points_stafflink_change", args=[link.pk])
    response = mod_client.post(change, {"user": moderator.pk, "discord_user_id": str(ALICE)})
    assert response.status_code == 403
    link.refresh_from_db()
    assert link.discord_user_id == MOD


# --- A moderator's decision racing the scheduler -------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_review_decision_and_the_scheduler_settling_the_window_at_once_settle_once():
    """The window of an undisputed proposal ends while a moderator changes its result: the
    scheduler's settlement and the moderator's change race for the market row. Whichever
    commits first decides; the other is refused or finds nothing due; payouts happen once (the
    ledger audit runs after the test)."""
    window(60)
    market = traded("race")
    propose(market)
    market.refresh_from_db()
    moderator = staff_user("racer", "Moderators")
    client = Client()
    client.force_login(moderator)
    page = client.get(review_url(market))
    form = {
        "decision": "change",
        "outcome": "1",
        "reason": "Overruled",
        "request_id": request_id_of(page),
    }
    after_deadline = market.dispute_deadline + dt.timedelta(minutes=1)
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def moderator_changes() -> None:
        barrier.wait()
        try:
            results["admin"] = client.post(review_url(market), form).status_code
        finally:
            connection.close()

    def scheduler_ticks() -> None:
        barrier.wait()
        try:
            results["tick"] = services.markets_tick(now=after_deadline).settled
        finally:
            connection.close()

    threads = [threading.Thread(target=moderator_changes), threading.Thread(target=scheduler_ticks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert results["admin"] == 302
    market.refresh_from_db()
    assert market.status == "resolved"
    assert MarketEvent.objects.filter(market=market, type=MarketEvent.Type.RESOLVED).count() == 1
    winner = market.winning_outcome.position
    admin_won = winner == 1
    assert results["tick"] == ([] if admin_won else [market.pk])
    winners = {p.user_id for p in Position.objects.filter(market=market, outcome__position=winner)}
    paid = {t.destination.owner_id for t in payouts(market)}
    assert paid == winners
    assert len(log_entries(market)) == (1 if admin_won else 0)
    assert AuditEvent.objects.filter(action="market_resolve", target_id=str(market.pk)).count() == 1
