from django.apps import AppConfig


class PointsConfig(AppConfig):
    name = "points"
    verbose_name = "Points ledger"

    def ready(self) -> None:
        from core import checks, telemetry

        from .rules import setting_check
        from .telemetry import ledger_gauges, ledger_violations

        telemetry.gauges_register("points", ledger_gauges)
        telemetry.ledger_audit_register(ledger_violations)
        checks.guild_setting_check_register(setting_check)
