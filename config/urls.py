from django.contrib import admin
from django.urls import include, path

from config import health, metrics
from config.middleware import admin_login_ratelimited

admin.site.site_header = "Prediction markets"
admin.site.site_title = "Prediction markets admin"
admin.site.index_title = "Back office"
# Brute force against staff passwords: 10 POSTs a minute per address (settings.ADMIN_LOGIN_RATE).
admin.site.login = admin_login_ratelimited(admin.site.login)

urlpatterns = [
    path("health/live", health.health_live, name="health-live"),
    path("health/ready", health.health_ready, name="health-ready"),
    path("health/database", health.health_database, name="health-database"),
    path("health/cache", health.health_cache, name="health-cache"),
    path("health/external", health.health_external, name="health-external"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("dashboard/", include("dashboard.urls")),
]
