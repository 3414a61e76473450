from django.apps import AppConfig


class MarketsConfig(AppConfig):
    name = "markets"
    verbose_name = "Markets"

    def ready(self) -> None:
        from core import telemetry

        from .telemetry import market_gauges

        telemetry.gauges_register("markets", market_gauges)
