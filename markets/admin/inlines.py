"""The market's own rows on its back-office page, read-only: outcomes, resolution votes, disputes
of proposed results (docs/domain.md §6.1) and the outbox events. Other apps add theirs through
`markets.admin_hooks` (`betting`: positions and trades)."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.text import Truncator

from core.adminkit import member_link, shares_cell

from .. import selectors
from ..admin_hooks import MarketInline, PaginatedMarketInline
from ..models import Dispute, MarketEvent, Outcome, ResolutionVote


class OutcomeInline(MarketInline):
    model = Outcome
    fields = ("position_number", "label", "pool_shares", "staked", "probability", "result")
    readonly_fields = fields
    verbose_name_plural = "outcomes (pools in shares; probabilities for display)"

    @admin.display(description="#")
    def position_number(self, obj: Outcome) -> int:
        return obj.position + 1

    @admin.display(description="pool (shares)")
    def pool_shares(self, obj: Outcome) -> str:
        return shares_cell(obj.pool)

    @admin.display(description="probability")
    def probability(self, obj: Outcome) -> str:
        probs = selectors.probabilities(self.market.mechanism, self.outcomes)
        return f"{probs[obj.position]:.1%}"

    @admin.display(description="result")
    def result(self, obj: Outcome) -> str:
        return "✔ winner" if self.market.winning_outcome_id == obj.pk else ""


class VoteInline(PaginatedMarketInline):
    model = ResolutionVote
    fields = ("voter", "outcome_label", "created_at", "updated_at")
    readonly_fields = fields
    verbose_name_plural = "resolution votes"
    joins = ("outcome",)
    member_annotations = {"voter_name": ("market__guild_id", "voter_id")}
    row_order = ("id",)

    @admin.display(description="voter")
    def voter(self, obj: ResolutionVote) -> str:
        return member_link(self.market.guild_id, obj.voter_id, getattr(obj, "voter_name", None))


class DisputeInline(PaginatedMarketInline):
    """Every dispute of every proposal of the market, newest first (docs/domain.md §6.1)."""

    model = Dispute
    fields = ("member", "proposal_round", "reason", "created_at")
    readonly_fields = fields
    verbose_name_plural = "disputes of proposed results (newest first)"
    list_url_name = "admin:markets_dispute_changelist"
    member_annotations = {"member_name": ("market__guild_id", "user_id")}

    @admin.display(description="member")
    def member(self, obj: Dispute) -> str:
        return member_link(self.market.guild_id, obj.user_id, getattr(obj, "member_name", None))


class EventInline(PaginatedMarketInline):
    model = MarketEvent
    fields = ("id", "created_at", "type", "actor", "request_key", "summary")
    readonly_fields = fields
    verbose_name_plural = "market events (newest first)"
    list_url_name = "admin:markets_marketevent_changelist"
    member_annotations = {"actor_name": ("guild_id", "actor_id")}

    @admin.display(description="actor")
    def actor(self, obj: MarketEvent) -> str:
        if not obj.actor_id:
            return "system / admin"
        return member_link(obj.guild_id, obj.actor_id, getattr(obj, "actor_name", None))

    @admin.display(description="payload")
    def summary(self, obj: MarketEvent) -> str:
        return Truncator(json.dumps(obj.payload, sort_keys=True)).chars(160)
