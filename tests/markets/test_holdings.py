"""Settlement reaches positions through the hook `betting` registers (markets.holdings): without
it, settling is refused rather than paying nobody."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from betting.settlement import PositionHoldings
from markets import holdings


def test_betting_registers_the_holdings_at_start_up():
    assert isinstance(holdings.holdings_get(), PositionHoldings)


def test_settling_without_registered_holdings_is_refused(monkeypatch):
    monkeypatch.setattr(holdings, "_registered", [])
    with pytest.raises(ImproperlyConfigured, match="install `betting`"):
        holdings.holdings_get()
