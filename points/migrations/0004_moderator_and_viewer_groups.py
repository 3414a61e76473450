"""The two staff roles of the back office (issue 5):

- **Moderators** may resolve, cancel and close markets and adjust balances, and view everything
  in the points, markets and betting apps;
- **Viewers** may only view those apps.

Permissions are normally created by a `post_migrate` signal, i.e. only after *all* migrations
ran, so on a fresh database they do not exist yet when this migration runs. We create them here
first with `create_permissions` for the apps involved (idempotent), then assign them.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

APPS = ("points", "markets", "betting")
MODERATOR_PERMISSIONS = (
    ("markets", "resolve_market"),
    ("markets", "cancel_market"),
    ("markets", "close_market"),
    ("points", "adjust_balance"),
)


def _ensure_permissions(apps, using):
    for label in ("contenttypes", "auth", *APPS):
        app_config = apps.get_app_config(label)
        # Historical app configs have no models module, and create_permissions skips those.
        previous = getattr(app_config, "models_module", None)
        app_config.models_module = previous or True
        try:
            create_permissions(app_config, verbosity=0, using=using, apps=apps)
        finally:
            app_config.models_module = previous


def create_groups(apps, schema_editor):
    using = schema_editor.connection.alias
    _ensure_permissions(apps, using)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = list(
        Permission.objects.using(using).filter(
            content_type__app_label__in=APPS, codename__startswith="view_"
        )
    )
    custom = []
    for app_label, codename in MODERATOR_PERMISSIONS:
        custom.append(
            Permission.objects.using(using).get(
                content_type__app_label=app_label, codename=codename
            )
        )
    moderators, _ = Group.objects.using(using).get_or_create(name="Moderators")
    moderators.permissions.add(*view, *custom)
    viewers, _ = Group.objects.using(using).get_or_create(name="Viewers")
    viewers.permissions.add(*view)


def remove_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(
        name__in=["Moderators", "Viewers"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("points", "0003_account_adjust_balance_permission"),
        ("markets", "0001_initial"),
        ("betting", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
