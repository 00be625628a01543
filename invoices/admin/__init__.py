"""The operator console for invoices, one module per area; importing the package registers them.

invoices (list, chart, drafts, finalize, void, credit notes, PDFs), credit_notes, settings
(brands, custom fields, number series, tax rates, balance ledger); charts holds the list's
chart data. The shared toolkit lives in `config.console`.
"""

from invoices.admin import charts, credit_notes, invoices, settings  # noqa: F401
