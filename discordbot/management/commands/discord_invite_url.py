"""Print the link that adds the bot to a server (`python manage.py discord_invite_url`)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from discordbot.invite import INVITE_PERMISSIONS, INVITE_SCOPES, invite_url


class Command(BaseCommand):
    help = "Print the invite link with the scopes and permissions the bot needs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--client-id", help="The application id (default: DISCORD_APPLICATION_ID)."
        )

    def handle(self, *args, client_id: str | None = None, **options) -> None:
        client_id = (client_id or getattr(settings, "DISCORD_APPLICATION_ID", "") or "").strip()
        if not client_id.isdigit():
            raise CommandError(
                "Set DISCORD_APPLICATION_ID to your application's id (Developer Portal → General "
                "Information → Application ID), or pass --client-id."
            )
        self.stdout.write(invite_url(client_id))
        self.stderr.write(
            f"scopes: {' '.join(INVITE_SCOPES)}; permissions {INVITE_PERMISSIONS.value}: "
            + ", ".join(name for name, on in INVITE_PERMISSIONS if on)
        )
