"""Console pages for issued credit notes (read-only, PDFs)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from import_export.admin import ExportMixin
from unfold.decorators import display

from config.console import (
    ImportExportPermissions,
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    StyledAdmin,
    admin_link,
    format_money,
)
from config.console_export import ExportFieldsForm
from invoices.admin.invoices import DayRangeFilter, documents_download, money_column, short_date, stored_pdf_response
from invoices.einvoicing.templatetags.einvoicing import einvoice_timeline_context
from invoices.models import (
    CreditNote,
    CreditNoteLine,
)
from invoices.resources import CreditNoteResource


class CreditNoteLineInline(ReadOnlyInline):
    model = CreditNoteLine
    fields = ("description", "quantity", "amount_money", "tax", "invoice_line")
    readonly_fields = fields
    show_change_link = False

    @admin.display(description=_("amount excluding tax"))
    def amount_money(self, line: CreditNoteLine) -> str:
        return format_money(line.amount, line.credit_note.currency)

    @admin.display(description=_("tax"))
    def tax(self, line: CreditNoteLine) -> str:
        return f"{format_money(line.tax_amount, line.credit_note.currency)} ({line.tax_rate.normalize():f} %)"


@admin.register(CreditNote)
class CreditNoteAdmin(ImportExportPermissions, ReadOnlyAdminMixin, ExportMixin, StyledAdmin):
    export_form_class = ExportFieldsForm  # the console's (ExportMixin would otherwise win the MRO)
    resource_classes = [CreditNoteResource]
    list_display = (
        "number",
        "invoice_number",
        "customer_name",
        "status_badge",
        "reason",
        "total_money",
        "allocation",
        "issued",
    )
    list_filter = ("status", ("issued_at", DayRangeFilter), "reason", "brand", "currency")
    search_fields = ("number", "invoice__number", "customer__legal_name", "customer__email")
    list_select_related = ("invoice", "customer")
    date_hierarchy = "issued_at"
    inlines = [CreditNoteLineInline]
    actions = ["download_pdf"]
    fieldsets = (
        (
            None,
            {"fields": ("number", "status", "invoice_link", "customer_link", "brand", "reason", "memo", "pdf_link")},
        ),
        (
            _("Amounts"),
            {
                "fields": (
                    "subtotal_money",
                    "tax_total_money",
                    "total_money",
                    "reduced_amount_due_money",
                    "credited_to_balance_money",
                    "refunded_money",
                )
            },
        ),
        (_("Issue"), {"fields": ("issued_at", "acting_user", "content_hash")}),
        (_("E-invoicing"), {"fields": ("einvoice_timeline",)}),
    )
    readonly_fields = (
        "number",
        "status",
        "invoice_link",
        "customer_link",
        "brand",
        "reason",
        "memo",
        "subtotal_money",
        "tax_total_money",
        "total_money",
        "reduced_amount_due_money",
        "credited_to_balance_money",
        "refunded_money",
        "issued_at",
        "acting_user",
        "content_hash",
        "pdf_link",
        "einvoice_timeline",
    )

    subtotal_money = money_column("subtotal", _("subtotal"))
    tax_total_money = money_column("tax_total", _("tax"))
    total_money = money_column("total", _("total"))
    reduced_amount_due_money = money_column("reduced_amount_due", _("reduces amount due by"))
    credited_to_balance_money = money_column("credited_to_balance", _("credited to customer balance"))
    refunded_money = money_column("refunded", _("to refund"))

    @admin.display(description=_("invoice"), ordering="invoice__number")
    def invoice_number(self, note: CreditNote) -> str:
        return format_html('<span class="tarif-nowrap">{}</span>', note.invoice)

    @admin.display(description=_("customer"), ordering="customer__legal_name")
    def customer_name(self, note: CreditNote) -> str:
        name = note.customer.legal_name
        return format_html('<span class="tarif-truncate" title="{}">{}</span>', name, name)

    @display(description=_("status"), ordering="status", label={"issued": "success", "void": "danger"})
    def status_badge(self, note: CreditNote) -> tuple[str, str]:
        return note.status, note.get_status_display()

    @admin.display(description=_("issued"), ordering="issued_at")
    def issued(self, note: CreditNote) -> str:
        return short_date(note.issued_at)

    @admin.display(description=_("allocation"))
    def allocation(self, note: CreditNote) -> str:
        parts = []
        for amount, label in (
            (note.reduced_amount_due, gettext("amount due")),
            (note.credited_to_balance, gettext("balance")),
            (note.refunded, gettext("refund")),
        ):
            if amount:
                parts.append(f"{label} {format_money(amount, note.currency)}")
        return ", ".join(parts) or "—"

    @admin.display(description=_("invoice"))
    def invoice_link(self, note: CreditNote) -> str:
        return admin_link(note.invoice)

    @admin.display(description=_("customer"))
    def customer_link(self, note: CreditNote) -> str:
        return admin_link(note.customer)

    @admin.display(description=_("lifecycle statuses"))
    def einvoice_timeline(self, note: CreditNote) -> str:
        return render_to_string("einvoicing/timeline.html", einvoice_timeline_context(note)) or "—"

    @admin.display(description=_("PDF"))
    def pdf_link(self, note: CreditNote) -> str:
        url = reverse("admin:invoices_creditnote_pdf", args=[note.pk])
        return format_html('<a href="{}">{}</a>', url, gettext("Download PDF (Factur-X)"))

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="invoices_creditnote_pdf",
            ),
            *super().get_urls(),
        ]

    def pdf_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        credit_note = get_object_or_404(CreditNote, pk=object_id)
        if not self.has_view_permission(request, credit_note):
            raise PermissionDenied
        return stored_pdf_response(credit_note=credit_note)

    @admin.action(description=_("Download PDF (Factur-X)"), permissions=["view"])
    def download_pdf(self, request: HttpRequest, queryset: QuerySet[CreditNote]) -> HttpResponse | None:
        return documents_download(self, request, list(queryset))
