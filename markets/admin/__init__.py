"""Markets in the back office (issue 5), one module per page: the market list and page
(`market`, its columns and filters in `columns`, its inlines in `inlines`), the decision pages
(`decide`: Resolve and Review proposal; `bulk`: Cancel and refund, Close now; what they read in
`pages`, their forms in `forms`), and the read-only outbox and disputes (`records`). Other apps add
to the market's page through `markets.admin_hooks`, never by this package importing them.

Django's admin autodiscovery imports this package: importing the modules registers their
model admins."""

from . import market, records

__all__ = ["market", "records"]
