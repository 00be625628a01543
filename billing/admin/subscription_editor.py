"""The subscription editor's forms and display helpers: the price picker, the items formset, the
create and change forms, and the preview panels (money formatted, periods in the customer's zone).

The views live in billing/admin/subscriptions.py; the previews are the services' own
(`subscription_preview_create`, `subscription_preview_change`, `upcoming_invoice`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from unfold.widgets import (
    UnfoldAdminIntegerFieldWidget,
    UnfoldAdminRadioSelectWidget,
    UnfoldAdminSelect2Widget,
    UnfoldAdminSelectWidget,
    UnfoldAdminSingleDateWidget,
    UnfoldAdminTextInputWidget,
)

from billing.cycles import AnchorConfig, CycleSpec, CycleSpecError
from billing.discount_models import SubscriptionDiscount
from billing.limits import MAX_QUANTITY
from billing.models import Coupon, Price, Subscription
from billing.selectors import price_amount_for
from billing.services.changes import PRORATION_MODES, ChangePreview
from billing.services.coupons import coupon_label
from billing.services.subscriptions import MAX_TRIAL_DAYS, CreatePreview, ItemSpec
from config.console import autocomplete, format_minor_decimal, format_money
from config.modes import scope_to_mode
from customers.models import Customer
from invoices.types import InvoicePreview

# -- display ------------------------------------------------------------------------------


def cycle_label(cycle: Any) -> str:
    """ "month", "3 months", "year" (after a slash), or the calendar cycle's description."""
    if not cycle:
        return gettext("one time")
    try:
        spec = CycleSpec.from_dict(cycle)
    except (CycleSpecError, TypeError, ValueError):
        return "—"
    if spec.kind != "interval":
        return spec.describe()
    count = spec.count
    units = {
        "day": ngettext("day", "%(count)d days", count),
        "week": ngettext("week", "%(count)d weeks", count),
        "month": ngettext("month", "%(count)d months", count),
        "year": ngettext("year", "%(count)d years", count),
    }
    return units.get(str(spec.unit), spec.describe()) % {"count": count}


def price_amount_label(price: Price) -> str:
    """What one unit costs, as a finance person reads it: "49,00 €", "from 10,00 €", "0,005 € per unit"."""
    if price.scheme in (Price.Scheme.TIERED_GRADUATED, Price.Scheme.TIERED_VOLUME):
        try:
            first = price_amount_for(price=price, quantity=1)
        except Exception:  # a malformed tier table must not break the picker
            return gettext("tiered")
        return gettext("from %(amount)s") % {"amount": format_money(first, price.currency)}
    amount = format_minor_decimal(price.unit_amount, price.currency)
    if price.scheme == Price.Scheme.PACKAGE and price.package_size > 1:
        return gettext("%(amount)s per %(size)d units") % {"amount": amount, "size": price.package_size}
    if price.usage_type == Price.UsageType.METERED:
        return gettext("%(amount)s per unit used") % {"amount": amount}
    return amount


def price_label(price: Price, *, with_product: bool = True) -> str:
    """ "Nuage Pro — 49,00 € / month" (the nickname after the product when it has one)."""
    name = price.product.name if with_product else ""
    if price.nickname and price.nickname != name:
        name = f"{name} · {price.nickname}" if name else price.nickname
    cycle = f" / {cycle_label(price.cycle)}" if price.cycle else f" ({gettext('one time')})"
    return f"{name} — {price_amount_label(price)}{cycle}"


