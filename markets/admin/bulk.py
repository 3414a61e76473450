"""Cancel and refund, Close now (issue 5): one confirmation page for one market or a selection of
at most `MAX_BULK`, each changed by its own service call keyed `admin:<uuid>:<market>`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from core.errors import DomainError
from points.rules import Actor

from .. import selectors, services
from ..models import Market, MarketEvent
from .forms import BulkForm, CancelForm, CloseForm, parse_ids
from .pages import PREVIEW_ROWS, already_submitted, change_url, named_payments, page_context

if TYPE_CHECKING:
    from .market import MarketAdmin


@dataclass(frozen=True)
class BulkAction:
    name: str
    verb: str
    title: str
    form_class: type[BulkForm]
    template: str
    has_permission: Callable[[MarketAdmin, HttpRequest], bool]
    call: Callable[..., Market]
    log_message: Callable[[Market, str], str]
    with_preview: bool


def _cancel(*, market_id: int, actor: Actor, reason: str, key: str) -> Market:
    return services.market_cancel(
        market_id=market_id, actor=actor, reason=reason, idempotency_key=key
    )


def _close(*, market_id: int, actor: Actor, reason: str, key: str) -> Market:
    return services.market_close(
        market_id=market_id, actor=actor, reason=reason, idempotency_key=key
    )


CANCEL = BulkAction(
    name="cancel",
    verb="Cancelled and refunded",
    title="Cancel and refund",
    form_class=CancelForm,
    template="admin/markets/market/confirm_cancel.html",
    has_permission=lambda admin, request: admin.has_cancel_permission(request),
    call=_cancel,
    log_message=lambda m, reason: f"Cancelled and refunded: {reason}",
    with_preview=True,
)
CLOSE = BulkAction(
    name="close",
    verb="Closed",
    title="Close now",
    form_class=CloseForm,
    template="admin/markets/market/confirm_close.html",
    has_permission=lambda admin, request: admin.has_close_permission(request),
    call=_close,
    log_message=lambda m, reason: "Closed early" + (f": {reason}" if reason else ""),
    with_preview=False,
)


def bulk_view(model_admin: MarketAdmin, request: HttpRequest, action: BulkAction) -> HttpResponse:
    """Cancel-and-refund or close every selected market, each in its own service call keyed
    `admin:<uuid>:<market>`; refusals (already settled, not open…) become one message each and
    do not stop the others."""
    if not action.has_permission(model_admin, request):
        raise PermissionDenied
    changelist = reverse("admin:markets_market_changelist")
    if request.method == "POST":
        form = action.form_class(request.POST)
        ids = parse_ids(request.POST.get("ids", ""))
    else:
        ids = parse_ids(request.GET.get("ids", ""))
        form = action.form_class(initial={"ids": ",".join(map(str, ids))})
    if request.method == "POST" and form.is_valid():
        _bulk_apply(model_admin, request, action, form)
        ids = form.cleaned_data["ids"]
        return HttpResponseRedirect(change_url(ids[0]) if len(ids) == 1 else changelist)
    markets = list(Market.objects.filter(pk__in=ids).order_by("pk"))
    if not markets:
        model_admin.message_user(request, "Select at least one market.", messages.WARNING)
        return HttpResponseRedirect(changelist)
    previews = {}
    if action.with_preview:
        previews = {
            m.pk: selectors.settlement_preview(market_id=m.pk) for m in markets if not m.is_settled
        }
    rows = [
        (m, previews.get(m.pk), named_payments(m.guild_id, previews.get(m.pk))) for m in markets
    ]
    context = page_context(
        model_admin,
        request,
        title=f"{action.title}: {len(markets)} market{'s' if len(markets) != 1 else ''}",
        form=form,
        rows=rows,
        preview_rows=PREVIEW_ROWS,
        total=sum(p.total for p in previews.values()),
    )
    return TemplateResponse(request, action.template, context)


def _bulk_apply(
    model_admin: MarketAdmin, request: HttpRequest, action: BulkAction, form: BulkForm
) -> None:
    reason = form.cleaned_data["reason"]
    done: list[Market] = []
    repeated: list[int] = []
    for market_id in form.cleaned_data["ids"]:
        key = form.request_key(market_id)
        if already_submitted(key):
            repeated.append(market_id)
            continue
        try:
            market = action.call(
                market_id=market_id,
                actor=Actor.from_user(request.user),
                reason=reason,
                key=key,
            )
        except DomainError as exc:
            model_admin.message_user(request, exc.message, messages.ERROR)
            continue
        model_admin.log_change(request, market, action.log_message(market, reason))
        done.append(market)
    if done:
        summary = f"{action.verb} {len(done)} market{'s' if len(done) != 1 else ''}: " + ", ".join(
            f"#{m.pk}" for m in done
        )
        if action is CANCEL:
            refunded = sum(
                e.payload.get("total_refunded", 0)
                for e in MarketEvent.objects.filter(
                    market__in=done, type=MarketEvent.Type.CANCELLED
                )
            )
            summary += f" ({refunded:,} points refunded)"
        model_admin.message_user(request, summary + ".", messages.SUCCESS)
    if repeated:
        model_admin.message_user(
            request,
            "This confirmation was already submitted for "
            + ", ".join(f"#{i}" for i in repeated)
            + "; nothing more was done.",
        )
