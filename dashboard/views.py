"""The staff dashboard pages (issue 6). Interfaces only (STYLE §1): each view calls selectors
and renders; live updates come over the WebSocket (`dashboard.consumers`).

Every page is for active staff users with `dashboard.view_dashboard` (Moderators and Viewers;
issue 12), who log in through the admin login; other staff users get 403, as in the admin. It
shows every guild's markets (see `dashboard.consumers` on visibility). The fragment views
(`card`, `panel`, `chart`) re-render one piece of a page when the live feed reports a change the
page cannot apply by itself (a new market, a status change, a new chart point).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET

from betting import selectors as betting_selectors
from markets import selectors
from markets.errors import MarketNotFound
from markets.models import Market
from markets.selectors import MarketSummary
from points.selectors import member_names

from . import charts
from . import selectors as dashboard_selectors
from .events import event_summary, names_for

VIEW_PERMISSION = "dashboard.view_dashboard"


def dashboard_viewer_required(
    view: Callable[..., HttpResponse],
) -> Callable[..., HttpResponse]:
    """Anonymous and non-staff visitors go to the admin login; staff without
    `dashboard.view_dashboard` get 403."""

    @functools.wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.has_perm(VIEW_PERMISSION):
            raise PermissionDenied("You may not view the dashboard.")
        return view(request, *args, **kwargs)

    return staff_member_required(checked)


STATUS_SECTIONS = [
    (Market.Status.OPEN, "Open", "Trading now"),
    (Market.Status.CLOSED, "Closed", "Waiting for resolution"),
    (Market.Status.RESOLVING, "Result proposed", "In the dispute window or held for moderators"),
    (Market.Status.RESOLVED, "Resolved", "Paid out"),
    (Market.Status.CANCELLED, "Cancelled", "Refunded"),
]
MARKETS_PER_SECTION = 50
FEED_LENGTH = 30
RECENT_TRADES = 25
MECHANISM_LABELS = dict(Market.Mechanism.choices)
STATUS_LABELS = dict(Market.Status.choices)


@dataclass(frozen=True)
class OutcomeRow:
    position: int
    label: str
    probability: float
    percent: str
    width: str
    swatch: SafeString
    is_winner: bool
    pool: int
    staked: int


@dataclass(frozen=True)
class ProposalView:
    """How a tile and the market page say where a proposed result stands (docs/domain.md §6.1):
    "Result proposed: “X” — pays out in 42m", "… — waits for a second resolver", or "Disputed:
    held for moderators"."""

    row: dashboard_selectors.ProposalRow
    headline: str
    """Without the countdown, which the template renders as a ticking `<time>`."""
    countdown: str

    @property
    def label(self) -> str:
        return self.row.label

    @property
    def countdown_ended(self) -> str:
        return PAYOUT_DUE


def proposal_view(row: dashboard_selectors.ProposalRow, now: dt.datetime) -> ProposalView:
    if row.disputed:
        n = row.disputes
        headline = "Disputed: held for moderators"
        return ProposalView(row, headline, f"{n} dispute{'s' if n != 1 else ''}")
    if row.deadline is None:
        return ProposalView(
            row, f"Result proposed: “{row.label}” — waits for a second resolver", ""
        )
    return ProposalView(
        row,
        f"Result proposed: “{row.label}” — pays out",
        payout_in(row.deadline, now),
    )


def payout_in(deadline: dt.datetime, now: dt.datetime) -> str:
    """ "in 42m 10s" until the deadline, "at the next scheduler tick" once it passed."""
    left = closes_in(deadline, now)
    return PAYOUT_DUE if left == "closing" else f"in {left}"


PAYOUT_DUE = "at the next scheduler tick"


@dataclass(frozen=True)
class MarketView:
    market: MarketSummary
    outcomes: list[OutcomeRow]
    status_label: str
    mechanism_label: str
    admin_url: str | None
    countdown: str
    proposal: ProposalView | None = None

    @property
    def id(self) -> int:
        return self.market.id

    @property
    def volume_text(self) -> str:
        return f"{self.market.volume:,}"

    @property
    def fee_text(self) -> str:
        return f"{self.market.fee_bps / 100:g}%"


def percent(probability: float) -> str:
    """The text form of a probability everywhere on the dashboard (the JS uses the same rule)."""
    return f"{probability * 100:.1f}%"


