"""Give `dashboard.view_dashboard` to the Moderators and Viewers groups (issue 12). Permissions
are created by `post_migrate`, after every migration, so it is created here first (as in
points/migrations/0004)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = ("Moderators", "Viewers")


def grant(apps, schema_editor):
    using = schema_editor.connection.alias
    for label in ("contenttypes", "auth", "dashboard"):
        app_config = apps.get_app_config(label)
        previous = getattr(app_config, "models_module", None)
        app_config.models_module = previous or True
        try:
            create_permissions(app_config, verbosity=0, using=using, apps=apps)
        finally:
            app_config.models_module = previous
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.using(using).get(
        content_type__app_label="dashboard", codename="view_dashboard"
    )
    for name in GROUPS:
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.add(permission)


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.using(schema_editor.connection.alias).filter(
        content_type__app_label="dashboard", codename="view_dashboard"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0001_initial"),
        ("points", "0004_moderator_and_viewer_groups"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
