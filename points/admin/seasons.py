"""Seasons in the back office (issue 26, docs/domain.md §10): each server's seasons with their
period and state, the final table as it was archived and posted, who got the reward role, and
whether the post went out (or why not). Everything here is drawn from the ledger and the close,
so the pages are read-only; the one action, "Post the final table again", goes through
`points.seasons.season_repost` (moderators; an audit record and a `LogEntry`)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from core import adminkit
from core.adminkit import ActionPermissionMixin, ConfirmForm, ReadOnlyAdmin, guild_label
from core.errors import DomainError

from .. import selectors
from ..models import AuditEvent, Season
from ..rules import Actor
from ..seasons import NOT_POSTED, season_repost

TABLES = (
    ("balance", "Balance change"),
    ("profit", "Realised profit"),
    ("calibration", "Calibration (Brier, lower is better)"),
)
REPOST_REASON_HELP = (
    "Recorded in the audit log (members do not see it). 1–500 characters. The bot posts the "
    "table in the announcement channel within a minute or two and gives the reward role again."
)


class SeasonGuildFilter(adminkit.GuildFilter):
    """Servers by name (the directory), as the other lists filter them."""

    model = Season

    def guild_names(self, guild_ids: Iterable[int]) -> dict[int, str]:
        return selectors.guild_names(guild_ids=guild_ids)


class PostFilter(admin.SimpleListFilter):
    title = "final table"
    parameter_name = "post"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("posted", "Posted"),
            ("not_posted", "Not posted (see why)"),
            ("waiting", "Waiting"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "posted":
            return queryset.filter(posted_at__isnull=False).exclude(
                post_detail__startswith=NOT_POSTED
            )
        if self.value() == "not_posted":
            return queryset.filter(post_detail__startswith=NOT_POSTED)
        if self.value() == "waiting":
            return queryset.filter(status=Season.Status.CLOSED, posted_at__isnull=True)
        return queryset


class RepostForm(ConfirmForm):
    reason = adminkit.reason_field(help_text=REPOST_REASON_HELP)


def _signed(value: int) -> str:
    return f"{value:+,}"


@admin.register(Season)
class SeasonAdmin(ActionPermissionMixin, ReadOnlyAdmin):
    list_display = ("server", "season", "state", "period", "top_three", "post_short")
    list_display_links = ("season",)
    list_filter = (SeasonGuildFilter, "status", PostFilter)
    ordering = ("-ends_at", "guild_id")
    list_per_page = 50
    actions = ["repost_selected"]
    fields = (
        "server",
        "number",
        "state",
        ("starts_at", "ends_at", "closed_at"),
        "post",
        "reward",
        "final_table",
    )
    readonly_fields = ("server", "state", "post", "reward", "final_table")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = (
            super()
            .get_queryset(request)
            .annotate(guild_name=selectors.guild_name_subquery(guild_field="guild_id"))
        )
        return queryset

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        """Name the page's winners: one directory query per server on the page."""
        changelist = super().get_changelist_instance(request)
        for season in changelist.result_list:
            self._name(season)
        return changelist

    def _name(self, season: Season) -> dict[int, str]:
        """The names of the members the season's row shows (kept on the row: one query)."""
        ids = {int(u) for u in season.rewarded or []}
        for kind, _ in TABLES:
            ids |= {int(row[0]) for row in (season.table or {}).get(kind, [])}
        names = selectors.member_names(guild_id=season.guild_id, user_ids=ids)
        season.member_names = names  # type: ignore[attr-defined]
        return names

    def _member(self, season: Season, user_id: object) -> str:
        names = getattr(season, "member_names", None) or self._name(season)
        uid = int(str(user_id))
        return adminkit.member_link(season.guild_id, uid, names.get(uid))

    @admin.display(description="server", ordering="guild_id")
    def server(self, obj: Season) -> str:
        return guild_label(obj.guild_id, getattr(obj, "guild_name", None))

    @admin.display(description="season", ordering="number")
    def season(self, obj: Season) -> str:
        return format_html('<span style="white-space: nowrap">Season {}</span>', obj.number)

    @admin.display(description="state", ordering="status")
    def state(self, obj: Season) -> str:
        if obj.status == Season.Status.OPEN:
            return "running"
        return "closed"

    @admin.display(description="period", ordering="starts_at")
    def period(self, obj: Season) -> str:
        end = obj.closed_at or obj.ends_at
        return format_html(
            '<span style="white-space: nowrap" title="{} to {} (UTC)">{} → {}</span>',
            f"{obj.starts_at:%Y-%m-%d %H:%M}",
            f"{end:%Y-%m-%d %H:%M}",
            f"{obj.starts_at:%Y-%m-%d}",
            f"{end:%Y-%m-%d}",
        )

    @admin.display(description="top 3 (realised profit)")
    def top_three(self, obj: Season) -> str:
        """One member a line, so the list fits beside its filters at 1366 px."""
        rows = (obj.table or {}).get("profit", [])[:3]
        if obj.status == Season.Status.OPEN:
            return "—"
        if not rows:
            return "nobody"
        return format_html_join(
            mark_safe("<br>"),
            '<span style="white-space: nowrap">{} {}</span>',
            ((self._member(obj, u), _signed(int(v))) for u, v in rows),
        )

    @admin.display(description="post")
    def post_short(self, obj: Season) -> str:
        """The post in a word, the details in the tooltip and on the season's page."""
        return format_html('<span title="{}">{}</span>', self.post_words(obj), self._post_word(obj))

    def _post_word(self, obj: Season) -> str:
        if obj.status == Season.Status.OPEN:
            return "at the end"
        if obj.posted_at is None:
            return "waiting"
        return "not posted" if obj.post_detail.startswith(NOT_POSTED) else "posted"

    def post_words(self, obj: Season) -> str:
        if obj.status == Season.Status.OPEN:
            return f"when the season ends ({obj.ends_at:%Y-%m-%d %H:%M} UTC)"
        if obj.posted_at is None:
            return "waiting for the bot"
        if obj.post_detail.startswith(NOT_POSTED):
            return obj.post_detail[:1].upper() + obj.post_detail[1:]
        posted = f"posted {obj.posted_at:%Y-%m-%d %H:%M} UTC"
        return f"{posted}; {obj.post_detail}" if obj.post_detail else posted

    @admin.display(description="final table post")
    def post(self, obj: Season) -> str:
        words = self.post_words(obj)
        if obj.post_detail:
            return format_html('<span class="season-post-problem">{}</span>', words)
        return words

    @admin.display(description="reward role given to")
    def reward(self, obj: Season) -> str:
        if not obj.rewarded:
            return "nobody" if obj.posted_at else "—"
        return format_html_join(", ", "{}", ((self._member(obj, u),) for u in obj.rewarded))

    @admin.display(description="final table")
    def final_table(self, obj: Season) -> str:
        if obj.status == Season.Status.OPEN:
            return (
                f"Drawn when the season closes; meanwhile /leaderboard season:{obj.number} "
                "shows it live in Discord."
            )
        table = obj.table or {}
        parts = []
        for kind, title in TABLES:
            rows = table.get(kind, [])
            if kind == "calibration":
                cells = (
                    (i, self._member(obj, row[0]), f"{float(row[1]):.3f} ({int(row[2]):,} markets)")
                    for i, row in enumerate(rows, 1)
                )
            else:
                cells = (
                    (i, self._member(obj, row[0]), _signed(int(row[1])))
                    for i, row in enumerate(rows, 1)
                )
            body = format_html_join(
                "", '<tr><td>{}.</td><td>{}</td><td class="num">{}</td></tr>', cells
            ) or format_html('<tr><td colspan="3">{}</td></tr>', "Nobody.")
            parts.append(
                format_html(
                    '<table class="season-table" data-kind="{}"><caption>{}</caption>'
                    "<tbody>{}</tbody></table>",
                    kind,
                    title,
                    body,
                )
            )
        return format_html(
            '<div class="season-tables">{}</div>', format_html_join("", "{}", ((p,) for p in parts))
        )

    # --- Post the final table again -----------------------------------------------------------

    def has_announce_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("points.announce_season")

    @admin.action(permissions=["announce"], description="Post the final table again…")
    def repost_selected(
        self, request: HttpRequest, queryset: QuerySet[Season]
    ) -> HttpResponse | None:
        ids = list(queryset.values_list("pk", flat=True)[:2])
        if len(ids) != 1:
            self.message_user(
                request, "Posting a table again needs exactly one season: select one.",
                messages.WARNING,
            )  # fmt: skip
            return None
        return HttpResponseRedirect(reverse("admin:points_season_repost", args=[ids[0]]))

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(partial(repost_view, self))
        return [
            path("<int:object_id>/repost/", view, name="points_season_repost"),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        season = Season.objects.filter(pk=int(object_id)).first() if object_id.isdigit() else None
        extra: dict[str, Any] = {}
        if season is not None:
            extra = {
                "can_repost": self.has_announce_permission(request)
                and season.status == Season.Status.CLOSED
                and season.posted_at is not None,
                "repost_url": reverse("admin:points_season_repost", args=[season.pk]),
                "audit_url": f"{reverse('admin:points_auditevent_changelist')}"
                f"?target_type=season&target_id={season.number}&guild_id={season.guild_id}",
                "title": f"Season {season.number} of "
                f"{selectors.guild_names(guild_ids=[season.guild_id])[season.guild_id]}",
                "subtitle": f"Discord server id {season.guild_id}",
            }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})


