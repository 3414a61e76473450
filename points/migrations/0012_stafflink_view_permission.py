"""Moderators and Viewers may view the staff Discord links (issue 14: which back-office account
is which Discord member), as they view every other model of the back office (migration 0004).
Only superusers add, change or delete them."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CODENAMES = ("view_stafflink",)


def grant(apps, schema_editor):
    using = schema_editor.connection.alias
    app_config = apps.get_app_config("points")
    previous = getattr(app_config, "models_module", None)
    app_config.models_module = previous or True
    try:
        create_permissions(app_config, verbosity=0, using=using, apps=apps)
    finally:
        app_config.models_module = previous
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.using(using).filter(
        content_type__app_label="points", codename__in=CODENAMES
    )
    for group in Group.objects.using(using).filter(name__in=["Moderators", "Viewers"]):
        group.permissions.add(*view)


class Migration(migrations.Migration):
    dependencies = [("points", "0011_moderator_channel_staff_link")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
