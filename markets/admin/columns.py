"""What the market list and a market's page show: the server and proposal filters, the list's
columns (constant queries whatever the list's length: the admin annotates names and counts) and
the page's read-only fields."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from core import adminkit
from core.adminkit import guild_label, member_link
from points.models import Account
from points.selectors import guild_names, member_names

from .. import selectors
from ..models import Market
from .pages import proposal_state

STATUS_COLOURS: dict[str, str] = {
    Market.Status.OPEN: "#2e7d32",
    Market.Status.CLOSED: "#ef6c00",
    Market.Status.RESOLVING: "#6a1b9a",
    Market.Status.RESOLVED: "#1565c0",
    Market.Status.CANCELLED: "#757575",
}


def status_badge(status: str, label: str) -> str:
    return format_html(
        '<span style="background:{};color:#fff;padding:2px 8px;border-radius:10px;'
        'font-size:11px;font-weight:600;white-space:nowrap">{}</span>',
        STATUS_COLOURS.get(status, "#555"),
        label,
    )


class GuildFilter(adminkit.GuildFilter):
    """Servers by name (issue 13), the id in brackets only when two share a name."""

    model = Market

    def guild_names(self, guild_ids: Iterable[int]) -> dict[int, str]:
        return guild_names(guild_ids=guild_ids)


class ResolutionFilter(admin.SimpleListFilter):
    """Markets with a proposed result, by what they wait for (docs/domain.md §6.1)."""

    title = "proposed result"
    parameter_name = "proposal"
    DISPUTED, SECOND, WINDOW = "disputed", "second_resolver", "window"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (self.DISPUTED, "Disputed markets"),
            (self.SECOND, "Waiting for a second resolver"),
            (self.WINDOW, "In the dispute window"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        resolving = queryset.filter(status=Market.Status.RESOLVING)
        if self.value() == self.DISPUTED:
            return resolving.filter(disputed_at__isnull=False)
        if self.value() == self.SECOND:
            return resolving.filter(disputed_at__isnull=True, dispute_deadline__isnull=True)
        if self.value() == self.WINDOW:
            return resolving.filter(disputed_at__isnull=True, dispute_deadline__isnull=False)
        return queryset


DISPUTED_QUERY = f"?{ResolutionFilter.parameter_name}={ResolutionFilter.DISPUTED}"


class MarketColumns:
    """The market admin's list columns and detail fields."""

    # --- List columns -------------------------------------------------------------------------

    @admin.display(description="question", ordering="question")
    def short_question(self, obj: Market) -> str:
        # The mechanism and category ride under the question (they are filters too), so the
        # key columns (volume, traders, leading outcome) fit at 1366 px (issue 13).
        details = " · ".join(filter(None, [obj.get_mechanism_display(), obj.category]))
        return format_html(
            '{}<br><small class="quiet">{}</small>', Truncator(obj.question).chars(70), details
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Market) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="status · closes", ordering="closes_at")
    def state(self, obj: Market) -> str:
        """The status badge over the close time: one column, so the list fits 1366 px."""
        return format_html("{}<br><small>{}</small>", self.status_badge(obj), self.closing(obj))

    @admin.display(description="closes / closed", ordering="closes_at")
    def closing(self, obj: Market) -> str:
        word, at = ("closed", obj.closed_at) if obj.closed_at else ("closes", obj.closes_at)
        # The column may wrap between the word and the time, never inside the time.
        return format_html(
            '{} <span style="white-space:nowrap" title="{} UTC">{}</span>',
            word,
            f"{at:%Y-%m-%d %H:%M}",
            f"{at:%b %-d, %H:%M}",
        )

    @admin.display(description="volume", ordering="volume")
    def volume_display(self, obj: Market) -> str:
        return f"{obj.volume:,}"

    @admin.display(description="traders", ordering="trader_count")
    def traders(self, obj: Market) -> int:
        return obj.trader_count

    @admin.display(description="leading outcome")
    def leading_outcome(self, obj: Market) -> str:
        outcomes = getattr(obj, "ordered_outcomes", None)
        if outcomes is None:
            outcomes = list(obj.outcomes.order_by("position"))
        if obj.status == Market.Status.RESOLVED:
            winner = next((o for o in outcomes if o.pk == obj.winning_outcome_id), None)
            return format_html("✔ {}", winner.label if winner else "?")
        if obj.status == Market.Status.CANCELLED or not outcomes:
            return "—"
        probs = selectors.probabilities(obj.mechanism, outcomes)
        best = max(range(len(outcomes)), key=lambda i: (probs[i], -i))
        if sum(1 for p in probs if p == probs[best]) > 1:
            return "even"
        return f"{Truncator(outcomes[best].label).chars(22)} {probs[best]:.0%}"

    @admin.display(description="proposed result")
    def proposal(self, obj: Market) -> str:
        """“X” by whom, and when it pays out or that it is held (docs/domain.md §6.1)."""
        if obj.status != Market.Status.RESOLVING:
            return "—"
        outcomes = getattr(obj, "ordered_outcomes", None)
        if outcomes is None:
            outcomes = list(obj.outcomes.order_by("position"))
        proposed = next((o for o in outcomes if o.pk == obj.proposed_outcome_id), None)
        label = Truncator(proposed.label if proposed else "?").chars(22)
        by = ""
        if obj.proposed_by_id:
            name = getattr(obj, "proposer_name", None)
            by = format_html(" by {}", member_link(obj.guild_id, obj.proposed_by_id, name))
        return format_html(
            "“{}”{}<br><small>{}</small>",
            label,
            by,
            proposal_state(obj),
        )

    @admin.display(description="disputes", ordering="disputes_total")
    def dispute_count(self, obj: Market) -> str:
        n = getattr(obj, "disputes_total", None)
        if n is None:
            n = obj.disputes.count()
        if not n:
            return "—"
        url = f"{reverse('admin:markets_dispute_changelist')}?market={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, n)

    # --- Detail fields ------------------------------------------------------------------------

    def _member(self, obj: Market, user_id: int) -> str:
        name = member_names(guild_id=obj.guild_id, user_ids=[user_id])[user_id]
        return member_link(obj.guild_id, user_id, name)

    @admin.display(description="server", ordering="guild_id")
    def guild(self, obj: Market) -> str:
        return guild_label(obj.guild_id, getattr(obj, "guild_name", None))

    @admin.display(description="creator")
    def creator(self, obj: Market) -> str:
        return self._member(obj, obj.creator_id)

    @admin.display(description="closed by")
    def closed_by(self, obj: Market) -> str:
        if obj.closed_by_id:
            return self._member(obj, obj.closed_by_id)
        return "—" if obj.closed_at is None else "scheduler or admin (see events)"

    @admin.display(description="settled by")
    def settled_by(self, obj: Market) -> str:
        if obj.settled_by_user_id:
            return f"admin {obj.settled_by_user}"
        if obj.settled_by_id:
            return self._member(obj, obj.settled_by_id)
        return "—" if obj.settled_at is None else "system"

    @admin.display(description="proposed by")
    def proposer(self, obj: Market) -> str:
        return self._member(obj, obj.proposed_by_id) if obj.proposed_by_id else "—"

    @admin.display(description="where it stands")
    def proposal_state(self, obj: Market) -> str:
        return proposal_state(obj) or "—"

    @admin.display(description="proposer holds a position")
    def proposer_conflict(self, obj: Market) -> str:
        """A plain "no", or "yes" with what it means: not an icon beside a sentence that reads
        as a fact either way."""
        if not obj.proposal_conflicted:
            return "no"
        return "yes — the proposer held a position in this market when proposing"

    @admin.display(description="collateral (escrow)")
    def collateral(self, obj: Market) -> str:
        balance = (
            Account.objects.filter(kind=Account.Kind.ESCROW, market=obj)
            .values_list("balance", flat=True)
            .first()
        )
        return "—" if balance is None else f"{balance:,} points"
