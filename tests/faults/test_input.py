"""Drill: NUL and fuzzed Unicode through the services and the admin (issue 12, DOMAIN §7).
Every refusal is a `DomainError` with a message — never a database error — and every accepted
text is stored as given. Admin list filters and searches answer 400 with a message, never 500.

Run with `-s` to see the drill line."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.text import MSG_BAD_CHARACTER
from markets import selectors as market_selectors
from markets import services as market_services
from markets.models import Market
from points import services as points_services
from points.admin import MSG_ROLE_IDS
from points.errors import DomainError
from points.models import GuildSettings
from points.rules import SYSTEM
from tests.admin_helpers import guild_settings_form
from tests.conftest import ALICE, GUILD, MOD

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.django_db]

NASTY = ["\x00", "\ud800", "\udfff", "\u200b", "\u200d", "\u202e", "\ufeff", "\x1b", "\x7f",
         "\n", "\t", "\r", " ", "'", '"', "\\", "%", "_", "😀", "👨\u200d👩\u200d👧", "\U0010ffff",
         "e\u0301", "ﬁ", "Ⅻ"]  # fmt: skip
pieces = st.one_of(st.characters(exclude_categories=()), st.sampled_from(NASTY))
texts = st.lists(pieces, max_size=40).map("".join)
keys = itertools.count()
tally: Counter[str] = Counter()


def call(service, **kwargs) -> object:
    """Call a service; a refusal must be a DomainError with a message. Anything else fails."""
    try:
        result = service(**kwargs, idempotency_key=f"fuzz:{next(keys)}")
    except DomainError as refusal:
        assert refusal.message.strip(), f"a refusal without a message: {refusal!r}"
        assert "\x00" not in refusal.message
        tally["refused"] += 1
        return None
    tally["accepted"] += 1
    return result


@pytest.fixture(scope="module", autouse=True)
def _fuzz_drill_line():
    """The drill line for this module's fuzzing (printed with -s)."""
    yield
    if tally:
        print(
            f"\n[drill] fuzzed input: {sum(tally.values())} service calls, {tally['accepted']} "
            f"accepted, {tally['refused']} refused with a message, 0 unhandled"
        )


FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(question=texts, first=texts, second=texts, category=st.none() | texts)
def test_market_texts_are_stored_or_refused_with_a_message(db, question, first, second, category):
    market = call(
        market_services.market_create,
        guild_id=GUILD,
        creator_id=ALICE,
        question=question,
        outcomes=[first, second],
        category=category,
        duration="1d",
    )
    if market is not None:
        stored = Market.objects.get(pk=market.pk)
        assert stored.question == question.strip()
        assert stored.category == (category or "").strip()
        assert [o.label for o in stored.outcomes.order_by("position")] == [
            first.strip(),
            second.strip(),
        ]


@FUZZ
@given(reason=texts, deduct=st.booleans())
def test_reasons_are_stored_or_refused_with_a_message(db, reason, deduct):
    service = points_services.points_deduct if deduct else points_services.points_grant
    call(service, guild_id=GUILD, user_id=ALICE, amount=1, reason=reason, actor=SYSTEM)


NUL, ESC = "U+0000 (a NUL character)", "U+001B (a control character)"


@pytest.mark.parametrize(
    ("url_name", "query", "what", "character", "position"),
    [
        ("admin:markets_market_changelist", "category=%00", "category", NUL, 1),
        ("admin:markets_market_changelist", "q=a%00b", "q", NUL, 2),
        ("admin:points_transfer_changelist", "q=%00", "q", NUL, 1),
        ("admin:points_auditevent_changelist", "action=%1b", "action", ESC, 1),
        ("admin:betting_trade_changelist", "q=%00", "q", NUL, 1),
        ("admin:points_guildsettings_changelist", "q=%00", "q", NUL, 1),
    ],
)
def test_admin_filters_with_unstorable_characters_answer_400(
    plain_http, mod_client, url_name, query, what, character, position
):
    response = mod_client.get(f"{reverse(url_name)}?{query}")
    assert response.status_code == 400
    assert response.content.decode() == MSG_BAD_CHARACTER.format(
        what=f"The filter “{what}”", character=character, position=position
    )


def test_admin_filters_with_ordinary_text_still_work(plain_http, mod_client):
    market_services.market_create(
        guild_id=GUILD, creator_id=MOD, question="Sports?", outcomes=["Yes", "No"],
        category="sports", duration="1d", idempotency_key="filter:market",
    )  # fmt: skip
    url = reverse("admin:markets_market_changelist")
    response = mod_client.get(f"{url}?category=sports&q=Sports%E2%80%8B")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("typed", "stored"),
    [('["\\u0000"]', None), ('[{"id": 1}]', None), ('"12"', None), ("[-5]", None),
     ('[123456789012345678, "223456789012345678"]', [123456789012345678, 223456789012345678])],
)  # fmt: skip
def test_guild_settings_role_lists_take_role_ids_only(
    plain_http, client, django_user_model, typed, stored
):
    """Settings text: a role list holding a NUL string made PostgreSQL's jsonb refuse the row
    (a 500); anything but role ids is now a form error with a message."""
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.org", "pw"))
    gs = GuildSettings.objects.create(guild_id=GUILD, **django_settings.PM_GUILD_DEFAULTS)
    form = guild_settings_form(gs, creator_role_ids=typed)
    response = client.post(reverse("admin:points_guildsettings_change", args=[GUILD]), form)
    if stored is None:
        assert response.status_code == 200
        assert MSG_ROLE_IDS in response.content.decode()
        assert GuildSettings.objects.get(guild_id=GUILD).creator_role_ids == []
    else:
        assert response.status_code == 302
        assert GuildSettings.objects.get(guild_id=GUILD).creator_role_ids == stored


@pytest.mark.parametrize("typed", ["\x00", "Will\x00", "\ud800", "sp\x1borts"])
def test_market_search_and_category_filters_with_unstorable_characters_match_nothing(typed):
    """Autocomplete and the market list pass what a member typed to the selectors; a NUL made
    PostgreSQL refuse the query. Nothing stored holds these characters, so nothing matches."""
    market_services.market_create(
        guild_id=GUILD, creator_id=ALICE, question="Will it rain?", outcomes=["Yes", "No"],
        category="sports", duration="1d", idempotency_key="search:market",
    )  # fmt: skip
    assert market_selectors.market_list(guild_id=GUILD, search=typed) == []
    assert market_selectors.market_list(guild_id=GUILD, category=typed) == []
    assert market_selectors.market_count(guild_id=GUILD, category=typed) == 0
    assert len(market_selectors.market_list(guild_id=GUILD, search="rain")) == 1
