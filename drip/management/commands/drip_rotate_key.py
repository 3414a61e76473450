"""`manage.py drip_rotate_key`: re-encrypt every stored DRIP API key with the first key of
PM_ENCRYPTION_KEY (docs/drip.md, "Rotating the encryption key")."""

from django.core.management.base import BaseCommand, CommandError

from drip.services import drip_key_rotate_all
from points.errors import DomainError


class Command(BaseCommand):
    help = "Re-encrypt stored DRIP API keys with the first PM_ENCRYPTION_KEY key."

    def handle(self, *args, **options) -> None:
        try:
            n = drip_key_rotate_all()
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Re-encrypted {n} DRIP API key(s) with the first key.")