def _votes(market: MarketSummary) -> list[tuple[int, str, str]]:
    """(voter id, voter name, outcome label) for the votes table (2 queries)."""
    votes = selectors.votes_get(market_id=market.id)
    names = member_names(guild_id=market.guild_id, user_ids=[voter for voter, _, _ in votes])
    return [(voter, names[voter], label) for voter, _, label in votes]


def _disputes(market: MarketSummary) -> list[dashboard_selectors.DisputeRow]:
    """The disputes of a proposed result (none to read for any other market)."""
    if market.status != Market.Status.RESOLVING:
        return []
    return dashboard_selectors.disputes_get(market_id=market.id)


def _admin_url(market_id: int) -> str | None:
    try:
        return reverse("admin:markets_market_change", args=[market_id])
    except NoReverseMatch:  # the market admin is not registered (tests of this app alone)
        return None


def market_view(
    market: MarketSummary, proposals: dict[int, dashboard_selectors.ProposalRow] | None = None
) -> MarketView:
    """`proposals` from `dashboard_selectors.proposals_get` when the caller read them for many
    markets at once; else a resolving market's proposal is read here (1 query)."""
    now = timezone.now()
    proposal = None
    if market.status == Market.Status.RESOLVING:
        if proposals is None:
            proposals = dashboard_selectors.proposals_get(market_ids=[market.id])
        row = proposals.get(market.id)
        proposal = proposal_view(row, now) if row is not None else None
    rows = [
        OutcomeRow(
            position=o.position,
            label=o.label,
            probability=o.probability,
            percent=percent(o.probability),
            width=f"{o.probability * 100:.2f}",
            swatch=mark_safe(charts.legend_swatch_svg(o.position)),
            is_winner=market.winning_position == o.position,
            pool=o.pool,
            staked=o.staked,
        )
        for o in market.outcomes
    ]
    return MarketView(
        market=market,
        outcomes=rows,
        status_label=STATUS_LABELS.get(market.status, market.status),
        mechanism_label=MECHANISM_LABELS.get(market.mechanism, market.mechanism),
        admin_url=_admin_url(market.id),
        countdown=closes_in(market.closes_at, now),
        proposal=proposal,
    )


def shares_text(micro_shares: int) -> str:
    """Micro-shares as shares with two decimals (DOMAIN §1); pool stakes have none."""
    return f"{micro_shares / 1_000_000:,.2f}" if micro_shares else "–"


def trade_view(trade: dashboard_selectors.TradeRow) -> dict:
    return {
        "id": trade.id,
        "at": trade.at,
        "user_id": trade.user_id,
        "user_name": trade.user_name,
        "kind": trade.kind,
        "label": trade.label,
        "amount": f"{trade.amount:,}",
        "shares_text": shares_text(trade.shares),
        "price_text": percent(trade.price_after),
    }


def _feed(limit: int, market_id: int | None = None) -> list[dict]:
    events = dashboard_selectors.events_latest(limit=limit, market_id=market_id)
    names = names_for((e.guild_id, e.payload) for e in events)
    return [
        {
            "id": e.pk,
            "event": e.type,
            "market_id": e.market_id,
            "summary": event_summary(e.type, e.market_id, e.payload, names),
            "created_at": e.created_at,
        }
        for e in events
    ]


LIVE_LABEL = "Live"
LIVE_LABEL_THIS_PROCESS = "Live (this process only)"
LIVE_NOTE_THIS_PROCESS = (
    "The in-memory channel layer reaches only this server process: events written by the bot or "
    "run_scheduler appear after a reload. Set REDIS_URL to see them live."
)


def live_status() -> tuple[str, str]:
    """The header's "connected" label and its explanation. On the in-memory channel layer
    (no REDIS_URL) only events committed by this very process are pushed; trades from the bot
    and closes from `run_scheduler` reach the page only on reload, so it must not claim "Live"
    without saying so."""
    if isinstance(get_channel_layer(), InMemoryChannelLayer):
        return LIVE_LABEL_THIS_PROCESS, LIVE_NOTE_THIS_PROCESS
    return LIVE_LABEL, ""


def _live_context() -> dict[str, str]:
    live_label, live_note = live_status()
    return {"live_label": live_label, "live_note": live_note}


