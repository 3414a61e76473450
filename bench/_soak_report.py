"""What the soak reads and prints (bench/soak.py): Discord's view of every interaction from
the fake's records, the per-minute table, and the logs counted instead of printed."""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import re
from pathlib import Path

import _soak
from _common import percentile

ERROR = "Something went wrong"
INTERIM = ("Still working on it", "I'm still checking", "restarting")
ANSWER_DM = "Your /"  # `discordbot.delivery`: an answer sent by DM when the reply failed
TOKEN = re.compile(r"^/(?:interactions/\d+|webhooks/\d+)/([^/]+)")


class Verdicts:
    """What Discord saw of every interaction, read once from the fake's records."""

    def __init__(self, fake) -> None:
        from tests.discordbot.fake_discord import LOADING

        self.fake, self.loading = fake, LOADING
        self.requests: dict[str, list] = collections.defaultdict(list)
        self.answer_dms: dict[int, list[str]] = collections.defaultdict(list)
        with fake.lock:
            for r in fake.requests:
                if m := TOKEN.match(r.path):
                    self.requests[m.group(1)].append(r)
            for channel, user in fake.dm_recipients.items():
                for message_id in fake.channel_messages.get(channel, []):
                    content = fake.messages[message_id].get("content") or ""
                    if content.startswith(ANSWER_DM):
                        self.answer_dms[user].append(content)

    def of(self, sent: _soak.Sent) -> tuple[str, float | None, float | None, str]:
        """(answered | by_dm | error | unanswered, first response s, completion s, text shown):
        `by_dm` when the reply could not be delivered and the bot sent the answer by DM
        (`discordbot.delivery`), leaving an interim word in the channel."""
        from tests.discordbot.harness import message_text

        state = self.fake.interactions.get(sent.token)
        ok = [r for r in self.requests.get(sent.token, []) if 0 < r.status < 300]
        callback = next((r for r in ok if r.is_callback), None)
        if state is None or callback is None:
            return "unanswered", None, None, ""
        first, done = callback.at - state.fed_at, ok[-1].at - state.fed_at
        if sent.kind == "autocomplete":
            return "answered", first, done, ""
        message = _soak.shown_message(self.fake, sent.token)
        if message is None or int(message.get("flags") or 0) & self.loading:
            return "unanswered", first, None, ""
        text = message_text(message)
        if not text or any(part in text for part in INTERIM):
            user = int(sent.payload["member"]["user"]["id"])
            command = f"{ANSWER_DM}{sent.payload['data'].get('name', '')} from"
            dms = [d for d in self.answer_dms.get(user, []) if d.startswith(command)]
            if sent.kind != "confirm" and dms:
                return "by_dm", first, None, dms[-1]
            return "unanswered", first, None, text
        return ("error" if ERROR in text else "answered"), first, done, text


class Quiet(logging.Filter):
    """Counts this process's log records by logger instead of printing them (the lifecycle's
    dashboard pushes fail loudly while Redis hangs; the count is in the report)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        self.counts[f"{record.name} {record.levelname}"] += 1
        return False


quiet = Quiet()


def hush() -> None:
    loggers = [
        logging.getLogger(),
        *(logging.getLogger(n) for n in logging.root.manager.loggerDict),
    ]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            handler.addFilter(quiet)


def bot_errors(path: Path) -> str:
    """The bot's ERROR and WARNING lines, counted by logger and message."""
    counts: collections.Counter = collections.Counter()
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("level") in ("ERROR", "WARNING", "CRITICAL"):
                msg = re.sub(r"\d{5,}", "…", str(record.get("msg", "")))[:70]
                counts[f"{record.get('level')} {record.get('logger')}: {msg}"] += 1
    return "; ".join(f"{n}× {k}" for k, v in counts.most_common(6) for n in [v]) or "clean"


def p(values: list[float], q: float) -> str:
    return f"{percentile(values, q):6.2f}" if values else "     -"


def table(rows: dict, title: str) -> None:
    print(title)
    print(
        f"{'minute':>6} {'sent':>6} {'answered':>8} {'by DM':>5} {'errors':>6} "
        f"{'unanswered':>10}   "
        f"first response p50/p99 s   completion p50/p99 s   faults"
    )
    for minute, row in sorted(rows.items()):
        print(
            f"{minute:>6} {row['sent']:>6} {row['answered']:>8} {row['by_dm']:>5} "
            f"{row['error']:>6} "
            f"{row['unanswered']:>10}   {p(row['first'], 50)} {p(row['first'], 99)}"
            f"              {p(row['done'], 50)} {p(row['done'], 99)}        "
            f"{', '.join(sorted(row['faults'])) or '-'}"
        )
