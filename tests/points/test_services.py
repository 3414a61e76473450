import datetime as dt

import pytest

from points import selectors, services
from points.errors import (
    MSG_IDEMPOTENCY_CONFLICT,
    MSG_TIP_SELF,
    AlreadyClaimed,
    DomainError,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    InvalidInput,
)
from points.models import Account, AuditEvent, Transfer
from points.rules import SYSTEM, Actor
from tests.conftest import ALICE, BOB, GUILD, MOD

pytestmark = pytest.mark.django_db


def test_wallet_get_or_create_gives_starting_balance_once():
    wallet = services.wallet_get_or_create(guild_id=GUILD, user_id=ALICE)
    again = services.wallet_get_or_create(guild_id=GUILD, user_id=ALICE)
    assert wallet.pk == again.pk
    assert selectors.balance_get(guild_id=GUILD, user_id=ALICE) == 1000
    assert Transfer.objects.filter(code="starting_balance").count() == 1
    treasury = Account.objects.get(guild_id=GUILD, kind="treasury")
    assert treasury.balance == -1000


def test_guilds_do_not_share_wallets():
    services.wallet_get_or_create(guild_id=GUILD, user_id=ALICE)
    services.wallet_get_or_create(guild_id=GUILD + 1, user_id=ALICE)
    assert Account.objects.filter(kind="wallet", owner_id=ALICE).count() == 2
    assert Account.objects.filter(kind="treasury").count() == 2


def test_points_grant_moves_treasury_to_wallet_and_audits():
    transfer = services.points_grant(
        guild_id=GUILD,
        user_id=ALICE,
        amount=250,
        reason="event prize",
        idempotency_key="admin:1",
        actor=Actor.member(MOD, manage_guild=True),
    )
    assert transfer.code == "grant" and transfer.amount == 250
    assert selectors.balance_get(guild_id=GUILD, user_id=ALICE) == 1250
    event = AuditEvent.objects.get(action="points_grant")
    assert event.before == {"balance": 1000} and event.after == {"balance": 1250}
    assert event.reason == "event prize" and event.actor_discord_id == MOD


def test_points_grant_replay_returns_first_transfer_and_moves_nothing():
    first = services.points_grant(
        guild_id=GUILD,
        user_id=ALICE,
        amount=5,
        reason="r",
        idempotency_key="admin:2",
        actor=SYSTEM,
    )
    second = services.points_grant(
        guild_id=GUILD,
        user_id=ALICE,
        amount=5,
        reason="r",
        idempotency_key="admin:2",
        actor=SYSTEM,
    )
    assert first.pk == second.pk
    assert selectors.balance_get(guild_id=GUILD, user_id=ALICE) == 1005


def test_points_grant_same_key_different_content_is_refused():
    services.points_grant(
        guild_id=GUILD, user_id=ALICE, amount=5, reason="r", idempotency_key="k", actor=SYSTEM
    )
    with pytest.raises(IdempotencyConflict) as exc:
        services.points_grant(
            guild_id=GUILD,
            user_id=ALICE,
            amount=6,
            reason="r",
            idempotency_key="k",
            actor=SYSTEM,
        )
    assert exc.value.message == MSG_IDEMPOTENCY_CONFLICT.format(key="k")
    assert selectors.balance_get(guild_id=GUILD, user_id=ALICE) == 1005


def test_points_deduct_refuses_to_overdraw():
    with pytest.raises(InsufficientPoints) as exc:
        services.points_deduct(
            guild_id=GUILD,
            user_id=ALICE,
            amount=1001,
            reason="r",
            idempotency_key="d1",
            actor=SYSTEM,
        )
    assert "you have 1,000 and need 1,001" in exc.value.message
    services.points_deduct(
        guild_id=GUILD,
        user_id=ALICE,
        amount=1000,
        reason="spam",
        idempotency_key="d2",
        actor=SYSTEM,
    )
    assert selectors.balance_get(guild_id=GUILD, user_id=ALICE) == 0


