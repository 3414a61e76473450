"""What domain code tells the rest of the house, as Django signals.

Domain apps send these so that telemetry can count what happened without the domain importing
it: `ops` connects its counters in `OpsConfig.ready()`. They are notices for operators, never part
of a use case's flow (STYLE §1): a receiver must not raise, and senders send them after commit when
they describe a commit.
"""

from django.dispatch import Signal

# A trade committed. Arguments: mechanism ("amm" | "parimutuel"), kind ("buy" | "sell" |
# "stake"), amount (points moved, gross).
trade_committed = Signal()

# A market changed state. Arguments: event ("created" | "closed" | "resolved" | "cancelled"),
# mechanism.
market_transitioned = Signal()

# A market event could not be handed to the dashboard's channel layer (e.g. Redis down).
dashboard_publish_failed = Signal()

# A use case hit a transient database error and is being run again. Arguments: operation (the
# use case's qualified name), sqlstate (or None).
transient_error_retried = Signal()

# The market scheduler finished a tick: a good moment to refresh the business gauges.
scheduler_ticked = Signal()
