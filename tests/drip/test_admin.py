"""The "DRIP transfers" admin page: who may decide in-doubt transfers, and that a decision
is made once, audited, and only for in-doubt rows (docs/drip.md)."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from drip import services
from drip.models import DripTransfer
from points.models import AuditEvent
from tests.admin_helpers import messages_of

from .conftest import ALICE, BOB, GUILD

pytestmark = [pytest.mark.django_db(transaction=True)]


def staff(client, *codenames: str):
    user = get_user_model().objects.create_user(
        f"staff-{uuid.uuid4().hex[:8]}", password="x" * 20, is_staff=True
    )
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="drip", codename__in=codenames)
    )
    client.force_login(user)
    return client


def in_doubt_withdrawal(user: int = ALICE, amount: int = 200) -> DripTransfer:
    row = services.drip_withdraw_request(
        guild_id=GUILD, user_id=user, amount=amount, idempotency_key=f"t:{uuid.uuid4().hex}"
    )
    services.drip_batch_claim(guild_id=GUILD)
    services.drip_batch_prepare(
        transfer_ids=[row.pk], before={user: 4_321}, initiator_id=f"pm-drip-{row.pk}"
    )
    services.drip_transfers_in_doubt(transfer_ids=[row.pk], reason="DRIP did not answer")
    row.refresh_from_db()
    return row


def test_moderators_see_in_doubt_rows_with_a_decide_button(client, plain_http, linked):
    row = in_doubt_withdrawal()
    services.drip_withdraw_request(guild_id=GUILD, user_id=BOB, amount=5, idempotency_key="t:b")
    staff(client, "view_driptransfer", "resolve_driptransfer")

    page = client.get(reverse("admin:drip_driptransfer_changelist")).content.decode()
    resolve_url = reverse("admin:drip_driptransfer_resolve", args=[row.pk])
    assert "<strong>in doubt</strong>" in page
    assert page.count("Decide…") == 1 and resolve_url in page
    form = client.get(resolve_url).content.decode()
    assert "DRIP did not answer" in form and "Confirm applied" in form and "Reverse" in form
    # The evidence names the initiatorId to find in DRIP's log, and the balance before.
    assert f"<code>pm-drip-{row.pk}</code>" in form and "before the send: 4321" in form
    detail_url = reverse("admin:drip_driptransfer_change", args=[row.pk])
    detail = client.get(detail_url).content.decode()
    assert f"initiatorId <code>pm-drip-{row.pk}</code>; balance before 4,321" in detail
    services.drip_transfers_note(notes={row.pk: "DRIP balance at 12:00 UTC: 4,521"})
    detail = client.get(detail_url).content.decode()
    assert "balance before 4,321; DRIP balance at 12:00 UTC: 4,521" in detail


def test_viewers_cannot_decide(client, plain_http, linked):
    row = in_doubt_withdrawal()
    staff(client, "view_driptransfer")
    url = reverse("admin:drip_driptransfer_resolve", args=[row.pk])
    assert client.get(url).status_code == 403
    response = client.post(
        url, {"request_id": str(uuid.uuid4()), "decision": "reverse", "reason": "no"}
    )
    assert response.status_code == 403
    row.refresh_from_db()
    assert row.status == "in_doubt"


def test_a_settled_row_cannot_be_decided_again(client, plain_http, linked):
    row = in_doubt_withdrawal()
    staff(client, "view_driptransfer", "resolve_driptransfer")
    url = reverse("admin:drip_driptransfer_resolve", args=[row.pk])
    first = client.post(
        url, {"request_id": str(uuid.uuid4()), "decision": "reverse", "reason": "Not in DRIP."}
    )
    assert "is now Failed (moderator: reversed)" in messages_of(first)[0]
    second = client.post(
        url, {"request_id": str(uuid.uuid4()), "decision": "applied", "reason": "Oops."}
    )
    assert messages_of(second)[-1:] == [
        f"Transfer #{row.pk} is Failed, not in doubt; only in-doubt transfers are resolved."
    ]
    assert (
        AuditEvent.objects.filter(action__startswith="drip_").exclude(action="drip_link").count()
        == 1
    )


def test_a_decision_needs_a_reason(client, plain_http, linked):
    row = in_doubt_withdrawal()
    staff(client, "view_driptransfer", "resolve_driptransfer")
    url = reverse("admin:drip_driptransfer_resolve", args=[row.pk])
    response = client.post(url, {"request_id": str(uuid.uuid4()), "decision": "applied"})
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    row.refresh_from_db()
    assert row.status == "in_doubt"


def test_health_is_degraded_while_transfers_wait_in_doubt(linked, breaker):
    from drip.health import drip_health

    assert drip_health(breaker)[0] == "healthy"
    in_doubt_withdrawal()
    status, details = drip_health(breaker)
    assert status == "degraded"
    assert details["transfers"]["in_doubt"] == 1
    assert "wait for a moderator" in details["message"]
