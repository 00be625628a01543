"""Forms of the invoice editor and of the invoice page's actions, with django-unfold's widgets."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelect
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from unfold.widgets import (
    UnfoldAdminRadioSelectWidget,
    UnfoldAdminSelect2Widget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
)

from billing.limits import MAX_QUANTITY, MAX_TOTAL
from billing.models import Payment, Price
from billing.resources import cycle_to_text
from config.console import MajorAmountField, format_minor_decimal, format_money, major_to_money
from config.mfa import OtpField
from config.modes import scope_to_mode
from config.money import currency_exponent
from customers.models import Customer
from invoices.models import CreditNote, Invoice, InvoiceLine, TaxRate
from invoices.services.documents import DEFAULT_DAYS_UNTIL_DUE, SEND_INVOICE

AUTOMATIC_TAX = "auto"


def unfold_widgets(form: forms.BaseForm) -> None:
    """Give a plain form's fields the console's (unfold's) widgets, keeping their attributes."""
    for field in form.fields.values():
        widget = field.widget
        if isinstance(widget, AutocompleteSelect | UnfoldAdminSelect2Widget | forms.HiddenInput):
            continue
        attrs = dict(widget.attrs)
        attrs.pop("class", None)
        if isinstance(widget, forms.Textarea):
            field.widget = UnfoldAdminTextareaWidget(attrs=attrs)
        elif isinstance(widget, forms.Select):
            field.widget = UnfoldAdminSelectWidget(attrs=attrs, choices=widget.choices)
        elif isinstance(widget, forms.DateInput):
            attrs["type"] = "date"
            new = UnfoldAdminTextInputWidget(attrs=attrs)
            new.input_type = "date"
            field.widget = new
        elif isinstance(widget, forms.TextInput | forms.NumberInput):
            new = UnfoldAdminTextInputWidget(attrs=attrs)
            new.input_type = widget.input_type
            field.widget = new


def price_label(price: Price) -> str:
    """ "Nuage Pro — Monthly · €29.00 every month" for the price picker."""
    if price.scheme in (Price.Scheme.TIERED_GRADUATED, Price.Scheme.TIERED_VOLUME):
        amount = price.get_scheme_display()
    else:
        amount = format_minor_decimal(price.unit_amount, price.currency)
        if price.scheme == Price.Scheme.PACKAGE and price.package_size > 1:
            amount = gettext("%(amount)s per %(size)d") % {"amount": amount, "size": price.package_size}
    cycle = cycle_to_text(price.cycle) if price.cycle else gettext("one-time")
    name = price.product.name + (f" — {price.nickname}" if price.nickname else "")
    return f"{name} · {amount} {cycle}"


class DraftCreateForm(forms.Form):
    customer = forms.ModelChoiceField(label=_("Customer"), queryset=Customer.objects.none())
    collection_method = forms.ChoiceField(
        label=_("Collection"),
        choices=[
            (SEND_INVOICE, _("Send the invoice; the customer pays by transfer")),
            ("charge_automatically", _("Charge the customer's default payment method")),
        ],
        initial=SEND_INVOICE,
    )
    days_until_due = forms.IntegerField(
        label=_("Days until due"),
        min_value=0,
        max_value=365,
        initial=DEFAULT_DAYS_UNTIL_DUE,
        help_text=_("For sent invoices: the due date is this many days after finalization."),
    )
    memo = forms.CharField(
        label=_("Memo"),
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Printed on the invoice."),
    )

    def __init__(self, *args: Any, admin_site: admin.AdminSite, livemode: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        unfold_widgets(self)
        field = self.fields["customer"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = scope_to_mode(Customer.objects.all(), livemode=livemode)
        field.widget = AutocompleteSelect(Invoice._meta.get_field("customer"), admin_site)
        field.widget.choices = field.choices


class DraftLineForm(forms.Form):
    """One line: a catalog price or a description with a unit amount (major units); quantity; tax."""

    price = forms.ModelChoiceField(
        label=_("Price"),
        queryset=Price.objects.none(),
        required=False,
        help_text=_("Search by product or nickname; leave empty to type a description and an amount."),
    )
    description = forms.CharField(label=_("Description"), max_length=300, required=False)
    unit_amount = MajorAmountField(
        label=_("Unit amount (excluding tax)"),
        required=False,
        widget=UnfoldAdminTextInputWidget(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    quantity = forms.IntegerField(label=_("Quantity"), min_value=1, max_value=MAX_QUANTITY, initial=1)
    tax = forms.ChoiceField(label=_("Tax"))

    def __init__(self, *args: Any, invoice: Invoice, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invoice = invoice
        unfold_widgets(self)
        prices = (
            scope_to_mode(Price.objects.all(), livemode=invoice.customer.livemode)
            .filter(active=True, currency__iexact=invoice.currency)
            .exclude(usage_type=Price.UsageType.METERED)
            .select_related("product")
            .order_by("product__name", "nickname", "pk")
        )
        price_field = self.fields["price"]
        assert isinstance(price_field, forms.ModelChoiceField)
        price_field.queryset = prices
        price_field.label_from_instance = price_label  # type: ignore[method-assign]
        price_field.widget = UnfoldAdminSelect2Widget(attrs={"data-allow-clear": "true", "data-placeholder": "—"})
        price_field.widget.choices = price_field.choices
        rates = TaxRate.objects.filter(active=True).order_by("country", "-is_standard", "percentage")
        self.rates = {str(rate.pk): rate for rate in rates}
        tax_field = self.fields["tax"]
        assert isinstance(tax_field, forms.ChoiceField)
        rates_items = self.rates.items()
        tax_field.choices = [
            (AUTOMATIC_TAX, gettext("Automatic VAT (brand and customer's country)")),
            *((key, f"{rate.name} {rate.country} {rate.percentage.normalize():f} %") for key, rate in rates_items),
        ]
        tax_field.widget.choices = tax_field.choices
        tax_field.initial = AUTOMATIC_TAX

    @classmethod
    def initial_for(cls, line: InvoiceLine) -> dict[str, Any]:
        rate_id = (line.metadata or {}).get("tax_rate_id")
        quantity = int(line.quantity) if line.quantity == int(line.quantity) else 1
        initial: dict[str, Any] = {
            "description": line.description,
            "quantity": quantity,
            "tax": str(rate_id) if rate_id else AUTOMATIC_TAX,
        }
        if line.price_id:
            initial["price"] = line.price_id
        else:
            unit = line.unit_amount if line.unit_amount is not None else Decimal(line.amount)
            exponent = currency_exponent(line.invoice.currency)
            initial["unit_amount"] = Decimal(unit).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))
        return initial

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        if cleaned.get("price") is None:
            if not (cleaned.get("unit_amount") or "").strip():
                self.add_error("unit_amount", gettext("Pick a price, or type an amount."))
                return cleaned
            money = major_to_money(self, "unit_amount", self.invoice.currency, minimum=1, maximum=MAX_TOTAL)
            cleaned["amount_minor"] = money.amount if money is not None else None
        else:
            cleaned["amount_minor"] = None
        return cleaned

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        tax = data.get("tax")
        return {
            "description": data.get("description") or "",
            "amount": data.get("amount_minor"),
            "price": data.get("price"),
            "quantity": data["quantity"],
            "tax_rate": None if tax == AUTOMATIC_TAX else self.rates.get(tax or ""),
        }


class VoidForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=200,
        help_text=_("Kept with the voided invoice and shown in its history."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        unfold_widgets(self)


class WriteOffForm(forms.Form):
    otp_token = OtpField(
        help_text=_(
            "A new code from your authenticator app: writing invoices off needs a fresh two-factor "
            "verification (not asked again for a few minutes after one)."
        )
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        unfold_widgets(self)


MANUAL_METHOD_CHOICES = [
    (Payment.Method.BANK_TRANSFER, _("bank transfer")),
    (Payment.Method.CHEQUE, _("cheque")),
    (Payment.Method.CASH, _("cash")),
    (Payment.Method.OTHER, _("other")),
]


class RecordPaymentForm(forms.Form):
    amount = MajorAmountField(label=_("Amount received"))
    received_on = forms.DateField(label=_("Received on"), widget=forms.DateInput(format="%Y-%m-%d"))
    method = forms.ChoiceField(label=_("Method"), choices=MANUAL_METHOD_CHOICES)
    reference = forms.CharField(
        label=_("Reference"), required=False, max_length=100, help_text=_("e.g. the bank transfer's reference.")
    )
    token = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, invoice: Invoice, today: date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invoice = invoice
        self.today = today
        unfold_widgets(self)
        amount = self.fields["amount"]
        amount.widget = UnfoldAdminTextInputWidget(attrs={"inputmode": "decimal", "autocomplete": "off"})

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        money = major_to_money(self, "amount", self.invoice.currency, minimum=1, maximum=self.invoice.amount_remaining)
        cleaned["amount_minor"] = money.amount if money is not None else None
        received = cleaned["received_on"]
        if received > self.today:
            self.add_error("received_on", gettext("A payment cannot be received in the future."))
        elif self.invoice.finalized_at and received < self.invoice.finalized_at.date():
            self.add_error("received_on", gettext("The invoice was issued after this date."))
        return cleaned


DESTINATIONS = [
    ("auto", _("Reduce what is still owed on this invoice, then credit the customer balance")),
    ("balance", _("Credit the customer balance only (used on the next invoices)")),
    ("refund", _("Refund the customer (paid back through the payment's gateway)")),
]


class CreditNoteLinesForm(forms.Form):
    """A credit note by line: a quantity (or a net amount) to credit per invoice line, and where it goes."""

    amount = MajorAmountField(
        label=_("Or credit an amount (tax included)"),
        required=False,
        widget=UnfoldAdminTextInputWidget(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    destination = forms.ChoiceField(
        label=_("Where the credit goes"), choices=DESTINATIONS, initial="auto", widget=forms.RadioSelect
    )
    reason = forms.ChoiceField(label=_("Reason"), choices=CreditNote.Reason.choices, initial=CreditNote.Reason.OTHER)
    memo = forms.CharField(label=_("Memo"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    otp_token = OtpField()

    def __init__(
        self,
        *args: Any,
        invoice: Invoice,
        lines: list[InvoiceLine],
        creditable: int,
        refundable: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.invoice = invoice
        self.lines = lines
        self.fields["amount"].help_text = gettext(
            "Instead of lines: shared over the invoice's VAT rates. At most %(amount)s (what is left to credit)."
        ) % {"amount": format_money(creditable, invoice.currency)}
        self.fields["destination"].help_text = gettext(
            "A refund is paid back through the payment's gateway (at most %(amount)s, what was paid and not "
            "refunded yet) and issues its credit note once the money is back."
        ) % {"amount": format_money(refundable, invoice.currency)}
        for line in lines:
            self.fields[f"qty_{line.pk}"] = forms.CharField(
                label=gettext("Quantity to credit"),
                required=False,
                widget=forms.TextInput(attrs={"inputmode": "decimal", "size": 6, "autocomplete": "off"}),
            )
            self.fields[f"amount_{line.pk}"] = MajorAmountField(
                label=gettext("or net amount"),
                required=False,
                widget=forms.TextInput(attrs={"inputmode": "decimal", "size": 10, "autocomplete": "off"}),
            )
        unfold_widgets(self)
        self.fields["destination"].widget = UnfoldAdminRadioSelectWidget(choices=DESTINATIONS)

    def line_rows(self) -> list[tuple[InvoiceLine, Any, Any]]:
        return [(line, self[f"qty_{line.pk}"], self[f"amount_{line.pk}"]) for line in self.lines]

    def quantity(self, line: InvoiceLine) -> Decimal | None:
        text = (self.cleaned_data.get(f"qty_{line.pk}") or "").strip().replace(",", ".")
        if not text:
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            self.add_error(f"qty_{line.pk}", gettext("Not a quantity."))
            return None
        if not value.is_finite() or value <= 0 or value > line.quantity:
            self.add_error(
                f"qty_{line.pk}",
                gettext("Between 0 and %(quantity)s.") % {"quantity": f"{line.quantity.normalize():f}"},
            )
            return None
        return value
