"""Migration betting 0006 moves the reversal marks from the trade's own columns to
`TradeReversal` (docs/performance.md, "Reversal marks"): a mark made before it is still there
after it, with its time and its transfer, and unmarked trades stay unmarked."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.conftest import ALICE, BOB, GUILD
from tests.factories import BetFactory, MarketFactory

BEFORE = [("betting", "0005_help_texts_without_sections")]
AFTER = [("betting", "0006_trade_reversal_table")]


@pytest.mark.django_db(transaction=True)
def test_marks_made_before_the_migration_survive_it():
    market = MarketFactory(question="Migrated?", idempotency_key="create:migrated")
    early = BetFactory(market=market, user_id=ALICE, outcome=0, amount=50, idempotency_key="m:a")
    late = BetFactory(market=market, user_id=BOB, outcome=0, amount=70, idempotency_key="m:b")
    at = dt.datetime(2026, 12, 1, 20, 0, tzinfo=dt.UTC)
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps
        Transfer = old.get_model("points", "Transfer")
        link = Transfer.objects.filter(guild_id=GUILD).order_by("pk").first()
        old.get_model("betting", "Trade").objects.filter(pk=late.pk).update(
            reversed_at=at, reversal_transfer=link
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
    new = MigrationExecutor(connection).loader.project_state(AFTER).apps
    marks = new.get_model("betting", "TradeReversal").objects.values_list(
        "trade_id", "reversed_at", "transfer_id"
    )
    assert list(marks) == [(late.pk, at, link.pk)]
    assert early.pk not in {trade for trade, _, _ in marks}
