"""Transfers, market events and audit events cannot be rewritten on PostgreSQL (DOMAIN §3, §6)."""

import pytest
from django.db import DatabaseError, transaction

from markets.models import MarketEvent
from markets.services import market_create
from points.models import AuditEvent, Transfer
from points.services import wallet_get_or_create
from tests.conftest import ALICE, GUILD

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.mark.parametrize("model", [Transfer, MarketEvent, AuditEvent])
@pytest.mark.parametrize("operation", ["update", "delete"])
def test_history_tables_refuse_update_and_delete(model, operation):
    wallet_get_or_create(guild_id=GUILD, user_id=ALICE)
    market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Q?",
        outcomes=["A", "B"],
        duration="1h",
        idempotency_key="m",
    )
    qs = model.objects.all()
    assert qs.exists()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        if operation == "update":
            qs.update(created_at=qs.first().created_at)
        else:
            qs.delete()
    assert qs.exists()
