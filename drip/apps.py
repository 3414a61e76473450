from django.apps import AppConfig


class DripConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "drip"
    verbose_name = "DRIP bridge"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system check)
