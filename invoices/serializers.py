"""Invoices, credit notes and invoice previews as the integrator API shows them (minor units + currency)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from billing.limits import MAX_QUANTITY, MAX_TOTAL
from billing.models import Price, Subscription
from config.api.ids import public_id
from config.api.serializers import (
    CachedFieldsMixin,
    CurrencyField,
    ExpandableMixin,
    ObjectField,
    PublicIdField,
    PublicIdRelatedField,
    StrictSerializer,
)
from customers.models import Customer
from invoices.models import BalanceTransaction, Brand, CreditNote, Invoice, InvoiceLine
from invoices.types import InvoicePreview


class InvoiceLineSerializer(CachedFieldsMixin, serializers.ModelSerializer):
    id = PublicIdField()
    object = ObjectField("line_item")
    price = PublicIdRelatedField(model=Price, read_only=True)

    class Meta:
        model = InvoiceLine
        fields = (
            "id",
            "object",
            "kind",
            "description",
            "price",
            "quantity",
            "unit_amount",
            "amount",
            "discount_amount",
            "tax_rate",
            "tax_category",
            "tax_inclusive",
            "tax_amount",
            "period_start",
            "period_end",
            "metadata",
        )
        read_only_fields = fields


class InvoiceSummarySerializer(CachedFieldsMixin, ExpandableMixin, serializers.ModelSerializer):
    """An invoice in a list: totals without the lines (retrieve the invoice for its lines)."""

    id = PublicIdField()
    object = ObjectField("invoice")
    customer = PublicIdRelatedField(model=Customer, read_only=True)
    subscription = PublicIdRelatedField(model=Subscription, read_only=True)

    expandable = {
        "customer": ("customers.serializers.CustomerSerializer", "customer"),
        "subscription": ("billing.serializers.SubscriptionSerializer", "subscription"),
    }

    class Meta:
        model = Invoice
        fields = (
            "id",
            "object",
            "number",
            "customer",
            "subscription",
            "status",
            "billing_reason",
            "collection_method",
            "currency",
            "language",
            "period_start",
            "period_end",
            "subtotal",
            "discount_total",
            "tax_total",
            "total_excluding_tax",
            "total",
            "starting_balance_applied",
            "credits_applied",  # prepaid credits (issue 16, wallets)
            "amount_due",
            "amount_paid",
            "amount_remaining",
            "tax_breakdown",
            "memo",
            "due_at",
            "finalized_at",
            "paid_at",
            "voided_at",
            "created_at",
        )
        read_only_fields = fields


# The invoice list is the API's busiest read: it is built from `.values()` rows, without
# model instances or DRF fields (a third of the request each). The output is exactly
# InvoiceSummarySerializer's (a test compares them field by field on every column).
_ID_COLUMNS = {"id": "pk", "customer": "customer_id", "subscription": "subscription_id"}
INVOICE_SUMMARY_COLUMNS = tuple(
    _ID_COLUMNS.get(name, name) for name in InvoiceSummarySerializer.Meta.fields if name != "object"
)
_DATETIME_FIELDS = frozenset(
    name
    for name in INVOICE_SUMMARY_COLUMNS
    if name != "pk" and Invoice._meta.get_field(name).get_internal_type() == "DateTimeField"
)
_DATETIME = serializers.DateTimeField()


def _datetime_formatter() -> Any:
    """DRF's DateTimeField output for an aware datetime, without its per-value checks when the
    format is ISO 8601 (the default): in the current time zone, "Z" for UTC (issue 20: a sixth
    of the list's serializing time went to those checks)."""
    if str(api_settings.DATETIME_FORMAT).lower() != ISO_8601:
        return _DATETIME.to_representation
    zone = timezone.get_current_timezone()

    def iso(value: datetime) -> str:
        if timezone.is_naive(value):
            return _DATETIME.to_representation(value)
        text = value.astimezone(zone).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return iso


def invoice_summary_rows(rows: Any) -> list[dict[str, Any]]:
    """InvoiceSummarySerializer's output for rows of `Invoice.objects.values(*INVOICE_SUMMARY_COLUMNS)`."""
    plain = [name for name in InvoiceSummarySerializer.Meta.fields if name not in _ID_COLUMNS and name != "object"]
    to_text = _datetime_formatter()
    out = []
    for row in rows:
        item: dict[str, Any] = {
            "id": f"in_{row['pk']}",
            "object": "invoice",
            "customer": f"cus_{row['customer_id']}",
            "subscription": None if row["subscription_id"] is None else f"sub_{row['subscription_id']}",
        }
        for name in plain:
            value = row[name]
            item[name] = to_text(value) if name in _DATETIME_FIELDS and value else value
        out.append(item)
    return out


class InvoiceSerializer(InvoiceSummarySerializer):
    lines = InvoiceLineSerializer(many=True, read_only=True)

    class Meta(InvoiceSummarySerializer.Meta):
        fields = (*InvoiceSummarySerializer.Meta.fields, "lines")
        read_only_fields = fields


class CreditNoteSerializer(ExpandableMixin, serializers.ModelSerializer):
    id = PublicIdField()
    object = ObjectField("credit_note")
    invoice = PublicIdRelatedField(model=Invoice, read_only=True)
    customer = PublicIdRelatedField(model=Customer, read_only=True)

    expandable = {
        "invoice": ("invoices.serializers.InvoiceSerializer", "invoice"),
        "customer": ("customers.serializers.CustomerSerializer", "customer"),
    }

    class Meta:
        model = CreditNote
        fields = (
            "id",
            "object",
            "number",
            "invoice",
            "customer",
            "status",
            "reason",
            "memo",
            "currency",
            "subtotal",
            "tax_total",
            "total",
            "reduced_amount_due",
            "credited_to_balance",
            "refunded",
            "tax_breakdown",
            "issued_at",
            "created_at",
        )
        read_only_fields = fields


class CreditNoteLineInputSerializer(StrictSerializer):
    line = PublicIdRelatedField(queryset=InvoiceLine.objects.all(), help_text="The invoice line (il_…) to credit.")
    amount = serializers.IntegerField(
        min_value=1, max_value=MAX_TOTAL, help_text="Minor units to credit on the line, excluding tax."
    )
    quantity = serializers.DecimalField(
        max_digits=20, decimal_places=6, required=False, min_value=0, max_value=MAX_QUANTITY
    )


class CreditNoteCreateSerializer(StrictSerializer):
    invoice = PublicIdRelatedField(queryset=Invoice.objects.all())
    amount = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_TOTAL, help_text="Minor units, tax included."
    )
    lines = CreditNoteLineInputSerializer(many=True, required=False)
    reduce_amount_due = serializers.IntegerField(required=False, min_value=0, max_value=MAX_TOTAL, default=0)
    credit_to_balance = serializers.IntegerField(required=False, min_value=0, max_value=MAX_TOTAL, default=0)
    refund = serializers.IntegerField(required=False, min_value=0, max_value=MAX_TOTAL, default=0)
    reason = serializers.ChoiceField(choices=CreditNote.Reason.choices)
    memo = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class InvoicePayInputSerializer(StrictSerializer):
    paid_out_of_band = serializers.BooleanField(
        default=False,
        help_text="True: record money received outside a gateway (give amount and method); "
        "false: charge the customer's default payment method.",
    )
    amount = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_TOTAL, help_text="Minor units (out of band only)."
    )
    method = serializers.ChoiceField(
        choices=["bank_transfer", "cheque", "cash", "other"], required=False, default="bank_transfer"
    )
    reference = serializers.CharField(required=False, allow_blank=True, default="", max_length=255)