def _market_or_404(market_id: int) -> MarketSummary:
    try:
        return selectors.market_get(market_id=market_id)
    except MarketNotFound:
        raise Http404("No such market") from None


@require_GET
@dashboard_viewer_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Every market grouped by status (newest first), with a live feed of market events."""
    # Read the cursor first: an event committed while the page renders is then replayed too.
    last_event_id = dashboard_selectors.event_last_id()
    sections = []
    for status, title, subtitle in STATUS_SECTIONS:
        markets = selectors.market_list(guild_id=None, status=status, limit=MARKETS_PER_SECTION)
        proposals = (
            dashboard_selectors.proposals_get(market_ids=[m.id for m in markets])
            if status == Market.Status.RESOLVING
            else {}
        )
        sections.append(
            {
                "status": status,
                "title": title,
                "subtitle": subtitle,
                "markets": [market_view(m, proposals) for m in markets],
                "truncated": len(markets) >= MARKETS_PER_SECTION,
            }
        )
    return render(
        request,
        "dashboard/index.html",
        {
            "sections": sections,
            "feed": _feed(FEED_LENGTH),
            "last_event_id": last_event_id,
            "now": timezone.now(),
            **_live_context(),
        },
    )


# Two renderings of one chart: the page shows the wide one on desktops and the compact one on
# phones (CSS), so axis text stays legible instead of shrinking with a scaled-down viewBox.
CHART_SIZES = (("wide", 760, 340), ("compact", 400, 300))


def _history_html(market: MarketSummary) -> str:
    history = betting_selectors.price_history(market_id=market.id)
    now = timezone.now()
    end = market.closed_at or now
    if market.status == Market.Status.OPEN:
        end = min(now, market.closes_at)
    points = [(p.at, p.probabilities) for p in history.points]
    return "".join(
        f'<div class="chart-{name}">'
        + charts.price_chart_svg(
            points,
            history.labels,
            end=end,
            width=width,
            height=height,
            title=f"Price history of market #{market.id}",
            trades=market.trade_count,
            id_prefix=f"chart-{name}",
            known_at=market.known_at,
        )
        + "</div>"
        for name, width, height in CHART_SIZES
    )


@require_GET
@dashboard_viewer_required
def market_detail(request: HttpRequest, market_id: int) -> HttpResponse:
    """One market: outcomes, price chart, recent trades, resolution votes, its event feed."""
    last_event_id = dashboard_selectors.event_last_id()
    market = _market_or_404(market_id)
    return render(
        request,
        "dashboard/market.html",
        {
            "m": market_view(market),
            "chart": mark_safe(_history_html(market)),
            "trades": [
                trade_view(t)
                for t in dashboard_selectors.trades_recent(market_id=market.id, limit=RECENT_TRADES)
            ],
            "votes": _votes(market),
            "disputes": _disputes(market),
            "feed": _feed(FEED_LENGTH, market_id=market.id),
            "last_event_id": last_event_id,
            "now": timezone.now(),
            **_live_context(),
        },
    )


@require_GET
@dashboard_viewer_required
def market_card(request: HttpRequest, market_id: int) -> HttpResponse:
    """The dashboard card of one market (the page swaps it in after a status change)."""
    market = _market_or_404(market_id)
    return render(request, "dashboard/_card.html", {"m": market_view(market)})


@require_GET
@dashboard_viewer_required
def market_panel(request: HttpRequest, market_id: int) -> HttpResponse:
    """The status, outcomes and votes block of the market page."""
    market = _market_or_404(market_id)
    return render(
        request,
        "dashboard/_panel.html",
        {
            "m": market_view(market),
            "votes": _votes(market),
            "disputes": _disputes(market),
        },
    )


@require_GET
@dashboard_viewer_required
def market_chart(request: HttpRequest, market_id: int) -> HttpResponse:
    """The price chart alone, as HTML with inline SVG (the market page refreshes it after
    trades)."""
    market = _market_or_404(market_id)
    response = HttpResponse(_history_html(market), content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


def closes_in(closes_at: dt.datetime, now: dt.datetime) -> str:
    """A short countdown ("2d 3h", "14m", "closing") for the server render; the page's script
    keeps it ticking."""
    seconds = int((closes_at - now).total_seconds())
    if seconds <= 0:
        return "closing"
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
