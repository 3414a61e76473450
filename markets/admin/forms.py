"""The decision pages' forms (issue 5, issue 14): each carries an idempotency key generated when
the page rendered (`core.adminkit.ConfirmForm`)."""

from __future__ import annotations

from typing import Any

from django import forms

from core.adminkit import ConfirmForm, reason_field
from points.errors import id_from_text

from ..models import Outcome

MAX_BULK = 100
"""Markets one confirmation page may change (its preview lists every one of them)."""

REASON_ON_MARKET_MESSAGE = (
    "Recorded in the audit log and shown to members on the market's Discord message "
    "(its Reason field). 1–500 characters."
)


# The moment of docs/domain.md §6.2, said in words: moderators read it (issue 23 item 13).
KNOWN_AT_HELP = (
    "Optional: when the outcome became publicly known, in UTC, e.g. "
    "2026-12-07 21:00. Every trade after it is reversed before the payout; you see which and "
    "what each member gets back before anything moves. Between the market's opening and its "
    "closing."
)


class KnownAtFields(forms.Form):
    """The "outcome known at" moment and the moment whose reversal the moderator last saw."""

    known_at = forms.DateTimeField(
        required=False, label="Outcome known at (UTC)", help_text=KNOWN_AT_HELP
    )
    previewed_known_at = forms.CharField(required=False, widget=forms.HiddenInput)


class ResolveForm(ConfirmForm, KnownAtFields):
    outcome = forms.TypedChoiceField(coerce=int, widget=forms.RadioSelect, label="Winning outcome")
    reason = reason_field(help_text=REASON_ON_MARKET_MESSAGE)

    def __init__(self, *args: Any, outcomes: list[Outcome], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        outcome_field = self.fields["outcome"]
        assert isinstance(outcome_field, forms.ChoiceField)
        outcome_field.choices = [(o.position, o.label) for o in outcomes]


class ReviewForm(ConfirmForm, KnownAtFields):
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
