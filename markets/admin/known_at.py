""" "Outcome known at" on the decision pages (docs/domain.md §6.2): a moderator who states when
the outcome became known first sees which trades that reverses and what each member gets back
(the registered holdings' `reversal_plan`), and confirms that very moment; nothing moves before.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from django import forms

from points.selectors import member_names

from ..holdings import holdings_get
from ..models import Market

F = TypeVar("F", bound=forms.Form)


def previewed(form: forms.Form) -> bool:
    """Whether the moderator saw the preview of the moment they submit (or stated none)."""
    known_at: dt.datetime | None = form.cleaned_data.get("known_at")
    return known_at is None or form.cleaned_data.get("previewed_known_at") == known_at.isoformat()


def preview_form(form_class: type[F], form: F, **kwargs: Any) -> F:
    """The same form, now marked as showing the preview of its `known_at`."""
    data = form.data.copy()  # type: ignore[attr-defined]  # a QueryDict on a bound form
    data["previewed_known_at"] = form.cleaned_data["known_at"].isoformat()
    again = form_class(data, **kwargs)
    again.is_valid()
    return again


def known_at_context(market: Market, form: forms.Form) -> dict[str, Any]:
    """The preview's rows: how many trades, and per member what their wallet gets back (or
    gives back) and any shortfall the treasury would pay."""
    known_at = form.cleaned_data.get("known_at") if form.is_bound and form.is_valid() else None
    if known_at is None:
        return {"known_at_preview": None}
    plan = holdings_get().reversal_plan(market, known_at)
    names = member_names(guild_id=market.guild_id, user_ids=list(plan.per_user))
    rows = [
        (user, names[user], amount, plan.shortfall.get(user, 0))
        for user, amount in sorted(plan.per_user.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return {"known_at_preview": {"known_at": known_at, "trades": plan.trades, "rows": rows}}
