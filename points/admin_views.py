"""Building blocks of the back office shared by the points and markets admins: confirmation
forms that carry an idempotency key, the adjust-balance form, and streaming CSV export.

Admin pages are interfaces (STYLE §1): they parse a form, call one service, and map a
`DomainError` to an admin message; they never write to the database themselves."""

from __future__ import annotations

import csv
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django import forms
from django.core.handlers.asgi import ASGIRequest
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse

from .errors import MAX_AMOUNT

CSV_CHUNK = 1000
# A spreadsheet treats a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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
REASON_SHOWN_IN_HISTORY = (
    "Recorded in the audit log and shown to the member in their /history. 1–500 characters."
)


def reason_field(*, required: bool = True, help_text: str = REASON_HELP) -> forms.CharField:
    """A moderator's reason; `help_text` says truly where members see it (issue 13)."""
    return forms.CharField(
        required=required,
        max_length=500,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=help_text if required else "Optional. " + help_text,
    )


class AdjustBalanceForm(ConfirmForm):
    """Grant or deduct points (issue 5: Points admin); a reason is required."""

    GRANT, DEDUCT = "grant", "deduct"

    direction = forms.ChoiceField(
        choices=[(GRANT, "Grant (treasury → wallet)"), (DEDUCT, "Deduct (wallet → treasury)")],
        widget=forms.RadioSelect,
        initial=GRANT,
    )
    amount = forms.IntegerField(
        min_value=1,
        max_value=MAX_AMOUNT,
        help_text=f"Whole points, 1 to {MAX_AMOUNT:,}.",
    )
    reason = reason_field(help_text=REASON_SHOWN_IN_HISTORY)


# --- CSV export --------------------------------------------------------------------------------


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
    queryset: QuerySet, *, size: int = CSV_CHUNK, newest_first: bool = True
) -> Iterator[list]:
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
