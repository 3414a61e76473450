from django.core.management.base import BaseCommand, CommandError

from points.audit import ledger_audit


class Command(BaseCommand):
    help = "Check the ledger invariants L1–L4 (DOMAIN §3) over every guild."

    def handle(self, *args: object, **options: object) -> None:
        report = ledger_audit()
        for violation in report.violations:
            self.stderr.write(violation)
        if not report.ok:
            raise CommandError(report.summary())
        self.stdout.write(report.summary())
