"""The dashboard keeps no data of its own; this unmanaged model only carries its permission."""

from django.db import models


class Dashboard(models.Model):
    """Holder of `dashboard.view_dashboard` (issue 12): the pages and the live socket are for
    active staff users with this permission (the Moderators and Viewers groups have it), not
    for every staff user."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_dashboard", "Can view the dashboard and its live event stream")]

    def __str__(self) -> str:
        return "dashboard"
