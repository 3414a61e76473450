import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from points import services
from points.audit import ledger_audit
from points.models import Account
from tests.conftest import ALICE, GUILD

pytestmark = pytest.mark.django_db


def test_ledger_audit_command_prints_summary(capsys):
    services.wallet_get_or_create(guild_id=GUILD, user_id=ALICE)
    call_command("ledger_audit")
    assert "ledger audit OK: 1 guilds, 2 accounts, 1 transfers" in capsys.readouterr().out


def test_ledger_audit_detects_a_balance_that_disagrees_with_transfers(capsys):
    wallet = services.wallet_get_or_create(guild_id=GUILD, user_id=ALICE)
    Account.objects.filter(pk=wallet.pk).update(balance=1001)
    report = ledger_audit()
    assert any(v.startswith("L2 account") for v in report.violations)
    assert any(v.startswith("L1 guild") for v in report.violations)
    with pytest.raises(CommandError, match="FAILED"):
        call_command("ledger_audit")
    assert "L2 account" in capsys.readouterr().err
    Account.objects.filter(pk=wallet.pk).update(balance=1000)  # repair for the final audit
