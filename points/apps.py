from django.apps import AppConfig


class PointsConfig(AppConfig):
    name = "points"
    verbose_name = "Points ledger"

    def ready(self) -> None:
        import config.checks  # noqa: F401  (registers the configuration checks)
