"""The WebSocket origin check (issue 12): an `Origin` is accepted when its scheme, host and port
all match an allowed origin — the socket's own address (its `Host` header, for a host in
`ALLOWED_HOSTS`) or one of `CSRF_TRUSTED_ORIGINS` — the way Django's CSRF check treats a form
post. channels' `AllowedHostsOriginValidator` compared host names only, so a page served from
another port of the same host could open the staff feed."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _origin_parts(value: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(value.strip().lower())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        return None
    return parts.scheme, parts.hostname, port


def origin_allowed(origin: str, host_header: str, *, secure: bool) -> bool:
    """True when `origin` (scheme, host, port) is the socket's own origin or a trusted one."""
    parsed = _origin_parts(origin)
    if parsed is None:
        return False
    for trusted in getattr(settings, "CSRF_TRUSTED_ORIGINS", []):
        if "*" not in trusted and _origin_parts(trusted) == parsed:
            return True
    if not host_header:
        return False
    domain, port = split_domain_port(host_header.lower())
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if secure else "http"
    own = (scheme, domain.strip("[]"), int(port) if port else DEFAULT_PORTS[scheme])
    return parsed == (own[0], own[1], own[2])


class SameOriginValidator:
    """ASGI middleware for WebSockets: refuse (403 at the handshake) a socket whose `Origin`
    is missing or does not match; see the module docstring."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator only handles WebSocket connections")
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin1")
        host = headers.get(b"host", b"").decode("latin1")
        if not host and scope.get("server"):
            server_host, server_port = scope["server"][0], scope["server"][1]
            host = f"{server_host}:{server_port}" if server_port else server_host
        secure = scope.get("scheme") in ("wss", "https")
        if origin and origin_allowed(origin, host, secure=secure):
            return await self.application(scope, receive, send)
        denier = WebsocketDenier()
        return await denier(scope, receive, send)
