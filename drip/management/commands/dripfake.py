"""`manage.py dripfake`: a fake DRIP API on 127.0.0.1 for demos, speaking DRIP's published API
(drip/fake.py). It prints every value `/settings drip` needs and the environment lines for the
bot and the worker. Not for production: it keeps balances in memory."""

from __future__ import annotations

import signal
import threading

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from drip.fake import REALM_ID_RE, FakeDrip, drip_id_for

DEMO_REALM = drip_id_for("demo-realm")
DEMO_POINT = drip_id_for("demo-point")


class Command(BaseCommand):
    help = "Serve a fake DRIP API (in memory) for demos and manual tests."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--realm", default=DEMO_REALM, help="realm id (24 hex characters)")
        parser.add_argument("--key", default="demo-api-key-not-secret")
        parser.add_argument("--point", default=DEMO_POINT, help="realm point (currency) id")
        parser.add_argument(
            "--member",
            action="append",
            default=[],
            metavar="DISCORD_ID:BALANCE",
            help="a realm member and their balance (repeatable)",
        )
        parser.add_argument(
            "--rate-limit", type=int, default=24, help="requests per minute per realm (Free: 24)"
        )

    def handle(self, *args, **options) -> None:
        if not REALM_ID_RE.fullmatch(options["realm"]):
            raise CommandError("--realm must be 24 characters 0-9 and a-f, as DRIP's realm ids.")
        fake = FakeDrip(rate_limit=options["rate_limit"])
        fake.realm(options["realm"], options["key"], realm_point_id=options["point"])
        for spec in options["member"]:
            user, _, balance = spec.partition(":")
            if not user.isdigit() or not (balance or "0").isdigit():
                raise CommandError(f"--member wants DISCORD_ID:BALANCE, got {spec!r}")
            fake.member(options["realm"], int(user), int(balance or 0))
        url = fake.start(port=options["port"])
        self.stdout.write(self.instructions(url, options))
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stop.wait()
        fake.stop()

    @staticmethod
    def instructions(url: str, options: dict) -> str:
        key_line = (
            "# PM_ENCRYPTION_KEY is already set here; use the same value for both processes."
            if getattr(settings, "PM_ENCRYPTION_KEY", "")
            else f"PM_ENCRYPTION_KEY={Fernet.generate_key().decode()}"
        )
        members = ", ".join(options["member"]) or "none (add --member DISCORD_ID:BALANCE)"
        return (
            f"Fake DRIP serving {url} (members: {members}). Ctrl-C stops it.\n"
            "\n"
            "Environment for the bot (`.venv/bin/python manage.py runbot`) and the worker "
            "(`.venv/bin/python manage.py run_drip_worker`), the same in both:\n"
            f"DRIP_API_BASE={url}\n"
            f"{key_line}\n"
            "\n"
            "Then in Discord (Manage Server), /settings drip with:\n"
            f"  realm_id: {options['realm']}\n"
            f"  api_key: {options['key']}\n"
            f"  realm_point_id: {options['point']}\n"
        )
