"""`manage.py dripfake`: a fake DRIP API on 127.0.0.1 for demos (set DRIP_API_BASE to the URL
it prints). Not for production: it keeps balances in memory."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError, CommandParser

from drip.fake import FakeDrip


class Command(BaseCommand):
    help = "Serve a fake DRIP API (in memory) for demos and manual tests."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--realm", default="demo-realm")
        parser.add_argument("--key", default="demo-api-key-not-secret")
        parser.add_argument("--point", default="pts", help="realm point (currency) id")
        parser.add_argument(
            "--member",
            action="append",
            default=[],
            metavar="DISCORD_ID:BALANCE",
            help="a realm member and their balance (repeatable)",
        )
        parser.add_argument("--rate-limit", type=int, default=24, help="requests per minute")

    def handle(self, *args, **options) -> None:
        fake = FakeDrip(rate_limit=options["rate_limit"])
        fake.realm(options["realm"], options["key"], realm_point_id=options["point"])
        for spec in options["member"]:
            user, _, balance = spec.partition(":")
            if not user.isdigit() or not (balance or "0").lstrip("-").isdigit():
                raise CommandError(f"--member wants DISCORD_ID:BALANCE, got {spec!r}")
            fake.member(options["realm"], int(user), int(balance or 0))
        url = fake.start(port=options["port"])
        self.stdout.write(
            f"Fake DRIP serving {url} — realm {options['realm']}, point {options['point']}.\n"
            f"Set DRIP_API_BASE={url} and link with /settings drip. Ctrl-C stops it."
        )
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stop.wait()
        fake.stop()
