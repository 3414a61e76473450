"""The ledger in the back office (issue 5), one module per page: accounts (`accounts`) and the
member and adjust-balance pages (`member_pages`), transfers (`transfers`), the audit log and its
CSV export (`audit`), servers' settings (`guild_settings`), and the directory with the staff
accounts linked to Discord members (`directory`), and each server's seasons with their final
tables (`seasons`). Accounts, transfers and audit events are
read-only (DOMAIN §3); balances change only through the adjust-balance page, which calls the points
services.

Django's admin autodiscovery imports this package: importing the modules registers their
model admins."""

from . import accounts, audit, directory, guild_settings, seasons, transfers
from .guild_settings import MSG_ROLE_IDS

__all__ = [
    "MSG_ROLE_IDS",
    "accounts",
    "audit",
    "directory",
    "guild_settings",
    "seasons",
    "transfers",
]
