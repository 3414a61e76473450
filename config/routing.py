"""WebSocket routes (wrapped in origin and session checks by config/asgi.py)."""

from django.urls import path

from markets.consumers import DashboardConsumer

websocket_urlpatterns = [
    path("ws/dashboard/", DashboardConsumer.as_asgi()),
]