class InvoiceVoidInputSerializer(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)


class PreviewLineSerializer(serializers.Serializer):
    kind = serializers.CharField()
    description = serializers.CharField()
    price = serializers.CharField(allow_null=True)
    quantity = serializers.DecimalField(max_digits=20, decimal_places=6)
    amount = serializers.IntegerField()
    discount_amount = serializers.IntegerField()
    tax_amount = serializers.IntegerField()
    tax_rate = serializers.DecimalField(max_digits=6, decimal_places=3)
    total = serializers.IntegerField()
    period_start = serializers.DateTimeField(allow_null=True)
    period_end = serializers.DateTimeField(allow_null=True)


class InvoicePreviewSerializer(serializers.Serializer):
    """An invoice computed without being saved: the upcoming invoice, or what a change would issue."""

    object = serializers.CharField()
    customer = serializers.CharField()
    currency = serializers.CharField()
    subtotal = serializers.IntegerField()
    discount_total = serializers.IntegerField()
    tax_total = serializers.IntegerField()
    total_excluding_tax = serializers.IntegerField()
    total = serializers.IntegerField()
    credits_applied = serializers.IntegerField(
        help_text="Prepaid credits (wallets) that would pay it, before the balance."
    )
    balance_applied = serializers.IntegerField()
    amount_due = serializers.IntegerField()
    discounts = serializers.ListField(child=serializers.CharField())
    lines = PreviewLineSerializer(many=True)


