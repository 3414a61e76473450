"""Issue 27 item 7 and issue 22 rows 8–9: a malformed PM_ENCRYPTION_KEY is flagged by
`manage.py check --deploy` and by the DRIP worker's `/health/ready`; a key the worker cannot
decrypt is shown to moderators on the DRIP link and in that probe — never to members."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.urls import reverse

from drip.health import worker_health_start, worker_readiness
from drip.models import DripLink
from drip.worker import DripWorker, key_problems

from .conftest import GUILD, link_guild

BASE_DIR = Path(django_settings.BASE_DIR)


def test_check_deploy_flags_a_malformed_encryption_key():
    env = {**os.environ, "DJANGO_TESTING": "1", "PM_ENCRYPTION_KEY": "notakey"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "drip.E001" in result.stderr and "PM_ENCRYPTION_KEY is not a valid list" in result.stderr
    assert "notakey" not in result.stderr  # the key itself is never echoed
    assert "Traceback" not in result.stderr


def test_the_system_check_passes_a_good_key_and_an_absent_one(settings):
    settings.PM_ENCRYPTION_KEY = Fernet.generate_key().decode()
    call_command("check", "drip")
    settings.PM_ENCRYPTION_KEY = ""  # DRIP is optional
    call_command("check", "drip")
    settings.PM_ENCRYPTION_KEY = "notakey"
    with pytest.raises(SystemCheckError, match=r"drip\.E001"):
        call_command("check", "drip")


@pytest.mark.django_db(transaction=True)
def test_worker_ready_is_unhealthy_with_a_malformed_key(settings):
    settings.PM_ENCRYPTION_KEY = "notakey"
    body, status = worker_readiness()
    assert status == 503 and body["status"] == "unhealthy"
    (drip,) = [c for c in body["checks"] if c["name"] == "drip_key"]
    assert "PM_ENCRYPTION_KEY is not a valid list" in drip["details"]["message"]

    async def probe():
        runner = await worker_health_start("127.0.0.1", 0)
        port = runner.addresses[0][1]
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/health/ready") as response,
            ):
                return response.status, await response.json()
        finally:
            await runner.cleanup()

    status, body = asyncio.run(probe())
    assert status == 503 and "notakey" not in str(body)


@pytest.mark.django_db(transaction=True)
def test_a_key_the_worker_cannot_decrypt_shows_on_the_link_and_in_readiness(
    fake, settings, breaker, admin_client, plain_http
):
    from drip import services

    link_guild()
    services.drip_withdraw_request(
        guild_id=GUILD, user_id=222222222222222201, amount=5, idempotency_key="t:undecryptable"
    )
    settings.PM_ENCRYPTION_KEY = Fernet.generate_key().decode()  # the old key is lost
    key_problems.clear()

    async def one_pass():
        from drip.client import DripClient

        client = DripClient(base_url=fake.base_url, timeout=1.0, breaker=breaker)
        try:
            return await DripWorker(client=client).run_once()
        finally:
            await client.close()

    report = asyncio.run(one_pass())
    assert report.batches == [] and fake.requests() == []
    link = DripLink.objects.get()
    assert "can't be decrypted with PM_ENCRYPTION_KEY" in link.last_error
    page = admin_client.get(reverse("admin:drip_driplink_changelist")).content.decode()
    assert "can&#x27;t be decrypted with PM_ENCRYPTION_KEY" in page  # moderators see it
    body, status = worker_readiness()
    assert status == 503 and str(GUILD) in body["checks"][1]["details"]["guilds"]
    key_problems.clear()
