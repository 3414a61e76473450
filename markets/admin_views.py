"""The moderators' confirmation pages (issue 5): Resolve, Cancel and refund, Close now.

Each page shows what will happen (who gets paid what, from `settlement_preview`) before the
moderator confirms; its form carries an idempotency key generated when the page rendered, so a
double submit, or a resolve racing a Discord vote, settles once. The page checks its permission
on the server (403), calls one market service per market, maps `DomainError` to an admin
message, and writes Django's `LogEntry`; the service writes the `AuditEvent` in its own
transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from betting import selectors as betting_selectors
from betting.models import Trade
from core.directory import guild_fallback, member_fallback
from points.admin_views import ConfirmForm, keyset_chunks, reason_field, stream_csv
from points.errors import DomainError, id_from_text
from points.rules import Actor
from points.selectors import guild_name_subquery, guild_names, member_name_subquery, member_names

from . import selectors, services
from .errors import MSG_ALREADY_SETTLED, MSG_NOT_CLOSED_FOR_RESOLVE
from .models import Market, MarketEvent, Outcome

if TYPE_CHECKING:
    from .admin import MarketAdmin

MAX_BULK = 100
"""Markets one confirmation page may change (its preview lists every one of them)."""
PREVIEW_ROWS = 50
"""Recipients listed per preview; the page says how many more there are."""


position_value = betting_selectors.position_value


def format_shares(micro_shares: int) -> str:
    return services.format_shares(micro_shares)


REASON_ON_MARKET_MESSAGE = (
    "Recorded in the audit log and shown to members on the market's Discord message "
    "(its Reason field). 1–500 characters."
)

# --- Forms -------------------------------------------------------------------------------------


class ResolveForm(ConfirmForm):
    outcome = forms.TypedChoiceField(coerce=int, widget=forms.RadioSelect, label="Winning outcome")
    reason = reason_field(help_text=REASON_ON_MARKET_MESSAGE)

    def __init__(self, *args: Any, outcomes: list[Outcome], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        outcome_field = self.fields["outcome"]
        assert isinstance(outcome_field, forms.ChoiceField)
        outcome_field.choices = [(o.position, o.label) for o in outcomes]


class BulkForm(ConfirmForm):
    """A page that changes several markets; `ids` travels with the form."""

    ids = forms.CharField(widget=forms.HiddenInput)

    def clean_ids(self) -> list[int]:
        ids = parse_ids(self.cleaned_data["ids"])
        if not ids:
            raise forms.ValidationError("No markets were selected.")
        return ids


class CancelForm(BulkForm):
    reason = reason_field(help_text=REASON_ON_MARKET_MESSAGE)


class CloseForm(BulkForm):
    reason = reason_field(
        required=False,
        help_text="Recorded in the audit log only: members see that trading closed, not why.",
    )


def parse_ids(raw: str) -> list[int]:
    """`"3,1,2"` → `[1, 2, 3]`, ignoring anything that is not a market number, at most
    `MAX_BULK` ids."""
    ids = {i for i in (id_from_text(p) for p in raw.split(",")) if i is not None}
    return sorted(ids)[:MAX_BULK]


# --- Helpers -----------------------------------------------------------------------------------


def _context(model_admin: MarketAdmin, request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "changelist_url": reverse("admin:markets_market_changelist"),
        **extra,
    }


def _change_url(market_id: int) -> str:
    return reverse("admin:markets_market_change", args=[market_id])


def _market_or_404(object_id: int) -> Market:
    if not 0 < object_id < 2**63:
        raise Http404("No such market.")
    return get_object_or_404(Market, pk=object_id)


def _already_submitted(key: str) -> bool:
    """The confirmation with this key already changed the market: nothing more will happen
    (the service would replay), so say so and write no second `LogEntry`."""
    return MarketEvent.objects.filter(request_key=key).exists()


@dataclass(frozen=True)
class OutcomePreview:
    position: int
    label: str
    probability: float  # display
    preview: selectors.SettlementPreview
    payments: list[tuple[int, str, int]]
    """The listed recipients: (user id, name, points), the largest first."""


def _named_payments(
    guild_id: int, preview: selectors.SettlementPreview | None
) -> list[tuple[int, str, int]]:
    """The `PREVIEW_ROWS` largest payments with the members' names (1 query; issue 13)."""
    if preview is None:
        return []
    shown = list(preview.payments)[:PREVIEW_ROWS]
    names = member_names(guild_id=guild_id, user_ids=[user_id for user_id, _ in shown])
    return [(user_id, names[user_id], amount) for user_id, amount in shown]


# --- Resolve -----------------------------------------------------------------------------------