def invoice_preview_data(preview: InvoicePreview | None) -> dict[str, Any] | None:
    if preview is None:
        return None
    totals = preview.totals
    return {
        "object": "invoice_preview",
        "customer": public_id(None, model=Customer, pk=preview.customer_id),
        "currency": preview.currency,
        "subtotal": totals.subtotal,
        "discount_total": totals.discount_total,
        "tax_total": totals.tax_total,
        "total_excluding_tax": totals.total_excluding_tax,
        "total": totals.total,
        "credits_applied": preview.credits_applied,
        "balance_applied": preview.balance_applied,
        "amount_due": preview.amount_due,
        "discounts": list(preview.discount_labels),
        "lines": [
            {
                "kind": line.draft.kind,
                "description": line.draft.description,
                "price": None if line.draft.price_id is None else public_id(None, model=Price, pk=line.draft.price_id),
                "quantity": line.draft.quantity,
                "amount": line.totals.amount,
                "discount_amount": line.totals.discount_amount,
                "tax_amount": line.totals.tax_amount,
                "tax_rate": line.tax_rate,
                "total": line.totals.total,
                "period_start": line.draft.period_start,
                "period_end": line.draft.period_end,
            }
            for line in preview.lines
        ],
    }


def invoice_preview_response(preview: InvoicePreview | None) -> dict[str, Any] | None:
    data = invoice_preview_data(preview)
    return None if data is None else InvoicePreviewSerializer(data).data


# -- issue 16 (api): customer balance transactions and brands ------------------------


class BalanceTransactionSerializer(serializers.ModelSerializer):
    """One movement of a customer's credit balance (Stripe's customer balance transaction).

    Positive `amount`: credit the customer holds; negative: credit used (Stripe's sign is the
    opposite: there a negative balance is credit)."""

    id = PublicIdField()
    object = ObjectField("customer_balance_transaction")
    customer = PublicIdRelatedField(model=Customer, read_only=True)
    invoice = PublicIdRelatedField(model=Invoice, read_only=True)
    credit_note = PublicIdRelatedField(model=CreditNote, read_only=True)

    class Meta:
        model = BalanceTransaction
        fields = (
            "id",
            "object",
            "customer",
            "amount",
            "currency",
            "kind",
            "description",
            "invoice",
            "credit_note",
            "created_at",
        )
        read_only_fields = fields


class BalanceAdjustInputSerializer(StrictSerializer):
    amount = serializers.IntegerField(
        min_value=-MAX_TOTAL,
        max_value=MAX_TOTAL,
        help_text="Minor units: positive credits the customer, negative debits the credit they hold (never below 0).",
    )
    currency = CurrencyField(help_text="ISO 4217 code in either case; returned upper-case.")
    description = serializers.CharField(max_length=300, help_text="Why: shown to the customer.")


class BrandSerializer(CachedFieldsMixin, serializers.ModelSerializer):
    """A brand (legal entity issuing invoices): its public identity only. Bank details stay in
    the console (they are printed on invoices, not handed to integrators)."""

    id = PublicIdField()
    object = ObjectField("brand")
    logo = serializers.SerializerMethodField(help_text="The logo's URL, or null.")
    # Optional on a brand: "" when unset, which the email and URL formats would not allow.
    email = serializers.CharField(read_only=True, help_text="Billing contact email, or an empty string.")
    website = serializers.CharField(read_only=True, help_text="The brand's website, or an empty string.")

    class Meta:
        model = Brand
        fields = (
            "id",
            "object",
            "slug",
            "name",
            "legal_name",
            "legal_form",
            "address_line1",
            "address_line2",
            "postal_code",
            "city",
            "country",
            "siren",
            "siret",
            "vat_number",
            "share_capital",
            "rcs",
            "email",
            "website",
            "timezone",
            "default_language",
            "primary_colour",
            "accent_colour",
            "layout",
            "font",
            "logo",
            "operation_category",
            "invoice_number_format",
            "credit_note_number_format",
            "vat_on_debits",
            "is_default",
            "created_at",
        )
        read_only_fields = fields

    def get_logo(self, brand: Brand) -> str | None:
        return brand.logo.url if brand.logo else None
