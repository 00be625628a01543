"""URLs of the console's Accounting section (included under admin/accounting/ by config/urls.py)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from invoices.ledger import console

urlpatterns = [
    path("", admin.site.admin_view(console.journal_view), name="accounting_journal"),
    path("entries/<int:entry_id>/", admin.site.admin_view(console.entry_view), name="accounting_entry"),
    path("trial-balance/", admin.site.admin_view(console.trial_balance_view), name="accounting_trial_balance"),
    path("vat/", admin.site.admin_view(console.vat_view), name="accounting_vat"),
    path("periods/", admin.site.admin_view(console.periods_view), name="accounting_periods"),
    path("reconciliation/", admin.site.admin_view(console.reconciliation_view), name="accounting_reconciliation"),
    path("exports/", admin.site.admin_view(console.exports_view), name="accounting_exports"),
    path("exports/fec/", admin.site.admin_view(console.fec_download_view), name="accounting_fec_download"),
    path(
        "exports/<int:export_id>/download/",
        admin.site.admin_view(console.export_download_view),
        name="accounting_export_download",
    ),
]
