"""WebSocket routes (wrapped in origin and session checks by config/asgi.py)."""

from dashboard.routing import websocket_urlpatterns as dashboard_websocket_urlpatterns

websocket_urlpatterns = [
    *dashboard_websocket_urlpatterns,
]
