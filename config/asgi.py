"""ASGI entry point: HTTP through Django, WebSockets through Channels (STYLE §11)."""

import os
import sys

from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
try:
    django_asgi_app = get_asgi_application()
except ImproperlyConfigured as exc:  # one clear line for the operator, not a traceback
    sys.stderr.write(f"Configuration error: {exc}\n")
    raise SystemExit(2) from None

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter

from config.routing import websocket_urlpatterns
from dashboard.security import SameOriginValidator

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
