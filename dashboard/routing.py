"""The dashboard's WebSocket route, included by config/routing.py (which config/asgi.py wraps
in origin and session checks)."""

from django.urls import path

from .consumers import DashboardConsumer

websocket_urlpatterns = [
    path("ws/dashboard/", DashboardConsumer.as_asgi()),
]