def resolve_view(model_admin: MarketAdmin, request: HttpRequest, object_id: int) -> HttpResponse:
    """Choose the winning outcome, type a reason, see every outcome's payouts, confirm."""
    if not model_admin.has_resolve_permission(request):
        raise PermissionDenied
    market = _market_or_404(object_id)
    outcomes = list(market.outcomes.order_by("position"))
    form = ResolveForm(request.POST or None, outcomes=outcomes)
    if request.method == "POST" and form.is_valid():
        key = form.request_key()
        if _already_submitted(key):
            model_admin.message_user(
                request, "This confirmation was already submitted; the market settled once."
            )
            return HttpResponseRedirect(_change_url(market.pk))
        data = form.cleaned_data
        try:
            market = services.market_resolve(
                market_id=market.pk,
                outcome=data["outcome"],
                actor=Actor.from_user(request.user),
                reason=data["reason"],
                idempotency_key=key,
            )
        except DomainError as exc:
            model_admin.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(_change_url(market.pk))
        label = outcomes[data["outcome"]].label
        event = MarketEvent.objects.filter(request_key=key).first()
        paid = event.payload if event else {}
        model_admin.log_change(request, market, f"Resolved to “{label}”: {data['reason']}")
        model_admin.message_user(
            request,
            f"Market #{market.pk} resolved to “{label}”: {paid.get('total_paid', 0):,} points "
            f"paid to {paid.get('paid_count', 0):,} members.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(_change_url(market.pk))
    if request.method == "GET" and market.status != Market.Status.CLOSED:
        template = MSG_ALREADY_SETTLED if market.is_settled else MSG_NOT_CLOSED_FOR_RESOLVE
        model_admin.message_user(
            request, template.format(market_id=market.pk, status=market.status), messages.WARNING
        )
        return HttpResponseRedirect(_change_url(market.pk))
    probabilities = selectors.probabilities(market.mechanism, outcomes)
    previews = []
    for o, p in zip(outcomes, probabilities, strict=True):
        preview = selectors.settlement_preview(market_id=market.pk, outcome=o.position)
        previews.append(
            OutcomePreview(
                o.position, o.label, p, preview, _named_payments(market.guild_id, preview)
            )
        )
    raw_votes = selectors.votes_get(market_id=market.pk)
    voter_names = member_names(guild_id=market.guild_id, user_ids=[v for v, _, _ in raw_votes])
    votes = [(voter, voter_names[voter], label) for voter, _, label in raw_votes]
    context = _context(
        model_admin,
        request,
        title=f"Resolve market #{market.pk}",
        market=market,
        form=form,
        previews=previews,
        preview_rows=PREVIEW_ROWS,
        votes=votes,
        guild_name=guild_names(guild_ids=[market.guild_id])[market.guild_id],
        change_url=_change_url(market.pk),
    )
    return TemplateResponse(request, "admin/markets/market/confirm_resolve.html", context)


# --- Cancel and close (bulk) -------------------------------------------------------------------


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
        return HttpResponseRedirect(_change_url(ids[0]) if len(ids) == 1 else changelist)
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
        (m, previews.get(m.pk), _named_payments(m.guild_id, previews.get(m.pk))) for m in markets
    ]
    context = _context(
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
        if _already_submitted(key):
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


# --- CSV export of a market's trades -----------------------------------------------------------

TRADES_CSV_HEADER = (
    "trade_id",
    "created_at",
    "market_id",
    "guild_id",
    "guild_name",
    "user_id",
    "user_name",
    "kind",
    "outcome",
    "outcome_label",
    "amount",
    "fee",
    "micro_shares",
    "shares",
    "probability_before",
    "probability_after",
    "idempotency_key",
)


def _trade_row(t: Trade) -> tuple:
    return (
        t.pk,
        t.created_at.isoformat(),
        t.market_id,
        t.guild_id,
        getattr(t, "guild_name", None) or guild_fallback(t.guild_id),
        t.user_id,
        getattr(t, "member_name", None) or member_fallback(t.user_id),
        t.kind,
        t.outcome.position + 1,
        t.outcome.label,
        t.amount,
        t.fee,
        t.shares,
        format_shares(t.shares),
        f"{t.price_before_ppm / 1_000_000:.6f}",
        f"{t.price_after_ppm / 1_000_000:.6f}",
        t.idempotency_key,
    )


def trades_csv_view(
    model_admin: MarketAdmin, request: HttpRequest, object_id: int
) -> HttpResponseBase:
    """Every trade of one market, oldest first, streamed."""
    market = _market_or_404(object_id)
    if not model_admin.has_view_permission(request, market):
        raise PermissionDenied
    trades = (
        Trade.objects.filter(market=market)
        .select_related("outcome")
        .annotate(
            member_name=member_name_subquery(guild_field="guild_id", user_field="user_id"),
            guild_name=guild_name_subquery(guild_field="guild_id"),
        )
    )
    return stream_csv(
        request,
        filename=f"market-{market.pk}-trades.csv",
        header=TRADES_CSV_HEADER,
        chunks=keyset_chunks(trades, newest_first=False),
        row=_trade_row,
    )
