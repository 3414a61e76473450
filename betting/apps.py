from django.apps import AppConfig


class BettingConfig(AppConfig):
    name = "betting"
    verbose_name = "Betting"

    def ready(self) -> None:
        from markets.holdings import holdings_register
        from markets.services.scheduler import tick_hook_register
        from points.audit import register_invariant

        from .audit import collateral_audit, orders_audit
        from .seasons import seasons_tick_hook
        from .settlement import PositionHoldings

        holdings_register(PositionHoldings())
        register_invariant(collateral_audit)
        register_invariant(orders_audit)
        tick_hook_register(seasons_tick_hook)
