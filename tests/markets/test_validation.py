"""Every input rule of DOMAIN §7, table-driven through the services: a refused input raises a
`DomainError` whose message is the module constant (what was wrong and what is allowed) and
nothing is written; accepted inputs are stored verbatim (questions are text, not code)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from betting import services as betting_services
from betting.models import Position, Trade
from core.text import MSG_BAD_CHARACTER
from markets import services
from markets.errors import (
    MSG_BET_ABOVE_MAX,
    MSG_BET_TOO_SMALL_AFTER_FEE,
    MSG_CATEGORY,
    MSG_CLOSES_AT_PAST,
    MSG_DESCRIPTION_LENGTH,
    MSG_DESCRIPTION_TYPE,
    MSG_DURATION_FORMAT,
    MSG_DURATION_RANGE,
    MSG_LIQUIDITY,
    MSG_MECHANISM,
    MSG_NO_SHARES,
    MSG_NOT_ENOUGH_SHARES,
    MSG_OUTCOME_COUNT,
    MSG_OUTCOME_DUPLICATE,
    MSG_OUTCOME_LABEL,
    MSG_OUTCOME_NOT_FOUND,
    MSG_QUESTION,
    MSG_SELL_PARIMUTUEL,
    MSG_SELL_WORTH_ZERO,
    MSG_SHARES_INVALID,
)
from markets.models import Market, MarketEvent, Outcome
from points.errors import MAX_AMOUNT, MSG_INSUFFICIENT_POINTS, DomainError, IdempotencyConflict
from points.models import Account, AuditEvent, Transfer
from points.rules import Actor
from points.services import guild_settings_get_or_create
from tests.conftest import ALICE, BOB, CAROL, GUILD
from tests.factories import BetFactory, MarketFactory, PoolMarketFactory

pytestmark = pytest.mark.django_db


def bad_character(what: str, character: str, position: int) -> str:
    return MSG_BAD_CHARACTER.format(what=what, character=character, position=position)


NOW = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
VALID = {
    "question": "Will it rain tomorrow?",
    "outcomes": ["Yes", "No"],
    "duration": "1d",
}


def create(key: str = "create:1", **overrides):
    kwargs = {**VALID, **overrides}
    return services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        idempotency_key=key,
        now=NOW,
        actor=Actor.member(ALICE, manage_guild=True),  # may choose the liquidity
        **kwargs,
    )


def nothing_written() -> bool:
    return not any(
        model.objects.exists()
        for model in (Market, Outcome, MarketEvent, Account, Transfer, AuditEvent)
    )


# --- market_create refusals --------------------------------------------------------------------

REFUSED_CREATE = [
    # outcomes: 2–10, each 1–100 characters after trimming, unique case-insensitively
    ("11 outcomes", {"outcomes": [f"O{i}" for i in range(11)]}, MSG_OUTCOME_COUNT.format(count=11)),
    ("1 outcome", {"outcomes": ["Only"]}, MSG_OUTCOME_COUNT.format(count=1)),
    ("no outcomes", {"outcomes": []}, MSG_OUTCOME_COUNT.format(count=0)),
    ("outcomes as one string", {"outcomes": "Yes,No"}, MSG_OUTCOME_COUNT.format(count=0)),
    ("case duplicate", {"outcomes": ["Yes", "yes"]}, MSG_OUTCOME_DUPLICATE.format(label="yes")),
    (
        "duplicate after trimming",
        {"outcomes": ["Maybe", "No", "  NO "]},
        MSG_OUTCOME_DUPLICATE.format(label="NO"),
    ),
    (
        "casefold duplicate",
        {"outcomes": ["Straße", "STRASSE"]},
        MSG_OUTCOME_DUPLICATE.format(label="STRASSE"),
    ),
    ("empty outcome", {"outcomes": ["Yes", ""]}, MSG_OUTCOME_LABEL.format(position=2)),
    ("blank outcome", {"outcomes": ["   ", "No"]}, MSG_OUTCOME_LABEL.format(position=1)),
    ("101-char outcome", {"outcomes": ["Yes", "x" * 101]}, MSG_OUTCOME_LABEL.format(position=2)),
    ("non-text outcome", {"outcomes": ["Yes", 7]}, MSG_OUTCOME_LABEL.format(position=2)),
    (
        "control char in outcome",
        {"outcomes": ["Yes", "N\x00o", "Maybe"]},
        bad_character("Outcome 2", "U+0000 (a NUL character)", 2),
    ),
    # question: 1–500 characters after trimming, no control characters
    ("501-char question", {"question": "q" * 501}, MSG_QUESTION),
    ("empty question", {"question": ""}, MSG_QUESTION),
    ("blank question", {"question": " \t  "}, MSG_QUESTION),
    ("non-text question", {"question": None}, MSG_QUESTION),
    (
        "NUL in question",
        {"question": "Will it\x00 rain?"},
        bad_character("The question", "U+0000 (a NUL character)", 8),
    ),
    (
        "escape in question",
        {"question": "Will it \x1b[31mrain?"},
        bad_character("The question", "U+001B (a control character)", 9),
    ),
    (
        "DEL in question",
        {"question": "Will it rain?\x7f"},
        bad_character("The question", "U+007F (a control character)", 14),
    ),
    (
        "zero-width space in question",
        {"question": "Will\u200bit rain?"},
        bad_character("The question", "U+200B (an invisible formatting character)", 5),
    ),
    (
        "lone surrogate in question",
        {"question": "Will it \udc80 rain?"},
        bad_character("The question", "U+DC80 (an unpaired surrogate)", 9),
    ),
    # duration: 1 minute – 30 days
    ("0 minutes", {"duration": 0}, MSG_DURATION_RANGE.format(minutes=0)),
    ("43,201 minutes", {"duration": 43_201}, MSG_DURATION_RANGE.format(minutes=43_201)),
    ("0m", {"duration": "0m"}, MSG_DURATION_RANGE.format(minutes=0)),
    ("30d1m", {"duration": "30d1m"}, MSG_DURATION_RANGE.format(minutes=43_201)),
    ("31d", {"duration": "31d"}, MSG_DURATION_RANGE.format(minutes=44_640)),
    ("0,0,0", {"duration": "0,0,0"}, MSG_DURATION_RANGE.format(minutes=0)),
    ("30,0,1", {"duration": "30,0,1"}, MSG_DURATION_RANGE.format(minutes=43_201)),
    ("negative int", {"duration": -5}, MSG_DURATION_RANGE.format(minutes=-5)),
    ("30 seconds", {"duration": dt.timedelta(seconds=30)}, MSG_DURATION_RANGE.format(minutes=-1)),
    ("31 days", {"duration": dt.timedelta(days=31)}, MSG_DURATION_RANGE.format(minutes=44_640)),
    ("letters", {"duration": "soon"}, MSG_DURATION_FORMAT.format(value="soon")),
    ("unknown unit", {"duration": "2w"}, MSG_DURATION_FORMAT.format(value="2w")),
    ("fraction", {"duration": "1.5h"}, MSG_DURATION_FORMAT.format(value="1.5h")),
    ("negative text", {"duration": "-5"}, MSG_DURATION_FORMAT.format(value="-5")),
    ("unit without number", {"duration": "h"}, MSG_DURATION_FORMAT.format(value="h")),
    ("trailing number", {"duration": "2h30"}, MSG_DURATION_FORMAT.format(value="2h30")),
    ("two commas only", {"duration": "1,2"}, MSG_DURATION_FORMAT.format(value="1,2")),
    ("empty duration", {"duration": ""}, MSG_DURATION_FORMAT.format(value="")),
    ("no duration", {"duration": None}, MSG_DURATION_FORMAT.format(value="")),
    ("float", {"duration": 90.0}, MSG_DURATION_FORMAT.format(value="90.0")),
    ("bool", {"duration": True}, MSG_DURATION_FORMAT.format(value="True")),
    ("superscript digit", {"duration": "²"}, MSG_DURATION_FORMAT.format(value="²")),
    ("5000 digits", {"duration": "9" * 5000}, MSG_DURATION_FORMAT.format(value="9" * 40)),
    (
        "5000 digits and a unit",
        {"duration": "9" * 5000 + "m"},
        MSG_DURATION_FORMAT.format(value="9" * 40),
    ),
    # closing time given directly
    ("closes in the past", {"duration": None, "closes_at": NOW}, MSG_CLOSES_AT_PAST),
    (
        "closes after 30 days",
        {"duration": None, "closes_at": NOW + dt.timedelta(days=30, minutes=1)},
        MSG_DURATION_RANGE.format(minutes=43_201),
    ),
    # category ≤ 50
    ("51-char category", {"category": "c" * 51}, MSG_CATEGORY),
    ("non-text category", {"category": 5}, MSG_CATEGORY),
    (
        "control char in category",
        {"category": "sp\x07orts"},
        bad_character("The category", "U+0007 (a control character)", 3),
    ),
    (
        "NUL in category",
        {"category": "\x00"},
        bad_character("The category", "U+0000 (a NUL character)", 1),
    ),
    # description: optional, ≤ 1,000 characters after trimming, the question's characters + lines
    (
        "1,204-char description",
        {"description": "d" * 1204},
        MSG_DESCRIPTION_LENGTH.format(length=1204),
    ),
    (
        "1,001 characters after trimming",
        {"description": "  " + "d" * 1001 + "\n"},
        MSG_DESCRIPTION_LENGTH.format(length=1001),
    ),
    ("non-text description", {"description": 5}, MSG_DESCRIPTION_TYPE),
    (
        "NUL in description",
        {"description": "Resolves Yes\x00 if it rains."},
        bad_character("The description", "U+0000 (a NUL character)", 13),
    ),
    (
        "bidi override in description",
        {"description": "Resolves \u202eseY if it rains."},
        bad_character("The description", "U+202E (an invisible formatting character)", 10),
    ),
    (
        "zero-width space in description",
        {"description": "Yes\nif\u200bit rains"},
        bad_character("The description", "U+200B (an invisible formatting character)", 7),
    ),
    (
        "escape in description",
        {"description": "Resolves \x1b[31mYes"},
        bad_character("The description", "U+001B (a control character)", 10),
    ),
    (
        "lone surrogate in description",
        {"description": "Yes \udc80"},
        bad_character("The description", "U+DC80 (an unpaired surrogate)", 5),
    ),
    # mechanism and liquidity
    ("unknown mechanism", {"mechanism": "lmsr"}, MSG_MECHANISM),
    ("upper-case mechanism", {"mechanism": "AMM"}, MSG_MECHANISM),
    ("zero liquidity", {"liquidity": 0}, MSG_LIQUIDITY),
    ("negative liquidity", {"liquidity": -100}, MSG_LIQUIDITY),
    ("float liquidity", {"liquidity": 100.5}, MSG_LIQUIDITY),
    ("text liquidity", {"liquidity": "100"}, MSG_LIQUIDITY),
    ("bool liquidity", {"liquidity": True}, MSG_LIQUIDITY),
    ("liquidity above the cap", {"liquidity": 1_000_000_001}, MSG_LIQUIDITY),
]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [pytest.param(o, m, id=name) for name, o, m in REFUSED_CREATE],
)
def test_market_create_refuses_with_its_message_and_writes_nothing(overrides, message):
    with pytest.raises(DomainError) as caught:
        create(**overrides)
    assert caught.value.message == message
    assert str(caught.value) == message
    assert nothing_written()


# --- market_create acceptances -----------------------------------------------------------------

ACCEPTED_DURATIONS = [
    ("90m", 90),
    ("2h", 120),
    ("1d2h30m", 1590),
    ("1,2,30", 1590),
    (" 1d 2h 30m ", 1590),
    ("2H", 120),
    ("0,0,1", 1),
    ("45", 45),
    ("30d", 43_200),
    ("30,0,0", 43_200),
    (1, 1),
    (43_200, 43_200),
    (dt.timedelta(hours=3), 180),
]


@pytest.mark.parametrize(("duration", "minutes"), ACCEPTED_DURATIONS, ids=str)
def test_market_create_accepts_duration_forms_with_the_right_closing_time(duration, minutes):
    market = create(duration=duration)
    assert market.closes_at == NOW + dt.timedelta(minutes=minutes)


@pytest.mark.parametrize(
    "question",
    [
        "Will Bob's team win?",
        "Will the mods create a new channel?",
        "Robert'); DROP TABLE markets_market;--",
        "SELECT * FROM points_account WHERE 1=1 OR ''=''",
        "<script>alert('x')</script> & <b>bold</b>?",
        "Will 🌧️ fall in Zürich — “today”?",
        "q" * 500,
    ],
    ids=["apostrophe", "create", "sql-drop", "sql-select", "html", "unicode", "500 chars"],
)
def test_questions_are_text_stored_verbatim(question):
    market = create(question=question)
    market.refresh_from_db()
    assert market.question == question


def test_inputs_are_trimmed_and_boundaries_accepted():
    labels = [f"{i}" + "o" * 99 for i in range(10)]  # 10 outcomes of 100 characters
    market = create(
        question="   Will it rain?  ",
        outcomes=[f"  {label} " for label in labels],
        category="  " + "c" * 50 + " ",
        liquidity=1,
    )
    assert market.question == "Will it rain?"
    assert list(market.outcomes.order_by("position").values_list("label", flat=True)) == labels
    assert market.category == "c" * 50
    assert market.liquidity == 1


def test_description_is_optional_stored_trimmed_with_its_line_breaks_and_announced():
    assert create(key="none").description == ""
    criteria = "Resolves Yes if it rains in Zürich.\n\n- Source: *MeteoSwiss*\n\t<b>not</b> HTML"
    market = create(key="with", description=f"  {criteria}\r\n")
    market.refresh_from_db()
    assert market.description == criteria
    event = MarketEvent.objects.get(market=market, type=MarketEvent.Type.CREATED)
    assert event.payload["description"] == criteria
    audit = AuditEvent.objects.get(action="market_create", target_id=str(market.pk))
    assert audit.after["description"] == criteria


def test_description_at_1000_characters_and_windows_line_breaks_accepted():
    text = ("x" * 99 + "\n") * 10
    market = create(description=text.replace("\n", "\r\n"))
    assert market.description == text.strip() and len(market.description) == 999
    assert create(key="full", description="é" * 1000).description == "é" * 1000


def test_description_is_part_of_the_idempotent_replay():
    first = create(key="same", description="Resolves Yes if it rains.")
    again = create(key="same", description="  Resolves Yes if it rains.  ")
    assert again.pk == first.pk and Market.objects.count() == 1
    with pytest.raises(IdempotencyConflict):
        create(key="same", description="Resolves Yes if it snows.")
    with pytest.raises(IdempotencyConflict):
        create(key="same")
    assert Market.objects.count() == 1


def test_closes_at_within_thirty_days_is_accepted():
    closes_at = NOW + dt.timedelta(days=30)
    assert create(duration=None, closes_at=closes_at).closes_at == closes_at


def test_parimutuel_and_liquidity_cap_accepted():
    assert create(mechanism="parimutuel", key="p").liquidity == 0
    assert create(liquidity=1_000_000_000, key="big").liquidity == 1_000_000_000


# --- bets and sales ---------------------------------------------------------------------------


@pytest.fixture
def market():
    return MarketFactory(creator_id=ALICE, question="Will it rain?")


def snapshot() -> tuple:
    return (
        Trade.objects.count(),
        Transfer.objects.count(),
        Position.objects.count(),
        MarketEvent.objects.count(),
        sorted(Account.objects.values_list("pk", "balance")),
        sorted(Outcome.objects.values_list("pk", "pool", "staked")),
    )


STAKE_INVALID = f"That stake is not valid: use a whole number of points from 1 to {MAX_AMOUNT:,}."


@pytest.mark.parametrize(
    ("amount", "outcome", "message"),
    [
        pytest.param(0, 0, STAKE_INVALID, id="zero"),
        pytest.param(-10, 0, STAKE_INVALID, id="negative"),
        pytest.param(10.0, 0, STAKE_INVALID, id="float"),
        pytest.param(True, 0, STAKE_INVALID, id="bool"),
        pytest.param("10", 0, STAKE_INVALID, id="text"),
        pytest.param(None, 0, STAKE_INVALID, id="none"),
        pytest.param(MAX_AMOUNT + 1, 0, STAKE_INVALID, id="above-any-amount"),
        pytest.param(501, 0, MSG_BET_ABOVE_MAX.format(max_bet=500), id="above-max-bet"),
        pytest.param(
            2, 2, MSG_OUTCOME_NOT_FOUND.format(market_id="{m}", outcome=3, count=2), id="outcome-3"
        ),
        pytest.param(
            2,
            -1,
            MSG_OUTCOME_NOT_FOUND.format(market_id="{m}", outcome="?", count=2),
            id="outcome-neg",
        ),
        pytest.param(
            2,
            True,
            MSG_OUTCOME_NOT_FOUND.format(market_id="{m}", outcome="?", count=2),
            id="outcome-bool",
        ),
    ],
)
def test_bet_place_refuses_bad_amounts_and_outcomes_and_moves_nothing(
    market, amount, outcome, message
):
    settings_row = guild_settings_get_or_create(guild_id=GUILD)
    settings_row.max_bet = 500
    settings_row.save()
    before = snapshot()
    with pytest.raises(DomainError) as caught:
        betting_services.bet_place(
            market_id=market.pk, user_id=BOB, outcome=outcome, amount=amount, idempotency_key="b"
        )
    assert caught.value.message == message.replace("{m}", str(market.pk))
    assert snapshot() == before


def test_bet_place_at_max_bet_is_accepted(market):
    settings_row = guild_settings_get_or_create(guild_id=GUILD)
    settings_row.max_bet = 500
    settings_row.save()
    trade = betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=500, idempotency_key="b"
    )
    assert trade.amount == 500


def test_bet_place_refuses_stake_above_balance_and_moves_nothing(market):
    betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=900, idempotency_key="a"
    )
    before = snapshot()
    with pytest.raises(DomainError) as caught:
        betting_services.bet_place(
            market_id=market.pk, user_id=BOB, outcome=1, amount=101, idempotency_key="b"
        )
    assert caught.value.message == MSG_INSUFFICIENT_POINTS.format(balance=100, needed=101)
    assert snapshot() == before


def test_bet_place_refuses_stake_eaten_by_the_fee(market):
    settings_row = guild_settings_get_or_create(guild_id=GUILD)
    settings_row.fee_bps = 100
    settings_row.save()
    with_fee = MarketFactory(creator_id=ALICE, question="Fees?")
    before = snapshot()
    with pytest.raises(DomainError) as caught:
        betting_services.bet_place(
            market_id=with_fee.pk, user_id=BOB, outcome=0, amount=1, idempotency_key="b"
        )
    assert caught.value.message == MSG_BET_TOO_SMALL_AFTER_FEE.format(fee=1)
    assert snapshot() == before


@pytest.mark.parametrize("shares", [0, -1, 1.5, True, "100"], ids=repr)
def test_shares_sell_refuses_invalid_share_counts(market, shares):
    betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=100, idempotency_key="b"
    )
    before = snapshot()
    with pytest.raises(DomainError) as caught:
        betting_services.shares_sell(
            market_id=market.pk, user_id=BOB, outcome=0, shares=shares, idempotency_key="s"
        )
    assert caught.value.message == MSG_SHARES_INVALID
    assert snapshot() == before


def test_shares_sell_refuses_shares_you_do_not_hold(market):
    bought = betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=100, idempotency_key="b"
    )
    before = snapshot()
    cases = [
        (CAROL, 0, None, MSG_NO_SHARES.format(label="Yes", market_id=market.pk)),
        (BOB, 1, None, MSG_NO_SHARES.format(label="No", market_id=market.pk)),
        (
            BOB,
            0,
            bought.shares + 1,
            MSG_NOT_ENOUGH_SHARES.format(
                held=services.format_shares(bought.shares),
                label="Yes",
                asked=services.format_shares(bought.shares + 1),
            ),
        ),
        (BOB, 0, 999_999, MSG_SELL_WORTH_ZERO),
    ]
    for k, (user, outcome, shares, message) in enumerate(cases):
        with pytest.raises(DomainError) as caught:
            betting_services.shares_sell(
                market_id=market.pk,
                user_id=user,
                outcome=outcome,
                shares=shares,
                idempotency_key=f"s{k}",
            )
        assert caught.value.message == message
        assert snapshot() == before


def test_shares_sell_refused_on_a_pool_market():
    pool = PoolMarketFactory(creator_id=ALICE, question="Pool?")
    BetFactory(market=pool, user_id=BOB, outcome=0, amount=10)
    before = snapshot()
    with pytest.raises(DomainError) as caught:
        betting_services.shares_sell(market_id=pool.pk, user_id=BOB, outcome=0, idempotency_key="s")
    assert caught.value.message == MSG_SELL_PARIMUTUEL
    assert snapshot() == before


def test_format_shares_in_messages():
    assert services.format_shares(1_500_000) == "1.5"
    assert services.format_shares(190_909_090) == "190.90909"
    assert services.format_shares(1_234_000_000) == "1,234"
    assert services.format_shares(1) == "0.000001"


def test_real_clock_default_is_used_when_now_is_omitted():
    before = timezone.now()
    market = services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Now?",
        outcomes=["Yes", "No"],
        duration="90m",
        idempotency_key="now",
    )
    assert before + dt.timedelta(minutes=90) <= market.closes_at
    assert market.closes_at <= timezone.now() + dt.timedelta(minutes=90)
