"""Helpers for the back-office tests (tests/markets/test_admin.py, tests/points/test_admin.py):
staff users in the groups the migration creates, and the messages a response queued."""

from __future__ import annotations

import csv
import importlib
import io
import re
from types import SimpleNamespace

from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.db import connection
from django.db.models import Model
from django.http import HttpResponse

GROUPS_MIGRATION = "points.migrations.0004_moderator_and_viewer_groups"
DASHBOARD_MIGRATION = "dashboard.migrations.0002_dashboard_permission_for_groups"
SEASON_POST_MIGRATION = "points.migrations.0020_season_post"


def groups_ensure() -> None:
    """The groups come from a data migration, and a transactional test's flush deletes them;
    recreate them with the migration's own function when that happened."""
    if (
        Group.objects.filter(
            name__in=["Moderators", "Viewers"], permissions__codename="view_dashboard"
        ).count()
        == 2
    ):
        return
    migration = importlib.import_module(GROUPS_MIGRATION)
    migration.create_groups(apps, SimpleNamespace(connection=connection))
    dashboard = importlib.import_module(DASHBOARD_MIGRATION)
    dashboard.grant(apps, SimpleNamespace(connection=connection))
    season_post = importlib.import_module(SEASON_POST_MIGRATION)
    season_post.grant(apps, SimpleNamespace(connection=connection))


def staff_user(username: str, group: str | None):
    """An active staff user in `group` ("Moderators", "Viewers") or in no group."""
    groups_ensure()
    user = get_user_model().objects.create_user(
        username, password="correct-horse-battery", is_staff=True
    )
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


def messages_of(response: HttpResponse) -> list[str]:
    """Messages not shown yet after `response`, oldest first (a redirect's page shows them, so
    earlier unread ones in the same session come first)."""
    return [str(m) for m in get_messages(response.wsgi_request)]


def request_id_of(response: HttpResponse) -> str:
    """The idempotency uuid a confirmation page rendered into its form."""
    return str(response.context["form"]["request_id"].value())


def log_entries(obj: Model) -> list[LogEntry]:
    return list(
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk)
        ).order_by("id")
    )


def csv_rows(response: HttpResponse) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def settings_editor(username: str = "settings-editor"):
    """A staff user whose only permissions are to view and change guild settings."""
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user(
        username, password="correct-horse-battery", is_staff=True
    )
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="points",
            codename__in=["change_guildsettings", "view_guildsettings"],
        )
    )
    return user


def guild_settings_form(gs, **changes) -> dict:
    """The admin's change form for `gs` as a browser posts it, with `changes` typed over it
    (a checkbox left unticked is not posted at all)."""
    from points.rules import SETTINGS

    form: dict = {}
    for spec in SETTINGS:
        value = changes.get(spec.name, getattr(gs, spec.name))
        if spec.kind == "bool" and isinstance(value, bool):
            if value:
                form[spec.name] = "on"
        else:
            form[spec.name] = str(value)
    form["creator_role_ids"] = changes.get("creator_role_ids", "[]")
    form["resolver_role_ids"] = changes.get("resolver_role_ids", "[]")
    form["announce_channel_id"] = changes.get("announce_channel_id", "")
    return form


def breadcrumbs(response: HttpResponse) -> list[tuple[str | None, str]]:
    """(link, text) of each step of the page's breadcrumbs; link None for the current page."""
    html = response.content.decode()
    trail = re.search(r'<div class="breadcrumbs">(.*?)</div>', html, re.S).group(1)
    steps = [step.strip() for step in trail.split("&rsaquo;")]
    found = []
    for step in steps:
        link = re.fullmatch(r'<a href="([^"]*)"[^>]*>(.*)</a>', step)
        found.append((link.group(1), link.group(2)) if link else (None, step))
    return found
