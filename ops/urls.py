"""Probes and Prometheus, at the root of the site (the paths the deploy guide documents), and
the root itself and its icon (`ops.site`)."""

from django.urls import path

from ops import site, views

urlpatterns = [
    path("", site.site_root, name="site-root"),
    path("favicon.ico", site.favicon, name="favicon"),
    path("health/live", views.health_live, name="health-live"),
    path("health/ready", views.health_ready, name="health-ready"),
    path("health/database", views.health_database, name="health-database"),
    path("health/cache", views.health_cache, name="health-cache"),
    path("health/external", views.health_external, name="health-external"),
    path("metrics", views.metrics_view, name="metrics"),
]
