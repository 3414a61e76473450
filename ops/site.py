"""The site's own two paths outside the back office and the dashboard: `/`, which leads each
person where they can go, and `/favicon.ico`, which browsers and link previews ask for on every
page (issue 23)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

FAVICON = Path(__file__).resolve().parent / "static" / "ops" / "favicon.ico"


def site_root(request: HttpRequest) -> HttpResponseRedirect:
    """Staff to the live dashboard; anyone else to the back office's login, which returns them
    to the dashboard (there is no public site)."""
    dashboard = reverse("dashboard:index")
    if request.user.is_authenticated and request.user.is_staff:
        return HttpResponseRedirect(dashboard)
    return HttpResponseRedirect(
        f"{reverse('admin:login')}?{urlencode({'next': dashboard}, safe='/')}"
    )


@cache
def _favicon() -> bytes:
    return FAVICON.read_bytes()


def favicon(request: HttpRequest) -> HttpResponse:
    """The same icon the pages' `<link rel="icon">` names (`ops/favicon.ico`), for clients that
    ask the conventional path."""
    response = HttpResponse(_favicon(), content_type="image/x-icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response
