"""Serve the ASGI application (admin, dashboard, WebSockets) with daphne in the foreground."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve admin and dashboard over HTTP and WebSockets (daphne)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, host: str, port: int, **options):
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        from config.asgi import application

        self.stdout.write(f"Serving on http://{host}:{port}/admin/ (Ctrl+C to stop)")
        Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=True,
        ).run()
