"""The member and guild directory (issue 13): names and avatars as last seen, and forgetting
a member who asks."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from ..errors import validate_snowflake
from ..models import Guild, Member
from ..usecase import use_case

_NAME_MAX = 100
_URL_MAX = 500


def _clean(text: object, limit: int) -> str:
    """A name as stored: printable text only (Discord names cannot hold control characters, but
    the directory never trusts that), trimmed to the column."""
    value = text if isinstance(text, str) else ""
    return "".join(ch for ch in value if ch.isprintable())[:limit]


def _seen_gate_key(guild_id: int, user_id: int) -> str:
    return f"member-seen:{settings.PM_DIRECTORY_NAMESPACE}:{guild_id}:{user_id}"


def member_seen(
    *,
    guild_id: int,
    user_id: int,
    display_name: str,
    username: str,
    avatar: str = "",
    guild_name: str | None = None,
    guild_icon: str = "",
    now: dt.datetime | None = None,
) -> bool:
    """Record the member's (and the guild's) current name and avatar; True when it wrote.

    Gated: at most one write per member per `PM_MEMBER_SEEN_EVERY` seconds (names change rarely,
    interactions are frequent), by an atomic cache
    `add` (no database query when the gate is shut). A member who asked to be forgotten is
    never stored again: the insert and the update both skip rows of a `forgotten` member, in
    the same statement, so a forget racing with this write still ends forgotten. One statement
    per row; no transaction of its own (each statement is atomic)."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(user_id, what="user_id")
    if not cache.add(_seen_gate_key(guild_id, user_id), 1, timeout=settings.PM_MEMBER_SEEN_EVERY):
        return False
    now = now or timezone.now()
    if guild_name is not None:
        guild_table = Guild._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {guild_table} (id, name, icon, last_seen) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET name = excluded.name, icon = excluded.icon, "
                "last_seen = excluded.last_seen",
                [guild_id, _clean(guild_name, _NAME_MAX), _clean(guild_icon, _URL_MAX), now],
            )
    table = Member._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} "
            "(guild_id, user_id, display_name, username, avatar, last_seen, forgotten) "
            "SELECT %s, %s, %s, %s, %s, %s, false "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE user_id = %s AND forgotten) "
            "ON CONFLICT (guild_id, user_id) DO UPDATE SET display_name = excluded.display_name, "
            "username = excluded.username, avatar = excluded.avatar, "
            f"last_seen = excluded.last_seen WHERE NOT {table}.forgotten",
            [
                guild_id,
                user_id,
                _clean(display_name, _NAME_MAX),
                _clean(username, _NAME_MAX),
                _clean(avatar, _URL_MAX),
                now,
                user_id,
            ],
        )
    return True


def members_seen(*, rows: list[dict[str, Any]], now: dt.datetime | None = None) -> int:
    """`member_seen` for many members at once (the bot's directory notes of a rush, issue 21):
    each row is gated as `member_seen` gates it, then on PostgreSQL the guilds and the members
    are written in one statement each, with `member_seen`'s rules (a forgotten member is never
    stored again); elsewhere row by row. Returns how many rows passed the gate."""
    now = now or timezone.now()
    passed: dict[tuple[int, int], dict[str, Any]] = {}
    for row in rows:
        validate_snowflake(row["guild_id"], what="guild_id")
        validate_snowflake(row["user_id"], what="user_id")
        key = (row["guild_id"], row["user_id"])
        if key in passed or cache.add(
            _seen_gate_key(*key), 1, timeout=settings.PM_MEMBER_SEEN_EVERY
        ):
            passed[key] = row
    if not passed:
        return 0
    if connection.vendor != "postgresql":
        for row in passed.values():
            cache.delete(_seen_gate_key(row["guild_id"], row["user_id"]))
            member_seen(**row, now=now)
        return len(passed)
    guilds = {r["guild_id"]: r for r in passed.values() if r.get("guild_name") is not None}
    if guilds:
        values = ", ".join(["(%s, %s, %s, %s::timestamptz)"] * len(guilds))
        params: list[Any] = []
        for gid, r in guilds.items():
            params += [
                gid,
                _clean(r["guild_name"], _NAME_MAX),
                _clean(r.get("guild_icon", ""), _URL_MAX),
                now,
            ]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {Guild._meta.db_table} (id, name, icon, last_seen) VALUES {values} "
                "ON CONFLICT (id) DO UPDATE SET name = excluded.name, icon = excluded.icon, "
                "last_seen = excluded.last_seen",
                params,
            )
    table = Member._meta.db_table
    values = ", ".join(["(%s::bigint, %s::bigint, %s, %s, %s, %s::timestamptz)"] * len(passed))
    params = []
    for (gid, uid), r in passed.items():
        params += [
            gid,
            uid,
            _clean(r.get("display_name"), _NAME_MAX),
            _clean(r.get("username"), _NAME_MAX),
            _clean(r.get("avatar", ""), _URL_MAX),
            now,
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} "
            "(guild_id, user_id, display_name, username, avatar, last_seen, forgotten) "
            "SELECT v.guild_id, v.user_id, v.display_name, v.username, v.avatar, v.last_seen, "
            f"false FROM (VALUES {values}) "
            "AS v(guild_id, user_id, display_name, username, avatar, last_seen) "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} f WHERE f.user_id = v.user_id "
            "AND f.forgotten) "
            "ON CONFLICT (guild_id, user_id) DO UPDATE SET display_name = excluded.display_name, "
            "username = excluded.username, avatar = excluded.avatar, "
            f"last_seen = excluded.last_seen WHERE NOT {table}.forgotten",
            params,
        )
    return len(passed)


@use_case()
def member_forget(*, guild_id: int, user_id: int) -> int:
    """`/privacy forget`: erase the member's stored display name, username and avatar in every
    server, and mark them `forgotten` so that `member_seen` never stores them again. They show
    as "member #1234…" afterwards (`points.selectors.member_fallback`). Returns how many rows
    were erased (the asking guild's row is created, forgotten, if it did not exist)."""
    validate_snowflake(guild_id, what="guild_id")
    validate_snowflake(user_id, what="user_id")
    table = Member._meta.db_table
    with connection.cursor() as cursor:
        # An upsert, not get_or_create: a `member_seen` insert racing with this one cannot
        # leave the asking guild's row named.
        cursor.execute(
            f"INSERT INTO {table} "
            "(guild_id, user_id, display_name, username, avatar, forgotten) "
            "VALUES (%s, %s, '', '', '', true) ON CONFLICT (guild_id, user_id) DO UPDATE SET "
            "display_name = '', username = '', avatar = '', forgotten = true",
            [guild_id, user_id],
        )
    return Member.objects.filter(user_id=user_id).update(
        display_name="", username="", avatar="", forgotten=True
    )
