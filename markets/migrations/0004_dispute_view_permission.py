"""Moderators and Viewers may view disputes (issue 14), as they view every other model of the
back office (points migration 0004)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CODENAMES = ("view_dispute",)


def grant(apps, schema_editor):
    using = schema_editor.connection.alias
    app_config = apps.get_app_config("markets")
    previous = getattr(app_config, "models_module", None)
    app_config.models_module = previous or True
    try:
        create_permissions(app_config, verbosity=0, using=using, apps=apps)
    finally:
        app_config.models_module = previous
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.using(using).filter(
        content_type__app_label="markets", codename__in=CODENAMES
    )
    for group in Group.objects.using(using).filter(name__in=["Moderators", "Viewers"]):
        group.permissions.add(*view)


class Migration(migrations.Migration):
    dependencies = [
        ("markets", "0003_resolving_and_disputes"),
        ("points", "0004_moderator_and_viewer_groups"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
