"""What a server owner following the README meets (issue 23, item 21): the commands as typed, a
`.env.example` that agrees with `make run`, and `serve` saying why the bot did not start."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable  # the project's .venv/bin/python when run through make


def _readme_without_drip() -> str:
    """The README but its DRIP section (docs/drip.md's owner keeps that one)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.sub(r"\n## DRIP realm points\n.*?(?=\n## )", "\n", text, flags=re.S)


def test_readme_types_manage_py_with_the_projects_python():
    """A bare `python manage.py …` fails with "No module named 'django'" outside the venv."""
    bare = [
        line.strip()
        for line in _readme_without_drip().splitlines()
        if re.search(r"(?<![/\w])python3? manage\.py", line)
    ]
    assert bare == []
    assert ".venv/bin/python manage.py createsuperuser" in _readme_without_drip()


def _example_values() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    assert all(not line or line.startswith("#") for line in lines), (
        "every variable of .env.example is optional and commented: `make run` writes .env"
    )
    return dict(
        match.groups() for line in lines if (match := re.fullmatch(r"# ([A-Z_]+)=(.*)", line))
    )


def test_env_example_documents_working_values_that_agree_with_make_run():
    values = _example_values()
    assert values["DJANGO_DEBUG"] == "1"  # what `make run` writes, not the 0 that needs a key
    # The database role and name are the ones the README creates.
    assert values["DATABASE_URL"] == "postgres://pm@127.0.0.1:5432/pm"
    assert "createuser -h 127.0.0.1 -U postgres --createdb pm" in (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\.env:\s*$", makefile, re.M), ".env is written only when missing"

    # Every value, uncommented, is one the settings accept.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DISCORD_"))}
    env.update(values)
    env["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    result = subprocess.run(
        [PYTHON, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_serve_says_the_bot_did_not_start_without_a_token(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISCORD_")}
    env.update(DJANGO_DEBUG="1", DISCORD_TOKEN="")
    out = tmp_path / "serve.out"
    with out.open("w") as sink:
        process = subprocess.Popen(
            [PYTHON, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while "did not start" not in out.read_text() and time.monotonic() < deadline:
                assert process.poll() is None, out.read_text()
                time.sleep(0.2)
        finally:
            process.terminate()
            process.wait(timeout=30)
    text = out.read_text()
    assert f"Serving on http://127.0.0.1:{port}/admin/ (Ctrl+C to stop)" in text
    assert "The Discord bot did not start: DISCORD_TOKEN is not set" in text
