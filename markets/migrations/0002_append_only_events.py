"""The outbox (`MarketEvent`) and the audit log (`AuditEvent`) are append-only (DOMAIN §6): on
PostgreSQL a trigger refuses UPDATE and DELETE on both, as on transfers."""

from django.db import migrations

TABLES = ["markets_marketevent", "points_auditevent"]

CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION pm_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CREATE_FUNCTION, params=None)
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION pm_append_only();",
            params=None,
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};")
    schema_editor.execute("DROP FUNCTION IF EXISTS pm_append_only();")


class Migration(migrations.Migration):
    dependencies = [("markets", "0001_initial"), ("points", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