def price_groups(prices: Iterable[Price]) -> list[tuple[str, list[tuple[int, str]]]]:
    """Prices grouped by product for the picker's optgroups (products by name)."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for price in sorted(prices, key=lambda price: (price.product.name.lower(), price.pk)):
        groups.setdefault(price.product.name, []).append((price.pk, price_label(price)))
    return list(groups.items())


def local_date(moment: datetime | None, tz: str) -> str:
    if moment is None:
        return "—"
    return date_format(moment.astimezone(ZoneInfo(tz)), "DATE_FORMAT")


def local_period(start: datetime | None, end: datetime | None, tz: str) -> str:
    if start is None or end is None:
        return "—"
    return f"{local_date(start, tz)} → {local_date(end, tz)}"


def invoice_panel(preview: InvoicePreview | None, *, tz: str) -> dict[str, Any] | None:
    """An InvoicePreview as the preview template shows it: every amount formatted."""
    if preview is None:
        return None
    currency = preview.currency
    totals = preview.totals
    return {
        "lines": [
            {
                "description": line.draft.description,
                "period": local_period(line.draft.period_start, line.draft.period_end, tz),
                "quantity": line.draft.quantity.normalize(),
                "amount": format_money(line.totals.amount, currency),
                "negative": line.totals.amount < 0,
            }
            for line in preview.lines
        ],
        "subtotal": format_money(totals.subtotal, currency),
        "discount": format_money(totals.discount_total, currency) if totals.discount_total else None,
        "discount_labels": list(preview.discount_labels),
        "tax": format_money(totals.tax_total, currency),
        "total": format_money(totals.total, currency),
        "balance_applied": format_money(preview.balance_applied, currency) if preview.balance_applied > 0 else None,
        "amount_due": format_money(preview.amount_due, currency),
        "amount_due_minor": preview.amount_due,
    }


def create_panel(preview: CreatePreview, *, customer: Customer) -> dict[str, Any]:
    tz = customer.timezone
    return {
        "kind": "create",
        "invoice": invoice_panel(preview.first_invoice, tz=tz),
        "trial_end": local_date(preview.trial_end, tz) if preview.trial_end else None,
        "period": local_period(preview.current_period_start, preview.current_period_end, tz),
        "next_invoice_on": local_date(preview.current_period_end, tz),
        "mrr": format_money(preview.mrr, preview.currency),
        "tz": tz,
    }


def change_panel(preview: ChangePreview, *, subscription: Subscription) -> dict[str, Any]:
    tz = subscription.customer.timezone
    currency = subscription.currency
    total = preview.proration_total
    if preview.proration_mode == "none" and not preview.cycle_changed:
        consequence = gettext("The items change now; nothing is prorated for the rest of this period.")
    elif preview.immediate_invoice is not None:
        consequence = gettext("The items change now and an invoice of %(amount)s is issued at once.") % {
            "amount": format_money(preview.immediate_invoice.amount_due, currency)
        }
    elif total:
        consequence = gettext("The items change now; prorations of %(amount)s go on the next invoice.") % {
            "amount": format_money(total, currency)
        }
    else:
        consequence = gettext("The items change now; nothing is owed for the rest of this period.")
    return {
        "kind": "change",
        "consequence": consequence,
        "cycle_changed": preview.cycle_changed,
        "proration_lines": [
            {
                "description": line.description,
                "period": local_period(line.period_start, line.period_end, tz),
                "amount": format_money(line.amount, currency),
                "negative": line.amount < 0,
            }
            for line in preview.proration_lines
        ],
        "proration_total": format_money(total, currency),
        "immediate": invoice_panel(preview.immediate_invoice, tz=tz),
        "upcoming": invoice_panel(preview.upcoming_invoice, tz=tz),
        "mrr_before": format_money(preview.mrr_before, currency),
        "mrr_after": format_money(preview.mrr_after, currency),
        "tz": tz,
    }


# -- forms ----------------------------------------------------------------------------------


def picker_prices(
    *, currency: str | None, one_time: bool, keep: Sequence[int] = (), livemode: bool | None = None
) -> QuerySet[Price]:
    """Prices the picker offers: active (or already on the subscription), of the console's mode,
    in `currency` when known; one-time prices only when creating."""
    queryset = Price.objects.select_related("product").filter(Q(active=True) | Q(pk__in=list(keep)))
    if not one_time:
        queryset = queryset.filter(type=Price.Type.RECURRING)
    if currency:
        queryset = queryset.filter(currency=currency)
    return scope_to_mode(queryset, livemode=livemode).order_by("product__name", "pk")


class PriceChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return price_label(obj)


class ItemForm(forms.Form):
    price = PriceChoiceField(
        label=_("Price"),
        queryset=Price.objects.none(),
        required=False,
        widget=UnfoldAdminSelect2Widget(attrs={"data-tarif-price": "1"}),
    )
    quantity = forms.IntegerField(
        label=_("Quantity"),
        min_value=1,
        max_value=MAX_QUANTITY,
        initial=1,
        required=False,
        widget=UnfoldAdminIntegerFieldWidget(attrs={"min": 1, "class": "tarif-sub-quantity"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("price") is not None and data.get("quantity") is None and "quantity" not in self.errors:
            data["quantity"] = 1
        return data


class BaseItemFormSet(forms.BaseFormSet):
    """Rows of price and quantity; empty rows are skipped; at least one item."""

    def __init__(self, *args: Any, prices: QuerySet[Price], **kwargs: Any) -> None:
        self.prices = prices
        super().__init__(*args, **kwargs)

    def _construct_form(self, i: int, **kwargs: Any) -> forms.Form:
        form = super()._construct_form(i, **kwargs)
        field = form.fields["price"]
        field.queryset = self.prices  # type: ignore[attr-defined]
        field.widget.choices = [("", "—"), *price_groups(self.prices)]
        return form

    @property
    def empty_form(self) -> forms.Form:
        form = super().empty_form
        form.fields["price"].queryset = self.prices  # type: ignore[attr-defined]
        return form

    def clean(self) -> None:
        if any(self.errors):
            return
        if not self.items():
            raise forms.ValidationError(gettext("Choose at least one price."))

    def items(self) -> list[ItemSpec]:
        return [
            ItemSpec(price=form.cleaned_data["price"], quantity=form.cleaned_data["quantity"] or 1)
            for form in self.forms
            if getattr(form, "cleaned_data", None) and form.cleaned_data.get("price") is not None
        ]


ItemFormSet = forms.formset_factory(ItemForm, formset=BaseItemFormSet, extra=0, max_num=10, absolute_max=10)

ITEM_ROWS = 3


def item_formset(
    data: Any, *, prices: QuerySet[Price], initial: list[dict[str, Any]] | None = None, rows: int = ITEM_ROWS
) -> BaseItemFormSet:
    initial = initial or []
    rows = max(rows, len(initial) + 1)
    initial = initial + [{"quantity": 1} for _ in range(rows - len(initial))]
    return ItemFormSet(data, prefix="items", prices=prices, initial=initial)


def coupon_queryset(*, livemode: bool | None = None) -> QuerySet[Coupon]:
    return scope_to_mode(Coupon.objects.filter(active=True), livemode=livemode).order_by("name")


class CouponChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        if obj.percent_off is not None:
            off = f"{obj.percent_off.normalize():f} %"
        else:
            off = format_money(obj.amount_off, obj.currency)
        return f"{obj.name} — {off} ({obj.get_duration_display()})"


def _select(**attrs: Any) -> UnfoldAdminSelectWidget:
    return UnfoldAdminSelectWidget(attrs=attrs)


CREDIT_BASIS_CHOICES = [
    ("", _("Platform default")),
    ("classic", _("Classic: unused time at the current price, net of discounts")),
    ("flexible", _("Flexible: what was last billed for the period")),
]


class SubscriptionCreateForm(forms.Form):
    customer = forms.ModelChoiceField(label=_("Customer"), queryset=Customer.objects.all())
    coupon = CouponChoiceField(label=_("Coupon"), queryset=Coupon.objects.none(), required=False, widget=_select())
    promotion_code = forms.CharField(
        label=_("Promotion code"), required=False, max_length=50, widget=UnfoldAdminTextInputWidget()
    )
    trial_days = forms.IntegerField(
        label=_("Trial (days)"),
        required=False,
        min_value=0,
        max_value=MAX_TRIAL_DAYS,
        widget=UnfoldAdminIntegerFieldWidget(),
        help_text=_("Empty: the longest trial of the prices; 0: no trial."),
    )
    billing_cycle_anchor = forms.DateField(
        label=_("Billing date (cycle anchor)"),
        required=False,
        widget=UnfoldAdminSingleDateWidget(),
        help_text=_("Empty: the start (or the trial's end). A later date prorates the first period up to it."),
    )
    # Issue 16, cycles: an anchor by rule ("bill on the 31st"), and the first period's proration.
    billing_day = forms.IntegerField(
        label=_("Bill on day of the month"),
        required=False,
        min_value=1,
        max_value=31,
        widget=UnfoldAdminIntegerFieldWidget(),
        help_text=_("Instead of a billing date: 29-31 bill on the last day of shorter months."),
    )
    billing_month = forms.TypedChoiceField(
        label=_("Bill in month (yearly plans)"),
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "—"), *[(month, month) for month in range(1, 13)]],
        widget=_select(),
    )
    first_period = forms.ChoiceField(
        label=_("Time up to the first billing date"),
        required=False,
        choices=[
            ("", _("As the settings say")),
            ("create_prorations", _("Bill it now, prorated")),
            ("none", _("Free")),
        ],
        widget=_select(),
    )
    collection_method = forms.ChoiceField(
        label=_("Collection method"),
        choices=Subscription.CollectionMethod.choices,
        initial=Subscription.CollectionMethod.CHARGE_AUTOMATICALLY,
        widget=_select(),
    )
    days_until_due = forms.IntegerField(
        label=_("Days until due"),
        required=False,
        min_value=0,
        max_value=365,
        widget=UnfoldAdminIntegerFieldWidget(),
        help_text=_("When the invoice is sent for payment (default 30 days)."),
    )
    proration_credit_basis = forms.ChoiceField(
        label=_("Credit for unused time"), choices=CREDIT_BASIS_CHOICES, required=False, widget=_select()
    )

    def __init__(self, *args: Any, admin_site: admin.AdminSite, livemode: bool | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = scope_to_mode(Customer.objects.all(), livemode=livemode)  # type: ignore[attr-defined]
        autocomplete(self.fields["customer"], Subscription._meta.get_field("customer"), admin_site)  # type: ignore[arg-type]
        self.fields["coupon"].queryset = coupon_queryset(livemode=livemode)  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("collection_method") == Subscription.CollectionMethod.CHARGE_AUTOMATICALLY:
            data["days_until_due"] = None  # the field only means something for sent invoices
        if data.get("billing_month") and not data.get("billing_day"):
            self.add_error("billing_day", gettext("Choose the day of the month to bill on."))
        return data

    def service_arguments(self, items: list[ItemSpec]) -> dict[str, Any]:
        data = self.cleaned_data
        customer: Customer = data["customer"]
        anchor: date | None = data.get("billing_cycle_anchor")
        rule = None
        if data.get("billing_day"):
            # Local midnight, like a billing date chosen in the calendar.
            rule = AnchorConfig(
                day_of_month=data["billing_day"], month=data.get("billing_month"), hour=0, minute=0, second=0
            )
        return {
            "billing_cycle_anchor_config": rule,
            "proration_behavior": data.get("first_period") or None,
            "customer": customer,
            "items": items,
            "trial_days": data.get("trial_days"),
            "billing_cycle_anchor": (
                datetime.combine(anchor, time(0), tzinfo=ZoneInfo(customer.timezone)) if anchor else None
            ),
            "coupon": data.get("coupon"),
            "promotion_code": data.get("promotion_code") or None,
            "collection_method": data["collection_method"],
            "days_until_due": data.get("days_until_due"),
            "proration_credit_basis": data.get("proration_credit_basis") or "",
        }


PRORATION_LABELS = {
    "create_prorations": _("Prorate: credit and charge the rest of the period on the next invoice"),
    "always_invoice": _("Prorate and invoice now"),
    "none": _("No proration: the new price from the next period"),
}


class ChangeItemsForm(forms.Form):
    proration = forms.ChoiceField(
        label=_("Proration"),
        choices=[(mode, PRORATION_LABELS[mode]) for mode in PRORATION_MODES],
        initial="create_prorations",
        widget=UnfoldAdminRadioSelectWidget(),
    )
    # Issue 16 (discounts helper): kept on the subscription for this and later credits.
    proration_credit_basis = forms.ChoiceField(
        label=_("Credit for unused time"), choices=CREDIT_BASIS_CHOICES, required=False, widget=_select()
    )


class CancelForm(forms.Form):
    WHEN = (
        ("period_end", _("At the end of the current period")),
        ("date", _("On a date")),
        ("now", _("Now")),
    )
    when = forms.ChoiceField(label=_("When"), choices=WHEN, initial="period_end", widget=UnfoldAdminRadioSelectWidget())
    cancel_on = forms.DateField(
        label=_("Cancellation date"),
        required=False,
        widget=UnfoldAdminSingleDateWidget(),
        help_text=_("On a date: the subscription ends at midnight (customer's time zone) starting that day."),
    )
    prorate = forms.BooleanField(
        label=_("Credit the unused part of the period to the customer's balance (now only)"), required=False
    )
    reason = forms.CharField(label=_("Reason"), required=False, max_length=200, widget=UnfoldAdminTextInputWidget())

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("when") != "now" and data.get("prorate"):
            self.add_error("prorate", gettext("Nothing is prorated when a subscription ends with its period."))
        if data.get("when") == "date" and not data.get("cancel_on"):
            self.add_error("cancel_on", gettext("Choose the cancellation date."))
        return data


class PauseForm(forms.Form):
    resumes_on = forms.DateField(
        label=_("Resume on"),
        required=False,
        widget=UnfoldAdminSingleDateWidget(),
        help_text=_("Empty: paused until someone resumes it."),
    )


class ExtendTrialForm(forms.Form):
    trial_end = forms.DateField(label=_("New trial end"), widget=UnfoldAdminSingleDateWidget())


class CouponForm(forms.Form):
    coupon = CouponChoiceField(label=_("Coupon"), queryset=Coupon.objects.none(), required=False, widget=_select())
    promotion_code = forms.CharField(
        label=_("or promotion code"), required=False, max_length=50, widget=UnfoldAdminTextInputWidget()
    )

    def __init__(self, *args: Any, livemode: bool | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["coupon"].queryset = coupon_queryset(livemode=livemode)  # type: ignore[attr-defined]


class RemoveDiscountForm(forms.Form):
    """Which running discount to end: one of them, or every one (a subscription may stack several)."""

    discount = forms.ModelChoiceField(
        label=_("Discount"),
        queryset=SubscriptionDiscount.objects.none(),
        required=False,
        empty_label=_("All of this subscription's discounts"),
        widget=_select(),
    )

    def __init__(self, *args: Any, subscription: Subscription, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["discount"]
        field.queryset = (  # type: ignore[attr-defined]
            subscription.discounts.filter(end__isnull=True).select_related("coupon").order_by("position", "pk")
        )
        field.label_from_instance = lambda discount: coupon_label(discount.coupon)  # type: ignore[attr-defined]


def local_midnight(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz))


@dataclass(frozen=True)
class Summary:
    """The change page's header, every figure formatted."""

    status: str
    status_code: str
    customer: Customer
    period: str
    tz: str
    mrr: str
    next_invoice: str | None
    next_invoice_on: str | None
    notes: tuple[str, ...]


def now_in(tz: str) -> datetime:
    return timezone.now().astimezone(ZoneInfo(tz))
