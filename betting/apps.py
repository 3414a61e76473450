from django.apps import AppConfig


class BettingConfig(AppConfig):
    name = "betting"
    verbose_name = "Betting"

    def ready(self) -> None:
        from markets.holdings import holdings_register
        from points.audit import register_invariant

        from .audit import collateral_audit
        from .settlement import PositionHoldings

        holdings_register(PositionHoldings())
        register_invariant(collateral_audit)
