"""What the back office's admin modules share, so that none imports another (they are
interfaces, each over its own domain app): read-only model admins, action permission checks,
links to a member's and a market's page, and the member page's sections that other apps add.
Imports no project app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import reverse
from django.utils.html import format_html

from .directory import guild_fallback, member_fallback
from .text import MSG_BAD_CHARACTER, text_problem


class TextSafeChangelistMixin:
    """A list filter or search holding a character PostgreSQL cannot compare (NUL, a lone
    surrogate) would raise a database error, a 500. Refuse it, and any other control character no
    stored text may hold, with 400 and a message (core.text); invisible formatting characters
    are harmless here and simply match nothing."""

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        for name, values in request.GET.lists():
            for value in [name, *values]:
                problem = text_problem(value, allow_line_breaks=True, allow_format=True)
                if problem is not None:
                    position, character = problem
                    return HttpResponseBadRequest(
                        MSG_BAD_CHARACTER.format(
                            what=f"The filter “{name[:40]}”",
                            character=character,
                            position=position,
                        ),
                        content_type="text/plain; charset=utf-8",
                    )
        return super().changelist_view(request, extra_context)  # type: ignore[misc]


class ReadOnlyAdmin(TextSafeChangelistMixin, admin.ModelAdmin):
    """Ledger rows are append-only (DOMAIN §3): no add, change or delete from the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ActionPermissionMixin:
    """Django lists a custom action only for users who hold its permission, but a POST of the
    action by anyone else just says "No action selected". Refuse it with 403 instead, so the
    server-side check is explicit (issue 5: Roles and permissions)."""

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            for name in request.POST.getlist("action"):
                func = getattr(type(self), name, None)
                for perm in getattr(func, "allowed_permissions", ()):
                    if not getattr(self, f"has_{perm}_permission")(request):
                        raise PermissionDenied
        return super().changelist_view(request, extra_context)  # type: ignore[misc]


def member_url(guild_id: int, user_id: int) -> str:
    return reverse("admin:points_member", args=[guild_id, user_id])


def member_link(guild_id: int, user_id: int | None, name: str | None = None) -> str:
    """The member's name (from the directory; "member #1234…" when unknown or forgotten),
    linking to their page, with the Discord id as the tooltip: the id is one click away."""
    if user_id is None:
        return "—"
    return format_html(
        '<a href="{}" title="Discord id {}">{}</a>',
        member_url(guild_id, user_id),
        user_id,
        name or member_fallback(user_id),
    )


def guild_label(guild_id: int | None, name: str | None = None) -> str:
    """The server's name with its id as the tooltip."""
    if guild_id is None:
        return "—"
    return format_html(
        '<span title="Discord server id {}">{}</span>', guild_id, name or guild_fallback(guild_id)
    )


def shares_cell(micro_shares: int | None) -> str:
    """Shares to two decimals for reading, the exact count in the tooltip (DOMAIN §1: a share
    is 1,000,000 micro-shares; the CSV exports keep the exact values)."""
    if micro_shares is None:
        return "—"
    whole, frac = divmod(micro_shares, 1_000_000)
    exact = f"{whole:,}" + (f".{frac:06d}".rstrip("0") if frac else "")
    return format_html(
        '<span title="exactly {} shares">{}</span>', exact, f"{micro_shares / 1_000_000:,.2f}"
    )


def market_link(market_id: int, text: str | None = None) -> str:
    url = reverse("admin:markets_market_change", args=[market_id])
    return format_html('<a href="{}">{}</a>', url, text or f"#{market_id}")


MemberSection = Callable[[int, int], dict[str, Any]]
"""(guild id, user id) → context the member page template reads (e.g. `portfolio`)."""

_member_sections: list[MemberSection] = []


def member_section_register(section: MemberSection) -> None:
    """Add context to every member page; `betting.admin` adds the member's positions."""
    if section not in _member_sections:
        _member_sections.append(section)


def member_sections(guild_id: int, user_id: int) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for section in _member_sections:
        context.update(section(guild_id, user_id))
    return context


class MemberNameSearchMixin:
    """Search a list by a member's display name or username as well as by id (issue 13).
    `member_name_filter(text)` is the model admin's: it returns the condition (the apps'
    admins build it with `points.selectors.member_name_matches`), so this module imports no
    project app."""

    def member_name_filter(
        self, text: str
    ) -> Q | Exists:  # pragma: no cover - every user overrides it
        raise NotImplementedError

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        found, may_have_duplicates = super().get_search_results(  # type: ignore[misc]
            request, queryset, search_term
        )
        text = search_term.strip()
        if text:
            found = found | queryset.filter(self.member_name_filter(text))
        return found, may_have_duplicates
