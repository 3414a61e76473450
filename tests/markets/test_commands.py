import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from markets.models import Market
from markets.services import market_create

pytestmark = pytest.mark.django_db


def test_seed_demo_builds_every_state_and_a_clean_ledger(capsys):
    call_command("seed_demo", trades=8)
    out = capsys.readouterr().out
    assert "ledger audit OK" in out
    statuses = set(Market.objects.values_list("status", flat=True))
    assert statuses == {"open", "closed", "resolved", "cancelled"}
    assert set(Market.objects.values_list("mechanism", flat=True)) == {"amm", "parimutuel"}
    call_command("seed_demo", trades=2)  # a second run adds, never collides
    assert Market.objects.count() == 14


def test_run_scheduler_once_closes_due_markets(capsys):
    market = market_create(
        guild_id=1,
        creator_id=2,
        question="Due?",
        outcomes=["Y", "N"],
        duration="1m",
        idempotency_key="due",
    )
    Market.objects.filter(pk=market.pk).update(closes_at=timezone.now() - dt.timedelta(seconds=1))
    call_command("run_scheduler", once=True)
    assert "closed 1, settled 0 undisputed, auto-refunded 0" in capsys.readouterr().out
    market.refresh_from_db()
    assert market.status == "closed"
