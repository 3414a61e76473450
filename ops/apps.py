from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations: health probes, metrics, structured logs, Sentry, request middleware and the
    configuration checks. Imports no domain app: the apps report through `core.signals` and
    `core.telemetry`, which this app connects here."""

    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from core import signals
        from ops import checks, metrics  # noqa: F401  (checks registers the system checks)

        for signal, receiver in (
            (signals.trade_committed, metrics.on_trade_committed),
            (signals.market_transitioned, metrics.on_market_transitioned),
            (signals.dashboard_publish_failed, metrics.on_dashboard_publish_failed),
            (signals.transient_error_retried, metrics.on_transient_error_retried),
            (signals.scheduler_ticked, metrics.on_scheduler_ticked),
        ):
            signal.connect(receiver, dispatch_uid=f"ops.metrics.{receiver.__name__}")
