"""A member's page (wallet, positions, transfer history, the audit trail about them) and the
adjust-balance page that grants or deducts points through the points services (issue 5)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from core.adminkit import ConfirmForm, member_sections, member_url, reason_field
from core.errors import DomainError

from .. import selectors, services
from ..errors import MAX_AMOUNT, MSG_DEDUCT_TOO_MUCH, InsufficientPoints, id_from_text
from ..models import Account, AuditEvent, Transfer
from ..rules import Actor

if TYPE_CHECKING:
    from .accounts import AccountAdmin

HISTORY_PAGE = 50

REASON_SHOWN_IN_HISTORY = (
    "Recorded in the audit log and shown to the member in their /history. 1–500 characters."
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


def initials(name: str) -> str:
    """What the avatar's placeholder shows: the first letters of the member's first two words
    ("Alice Liddell" → "AL"), "?" when the directory has no name for them."""
    letters = [word[0] for word in name.split() if word[:1].isalnum()][:2]
    return "".join(letters).upper() or "?"


def member_view(
    model_admin: AccountAdmin, request: HttpRequest, guild_id: int, user_id: int
) -> HttpResponse:
    """A member's wallet, positions, transfer history and the audit trail about them."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    wallet = Account.objects.filter(
        guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id
    ).first()
    before = request.GET.get("before")
    before_id = id_from_text(before)
    history = selectors.transfers_for_user(
        guild_id=guild_id, user_id=user_id, limit=HISTORY_PAGE + 1, before_id=before_id
    )
    older = history[HISTORY_PAGE - 1].transfer_id if len(history) > HISTORY_PAGE else None
    audit = AuditEvent.objects.filter(
        guild_id=guild_id, target_type="wallet", target_id=str(user_id)
    ).select_related("actor_user")[:20]
    directory = selectors.member_get(guild_id=guild_id, user_id=user_id)
    name = selectors.member_names(guild_id=guild_id, user_ids=[user_id])[user_id]
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "changelist_url": reverse("admin:points_account_changelist"),
        "title": f"Member: {name}",
        "member_name": name,
        "initials": initials(
            getattr(directory, "display_name", "") or getattr(directory, "username", "")
        ),
        "directory": directory,
        "guild_name": selectors.guild_names(guild_ids=[guild_id])[guild_id],
        "guild_id": guild_id,
        "user_id": user_id,
        "wallet": wallet,
        **member_sections(guild_id, user_id),
        "history": history[:HISTORY_PAGE],
        "older_before": older,
        "newest_url": request.path if before_id else None,
        "audit": audit,
        "can_adjust": model_admin.has_adjust_permission(request),
        "adjust_url": reverse("admin:points_adjust", args=[guild_id, user_id]),
    }
    return TemplateResponse(request, "admin/points/member.html", context)


def adjust_view(
    model_admin: AccountAdmin, request: HttpRequest, guild_id: int, user_id: int
) -> HttpResponse:
    """Grant or deduct points with a reason through `points_grant` / `points_deduct`; the
    service writes the audit event, this writes Django's `LogEntry`."""
    if not model_admin.has_adjust_permission(request):
        raise PermissionDenied
    back = member_url(guild_id, user_id)
    name = selectors.member_names(guild_id=guild_id, user_ids=[user_id])[user_id]
    form = AdjustBalanceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        key = form.request_key()
        if Transfer.objects.filter(idempotency_key=key).exists():
            model_admin.message_user(
                request, "This adjustment was already submitted; nothing more was done."
            )
            return HttpResponseRedirect(back)
        data = form.cleaned_data
        service = (
            services.points_grant
            if data["direction"] == AdjustBalanceForm.GRANT
            else services.points_deduct
        )
        try:
            transfer = service(
                guild_id=guild_id,
                user_id=user_id,
                amount=data["amount"],
                reason=data["reason"],
                actor=Actor.from_user(request.user),
                idempotency_key=key,
            )
        except InsufficientPoints as exc:
            # Only a deduction can overdraw: answer the moderator, not the member.
            balance = exc.details.get("balance", 0)
            model_admin.message_user(
                request, MSG_DEDUCT_TOO_MUCH.format(balance=balance), messages.ERROR
            )
        except DomainError as exc:
            model_admin.message_user(request, exc.message, messages.ERROR)
        else:
            wallet = Account.objects.get(
                guild_id=guild_id, kind=Account.Kind.WALLET, owner_id=user_id
            )
            verb = "Granted" if transfer.code == Transfer.Code.GRANT else "Deducted"
            summary = f"{verb} {transfer.amount:,} points: {data['reason']}"
            model_admin.log_change(request, wallet, summary)
            model_admin.message_user(
                request,
                f"{summary}. New balance: {wallet.balance:,} points.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(back)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "changelist_url": reverse("admin:points_account_changelist"),
        "title": f"Adjust the balance of {name}",
        "member_name": name,
        "guild_name": selectors.guild_names(guild_ids=[guild_id])[guild_id],
        "form": form,
        "guild_id": guild_id,
        "user_id": user_id,
        "balance": selectors.balance_get(guild_id=guild_id, user_id=user_id),
        "member_url": back,
    }
    return TemplateResponse(request, "admin/points/account/adjust_balance.html", context)