def repost_view(model_admin: SeasonAdmin, request: HttpRequest, object_id: int) -> HttpResponse:
    """Confirm "Post the final table again" with a reason; the service audits it, this writes
    Django's `LogEntry`. The page's request id is the key: submitting it twice asks once."""
    if not model_admin.has_announce_permission(request):
        raise PermissionDenied
    season = Season.objects.filter(pk=object_id).first() if 0 < object_id < 2**63 else None
    if season is None:
        raise Http404("No such season.")
    back = reverse("admin:points_season_change", args=[season.pk])
    form = RepostForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        key = form.request_key()
        if AuditEvent.objects.filter(idempotency_key=key).exists():
            model_admin.message_user(
                request, "This request was already submitted; nothing more was done."
            )
            return HttpResponseRedirect(back)
        try:
            season = season_repost(
                season_id=season.pk,
                actor=Actor.from_user(request.user),
                reason=form.cleaned_data["reason"],
                idempotency_key=key,
            )
        except DomainError as exc:
            model_admin.message_user(request, exc.message, messages.ERROR)
        else:
            summary = f"Asked the bot to post the final table of season {season.number} again"
            model_admin.log_change(request, season, f"{summary}: {form.cleaned_data['reason']}")
            model_admin.message_user(
                request, f"{summary}; it does so within a minute or two.", messages.SUCCESS
            )
            return HttpResponseRedirect(back)
    guild_name = selectors.guild_names(guild_ids=[season.guild_id])[season.guild_id]
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "changelist_url": reverse("admin:points_season_changelist"),
        "title": f"Post the final table of season {season.number} again",
        "season": season,
        "season_url": back,
        "guild_name": guild_name,
        "post": model_admin.post_words(season),
        "form": form,
    }
    return TemplateResponse(request, "admin/points/season/repost.html", context)
