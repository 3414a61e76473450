"""What the back office's admin modules share, so that none imports another (they are
interfaces, each over its own domain app): read-only model admins and inlines, paginated inlines,
action permission checks, links to a member's and a market's page, the member page's sections
that other apps add, confirmation forms that carry an idempotency key, and streaming CSV export.

Admin pages are interfaces (STYLE §1): they parse a form, call one service, and map a
`DomainError` to an admin message; they never write to the database themselves.
Imports no project app."""

from __future__ import annotations

import csv
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from asgiref.sync import sync_to_async
from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.db.models import Exists, Model, Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.urls import reverse
from django.utils.html import format_html

from .directory import guild_fallback, member_fallback
from .text import MSG_BAD_CHARACTER, id_from_text, text_problem

if TYPE_CHECKING:
    # Django's admin and form classes are generic in the stubs (django-stubs) but not at run
    # time: the admins subclass these names, fully typed for mypy and plain for Python.
    AnyModelAdmin = admin.ModelAdmin[Any]
    AnyTabularInline = admin.TabularInline[Any, Any]
    AnyInlineFormSet = BaseInlineFormSet[Any, Any, Any]
    AnyModelForm = forms.ModelForm[Any]
else:
    AnyModelAdmin = admin.ModelAdmin
    AnyTabularInline = admin.TabularInline
    AnyInlineFormSet = BaseInlineFormSet
    AnyModelForm = forms.ModelForm


class TextSafeChangelistMixin(AnyModelAdmin):
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
        return super().changelist_view(request, extra_context)


class ReadOnlyAdmin(TextSafeChangelistMixin):
    """Ledger rows are append-only (DOMAIN §3): no add, change or delete from the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ActionPermissionMixin(AnyModelAdmin):
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
        return super().changelist_view(request, extra_context)


class GuildFilter(admin.SimpleListFilter):
    """A list's servers by name, not by 18-digit id: the servers of the first 100 of `model`'s
    rows, named by the subclass's `guild_names` (the directory's lookup)."""

    title = "server"
    parameter_name = "guild_id"
    model: type[Model]

    def guild_names(self, guild_ids: Iterable[int]) -> dict[int, str]:
        raise NotImplementedError

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        rows = self.model._default_manager.order_by()
        names = self.guild_names(rows.values_list("guild_id", flat=True).distinct()[:100])
        return sorted(((str(g), name) for g, name in names.items()), key=lambda kv: kv[1])

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        guild_id = id_from_text(self.value())
        return queryset if guild_id is None else queryset.filter(guild_id=guild_id)


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


def market_link(market_id: int | None, text: str | None = None) -> str:
    if market_id is None:
        return "—"
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


class MemberNameSearchMixin(AnyModelAdmin):
    """Search a list by a member's display name or username as well as by id (issue 13).
    `member_name_filter(text)` is the model admin's: it returns the condition (the apps'
    admins build it with `points.selectors.member_name_matches`), so this module imports no
    project app."""

    def member_name_filter(
        self, text: str
    ) -> Q | Exists:  # pragma: no cover - every user overrides it
        raise NotImplementedError

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        text = search_term.strip()
        if text:
            found = found | queryset.filter(self.member_name_filter(text))
        return found, may_have_duplicates


# --- Read-only, paginated inlines ----------------------------------------------------------------


class ReadOnlyInline(AnyTabularInline):
    """Related rows shown on a page, never added, changed or deleted there."""

    extra = 0
    max_num = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PaginatedInlineFormSet(AnyInlineFormSet):
    """Shows one page of the related rows; the page number is the `<prefix>_page` query
    parameter, so each inline on the page turns independently."""

    per_page = 20
    request: HttpRequest | None = None
    list_url: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.page_param = f"{self.prefix}_page"
        params = self.request.GET if self.request is not None else {}
        self.paginator = Paginator(self.queryset, self.per_page)  # type: ignore[arg-type]
        self.page = self.paginator.get_page(params.get(self.page_param))
        self.queryset = self.page.object_list  # type: ignore[assignment]

    def page_links(self) -> list[tuple[str, str | None]]:
        """(label, url) for the page numbers to show; url is None for the current page and
        the ellipses."""
        links: list[tuple[str, str | None]] = []
        assert self.request is not None
        for number in self.paginator.get_elided_page_range(self.page.number, on_ends=1):
            if number == self.page.number or not isinstance(number, int):  # or an ellipsis
                links.append((str(number), None))
                continue
            query = self.request.GET.copy()
            query[self.page_param] = str(number)
            links.append((str(number), "?" + query.urlencode()))
        return links


class PaginatedInline(ReadOnlyInline):
    """A read-only inline that pages through its rows (`PaginatedInlineFormSet`) and links to
    the full list: `list_url_name` filtered by `list_url_param=<the parent's pk>`."""

    formset = PaginatedInlineFormSet
    template = "admin/edit_inline/paginated_tabular.html"
    per_page = 20
    list_url_name: str | None = None
    list_url_param = "market"

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = cast("type[PaginatedInlineFormSet]", super().get_formset(request, obj, **kwargs))
        formset.request = request
        formset.per_page = self.per_page
        formset.list_url = (
            f"{reverse(self.list_url_name)}?{self.list_url_param}={obj.pk}"
            if obj and self.list_url_name
            else None
        )
        return formset


# --- Confirmation forms ------------------------------------------------------------------------


class ConfirmForm(forms.Form):
    """A confirmation page's form. `request_id` is generated when the page renders and becomes
    the idempotency key `admin:<uuid>` (DOMAIN §3), so submitting the same page twice (a
    double click, a browser retry) changes things once."""

    request_id = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {}).setdefault("request_id", uuid.uuid4())
        super().__init__(*args, **kwargs)

    def request_key(self, suffix: object = None) -> str:
        """`admin:<uuid>`, or `admin:<uuid>:<suffix>` when one page changes several objects."""
        key = f"admin:{self.cleaned_data['request_id']}"
        return key if suffix is None else f"{key}:{suffix}"


REASON_HELP = "Recorded in the audit log. 1–500 characters."


def reason_field(*, required: bool = True, help_text: str = REASON_HELP) -> forms.CharField:
    """A moderator's reason; `help_text` says truly where members see it (issue 13)."""
    return forms.CharField(
        required=required,
        max_length=500,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=help_text if required else "Optional. " + help_text,
    )


