from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _
from stdnum import iban as iban_number
from stdnum.exceptions import ValidationError as NumberError

from billing.models import Price
from customers.models import OPTIONAL_NOTIFICATIONS, Customer, NotificationKind


class PlanChangeForm(forms.Form):
    price = forms.ModelChoiceField(
        label=_("Plan"), queryset=Price.objects.none(), widget=forms.RadioSelect, empty_label=None
    )
    quantity = forms.IntegerField(label=_("Quantity"), min_value=1, max_value=100000)

    def __init__(self, *args: Any, prices: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["price"].queryset = prices
        self.fields["price"].label_from_instance = lambda price: price.portal_label


class BillingDetailsForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = [
            "email",
            "invoice_email",
            "address_line1",
            "address_line2",
            "postal_code",
            "city",
            "region",
            "country",
            "tax_id",
            "preferred_language",
        ]
        help_texts = {"tax_id": _("e.g. FR40303265045. Checked before it is saved.")}


class NotificationPreferencesForm(forms.Form):
    def __init__(self, *args: Any, enabled: dict[str, bool], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for kind in NotificationKind:
            optional = kind in OPTIONAL_NOTIFICATIONS
            self.fields[kind.value] = forms.BooleanField(
                label=kind.label,
                required=False,
                initial=enabled.get(kind.value, True) if optional else True,
                disabled=not optional,
                help_text="" if optional else _("Always sent: it is about money or your account."),
            )


class SepaMandateForm(forms.Form):
    account_holder = forms.CharField(label=_("Account holder"), max_length=140)
    iban = forms.CharField(label=_("IBAN"), max_length=42)
    accept_mandate = forms.BooleanField(
        label=_(
            "I authorise the creditor to send instructions to my bank to debit my account, and my bank to "
            "debit it accordingly. I am entitled to a refund from my bank within 8 weeks of a debit."
        )
    )

    def clean_iban(self) -> str:
        try:
            return iban_number.validate(self.cleaned_data["iban"])
        except NumberError as error:
            raise forms.ValidationError(_("This is not a valid IBAN.")) from error


class CodeForm(forms.Form):
    otp_token = forms.CharField(
        label=_("Verification code"),
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "inputmode": "numeric"}),
    )


class NewMethodForm(forms.Form):
    make_default = forms.BooleanField(
        label=_("Make this card my default payment method"),
        required=False,
        help_text=_("Your invoices are charged to the default payment method."),
    )
