"""URLs of the console's Accounting section (included under admin/accounting/ by config/urls.py)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin
from django.http import HttpResponse
from django.urls import path

from invoices.ledger import console


def page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """An Accounting page: the console's login and permissions, and a message when no brand exists."""
    return admin.site.admin_view(console.with_brand(view))


urlpatterns = [
    path("", page(console.journal_view), name="accounting_journal"),
    path(
        "entries/<int:entry_id>/",
        page(console.entry_view),
        name="accounting_entry",
    ),
    path(
        "trial-balance/",
        page(console.trial_balance_view),
        name="accounting_trial_balance",
    ),
    path("vat/", page(console.vat_view), name="accounting_vat"),
    path("periods/", page(console.periods_view), name="accounting_periods"),
    path(
        "reconciliation/",
        page(console.reconciliation_view),
        name="accounting_reconciliation",
    ),
    path("exports/", page(console.exports_view), name="accounting_exports"),
    path(
        "exports/fec/",
        page(console.fec_download_view),
        name="accounting_fec_download",
    ),
    path(
        "exports/<int:export_id>/download/",
        page(console.export_download_view),
        name="accounting_export_download",
    ),
    path("settings/", page(console.settings_view), name="accounting_settings"),
]