M = TypeVar("M", bound=Model)

# --- CSV export --------------------------------------------------------------------------------

CSV_CHUNK = 1000
# A spreadsheet treats a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """Neutralise text a spreadsheet would run as a formula; numbers pass through unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


class _Echo:
    """A file-like object whose `write` returns the line, for `csv.writer` in a generator."""

    def write(self, value: str) -> str:
        return value


def keyset_chunks(
    queryset: QuerySet[M], *, size: int = CSV_CHUNK, newest_first: bool = True
) -> Iterator[list[M]]:
    """Yield `queryset` in lists of `size` rows, paging by primary key (constant memory, no
    server-side cursor, one query per chunk whatever the table size)."""
    order = "-pk" if newest_first else "pk"
    queryset = queryset.order_by(order)
    last = None
    while True:
        page = queryset
        if last is not None:
            page = page.filter(pk__lt=last) if newest_first else page.filter(pk__gt=last)
        rows = list(page[:size])
        if not rows:
            return
        yield rows
        last = rows[-1].pk
        if len(rows) < size:
            return


def stream_csv(
    request: HttpRequest,
    *,
    filename: str,
    header: Sequence[str],
    chunks: Iterator[Iterable[Any]],
    row: Callable[[Any], Sequence[object]],
) -> StreamingHttpResponse:
    """Stream a CSV built chunk by chunk. Under ASGI (daphne) the database work of each chunk
    runs in a worker thread and the response is an async iterator, so the file streams instead
    of being buffered; under WSGI (and the test client) a plain generator does the same."""
    writer = csv.writer(_Echo())

    def lines(items: Iterable[Any]) -> str:
        return "".join(writer.writerow([csv_cell(v) for v in row(item)]) for item in items)

    head = writer.writerow(header)

    def sync_content() -> Iterator[str]:
        yield head
        for chunk in chunks:
            yield lines(chunk)

    async def async_content() -> AsyncIterator[str]:
        yield head
        take = sync_to_async(lambda: next(chunks, None))
        render = sync_to_async(lines)
        while (chunk := await take()) is not None:
            yield await render(chunk)

    content = async_content() if isinstance(request, ASGIRequest) else sync_content()
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
