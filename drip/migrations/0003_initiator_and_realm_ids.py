"""Evidence for in-doubt transfers (the `initiatorId` sent and DRIP's balance before), and
realm ids in DRIP's form (24 hex characters, the OpenAPI `realmId` pattern).

Existing links whose realm id is not 24 hex characters cannot be a real DRIP realm: they are
kept (nothing is deleted, their transfers stay) but disabled, with `last_error` telling
moderators to link the realm again with its real id. Withdrawals already queued for them wait,
untouched, until it is."""

import re

from django.db import migrations, models

REALM_ID_RE = re.compile(r"^[0-9a-fA-F]{24}$")
MESSAGE = (
    "Disabled: the realm id is not DRIP's form (24 hex characters). Link the realm again with "
    "/settings drip and the id from the DRIP dashboard header."
)


def disable_bad_realm_ids(apps, schema_editor):
    DripLink = apps.get_model("drip", "DripLink")
    for link in DripLink.objects.all():
        if not REALM_ID_RE.fullmatch(link.realm_id or ""):
            link.enabled = False
            link.last_error = MESSAGE
            link.save(update_fields=["enabled", "last_error"])


class Migration(migrations.Migration):
    dependencies = [("drip", "0002_moderators_decide_drip_transfers")]

    operations = [
        migrations.AddField(
            model_name="driptransfer",
            name="drip_balance_before",
            field=models.BigIntegerField(
                blank=True,
                help_text="The member's DRIP balance DRIP showed before the send",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="driptransfer",
            name="initiator_id",
            field=models.CharField(
                blank=True,
                help_text="The initiatorId sent with the write: find it in DRIP's activity log",
                max_length=64,
            ),
        ),
        migrations.RunPython(disable_bad_realm_ids, migrations.RunPython.noop),
    ]
