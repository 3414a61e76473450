"""Transfers are append-only (DOMAIN §3): on PostgreSQL a trigger refuses UPDATE and DELETE, so
not even a raw SQL mistake can rewrite history. (TRUNCATE, an operator's
whole-table reset used by the test runner's flush, stays possible.) Mistakes are fixed with a `correction` transfer."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION points_transfer_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'points_transfer is append-only: % refused (use a correction transfer)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER points_transfer_append_only
    BEFORE UPDATE OR DELETE ON points_transfer
    FOR EACH ROW EXECUTE FUNCTION points_transfer_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS points_transfer_append_only ON points_transfer;
DROP FUNCTION IF EXISTS points_transfer_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("points", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
