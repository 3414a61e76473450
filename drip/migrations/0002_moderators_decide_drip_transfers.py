"""Moderators may view DRIP links and transfers and decide in-doubt transfers; Viewers may view
them (the groups of points 0004)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    using = schema_editor.connection.alias
    for label in ("contenttypes", "auth", "drip"):
        app_config = apps.get_app_config(label)
        previous = getattr(app_config, "models_module", None)
        app_config.models_module = previous or True
        try:
            create_permissions(app_config, verbosity=0, using=using, apps=apps)
        finally:
            app_config.models_module = previous
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    perms = Permission.objects.using(using).filter(content_type__app_label="drip")
    view = list(perms.filter(codename__startswith="view_"))
    resolve = list(perms.filter(codename="resolve_driptransfer"))
    moderators, _ = Group.objects.using(using).get_or_create(name="Moderators")
    moderators.permissions.add(*view, *resolve)
    viewers, _ = Group.objects.using(using).get_or_create(name="Viewers")
    viewers.permissions.add(*view)


class Migration(migrations.Migration):
    dependencies = [
        ("drip", "0001_initial"),
        ("points", "0004_moderator_and_viewer_groups"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
