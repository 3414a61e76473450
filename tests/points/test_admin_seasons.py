"""Seasons in the back office (issue 26, docs/domain.md §10): each server's seasons by name with
their period, state, final table and who got the reward role, read-only for everyone; "Post the
final table again" for moderators only, with a reason, audited, asked once per confirmation."""

from __future__ import annotations

import pytest
from django.urls import reverse

from points.models import AuditEvent, Season
from points.seasons import MSG_REPOST_RUNNING, season_posted
from tests.admin_helpers import breadcrumbs, log_entries, messages_of, request_id_of, staff_user
from tests.conftest import GUILD
from tests.season_helpers import seed_seasons
from tests.selector_helpers import OTHER_GUILD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]

LIST = "admin:points_season_changelist"


def repost_url(season: Season) -> str:
    return reverse("admin:points_season_repost", args=[season.pk])


def test_seasons_list_by_server_name_with_period_state_and_top_three(viewer_client):
    season = seed_seasons()
    page = viewer_client.get(reverse(LIST))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Book club" in html and "Chess club" in html and "Guild 1111" not in html
    assert html.count("Season 1") == 2 and "Season 2" in html
    assert f"{season.starts_at:%Y-%m-%d} → {season.closed_at:%Y-%m-%d}" in html
    assert "Bob Brown</a> +230" in html and "Carol Chen</a> -100" in html
    assert ">posted</span>" in html and ">at the end</span>" in html
    # Filters: the server by name, the state, the post.
    choices = page.context["cl"].filter_specs[0].lookup_choices
    assert [name for _, name in choices] == ["Book club", "Chess club"]
    chess = viewer_client.get(reverse(LIST), {"guild_id": OTHER_GUILD})
    assert [s.guild_id for s in chess.context["cl"].result_list] == [OTHER_GUILD]
    closed = viewer_client.get(reverse(LIST), {"status__exact": "closed"})
    assert [s.pk for s in closed.context["cl"].result_list] == [season.pk]
    posted = viewer_client.get(reverse(LIST), {"post": "posted"})
    assert [s.pk for s in posted.context["cl"].result_list] == [season.pk]
    assert viewer_client.get(reverse(LIST), {"post": "not_posted"}).context["cl"].result_count == 0


def test_a_seasons_page_shows_its_final_table_and_who_got_the_role_read_only(viewer_client):
    season = seed_seasons()
    url = reverse("admin:points_season_change", args=[season.pk])
    page = viewer_client.get(url)
    html = page.content.decode()
    assert page.context["title"] == "Season 1 of Book club"
    assert breadcrumbs(page)[-1] == (None, "Season 1 of Book club")
    for caption in ("Balance change", "Realised profit", "Calibration (Brier, lower is better)"):
        assert f"<caption>{caption}</caption>" in html
    profit = html.split('data-kind="profit"')[1].split("</table>")[0]
    assert profit.index("Bob Brown") < profit.index("Alice Adams") < profit.index("Carol Chen")
    reward = html.split("field-reward")[1].split("field-final_table")[0]
    assert "Bob Brown" in reward and "Carol" not in reward
    # Drawn from the ledger and the close: nothing to save, add or delete, even for staff who
    # may post the table again; a viewer is not offered that either.
    assert 'name="_save"' not in html and "Post the final table again" not in html
    assert viewer_client.post(url, {"number": 9}).status_code == 403
    assert viewer_client.get(reverse("admin:points_season_add")).status_code == 403
    assert (
        viewer_client.get(reverse("admin:points_season_delete", args=[season.pk])).status_code
        == 403
    )
    assert viewer_client.get(repost_url(season)).status_code == 403
    assert viewer_client.post(repost_url(season), {"reason": "x"}).status_code == 403
    assert Season.objects.get(pk=season.pk).post_round == 0


def test_a_moderator_has_the_table_posted_again_once_with_a_reason_audited(mod_client, moderator):
    season = seed_seasons()
    page = mod_client.get(reverse("admin:points_season_change", args=[season.pk]))
    assert repost_url(season) in page.content.decode()
    form = mod_client.get(repost_url(season))
    assert form.status_code == 200
    # A reason is required.
    empty = mod_client.post(repost_url(season), {"request_id": request_id_of(form), "reason": ""})
    assert empty.status_code == 200 and empty.context["form"].errors["reason"]
    assert Season.objects.get(pk=season.pk).post_round == 0

    body = {"request_id": request_id_of(form), "reason": "Someone deleted the post"}
    done = mod_client.post(repost_url(season), body)
    assert done.status_code == 302
    assert messages_of(done)[-1] == (
        "Asked the bot to post the final table of season 1 again; it does so within a minute or "
        "two."
    )
    season.refresh_from_db()
    assert (season.posted_at, season.announced_at, season.post_round) == (None, None, 1)
    event = AuditEvent.objects.get(action="season_repost")
    assert (event.guild_id, event.target_type, event.target_id) == (GUILD, "season", "1")
    assert event.actor_user_id == moderator.pk and event.reason == "Someone deleted the post"
    assert event.before["rewarded"] and event.after == {"post_round": 1}
    (entry,) = log_entries(season)
    assert entry.user_id == moderator.pk
    assert "Someone deleted the post" in entry.get_change_message()

    # The same confirmation again (a double click): nothing more.
    again = mod_client.post(repost_url(season), body)
    assert messages_of(again)[-1] == "This request was already submitted; nothing more was done."
    assert Season.objects.get(pk=season.pk).post_round == 1
    assert AuditEvent.objects.filter(action="season_repost").count() == 1


def test_a_running_season_or_a_post_on_its_way_is_refused_with_why(mod_client):
    seed_seasons()
    running = Season.objects.get(guild_id=GUILD, number=2)
    form = mod_client.get(repost_url(running))
    refused = mod_client.post(
        repost_url(running), {"request_id": request_id_of(form), "reason": "please"}
    )
    assert messages_of(refused)[-1] == MSG_REPOST_RUNNING.format(number=2)
    assert not AuditEvent.objects.filter(action="season_repost").exists()
    # The list's action opens the page for exactly one season.
    chosen = mod_client.post(
        reverse(LIST), {"action": "repost_selected", "_selected_action": [running.pk]}
    )
    assert chosen.status_code == 302 and chosen["Location"] == repost_url(running)


def test_posting_again_needs_the_permission_even_by_the_lists_action(client):
    season = seed_seasons()
    client.force_login(staff_user("viewer", "Viewers"))
    response = client.post(
        reverse(LIST), {"action": "repost_selected", "_selected_action": [season.pk]}
    )
    assert response.status_code == 403


def test_a_post_that_did_not_go_out_says_why_in_the_list_and_on_the_page(viewer_client):
    season = seed_seasons()
    why = "not posted: Discord refused it (403 50013: Missing Permissions)"
    season_posted(season_id=season.pk, rewarded=[], detail=why)  # as the bot records it
    listed = viewer_client.get(reverse(LIST), {"post": "not_posted"})
    assert [s.pk for s in listed.context["cl"].result_list] == [season.pk]
    html = listed.content.decode()
    assert f'title="N{why[1:]}">not posted</span>' in html
    page = viewer_client.get(reverse("admin:points_season_change", args=[season.pk]))
    assert f'<span class="season-post-problem">N{why[1:]}</span>' in page.content.decode()
