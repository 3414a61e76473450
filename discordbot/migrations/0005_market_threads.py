# Issue 26 part B: a discussion thread per market.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("discordbot", "0004_market_messages"),
    ]

    operations = [
        migrations.CreateModel(
            name="MarketThread",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("market_id", models.BigIntegerField(unique=True)),
                ("channel_id", models.BigIntegerField()),
                ("message_id", models.BigIntegerField()),
                ("thread_id", models.BigIntegerField(blank=True, null=True)),
                ("detail", models.CharField(blank=True, max_length=200)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
