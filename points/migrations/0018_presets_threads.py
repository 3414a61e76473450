# Issue 26 part B: the one-click amounts of a server (a JSON list of points).

from django.db import migrations, models

import points.models


class Migration(migrations.Migration):

    dependencies = [
        ("points", "0017_seasons"),
    ]

    operations = [
        migrations.AddField(
            model_name="guildsettings",
            name="quick_amounts",
            field=models.JSONField(
                default=points.models.quick_amounts_default,
                help_text="The one-click amounts under a market message, in points: a pool "
                "stakes at once (with a 10-second undo), a market maker opens the quote with the "
                "amount filled in.",
            ),
        ),
    ]
