from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Shared core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import replicas, telemetry

        if replicas.replica_aliases():
            telemetry.gauges_register("replicas", replicas.replica_readings)
