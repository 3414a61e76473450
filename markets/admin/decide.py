"""Resolve and Review proposal (issue 5, issue 14): a moderator chooses the winning outcome, or
confirms, changes or undoes a proposed result (docs/domain.md §6.1), after reading every
outcome's payouts (`settlement_preview`).

The page checks its permission on the server (403), calls one market service, maps
`DomainError` to an admin message, and writes Django's `LogEntry`; the service writes the
`AuditEvent` in its own transaction. The form's idempotency key makes a double submit, or a
resolve racing a Discord vote, settle once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from core.errors import DomainError
from points.rules import Actor
from points.selectors import guild_names, member_names

from .. import selectors, services
from ..errors import MSG_ALREADY_SETTLED, MSG_NOT_CLOSED_FOR_RESOLVE
from ..models import Market, MarketEvent
from .forms import ResolveForm, ReviewForm
from .known_at import known_at_context, preview_form, previewed
from .pages import (
    DECIDABLE,
    PREVIEW_ROWS,
    already_submitted,
    change_url,
    market_or_404,
    outcome_previews,
    page_context,
    proposal_context,
)

if TYPE_CHECKING:
    from .market import MarketAdmin


# --- Resolve -----------------------------------------------------------------------------------


def resolve_view(model_admin: MarketAdmin, request: HttpRequest, object_id: int) -> HttpResponse:
    """Choose the winning outcome, type a reason, see every outcome's payouts, confirm."""
    if not model_admin.has_resolve_permission(request):
        raise PermissionDenied
    market = market_or_404(object_id)
    outcomes = list(market.outcomes.order_by("position"))
    form = ResolveForm(request.POST or None, outcomes=outcomes)
    if request.method == "POST" and form.is_valid() and not previewed(form):
        form = preview_form(ResolveForm, form, outcomes=outcomes)  # shown below, nothing moves
    elif request.method == "POST" and form.is_valid():
        key = form.request_key()
        if already_submitted(key):
            model_admin.message_user(
                request, "This confirmation was already submitted; the market settled once."
            )
            return HttpResponseRedirect(change_url(market.pk))
        data = form.cleaned_data
        try:
            market = services.market_resolve(
                market_id=market.pk,
                outcome=data["outcome"],
                actor=Actor.from_user(request.user),
                reason=data["reason"],
                idempotency_key=key,
                known_at=data["known_at"],
            )
        except DomainError as exc:
            model_admin.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(change_url(market.pk))
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
        return HttpResponseRedirect(change_url(market.pk))
    if request.method == "GET" and market.status not in DECIDABLE:
        template = MSG_ALREADY_SETTLED if market.is_settled else MSG_NOT_CLOSED_FOR_RESOLVE
        model_admin.message_user(
            request, template.format(market_id=market.pk, status=market.status), messages.WARNING
        )
        return HttpResponseRedirect(change_url(market.pk))
    previews = outcome_previews(market, outcomes)
    raw_votes = selectors.votes_get(market_id=market.pk)
    voter_names = member_names(guild_id=market.guild_id, user_ids=[v for v, _, _ in raw_votes])
    votes = [(voter, voter_names[voter], label) for voter, _, label in raw_votes]
    context = page_context(
        model_admin,
        request,
        title=f"Resolve market #{market.pk}",
        market=market,
        form=form,
        previews=previews,
        preview_rows=PREVIEW_ROWS,
        votes=votes,
        guild_name=guild_names(guild_ids=[market.guild_id])[market.guild_id],
        change_url=change_url(market.pk),
        review_url=reverse("admin:markets_market_review", args=[market.pk]),
        **proposal_context(request, market),
        **known_at_context(market, form),
    )
    return TemplateResponse(request, "admin/markets/market/confirm_resolve.html", context)


# --- Review a proposed result ------------------------------------------------------------------


def review_view(model_admin: MarketAdmin, request: HttpRequest, object_id: int) -> HttpResponse:
    """A moderator confirms, changes or undoes a proposed result (docs/domain.md §6.1), after
    reading the criteria, the proposal, every dispute and their own position."""
    if not model_admin.has_resolve_permission(request):
        raise PermissionDenied
    market = market_or_404(object_id)
    outcomes = list(market.outcomes.order_by("position"))
    proposed = next((o for o in outcomes if o.pk == market.proposed_outcome_id), None)
    form = ReviewForm(request.POST or None, outcomes=outcomes, proposed=proposed)
    undo = form.is_bound and form.data.get("decision") == ReviewForm.UNDO
    if request.method == "POST" and form.is_valid() and not undo and not previewed(form):
        form = preview_form(ReviewForm, form, outcomes=outcomes, proposed=proposed)
    elif request.method == "POST" and form.is_valid():
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
        return HttpResponseRedirect(change_url(market.pk))
    context = page_context(
        model_admin,
        request,
        title=f"Review the proposed result of market #{market.pk}",
        market=market,
        form=form,
        previews=outcome_previews(market, outcomes),
        preview_rows=PREVIEW_ROWS,
        guild_name=guild_names(guild_ids=[market.guild_id])[market.guild_id],
        change_url=change_url(market.pk),
        resolve_url=reverse("admin:markets_market_resolve", args=[market.pk]),
        **proposal_context(request, market),
        **known_at_context(market, form),
    )
    return TemplateResponse(request, "admin/markets/market/review_proposal.html", context)


def _review_apply(
    model_admin: MarketAdmin, request: HttpRequest, market: Market, form: ReviewForm
) -> HttpResponse:
    key = form.request_key()
    back = HttpResponseRedirect(change_url(market.pk))
    if already_submitted(key):
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
                known_at=data["known_at"],
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
