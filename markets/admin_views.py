"""The moderators' confirmation pages (issue 5): Resolve, Cancel and refund, Close now, and
Review proposal (issue 14: confirm, change or undo a proposed result, docs/domain.md §6.1).

Each page shows what will happen (who gets paid what, from `settlement_preview`) before the
moderator confirms; its form carries an idempotency key generated when the page rendered, so a
double submit, or a resolve racing a Discord vote, settles once. The page checks its permission
on the server (403), calls one market service per market, maps `DomainError` to an admin
message, and writes Django's `LogEntry`; the service writes the `AuditEvent` in its own
transaction."""

from __future__ import annotations

import datetime as dt
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
from django.utils import timezone

from betting import selectors as betting_selectors
from betting.models import Trade
from core.directory import guild_fallback, member_fallback
from points.admin_views import ConfirmForm, keyset_chunks, reason_field, stream_csv
from points.errors import DomainError, id_from_text
from points.rules import Actor
from points.selectors import (
    guild_name_subquery,
    guild_names,
    member_name_subquery,
    member_names,
    staff_discord_id,
)

from . import selectors, services
from .errors import MSG_ALREADY_SETTLED, MSG_NOT_CLOSED_FOR_RESOLVE
from .models import Dispute, Market, MarketEvent, Outcome

if TYPE_CHECKING:
    from .admin import MarketAdmin

MAX_BULK = 100
"""Markets one confirmation page may change (its preview lists every one of them)."""
PREVIEW_ROWS = 50
"""Recipients listed per preview; the page says how many more there are."""


position_value = betting_selectors.position_value

DECIDABLE = (Market.Status.CLOSED, Market.Status.RESOLVING)
"""A market a moderator may resolve directly (force): closed, or with a proposed result."""


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


