"""The shared core's one table: leases (`core.leases`)."""

from __future__ import annotations

from django.db import models


class Lease(models.Model):
    """Who runs a singleton job (the notifier, the market clock, the DRIP worker) until when.

    A holder renews its row before `expires_at`; anyone may take a row whose time is up. Times
    are the database's clock (`now()`), never a process's, so machines' clocks do not matter.
    `epoch` grows by one at every change of holder (a fencing number for logs and tests)."""

    name = models.CharField(max_length=100, primary_key=True)
    holder = models.CharField(max_length=200, blank=True, default="")
    expires_at = models.DateTimeField()
    epoch = models.BigIntegerField(default=0)
    acquired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "core_lease"

    def __str__(self) -> str:
        return f"{self.name}: {self.holder or 'nobody'} until {self.expires_at:%H:%M:%S}"
