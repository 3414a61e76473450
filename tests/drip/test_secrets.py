"""The DRIP API key never leaves the process except in DRIP's `Authorization` header: not in
logs, Sentry events, admin pages or error messages; at rest it is Fernet-encrypted, and the
encryption key rotates with MultiFernet (docs/drip.md)."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.urls import reverse

from drip import crypto, selectors
from drip.client import DripAuth, DripClient
from drip.errors import refusal_for
from drip.models import DripLink
from ops.logging import ConsoleFormatter, JsonFormatter, error_capture
from ops.redaction import FILTERED, scrub_text
from ops.sentry import sentry_init
from tests.ops.test_sentry import CapturingTransport

from .conftest import API_KEY, GUILD, POINT, REALM, link_guild

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sentry():
    import sentry_sdk

    transport = CapturingTransport()
    assert sentry_init(
        dsn="https://public@sentry.example.invalid/1", environment="test", transport=transport
    )
    try:
        yield transport
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init(dsn=None)


def test_the_key_is_encrypted_at_rest_and_never_in_the_row(fake):
    link = link_guild()
    stored = DripLink.objects.values_list("api_key_encrypted", flat=True).get()
    assert API_KEY not in stored
    assert Fernet(crypto._keys()[0].encode()).decrypt(stored.encode()).decode() == API_KEY
    assert selectors.drip_link_credentials(guild_id=GUILD).api_key == API_KEY
    assert API_KEY not in repr(selectors.drip_link_credentials(guild_id=GUILD))
    assert link.realm_id == REALM


def test_without_an_encryption_key_linking_is_refused_in_one_line(settings, fake):
    settings.PM_ENCRYPTION_KEY = ""
    with pytest.raises(crypto.EncryptionUnavailable) as refused:
        link_guild()
    assert str(refused.value) == crypto.MSG_NO_ENCRYPTION_KEY
    assert "\n" not in str(refused.value)
    assert DripLink.objects.count() == 0


def test_rotation_with_multifernet_re_encrypts_every_key(settings, fake):
    old = settings.PM_ENCRYPTION_KEY
    link_guild()
    before = DripLink.objects.get().api_key_encrypted
    new = Fernet.generate_key().decode()
    settings.PM_ENCRYPTION_KEY = f"{new},{old}"  # new first: encrypts; old still decrypts
    assert selectors.drip_link_credentials(guild_id=GUILD).api_key == API_KEY

    out = io.StringIO()
    call_command("drip_rotate_key", stdout=out)
    assert "Re-encrypted 1 DRIP API key(s)" in out.getvalue()
    after = DripLink.objects.get().api_key_encrypted
    assert after != before
    settings.PM_ENCRYPTION_KEY = new  # the old key can go now
    assert selectors.drip_link_credentials(guild_id=GUILD).api_key == API_KEY

    settings.PM_ENCRYPTION_KEY = Fernet.generate_key().decode()  # a lost key: a clear refusal
    with pytest.raises(crypto.EncryptionUnavailable) as caught:
        selectors.drip_link_credentials(guild_id=GUILD)
    assert "needs a moderator's attention" in caught.value.message  # member words
    assert "can't be decrypted" in caught.value.details["host"]  # for moderators and the host


def test_the_key_is_in_no_log_line_sentry_event_or_error_message(fake, sentry, caplog, breaker):
    link_guild(api_key=API_KEY)
    creds = selectors.drip_link_credentials(guild_id=GUILD)
    fake.realms[REALM].api_key = "drip-live-rotated-by-someone-else"  # DRIP now refuses ours

    async def call():
        client = DripClient(base_url=fake.base_url, timeout=1.0, breaker=breaker)
        try:
            await client.balance_update(
                realm_id=creds.realm_id,
                api_key=creds.api_key,
                user_id=1,
                amount=-1,
                initiator_id="pm-drip-1",
                realm_point_id=POINT,
            )
        finally:
            await client.close()

    caplog.set_level(logging.DEBUG)
    with pytest.raises(DripAuth) as caught:
        asyncio.run(call())
    message = refusal_for(caught.value).message
    # An error that drags the key along in every way it could: message, locals, extra.
    api_key = creds.api_key
    try:
        raise RuntimeError(f"DRIP call with key {api_key} and header Bearer {api_key}")
    except RuntimeError as exc:
        error_capture(exc, logger=logging.getLogger("drip.test"), message=f"failed {api_key}")
    logging.getLogger("drip.test").warning("auth %s", {"api_key": api_key, "key": api_key})

    assert API_KEY not in message and API_KEY not in str(caught.value)
    assert len(caplog.records) >= 3, "nothing was logged"
    for formatter in (JsonFormatter(), ConsoleFormatter()):  # what the handlers write
        lines = "\n".join(formatter.format(record) for record in caplog.records)
        assert API_KEY not in lines
        assert FILTERED in lines
    assert sentry.events, "no Sentry event was captured"
    assert API_KEY.encode() not in sentry.raw()
    assert scrub_text(f"x {API_KEY} y") == f"x {FILTERED} y"


def test_admin_pages_never_show_the_key(fake, admin_client, plain_http):
    link_guild()
    stored = DripLink.objects.get().api_key_encrypted
    pages = [
        reverse("admin:drip_driplink_changelist"),
        reverse("admin:drip_driplink_change", args=[GUILD]),
        reverse("admin:drip_driptransfer_changelist"),
        reverse("admin:points_auditevent_changelist"),
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert API_KEY not in body and stored not in body, url
    detail = admin_client.get(pages[1]).content.decode()
    assert "stored encrypted (never shown)" in detail
