from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Lease",
            fields=[
                (
                    "name",
                    models.CharField(max_length=100, primary_key=True, serialize=False),
                ),
                ("holder", models.CharField(blank=True, default="", max_length=200)),
                ("expires_at", models.DateTimeField()),
                ("epoch", models.BigIntegerField(default=0)),
                ("acquired_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={"db_table": "core_lease"},
        ),
    ]
