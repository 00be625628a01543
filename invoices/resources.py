"""Spreadsheet exports of issued documents, and import/export of tax rates.

Invoices and credit notes are exported only: they are issued by services, never
imported. Amounts are exported in major units ("1234.56") with their currency, the
way an accountant's spreadsheet expects them.
"""

from __future__ import annotations

from typing import Any

from import_export import fields, resources

from config.money import CurrencyError, Money
from invoices.models import CreditNote, Invoice, TaxRate


def major_units(amount: int | None, currency: str) -> str:
    if amount is None:
        return ""
    try:
        return str(Money(int(amount), currency).decimal)
    except (CurrencyError, TypeError, ValueError):
        return str(amount)


class _MoneyExportResource(resources.ModelResource):
    """Exports the integer minor-unit columns listed in `money_fields` as major units."""

    money_fields: tuple[str, ...] = ()

    def export_field(self, field: fields.Field, instance: Any, **kwargs: Any) -> Any:
        if field.attribute in self.money_fields:
            return major_units(getattr(instance, field.attribute), instance.currency)
        return super().export_field(field, instance, **kwargs)


class InvoiceResource(_MoneyExportResource):
    customer = fields.Field(column_name="customer", attribute="customer__legal_name", readonly=True)
    customer_email = fields.Field(column_name="customer_email", attribute="customer__email", readonly=True)
    brand = fields.Field(column_name="brand", attribute="brand__name", readonly=True)

    money_fields = (
        "subtotal",
        "discount_total",
        "tax_total",
        "total_excluding_tax",
        "total",
        "starting_balance_applied",
        "amount_due",
        "amount_paid",
        "amount_remaining",
    )

    class Meta:
        model = Invoice
        fields = (
            "id",
            "number",
            "status",
            "billing_reason",
            "customer",
            "customer_email",
            "brand",
            "currency",
            "subtotal",
            "discount_total",
            "tax_total",
            "total_excluding_tax",
            "total",
            "starting_balance_applied",
            "amount_due",
            "amount_paid",
            "amount_remaining",
            "period_start",
            "period_end",
            "finalized_at",
            "due_at",
            "paid_at",
            "voided_at",
        )

    def get_queryset(self):
        return super().get_queryset().select_related("customer", "brand")


class CreditNoteResource(_MoneyExportResource):
    invoice = fields.Field(column_name="invoice", attribute="invoice__number", readonly=True)
    customer = fields.Field(column_name="customer", attribute="customer__legal_name", readonly=True)

    money_fields = ("subtotal", "tax_total", "total", "reduced_amount_due", "credited_to_balance", "refunded")

    class Meta:
        model = CreditNote
        fields = (
            "id",
            "number",
            "invoice",
            "customer",
            "status",
            "reason",
            "currency",
            "subtotal",
            "tax_total",
            "total",
            "reduced_amount_due",
            "credited_to_balance",
            "refunded",
            "issued_at",
            "memo",
        )

    def get_queryset(self):
        return super().get_queryset().select_related("invoice", "customer")


class TaxRateResource(resources.ModelResource):
    class Meta:
        model = TaxRate
        fields = ("id", "country", "name", "percentage", "is_standard", "active")
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True
        use_transactions = True
