from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The staff dashboard: an interface over the domain apps (pages, charts, a live WebSocket).

    It reads `markets`, `betting` and `points` and imports no other interface (`discordbot`, the
    admin modules); no domain app imports it. Markets reach it only through the channel layer
    group `markets.realtime.DASHBOARD_GROUP`.
    """

    name = "dashboard"
    verbose_name = "Dashboard"