class ReviewForm(ConfirmForm):
    """Confirm, change or undo a proposed result (docs/domain.md §6.1)."""

    CONFIRM, CHANGE, UNDO = "confirm", "change", "undo"

    decision = forms.ChoiceField(
        widget=forms.RadioSelect,
        label="Decision",
        error_messages={"required": "Choose confirm, change or undo."},
    )
    outcome = forms.TypedChoiceField(
        coerce=int,
        required=False,
        empty_value=None,
        widget=forms.RadioSelect,
        label="Change the result to",
    )
    reason = reason_field(help_text=REASON_ON_MARKET_MESSAGE)

    def __init__(
        self, *args: Any, outcomes: list[Outcome], proposed: Outcome | None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.proposed = proposed
        label = f"“{proposed.label}”" if proposed else "the proposed result"
        decision = self.fields["decision"]
        assert isinstance(decision, forms.ChoiceField)
        decision.choices = [
            (self.CONFIRM, f"Confirm {label} and pay out now"),
            (self.CHANGE, "Change the result to another outcome and pay out now"),
            (self.UNDO, "Undo the proposal: the market is closed again and can be proposed anew"),
        ]
        outcome_field = self.fields["outcome"]
        assert isinstance(outcome_field, forms.ChoiceField)
        outcome_field.choices = [
            (o.position, o.label) for o in outcomes if proposed is None or o.pk != proposed.pk
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("decision") == self.CHANGE and data.get("outcome") is None:
            other = f" (another than “{self.proposed.label}”)" if self.proposed else ""
            self.add_error("outcome", f"Choose the outcome to change the result to{other}.")
        return data


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


# --- What a moderator reads before deciding (docs/domain.md §6.1) -------------------------------


def in_words(delta: dt.timedelta) -> str:
    """A short duration for the back office: "3 h 20 min", "14 min", "under a minute"."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def proposal_state(market: Market, now: dt.datetime | None = None) -> str:
    """Where a proposed result stands, in words: held for moderators, waiting for a second
    resolver, or when it pays out. Empty for a market that is not `resolving`."""
    if market.status != Market.Status.RESOLVING:
        return ""
    if market.disputed_at is not None:
        return "disputed: held for moderators"
    if market.dispute_deadline is None:
        return "waits for a second resolver (the proposer holds a position)"
    left = market.dispute_deadline - (now or timezone.now())
    if left.total_seconds() <= 0:
        return "window ended: pays out at the scheduler's next tick"
    return f"pays out in {in_words(left)} unless disputed"


@dataclass(frozen=True)
class DisputeRow:
    user_id: int
    name: str
    reason: str
    created_at: dt.datetime


def disputes_of(market: Market) -> list[DisputeRow]:
    """The disputes of the market's current proposal, oldest first, with the members' names
    (1 query)."""
    rows = (
        Dispute.objects.filter(market=market, proposal_round=market.proposal_round)
        .annotate(
            member_name=member_name_subquery(guild_field="market__guild_id", user_field="user_id")
        )
        .order_by("id")
        .values_list("user_id", "member_name", "reason", "created_at")
    )
    return [
        DisputeRow(user, name or member_fallback(user), reason, at)
        for user, name, reason, at in rows
    ]


@dataclass(frozen=True)
class OwnPosition:
    """The staff member's own stake in the market, when their account is linked to a Discord
    member (`points.StaffLink`); the back office cannot know it otherwise."""

    linked: bool
    discord_id: int | None = None
    name: str = ""
    holdings: tuple[betting_selectors.HoldingRow, ...] = ()

    @property
    def holds(self) -> bool:
        return any(h.shares or h.points_spent > h.points_received for h in self.holdings)


def own_position(user_id: int | None, market: Market) -> OwnPosition:
    discord_id = staff_discord_id(user_id=user_id)
    if discord_id is None:
        return OwnPosition(linked=False)
    name = member_names(guild_id=market.guild_id, user_ids=[discord_id])[discord_id]
    holdings = betting_selectors.holdings_in_market(market_id=market.pk, user_id=discord_id)
    return OwnPosition(True, discord_id, name, tuple(holdings))


def _outcome_previews(market: Market, outcomes: list[Outcome]) -> list[OutcomePreview]:
    probabilities = selectors.probabilities(market.mechanism, outcomes)
    previews = []
    for o, p in zip(outcomes, probabilities, strict=True):
        preview = selectors.settlement_preview(market_id=market.pk, outcome=o.position)
        previews.append(
            OutcomePreview(
                o.position, o.label, p, preview, _named_payments(market.guild_id, preview)
            )
        )
    return previews


def _proposal_context(request: HttpRequest, market: Market) -> dict[str, Any]:
    """What both decision pages show: the proposal (if any), its disputes, the staff member's
    own position."""
    proposer = None
    if market.proposed_by_id:
        proposer = member_names(guild_id=market.guild_id, user_ids=[market.proposed_by_id])[
            market.proposed_by_id
        ]
    return {
        "proposed": market.proposed_outcome if market.status == Market.Status.RESOLVING else None,
        "proposer": proposer,
        "proposal_state": proposal_state(market),
        "disputes": disputes_of(market) if market.status == Market.Status.RESOLVING else [],
        "own": own_position(request.user.pk, market),
        "stafflink_url": reverse("admin:points_stafflink_changelist"),
    }


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
    if request.method == "GET" and market.status not in DECIDABLE:
        template = MSG_ALREADY_SETTLED if market.is_settled else MSG_NOT_CLOSED_FOR_RESOLVE
        model_admin.message_user(
            request, template.format(market_id=market.pk, status=market.status), messages.WARNING
        )
        return HttpResponseRedirect(_change_url(market.pk))
    previews = _outcome_previews(market, outcomes)
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
        review_url=reverse("admin:markets_market_review", args=[market.pk]),
        **_proposal_context(request, market),
    )
    return TemplateResponse(request, "admin/markets/market/confirm_resolve.html", context)


# --- Review a proposed result ------------------------------------------------------------------


def review_view(model_admin: MarketAdmin, request: HttpRequest, object_id: int) -> HttpResponse:
    """A moderator confirms, changes or undoes a proposed result (docs/domain.md §6.1), after
    reading the criteria, the proposal, every dispute and their own position."""
    if not model_admin.has_resolve_permission(request):
        raise PermissionDenied
    market = _market_or_404(object_id)
    outcomes = list(market.outcomes.order_by("position"))
    proposed = next((o for o in outcomes if o.pk == market.proposed_outcome_id), None)
    form = ReviewForm(request.POST or None, outcomes=outcomes, proposed=proposed)
    if request.method == "POST" and form.is_valid():
        # Even when the market has moved on: a double submit must read "already submitted",
        # and any other late decision gets the service's own refusal.
        return _review_apply(model_admin, request, market, form)
    if market.status != Market.Status.RESOLVING or proposed is None:
        model_admin.message_user(
            request,
            f"Market #{market.pk} has no proposed result to review; it is "
            f"{market.get_status_display().lower()}.",
            messages.WARNING,
        )
        return HttpResponseRedirect(_change_url(market.pk))
    context = _context(
        model_admin,
        request,
        title=f"Review the proposed result of market #{market.pk}",
        market=market,
        form=form,
        previews=_outcome_previews(market, outcomes),
        preview_rows=PREVIEW_ROWS,
        guild_name=guild_names(guild_ids=[market.guild_id])[market.guild_id],
        change_url=_change_url(market.pk),
        resolve_url=reverse("admin:markets_market_resolve", args=[market.pk]),
        **_proposal_context(request, market),
    )
    return TemplateResponse(request, "admin/markets/market/review_proposal.html", context)


def _review_apply(
    model_admin: MarketAdmin, request: HttpRequest, market: Market, form: ReviewForm
) -> HttpResponse:
    key = form.request_key()
    back = HttpResponseRedirect(_change_url(market.pk))
    if _already_submitted(key):
        model_admin.message_user(
            request, "This decision was already submitted; it was applied once."
        )
        return back
    data = form.cleaned_data
    decision, reason = data["decision"], data["reason"]
    actor = Actor.from_user(request.user)
    try:
        if decision == ReviewForm.UNDO:
            market = services.market_proposal_undo(
                market_id=market.pk, actor=actor, reason=reason, idempotency_key=key
            )
        else:
            market = services.market_proposal_confirm(
                market_id=market.pk,
                actor=actor,
                outcome=data["outcome"] if decision == ReviewForm.CHANGE else None,
                reason=reason,
                idempotency_key=key,
            )
    except DomainError as exc:
        model_admin.message_user(request, exc.message, messages.ERROR)
        return back
    # The event says what happened under the lock (the page may have read an older state).
    event = MarketEvent.objects.filter(request_key=key).first()
    facts = event.payload if event else {}
    label = facts.get("label", "?")
    if decision == ReviewForm.UNDO:
        model_admin.log_change(request, market, f"Undid the proposed result “{label}”: {reason}")
        model_admin.message_user(
            request,
            f"Market #{market.pk}: the proposed result “{label}” was undone. The market is "
            "closed again and waits for a new proposal; no points moved.",
            messages.SUCCESS,
        )
        return back
    if facts.get("changed_from"):
        log = f"Changed the proposed result from “{facts['changed_from']}” to “{label}”: {reason}"
    else:
        log = f"Confirmed the proposed result “{label}”: {reason}"
    model_admin.log_change(request, market, log)
    model_admin.message_user(
        request,
        f"Market #{market.pk} resolved to “{label}”: {facts.get('total_paid', 0):,} points "
        f"paid to {facts.get('paid_count', 0):,} members.",
        messages.SUCCESS,
    )
    return back


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
