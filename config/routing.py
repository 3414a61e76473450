"""WebSocket routes. The dashboard consumer registers here."""

websocket_urlpatterns: list = []
