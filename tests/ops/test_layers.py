"""The shared core sits below every app: the domain error root is one class wherever it is
imported from, and the apps offer their numbers through the core's registry."""

from core import errors, telemetry
from points import errors as points_errors


def test_points_errors_reexport_the_core_domain_error():
    assert points_errors.DomainError is errors.DomainError
    assert issubclass(points_errors.InsufficientPoints, errors.DomainError)


def test_domain_apps_register_their_gauges_and_the_ledger_audit_at_start_up():
    assert {"markets", "points"} <= {name for name, _ in telemetry.gauge_sources()}
    assert telemetry.ledger_audit_get() is not None
