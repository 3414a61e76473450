"""Positions and trades in the back office (issue 5): their own read-only lists (`lists`), and
what `betting` adds to other apps' pages through their registration hooks (`contributions`): the
market page's position and trade inlines, its trades CSV and a moderator's own holdings
(`markets.admin_hooks`), and the member page's positions (`core.adminkit`).

Django's admin autodiscovery imports this package: importing the modules registers them."""

from . import contributions, lists

__all__ = ["contributions", "lists"]
