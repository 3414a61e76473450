"""`manage.py dripfake` serves the fake DRIP for demos, and refuses a bad `--member`."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from drip.client import DripClient, breaker_new

BASE_DIR = Path(settings.BASE_DIR)


def test_dripfake_serves_a_realm_the_client_can_use():
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DJANGO_TESTING": "1"}
    fake = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "dripfake",
            "--port",
            "0",
            "--key",
            "demo-key-0123456789",
            "--member",
            "222222222222222201:1000",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        printed = ""
        while "realm_point_id:" not in printed:
            line = fake.stdout.readline()
            assert line, printed
            printed += line
        # Every value /settings drip needs, and the same environment lines for bot and worker.
        url = re.search(r"^DRIP_API_BASE=(http://127\.0\.0\.1:\d+/api/v1)$", printed, re.M).group(1)
        assert re.search(
            r"^PM_ENCRYPTION_KEY=\S{44}$|PM_ENCRYPTION_KEY is already set", printed, re.M
        )
        realm = re.search(r"realm_id: ([0-9a-f]{24})$", printed, re.M).group(1)
        key = re.search(r"api_key: (\S+)$", printed, re.M).group(1)
        point = re.search(r"realm_point_id: (\S+)$", printed, re.M).group(1)
        assert key == "demo-key-0123456789"
        assert ".venv/bin/python manage.py runbot" in printed

        async def spend():
            client = DripClient(base_url=url, timeout=2.0, breaker=breaker_new())
            try:
                return await client.balance_update(
                    realm_id=realm,
                    api_key=key,
                    user_id=222222222222222201,
                    amount=-250,
                    initiator_id="pm-drip-1",
                    realm_point_id=point,
                )
            finally:
                await client.close()

        assert asyncio.run(spend()).balance == 750
    finally:
        fake.send_signal(signal.SIGTERM)
        assert fake.wait(60) == 0  # a hang guard: at load 30 the exit took over 10 s


def test_dripfake_refuses_a_malformed_member():
    result = subprocess.run(
        [sys.executable, "manage.py", "dripfake", "--member", "alice:lots"],
        cwd=BASE_DIR,
        env={**os.environ, "DJANGO_TESTING": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "--member wants DISCORD_ID:BALANCE, got 'alice:lots'" in result.stderr
    assert "Traceback" not in result.stderr
