"""The markets' numbers for the operators, offered through `core.telemetry` (registered in
`MarketsConfig.ready()`): markets open by mechanism, and closed markets left unresolved for more
than a day (DOMAIN §6)."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count
from django.utils import timezone

from core.telemetry import Reading

from .models import Market

STALE_AFTER = dt.timedelta(days=1)


def market_gauges() -> list[Reading]:
    now = timezone.now()
    open_by_mechanism = dict(
        Market.objects.filter(status=Market.Status.OPEN)
        .values_list("mechanism")
        .annotate(n=Count("id"))
        .order_by()
    )
    pending = Market.objects.filter(
        status=Market.Status.CLOSED, closed_at__lt=now - STALE_AFTER
    ).count()
    return [
        *(
            Reading(
                "pm_markets_open",
                "Markets open for trading",
                open_by_mechanism.get(mechanism, 0),
                {"mechanism": mechanism},
            )
            for mechanism in Market.Mechanism.values
        ),
        Reading(
            "pm_markets_pending_resolution_stale",
            "Closed markets still unresolved more than a day after closing",
            pending,
        ),
    ]
