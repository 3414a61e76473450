"""The use-case decorator refuses a half-declared idempotency at import time. What it does at run
time (replay, conflict, lost races) is tested through the real use cases in every app."""

from __future__ import annotations

import pytest

from points.usecase import use_case


def test_use_case_needs_lookup_and_matches_together():
    with pytest.raises(TypeError, match="both `lookup` and `matches`"):
        use_case(lookup=lambda key: None)  # type: ignore[call-overload]


def test_use_case_needs_the_key_argument():
    with pytest.raises(TypeError, match="has no `idempotency_key` argument"):

        @use_case(lookup=lambda key: None, matches=lambda first, call: True)
        def no_key(*, amount: int) -> int:
            return amount