@pytest.mark.parametrize("amount", [0, -5, 1.5, "10", True, None, 10**15 + 1, 2**64])
def test_amounts_outside_range_are_refused_with_the_range(amount):
    with pytest.raises(InvalidAmount) as exc:
        services.points_grant(
            guild_id=GUILD,
            user_id=ALICE,
            amount=amount,
            reason="r",
            idempotency_key="bad",
            actor=SYSTEM,
        )
    assert "from 1 to 1,000,000,000,000,000" in exc.value.message
    assert not Transfer.objects.exists()


def test_grant_requires_reason():
    with pytest.raises(InvalidInput, match="reason is required"):
        services.points_grant(
            guild_id=GUILD,
            user_id=ALICE,
            amount=5,
            reason="  ",
            idempotency_key="x",
            actor=SYSTEM,
        )


def test_points_tip_moves_between_members():
    services.points_tip(
        guild_id=GUILD, from_user_id=ALICE, to_user_id=BOB, amount=300, idempotency_key="t1"
    )
    assert selectors.balance_get(guild_id=GUILD, user_id=ALICE) == 700
    assert selectors.balance_get(guild_id=GUILD, user_id=BOB) == 1300


def test_points_tip_refuses_self_and_overdraft():
    with pytest.raises(InvalidInput) as exc:
        services.points_tip(
            guild_id=GUILD, from_user_id=ALICE, to_user_id=ALICE, amount=1, idempotency_key="t"
        )
    assert exc.value.message == MSG_TIP_SELF
    with pytest.raises(InsufficientPoints):
        services.points_tip(
            guild_id=GUILD, from_user_id=ALICE, to_user_id=BOB, amount=1001, idempotency_key="t"
        )
    assert not Transfer.objects.filter(code="tip").exists()


def test_daily_claim_once_per_utc_day_with_next_time():
    day = dt.datetime(2026, 11, 28, 23, 59, tzinfo=dt.UTC)
    services.daily_claim(guild_id=GUILD, user_id=ALICE, now=day)
    with pytest.raises(AlreadyClaimed) as exc:
        services.daily_claim(guild_id=GUILD, user_id=ALICE, now=day + dt.timedelta(seconds=30))
    assert exc.value.details["next_at"] == "2026-11-29T00:00:00+00:00"
    assert "<t:" in exc.value.message
    services.daily_claim(guild_id=GUILD, user_id=ALICE, now=day + dt.timedelta(minutes=2))
    assert selectors.balance_get(guild_id=GUILD, user_id=ALICE) == 1200


def test_daily_claim_disabled_when_bonus_is_zero():
    gs = services.guild_settings_get_or_create(guild_id=GUILD)
    gs.daily_bonus = 0
    gs.save()
    with pytest.raises(DomainError, match="turned off"):
        services.daily_claim(guild_id=GUILD, user_id=ALICE)


def test_selectors_leaderboard_and_history(django_assert_num_queries):
    services.points_tip(
        guild_id=GUILD, from_user_id=ALICE, to_user_id=BOB, amount=10, idempotency_key="t1"
    )
    with django_assert_num_queries(1):
        board = selectors.leaderboard(guild_id=GUILD, limit=5)
    assert [(r.rank, r.user_id, r.balance) for r in board] == [(1, BOB, 1010), (2, ALICE, 990)]
    with django_assert_num_queries(2):
        history = selectors.transfers_for_user(guild_id=GUILD, user_id=ALICE)
    assert [(h.code, h.amount) for h in history] == [("tip", -10), ("starting_balance", 1000)]
    assert selectors.transfers_for_user(guild_id=GUILD, user_id=12345) == []


def test_invalid_snowflake_is_refused():
    with pytest.raises(InvalidInput, match="not a valid Discord id"):
        services.wallet_get_or_create(guild_id=GUILD, user_id=-1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        (" 7 ", 7),
        ("²", None),
        ("٣", None),
        ("0", None),
        ("-3", None),
        ("9" * 20, None),
        ("9" * 5000, None),
        ("", None),
        (None, None),
        ("12a", None),
    ],
)
def test_id_from_text_accepts_only_plain_positive_ids(text, expected):
    from points.errors import id_from_text

    assert id_from_text(text) == expected
