"""Console pages for usage events and pending one-off invoice items."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from billing.admin.subscriptions import SUBSCRIPTION_SERVICE_ERRORS
from billing.limits import MAX_AMOUNT, MAX_QUANTITY
from billing.models import (
    InvoiceItem,
    Price,
    Subscription,
    UsageEvent,
)
from billing.services.invoice_items import invoice_item_create
from config.console import (
    MajorAmountField,
    ReadOnlyAdminMixin,
    StyledAdmin,
    admin_link,
    autocomplete,
    call_service,
    format_money,
    format_period,
    major_to_money,
    render_tool_form,
)
from config.money import CurrencyError, validate_currency
from customers.models import Customer


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("timestamp", "customer", "meter", "value", "unique_value", "external_id", "created_at")
    list_filter = ("meter",)
    search_fields = ("external_id", "customer__legal_name", "customer__email")
    list_select_related = ("customer", "meter")
    date_hierarchy = "timestamp"


class PendingFilter(admin.SimpleListFilter):
    title = _("invoiced")
    parameter_name = "invoiced"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("no", _("pending")), ("yes", _("invoiced"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "no":
            return queryset.filter(invoice__isnull=True)
        if self.value() == "yes":
            return queryset.filter(invoice__isnull=False)
        return queryset


class InvoiceItemCreateForm(forms.Form):
    customer = forms.ModelChoiceField(label=_("Customer"), queryset=Customer.objects.all())
    subscription = forms.ModelChoiceField(
        label=_("Subscription"),
        queryset=Subscription.objects.all(),
        required=False,
        help_text=_("Optional: the item then waits for that subscription's next invoice."),
    )
    description = forms.CharField(label=_("Description"), max_length=300, required=False)
    amount = MajorAmountField(
        label=_("Amount"),
        required=False,
        help_text=_("In the currency's major units (e.g. 150.00); negative for a credit. Or choose a price."),
    )
    currency = forms.CharField(
        label=_("Currency"),
        required=False,
        max_length=3,
        help_text=_("Empty: the subscription's, else the customer's currency."),
    )
    price = forms.ModelChoiceField(
        label=_("One-time price"),
        queryset=Price.objects.filter(type=Price.Type.ONE_TIME, active=True),
        required=False,
    )
    quantity = forms.IntegerField(label=_("Quantity"), min_value=1, max_value=MAX_QUANTITY, initial=1)
    discountable = forms.BooleanField(label=_("Coupons apply to it"), required=False, initial=True)
    invoice_now = forms.BooleanField(
        label=_("Invoice it now"),
        required=False,
        help_text=_("Issue an invoice for this item alone at once instead of waiting for the next invoice."),
    )

    def __init__(self, *args: Any, admin_site: admin.AdminSite, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("customer", "subscription", "price"):
            autocomplete(self.fields[name], InvoiceItem._meta.get_field(name), admin_site)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        amount, price = cleaned.get("amount") or None, cleaned.get("price")
        if (amount is None) == (price is None):
            raise ValidationError(_("Give an amount or a one-time price, not both."))
        if amount is not None:
            customer, subscription = cleaned.get("customer"), cleaned.get("subscription")
            currency = (cleaned.get("currency") or "").upper() or (
                subscription.currency if subscription else getattr(customer, "currency", "")
            )
            try:
                validate_currency(currency)
            except CurrencyError as error:
                raise ValidationError({"currency": str(error)}) from error
            money = major_to_money(self, "amount", currency, minimum=-MAX_AMOUNT, maximum=MAX_AMOUNT)
            if money is not None:
                cleaned["currency"], cleaned["amount_minor"] = money.currency, money.amount
        return cleaned


@admin.register(InvoiceItem)
class InvoiceItemAdmin(StyledAdmin):
    list_display = ("description", "customer", "subscription", "money", "quantity", "proration", "state", "created_at")
    list_filter = (PendingFilter, "proration", "currency")
    search_fields = ("description", "customer__legal_name", "customer__email")
    list_select_related = ("customer", "subscription", "invoice")
    readonly_fields = (
        "customer",
        "subscription",
        "price",
        "description",
        "quantity",
        "money",
        "period",
        "proration",
        "discountable",
        "tax_behavior",
        "state",
        "created_at",
    )
    fields = readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: InvoiceItem | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: InvoiceItem | None = None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """A one-off charge or credit, added by invoice_item_create (which may invoice it at once)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = InvoiceItemCreateForm(request.POST or None, admin_site=self.admin_site)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            item = call_service(
                form,
                lambda: invoice_item_create(
                    customer=data["customer"],
                    subscription=data["subscription"],
                    description=data["description"],
                    amount=data.get("amount_minor"),
                    currency=data["currency"] or None,
                    price=data["price"],
                    quantity=data["quantity"],
                    discountable=data["discountable"],
                    invoice_now=data["invoice_now"],
                    acting_user=request.user,
                ),
                errors=SUBSCRIPTION_SERVICE_ERRORS,
            )
            if item is not None:
                self.log_addition(request, item, [{"added": {}}])
                self.message_user(
                    request,
                    gettext("%(item)s (%(amount)s) added for %(customer)s.")
                    % {"item": item, "amount": format_money(item.amount, item.currency), "customer": item.customer},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:billing_invoiceitem_changelist"))
        return render_tool_form(
            self,
            request,
            title=gettext("Add a one-off charge or credit"),
            form=form,
            submit_label=gettext("Add"),
            intro=gettext("It waits for the customer's next invoice, unless you invoice it now."),
        )

    @admin.display(description=_("amount"), ordering="amount")
    def money(self, item: InvoiceItem) -> str:
        return format_money(item.amount, item.currency)

    @admin.display(description=_("period"))
    def period(self, item: InvoiceItem) -> str:
        return format_period(item.period_start, item.period_end)

    @admin.display(description=_("invoice"))
    def state(self, item: InvoiceItem) -> str:
        if item.invoice_id is None:
            return gettext("pending")
        return admin_link(item.invoice)
