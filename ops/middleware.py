"""Request context for logs, and the client address behind a reverse proxy.

`RequestContextMiddleware` gives every request an id (the proxy's `X-Request-ID` when it is a
sane token, else a new one), binds it into the log context for everything logged while the
request runs, returns it as `X-Request-ID`, and writes one line per request with method, path,
status and duration. Probes (`/health/…`, `/metrics`) are logged at DEBUG so they do not drown
the log.

`client_ip(request)` is the one answer to "who is asking" used by the `/metrics` allow-list and
the admin login rate limit: `REMOTE_ADDR`, unless the connection comes from a trusted proxy
(`TRUSTED_PROXY_IPS`, loopback by default), in which case the right-most `X-Forwarded-For` entry
— the address that proxy itself saw — because everything left of it is whatever the client
chose to send.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.html import escape
from django_ratelimit.core import is_ratelimited

from ops.logging import log_context_bind, log_context_reset

logger = logging.getLogger("pm.request")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
_QUIET_PREFIXES = ("/health/", "/metrics", "/static/")


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


def ip_in(address: str, networks: list[str]) -> bool:
    """Whether `address` is one of `networks` (single addresses or CIDR blocks)."""
    ip = _ip(address)
    if ip is None:
        return False
    for entry in networks:
        try:
            if ip in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:
            continue
    return False


def client_ip_from(remote_addr: str, forwarded_for: str | None) -> str:
    """The client address given the peer address and the `X-Forwarded-For` header value."""
    trusted = getattr(settings, "TRUSTED_PROXY_IPS", ["127.0.0.1", "::1"])
    if forwarded_for and ip_in(remote_addr, trusted):
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        if hops and _ip(hops[-1]) is not None:
            return hops[-1]
    return remote_addr or ""


def client_ip(request: HttpRequest) -> str:
    return client_ip_from(
        request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR")
    )


def client_ip_for_ratelimit(request: HttpRequest) -> str:
    """`RATELIMIT_IP_META_KEY`: django-ratelimit needs a parseable address, never ''."""
    return client_ip(request) or "0.0.0.0"


class RequestContextMiddleware:
    """Bind a request id (and log one line) per request; sync and async capable."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self.__acall__(request)
        token, started = self._start(request)
        response = None
        try:
            response = self.get_response(request)
            return response
        finally:
            self._finish(request, response, started)
            log_context_reset(token)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        token, started = self._start(request)
        response = None
        try:
            response = await self.get_response(request)
            return response
        finally:
            self._finish(request, response, started)
            log_context_reset(token)

    def _start(self, request: HttpRequest):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        return log_context_bind(request_id=request_id), time.perf_counter()

    def _finish(self, request: HttpRequest, response: HttpResponse | None, started: float) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        status = response.status_code if response is not None else 500
        if response is not None:
            response[REQUEST_ID_HEADER] = request.request_id  # type: ignore[attr-defined]
        quiet = request.path.startswith(_QUIET_PREFIXES) and status < 500
        logger.log(
            logging.DEBUG if quiet else logging.INFO,
            "%s %s %s %.1fms",
            request.method,
            request.path,
            status,
            duration_ms,
            extra={
                "method": request.method,
                "path": request.path,
                "status": status,
                "duration_ms": duration_ms,
                "client_ip": client_ip(request),
            },
        )


MSG_LOGIN_RATE_LIMITED = (
    "Too many sign-in attempts from your address. Wait a minute, then try again."
)


def admin_login_ratelimited(login_view: Callable) -> Callable:
    """Wrap the admin login view: POSTs beyond `ADMIN_LOGIN_RATE` per client address (counted
    in the shared cache, so every web worker sees the same count) get a 429 page that says what
    happened and when to retry, instead of another password check."""

    def view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "POST" and is_ratelimited(
            request,
            group="admin-login",
            key="ip",
            rate=getattr(settings, "ADMIN_LOGIN_RATE", "10/m"),
            method="POST",
            increment=True,
        ):
            logger.warning(
                "admin login rate limited", extra={"client_ip": client_ip(request), "status": 429}
            )
            page = (
                "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                "<title>Too many attempts</title></head><body>"
                f"<h1>Too many attempts</h1><p>{escape(MSG_LOGIN_RATE_LIMITED)}</p>"
                "</body></html>"
            )
            response = HttpResponse(page, status=429)
            response["Retry-After"] = "60"
            return response
        return login_view(request, *args, **kwargs)

    view.__name__ = getattr(login_view, "__name__", "login")
    view.__doc__ = login_view.__doc__
    return view
