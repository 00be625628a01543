"""The operator console for the catalog, subscriptions, usage, billing runs and test clocks.

Thin, as the house style asks: every write that has a business rule goes through a
service (price_update, test_clock_advance, billing_run_start, the subscription
services); the admin only collects input, shows results and reports errors.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from babel.core import Locale, UnknownLocaleError
from babel.numbers import format_currency
from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone, translation
from django.utils.formats import date_format, number_format
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportModelAdmin

from billing.cycles import CycleSpec, CycleSpecError
from billing.limits import MAX_AMOUNT, MAX_QUANTITY
from billing.models import (
    BillingRun,
    BillingRunFailure,
    Coupon,
    DomainEvent,
    DunningCase,
    EventCursor,
    InvoiceItem,
    Meter,
    Payment,
    PaymentMethod,
    Price,
    Product,
    PromotionCode,
    Refund,
    ScheduledChange,
    Subscription,
    SubscriptionChange,
    SubscriptionItem,
    TestClock,
    UsageEvent,
)
from billing.resources import (
    CouponResource,
    MeterResource,
    PriceResource,
    ProductResource,
    SubscriptionResource,
    cycle_from_text,
    cycle_to_text,
    items_from_text,
)
from billing.services.catalog import (
    meter_create,
    meter_frozen_fields,
    meter_update,
    meter_update_validate,
    price_create,
    price_frozen_fields,
    price_update,
    price_update_validate,
    product_create,
    product_update,
)
from billing.services.coupons import (
    coupon_create,
    coupon_delete,
    coupon_frozen_fields,
    coupon_is_redeemed,
    coupon_update,
    coupon_update_validate,
    promotion_code_create,
    promotion_code_frozen_fields,
    promotion_code_update,
    promotion_code_update_validate,
)
from billing.states import InvalidTransition
from config import clock
from config.errors import DomainError
from config.money import CurrencyError, Money, currency_exponent
from config.write_path import ServiceAdminMixin
from customers.models import Customer
from invoices.errors import InvoiceError

logger = logging.getLogger(__name__)

ADMIN_MEDIA = forms.Media(css={"all": ("tarif/admin/admin.css",)})

# ---------------------------------------------------------------------------
# Money and display helpers (shared with invoices/admin.py)


def babel_locale() -> Locale:
    try:
        return Locale.parse(translation.to_locale(translation.get_language() or "en"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def format_money(amount: int | None, currency: str | None) -> str:
    """Minor units as the reader's locale writes money: 123456 EUR -> "1 234,56 €" in French."""
    if amount is None or not currency:
        return "—"
    try:
        money = Money(int(amount), currency)
    except (CurrencyError, TypeError, ValueError):
        return f"{amount} {currency}"
    return format_currency(money.decimal, money.currency, locale=babel_locale())


def format_minor_decimal(value: Decimal | None, currency: str | None) -> str:
    """A unit amount in (possibly fractional) minor units: 0.5 EUR cents -> "0,005 €"."""
    if value is None or not currency:
        return "—"
    try:
        exponent = currency_exponent(currency)
    except CurrencyError:
        return f"{value} {currency}"
    major = Decimal(value).scaleb(-exponent)
    rounded = major.quantize(Decimal(1).scaleb(-exponent))
    if major == rounded:
        return format_currency(rounded, currency, locale=babel_locale())
    return format_currency(major.normalize(), currency, locale=babel_locale(), decimal_quantization=False)


def format_period(start: datetime | None, end: datetime | None) -> str:
    if not start or not end:
        return "—"
    first, last = (date_format(timezone.localtime(moment), "DATE_FORMAT") for moment in (start, end))
    return f"{first} → {last}"


def pretty_json(value: Any) -> str:
    return format_html("<pre class='tarif-json'>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, default=str))


def admin_link(obj: Any, label: Any = None) -> str:
    if obj is None:
        return "—"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label if label is not None else obj)


def error_text(error: Exception) -> str:
    if isinstance(error, DomainError):
        return error.message_text()
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error)


def call_service(
    form: forms.Form, operation: Any, *, errors: tuple[type[Exception], ...], atomic: bool = True
) -> Any | None:
    """Run a console form's service call; a refused request becomes a form error.

    Returns the service's result, or None when it refused. `atomic` gives the call its
    own transaction, which services running in their caller's transaction need (their
    refusal would otherwise spoil the request's); services that open a durable
    transaction themselves are called with atomic=False.
    """
    try:
        if not atomic:
            return operation()
        with transaction.atomic():
            return operation()
    except errors as error:
        form.add_error(None, error_text(error))
        return None


class StyledMixin:
    """Loads Tarif's admin stylesheet (progress bars, chart, money tables) with the admin's media."""

    @property
    def media(self) -> forms.Media:
        return super().media + ADMIN_MEDIA


class StyledAdmin(StyledMixin, admin.ModelAdmin):
    pass


class ImportExportPermissions:
    """Imports write rows, so they need the add and change permissions; exports need view.

    django-import-export allows both to any staff user unless IMPORT_EXPORT_*_PERMISSION_CODE
    is set; a read-only role must not be able to import a catalog.
    """

    def has_import_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.add_{self.opts.model_name}") and request.user.has_perm(
            f"{self.opts.app_label}.change_{self.opts.model_name}"
        )

    def has_export_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)


class ReadOnlyAdminMixin:
    """Rows written only by services: the console shows them and never edits them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def render_tool_form(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    title: str,
    form: forms.Form,
    submit_label: str,
    intro: str = "",
    objects: Any = (),
    hidden: Any = (),
) -> TemplateResponse:
    """A console page with one form (see templates/admin/billing/tool_form.html)."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        "form": form,
        "submit_label": submit_label,
        "intro": intro,
        "objects": objects,
        "hidden": hidden,
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, "admin/billing/tool_form.html", context)


def autocomplete(form_field: forms.ModelChoiceField, model_field: Any, admin_site: admin.AdminSite) -> None:
    """Give a plain form's choice field the admin's search-as-you-type widget."""
    form_field.widget = AutocompleteSelect(model_field, admin_site)
    form_field.widget.choices = form_field.choices


class UtcDateTimeField(forms.DateTimeField):
    """A browser datetime picker; the value is read in the console's time zone."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S")


# ---------------------------------------------------------------------------
# Catalog


class PriceInline(ReadOnlyInline):
    model = Price
    fields = ("nickname", "lookup_key", "amount", "cycle_label", "usage_type", "active")
    readonly_fields = fields
    verbose_name_plural = _("prices")

    @admin.display(description=_("amount"))
    def amount(self, price: Price) -> str:
        return price_amount_label(price)

    @admin.display(description=_("billing cycle"))
    def cycle_label(self, price: Price) -> str:
        return cycle_to_text(price.cycle) or "—"


@admin.register(Product)
class ProductAdmin(ServiceAdminMixin, ImportExportPermissions, ImportExportModelAdmin):
    resource_classes = [ProductResource]
    list_display = ("name", "unit_label", "active", "price_count", "created_at")
    list_filter = ("active",)
    search_fields = ("name", "description")
    readonly_fields = ("created_at",)
    inlines = [PriceInline]
    actions = ["archive"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Product]:
        return super().get_queryset(request).annotate(price_total=Count("prices"))

    @admin.display(description=_("prices"), ordering="price_total")
    def price_count(self, product: Product) -> int:
        return product.price_total

    def has_delete_permission(self, request: HttpRequest, obj: Product | None = None) -> bool:
        # A redeemed coupon limited to this product keeps its products (billing/migrations/0012).
        if obj is not None and any(coupon_is_redeemed(coupon=coupon) for coupon in obj.coupons.all()):
            return False
        return super().has_delete_permission(request, obj)

    def service_create(self, request: HttpRequest, *, data: dict) -> Product:
        return product_create(data=data)

    def service_update(self, request: HttpRequest, *, obj: Product, changes: dict) -> Product:
        return product_update(product=obj, changes=changes)

    @admin.action(description=_("Archive selected products (no new subscriptions)"), permissions=["change"])
    def archive(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        count = 0
        for product in queryset.filter(active=True):
            product_update(product=product, changes={"active": False})
            count += 1
        self.message_user(
            request,
            ngettext("%(count)d product archived.", "%(count)d products archived.", count) % {"count": count},
            messages.SUCCESS,
        )


@admin.register(Meter)
class MeterAdmin(ServiceAdminMixin, ImportExportPermissions, ImportExportModelAdmin):
    resource_classes = [MeterResource]
    list_display = ("name", "key", "aggregation", "created_at")
    list_filter = ("aggregation",)
    search_fields = ("name", "key")
    readonly_fields = ("created_at",)

    def service_frozen_fields(self, obj: Meter) -> tuple[str, ...]:
        return meter_frozen_fields(meter=obj)

    def service_validate(self, *, obj: Meter | None, changes: dict) -> None:
        if obj is not None:
            meter_update_validate(meter=obj, changes=changes)

    def service_create(self, request: HttpRequest, *, data: dict) -> Meter:
        return meter_create(data=data)

    def service_update(self, request: HttpRequest, *, obj: Meter, changes: dict) -> Meter:
        return meter_update(meter=obj, changes=changes)


def price_amount_label(price: Price) -> str:
    if price.scheme in (Price.Scheme.TIERED_GRADUATED, Price.Scheme.TIERED_VOLUME):
        tiers = price.tiers or []
        return ngettext("%(scheme)s, %(count)d tier", "%(scheme)s, %(count)d tiers", len(tiers)) % {
            "scheme": price.get_scheme_display(),
            "count": len(tiers),
        }
    amount = format_minor_decimal(price.unit_amount, price.currency)
    if price.scheme == Price.Scheme.PACKAGE and price.package_size > 1:
        return gettext("%(amount)s per %(size)d") % {"amount": amount, "size": price.package_size}
    return amount


class CycleFormField(forms.CharField):
    """A billing cycle typed as people say it ("every 3 months") or as the cycle's JSON."""

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, dict):
            return cycle_to_text(value)
        return "" if value is None else str(value)

    def to_python(self, value: Any) -> dict | None:
        text = super().to_python(value)
        if not text:
            return None
        try:
            return cycle_from_text(text)
        except ValueError as error:
            raise ValidationError(str(error)) from error

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            before = CycleSpec.from_dict(initial) if initial else None
            after = CycleSpec.from_dict(cycle_from_text(data)) if data else None
        except (CycleSpecError, ValueError, TypeError):
            return True
        return before != after


class PriceForm(forms.ModelForm):
    cycle = CycleFormField(
        label=_("billing cycle"),
        required=False,
        help_text=_(
            'e.g. "every month", "every 3 months", "yearly", or JSON for calendar cycles; empty for one-time prices.'
        ),
    )

    class Meta:
        model = Price
        # The admin's fieldsets decide what is shown; this lists every editable column.
        fields = (
            "product",
            "nickname",
            "lookup_key",
            "active",
            "currency",
            "type",
            "scheme",
            "unit_amount",
            "tiers",
            "package_size",
            "package_rounding",
            "cycle",
            "usage_type",
            "meter",
            "tax_behavior",
            "trial_days",
            "metadata",
        )


@admin.register(Price)
class PriceAdmin(ServiceAdminMixin, ImportExportPermissions, ImportExportModelAdmin):
    resource_classes = [PriceResource]
    form = PriceForm
    list_display = (
        "__str__",
        "product",
        "lookup_key",
        "amount",
        "cycle_label",
        "usage_type",
        "in_use",
        "active",
    )
    list_filter = ("active", "currency", "type", "scheme", "usage_type", "product")
    search_fields = ("nickname", "lookup_key", "product__name")
    list_select_related = ("product",)
    autocomplete_fields = ("product", "meter")
    actions = ["archive"]
    fieldsets = (
        (None, {"fields": ("product", "nickname", "lookup_key", "active")}),
        (
            _("Terms (frozen once the price is used)"),
            {
                "fields": (
                    "currency",
                    "type",
                    "scheme",
                    "unit_amount",
                    "tiers",
                    "package_size",
                    "package_rounding",
                    "cycle",
                    "usage_type",
                    "meter",
                    "tax_behavior",
                )
            },
        ),
        (_("Other"), {"fields": ("trial_days", "metadata", "created_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Price]:
        from invoices.models import InvoiceLine

        return (
            super()
            .get_queryset(request)
            .annotate(
                used=Exists(SubscriptionItem.objects.filter(price=OuterRef("pk")))
                | Exists(InvoiceLine.objects.filter(price=OuterRef("pk")))
                | Exists(InvoiceItem.objects.filter(price=OuterRef("pk")))
            )
        )

    readonly_fields = ("created_at",)

    # The price-in-use rule is the catalog service's: terms of a used price show read-only
    # and price_update refuses to change them (a page opened before the price was used).
    def service_frozen_fields(self, obj: Price) -> tuple[str, ...]:
        return price_frozen_fields(price=obj)

    def service_validate(self, *, obj: Price | None, changes: dict) -> None:
        if obj is not None:
            price_update_validate(price=obj, changes=changes)

    def service_create(self, request: HttpRequest, *, data: dict) -> Price:
        return price_create(data=data)

    def service_update(self, request: HttpRequest, *, obj: Price, changes: dict) -> Price:
        return price_update(price=obj, changes=changes)

    @admin.display(description=_("amount"))
    def amount(self, price: Price) -> str:
        return price_amount_label(price)

    @admin.display(description=_("billing cycle"))
    def cycle_label(self, price: Price) -> str:
        return cycle_to_text(price.cycle) if price.cycle else gettext("one-time")

    @admin.display(description=_("in use"), boolean=True, ordering="used")
    def in_use(self, price: Price) -> bool:
        return bool(getattr(price, "used", False))

    @admin.action(description=_("Archive selected prices (no new subscriptions)"), permissions=["change"])
    def archive(self, request: HttpRequest, queryset: QuerySet[Price]) -> None:
        archived = 0
        for price in queryset.filter(active=True):
            try:
                with transaction.atomic():
                    price_update(price=price, changes={"active": False})
            except ValidationError as error:
                self.message_user(request, f"{price}: {error_text(error)}", messages.ERROR)
            else:
                archived += 1
        if archived:
            self.message_user(
                request,
                ngettext("%(count)d price archived.", "%(count)d prices archived.", archived) % {"count": archived},
                messages.SUCCESS,
            )


@admin.register(Coupon)
class CouponAdmin(ServiceAdminMixin, ImportExportPermissions, ImportExportModelAdmin):
    resource_classes = [CouponResource]
    list_display = ("name", "discount", "duration_label", "redemptions", "redeem_by", "active")
    list_filter = ("active", "duration", "currency")
    search_fields = ("name",)
    filter_horizontal = ("applies_to",)
    readonly_fields = ("times_redeemed", "created_at")

    # Subscribers' future invoices read the coupon's terms: once redeemed, the coupon
    # service keeps them as sold (coupon_update), and the page shows them read-only.
    def service_frozen_fields(self, obj: Coupon) -> tuple[str, ...]:
        return coupon_frozen_fields(coupon=obj)

    def service_validate(self, *, obj: Coupon | None, changes: dict) -> None:
        if obj is not None:
            coupon_update_validate(coupon=obj, changes=changes)

    def service_create(self, request: HttpRequest, *, data: dict) -> Coupon:
        data = dict(data)
        applies_to = data.pop("applies_to", ())
        return coupon_create(data=data, applies_to=applies_to)

    def service_update(self, request: HttpRequest, *, obj: Coupon, changes: dict) -> Coupon:
        return coupon_update(coupon=obj, changes=changes, acting_user=request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Coupon | None = None) -> bool:
        if obj is not None and coupon_is_redeemed(coupon=obj):
            return False  # deactivate it instead: subscribers' invoices still read its terms
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Coupon) -> None:
        coupon_delete(coupon=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Coupon]) -> None:
        refused = []
        for coupon in queryset:
            try:
                with transaction.atomic():
                    coupon_delete(coupon=coupon)
            except ValidationError as error:
                refused.append(error_text(error))
        for message in refused:
            self.message_user(request, message, messages.ERROR)

    @admin.display(description=_("discount"))
    def discount(self, coupon: Coupon) -> str:
        if coupon.percent_off is not None:
            return f"{coupon.percent_off.normalize():f} %"
        return format_money(coupon.amount_off, coupon.currency)

    @admin.display(description=_("duration"), ordering="duration")
    def duration_label(self, coupon: Coupon) -> str:
        if coupon.duration == Coupon.Duration.REPEATING:
            return ngettext("%(count)d period", "%(count)d periods", coupon.duration_in_periods or 0) % {
                "count": coupon.duration_in_periods or 0
            }
        return coupon.get_duration_display()

    @admin.display(description=_("redemptions"), ordering="times_redeemed")
    def redemptions(self, coupon: Coupon) -> str:
        if coupon.max_redemptions:
            return f"{coupon.times_redeemed} / {coupon.max_redemptions}"
        return str(coupon.times_redeemed)


@admin.register(PromotionCode)
class PromotionCodeAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ("code", "coupon", "active", "redemptions", "expires_at", "customer", "first_time_only")
    list_filter = ("active", "first_time_only")
    search_fields = ("code", "coupon__name", "customer__legal_name")
    list_select_related = ("coupon", "customer")
    autocomplete_fields = ("coupon", "customer")
    readonly_fields = ("times_redeemed", "created_at")

    def service_frozen_fields(self, obj: PromotionCode) -> tuple[str, ...]:
        return promotion_code_frozen_fields(promotion_code=obj)

    def service_validate(self, *, obj: PromotionCode | None, changes: dict) -> None:
        if obj is not None:
            promotion_code_update_validate(promotion_code=obj, changes=changes)

    def service_create(self, request: HttpRequest, *, data: dict) -> PromotionCode:
        return promotion_code_create(data=data)

    def service_update(self, request: HttpRequest, *, obj: PromotionCode, changes: dict) -> PromotionCode:
        return promotion_code_update(promotion_code=obj, changes=changes)

    @admin.display(description=_("redemptions"), ordering="times_redeemed")
    def redemptions(self, code: PromotionCode) -> str:
        if code.max_redemptions:
            return f"{code.times_redeemed} / {code.max_redemptions}"
        return str(code.times_redeemed)


# ---------------------------------------------------------------------------
# Subscriptions


def items_label(items: list[SubscriptionItem]) -> str:
    return ", ".join(f"{item.price.lookup_key or item.price} × {item.quantity}" for item in items) or "—"


class SubscriptionItemInline(admin.TabularInline):
    model = SubscriptionItem
    extra = 0
    fields = ("price", "quantity", "created_at")
    readonly_fields = ("created_at",)
    autocomplete_fields = ("price",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SubscriptionChangeInline(ReadOnlyInline):
    model = SubscriptionChange
    fields = ("kind", "effective_at", "mrr_change", "proration", "acting_user")
    readonly_fields = fields
    ordering = ("-effective_at", "-pk")
    verbose_name_plural = _("history")

    @admin.display(description=_("MRR"))
    def mrr_change(self, change: SubscriptionChange) -> str:
        currency = change.subscription.currency
        return f"{format_money(change.mrr_before, currency)} → {format_money(change.mrr_after, currency)}"

    @admin.display(description=_("prorated amount"))
    def proration(self, change: SubscriptionChange) -> str:
        return format_money(change.proration_amount, change.subscription.currency)


class ScheduledChangeInline(ReadOnlyInline):
    model = ScheduledChange
    fields = ("effective_at", "status", "items")
    readonly_fields = fields


class ItemsField(forms.CharField):
    """Subscription items typed as price lookup keys and quantities: "pro-monthly:3; api-metered"."""

    def to_python(self, value: Any) -> list[tuple[Price, int]]:
        text = super().to_python(value)
        try:
            return items_from_text(text)
        except ValueError as error:
            raise ValidationError(str(error)) from error


class SubscriptionCreateForm(forms.Form):
    customer = forms.ModelChoiceField(label=_("Customer"), queryset=Customer.objects.all())
    items = ItemsField(
        label=_("Items"),
        widget=forms.TextInput(attrs={"size": 60, "placeholder": "pro-monthly:3; api-metered"}),
        help_text=_("Price lookup keys (or ids) with quantities, separated by semicolons."),
    )
    trial_days = forms.IntegerField(
        label=_("Trial days"), required=False, min_value=0, help_text=_("Empty: the longest trial of the prices.")
    )
    coupon = forms.ModelChoiceField(label=_("Coupon"), queryset=Coupon.objects.filter(active=True), required=False)
    promotion_code = forms.CharField(label=_("Promotion code"), required=False, max_length=50)
    collection_method = forms.ChoiceField(
        label=_("Collection method"),
        choices=Subscription.CollectionMethod.choices,
        initial=Subscription.CollectionMethod.CHARGE_AUTOMATICALLY,
    )
    days_until_due = forms.IntegerField(
        label=_("Days until due"),
        required=False,
        min_value=0,
        help_text=_("Payment terms when the invoice is sent (default 30 days)."),
    )

    def __init__(self, *args: Any, admin_site: admin.AdminSite, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        autocomplete(self.fields["customer"], Subscription._meta.get_field("customer"), admin_site)


class CancelForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), required=False, max_length=200)
    prorate = forms.BooleanField(
        label=_("Credit the unused part of the period to the customer's balance"), required=False, initial=False
    )


SUBSCRIPTION_SERVICE_ERRORS = (DomainError, ValidationError, InvalidTransition, InvoiceError, ValueError)


SUBSCRIPTION_FIELDSETS = (
    (None, {"fields": ("customer", "status", "currency", "collection_method", "days_until_due")}),
    (
        _("Billing cycle"),
        {"fields": ("cycle_label", "billing_cycle_anchor", "current_period_start", "current_period_end")},
    ),
    (_("Trial"), {"fields": ("trial_start", "trial_end", "trial_end_behavior")}),
    (
        _("Cancellation and pause"),
        {
            "fields": (
                "cancel_at_period_end",
                "canceled_at",
                "cancellation_reason",
                "ended_at",
                "paused_at",
                "resumes_at",
            )
        },
    ),
    (_("Discount"), {"fields": ("coupon", "promotion_code", "discount_periods_applied")}),
    (_("Other"), {"fields": ("metadata", "created_at", "updated_at")}),
)


@admin.register(Subscription)
class SubscriptionAdmin(ImportExportPermissions, StyledMixin, ImportExportModelAdmin):
    list_display = (
        "id",
        "customer",
        "status",
        "plan",
        "current_period",
        "collection_method",
        "currency",
        "cancel_at_period_end",
    )
    list_display_links = ("id", "customer")
    list_filter = ("status", "collection_method", "currency", "cancel_at_period_end")
    search_fields = ("=id", "customer__legal_name", "customer__email")
    list_select_related = ("customer",)
    inlines = [SubscriptionItemInline, ScheduledChangeInline, SubscriptionChangeInline]
    fieldsets = SUBSCRIPTION_FIELDSETS
    change_form_template = "admin/billing/subscription/change_form.html"
    date_hierarchy = "created_at"
    resource_classes = [SubscriptionResource]
    actions = ["cancel_at_period_end_action", "undo_cancel", "cancel_now", "pause", "resume"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscription]:
        return (
            super()
            .get_queryset(request)
            .prefetch_related(Prefetch("items", queryset=SubscriptionItem.objects.select_related("price__product")))
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Subscription | None = None) -> list[str]:
        # Every change to a live subscription goes through a service (proration, events):
        # the form shows the state; the actions change it.
        names = [field for _title, options in SUBSCRIPTION_FIELDSETS for field in options["fields"]]
        return [name for name in names if name != "metadata"]

    def has_delete_permission(self, request: HttpRequest, obj: Subscription | None = None) -> bool:
        return False  # a subscription ends by being canceled; its history and invoices stay

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """A subscription is created by subscription_create: first invoice, trial, coupon and events."""
        from billing.services.subscriptions import ItemSpec, subscription_create

        if not self.has_add_permission(request):
            raise PermissionDenied
        form = SubscriptionCreateForm(request.POST or None, admin_site=self.admin_site)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            subscription = call_service(
                form,
                lambda: subscription_create(
                    customer=data["customer"],
                    items=[ItemSpec(price=price, quantity=quantity) for price, quantity in data["items"]],
                    trial_days=data["trial_days"],
                    coupon=data["coupon"],
                    promotion_code=data["promotion_code"] or None,
                    collection_method=data["collection_method"],
                    days_until_due=data["days_until_due"],
                    acting_user=request.user,
                ),
                errors=SUBSCRIPTION_SERVICE_ERRORS,
            )
            if subscription is not None:
                self.log_addition(request, subscription, [{"added": {}}])
                self.message_user(
                    request,
                    gettext("Subscription #%(id)s created for %(customer)s.")
                    % {"id": subscription.pk, "customer": subscription.customer},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:billing_subscription_change", args=[subscription.pk]))
        return render_tool_form(
            self,
            request,
            title=gettext("Add subscription"),
            form=form,
            submit_label=gettext("Create the subscription"),
            intro=gettext(
                "The first invoice (or a zero invoice for a trial) is issued at once, on the customer's clock."
            ),
        )

    # -- actions: each calls one subscription service ---------------------------------------

    def _each(self, request: HttpRequest, queryset: QuerySet[Subscription], operation: Any, *, done: Any) -> None:
        count = 0
        for subscription in queryset.select_related("customer").order_by("pk"):
            try:
                with transaction.atomic():
                    operation(subscription)
            except SUBSCRIPTION_SERVICE_ERRORS as error:
                self.message_user(
                    request, f"#{subscription.pk} {subscription.customer}: {error_text(error)}", messages.ERROR
                )
            else:
                count += 1
        if count:
            self.message_user(request, done % {"count": count}, messages.SUCCESS)

    @admin.action(description=_("Cancel at period end"), permissions=["change"])
    def cancel_at_period_end_action(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        from billing.services.subscriptions import subscription_cancel

        self._each(
            request,
            queryset,
            lambda subscription: subscription_cancel(
                subscription=subscription, at_period_end=True, acting_user=request.user
            ),
            done=ngettext_lazy(
                "%(count)d subscription will cancel at the end of its period.",
                "%(count)d subscriptions will cancel at the end of their period.",
                "count",
            ),
        )

    @admin.action(description=_("Keep (undo cancel at period end)"), permissions=["change"])
    def undo_cancel(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        from billing.services.subscriptions import subscription_cancel_undo

        self._each(
            request,
            queryset,
            lambda subscription: subscription_cancel_undo(subscription=subscription, acting_user=request.user),
            done=ngettext_lazy("%(count)d subscription kept.", "%(count)d subscriptions kept.", "count"),
        )

    @admin.action(description=_("Cancel now…"), permissions=["change"])
    def cancel_now(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> HttpResponse | None:
        from billing.services.subscriptions import subscription_cancel

        form = CancelForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            self._each(
                request,
                queryset,
                lambda subscription: subscription_cancel(
                    subscription=subscription,
                    at_period_end=False,
                    prorate=form.cleaned_data["prorate"],
                    reason=form.cleaned_data["reason"],
                    acting_user=request.user,
                ),
                done=ngettext_lazy("%(count)d subscription canceled.", "%(count)d subscriptions canceled.", "count"),
            )
            return None
        subscriptions = list(queryset.select_related("customer").order_by("pk"))
        return render_tool_form(
            self,
            request,
            title=gettext("Cancel subscriptions now"),
            form=form,
            submit_label=gettext("Cancel now"),
            intro=gettext("The subscriptions end now; pending items and usage so far are invoiced in a final invoice."),
            objects=[str(subscription) for subscription in subscriptions],
            hidden=[
                ("action", "cancel_now"),
                ("apply", "1"),
                *((helpers.ACTION_CHECKBOX_NAME, subscription.pk) for subscription in subscriptions),
            ],
        )

    @admin.action(description=_("Pause"), permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        from billing.services.subscriptions import subscription_pause

        self._each(
            request,
            queryset,
            lambda subscription: subscription_pause(subscription=subscription, acting_user=request.user),
            done=ngettext_lazy("%(count)d subscription paused.", "%(count)d subscriptions paused.", "count"),
        )

    @admin.action(description=_("Resume (invoices a new period at once)"), permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        from billing.services.subscriptions import subscription_resume

        self._each(
            request,
            queryset,
            lambda subscription: subscription_resume(subscription=subscription, acting_user=request.user),
            done=ngettext_lazy("%(count)d subscription resumed.", "%(count)d subscriptions resumed.", "count"),
        )

    @admin.display(description=_("items"))
    def plan(self, subscription: Subscription) -> str:
        return items_label(list(subscription.items.all()))

    @admin.display(description=_("current period"), ordering="current_period_end")
    def current_period(self, subscription: Subscription) -> str:
        return format_period(subscription.current_period_start, subscription.current_period_end)

    @admin.display(description=_("billing cycle"))
    def cycle_label(self, subscription: Subscription) -> str:
        return cycle_to_text(subscription.cycle) or "—"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), **self._upcoming_context(object_id)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _upcoming_context(self, object_id: str) -> dict[str, Any]:
        from billing.services.upcoming import NoUpcomingInvoice, upcoming_invoice

        subscription = Subscription.objects.filter(pk=object_id).select_related("customer").first()
        if subscription is None:
            return {}
        try:
            preview = upcoming_invoice(subscription=subscription)
        except NoUpcomingInvoice as error:
            return {"upcoming_unavailable": str(error)}
        except Exception as error:  # a preview must never break the page; the log keeps the traceback
            logger.exception("upcoming invoice preview failed for subscription %s", subscription.pk)
            return {
                "upcoming_unavailable": gettext("The upcoming invoice could not be computed: %(error)s")
                % {"error": error_text(error)}
            }
        invoiced_on = (
            subscription.resumes_at
            if subscription.status == Subscription.Status.PAUSED and subscription.resumes_at
            else subscription.current_period_end
        )
        currency = preview.currency
        return {
            "upcoming": {
                "lines": [
                    {
                        "description": line.draft.description,
                        "period": format_period(line.draft.period_start, line.draft.period_end),
                        "quantity": line.draft.quantity.normalize(),
                        "amount": format_money(line.draft.amount, currency),
                    }
                    for line in preview.lines
                ],
                "subtotal": format_money(preview.totals.subtotal, currency),
                "discount": format_money(preview.totals.discount_total, currency)
                if preview.totals.discount_total
                else None,
                "tax": format_money(preview.totals.tax_total, currency),
                "total": format_money(preview.totals.total, currency),
                "balance_applied": format_money(preview.balance_applied, currency) if preview.balance_applied else None,
                "amount_due": format_money(preview.amount_due, currency),
                "date": date_format(timezone.localtime(invoiced_on), "DATE_FORMAT"),
            }
        }


@admin.register(SubscriptionChange)
class SubscriptionChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("subscription", "kind", "effective_at", "mrr_change", "proration", "acting_user")
    list_filter = ("kind", "proration_mode")
    search_fields = ("=subscription__id", "subscription__customer__legal_name")
    list_select_related = ("subscription__customer", "acting_user")
    date_hierarchy = "effective_at"

    @admin.display(description=_("MRR"))
    def mrr_change(self, change: SubscriptionChange) -> str:
        currency = change.subscription.currency
        return f"{format_money(change.mrr_before, currency)} → {format_money(change.mrr_after, currency)}"

    @admin.display(description=_("prorated amount"), ordering="proration_amount")
    def proration(self, change: SubscriptionChange) -> str:
        return format_money(change.proration_amount, change.subscription.currency)


@admin.register(ScheduledChange)
class ScheduledChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("subscription", "effective_at", "status", "new_items")
    list_filter = ("status",)
    search_fields = ("=subscription__id", "subscription__customer__legal_name")
    list_select_related = ("subscription__customer",)
    date_hierarchy = "effective_at"
    actions = ["cancel_scheduled"]

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        # The rows are read-only; canceling a pending one is a service call for staff who may change them.
        return admin.ModelAdmin.has_change_permission(self, request)

    @admin.action(description=_("Cancel selected pending changes"), permissions=["cancel"])
    def cancel_scheduled(self, request: HttpRequest, queryset: QuerySet[ScheduledChange]) -> None:
        from billing.services.subscriptions import scheduled_change_cancel

        canceled = 0
        for change in queryset.select_related("subscription").order_by("pk"):
            try:
                with transaction.atomic():
                    scheduled_change_cancel(scheduled_change=change, acting_user=request.user)
            except SUBSCRIPTION_SERVICE_ERRORS as error:
                self.message_user(request, f"{change}: {error_text(error)}", messages.ERROR)
            else:
                canceled += 1
        if canceled:
            self.message_user(
                request,
                ngettext("%(count)d scheduled change canceled.", "%(count)d scheduled changes canceled.", canceled)
                % {"count": canceled},
                messages.SUCCESS,
            )

    @admin.display(description=_("new items"))
    def new_items(self, change: ScheduledChange) -> str:
        items = change.items if isinstance(change.items, list) else []
        prices = Price.objects.in_bulk([item.get("price") for item in items if isinstance(item, dict)])
        return (
            ", ".join(
                f"{prices.get(item.get('price')) or item.get('price')} × {item.get('quantity', 1)}"
                for item in items
                if isinstance(item, dict)
            )
            or "—"
        )


# ---------------------------------------------------------------------------
# Usage and pending items


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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
    amount = forms.DecimalField(
        label=_("Amount"),
        required=False,
        localize=True,
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
        amount, price = cleaned.get("amount"), cleaned.get("price")
        if (amount is None) == (price is None):
            raise ValidationError(_("Give an amount or a one-time price, not both."))
        if amount is not None:
            customer, subscription = cleaned.get("customer"), cleaned.get("subscription")
            currency = (cleaned.get("currency") or "").upper() or (
                subscription.currency if subscription else getattr(customer, "currency", "")
            )
            try:
                exponent = currency_exponent(currency)
            except CurrencyError as error:
                raise ValidationError({"currency": str(error)}) from error
            minor = amount.scaleb(exponent)
            if minor != minor.to_integral_value():
                raise ValidationError(
                    {"amount": _("%(currency)s has %(digits)d decimals.") % {"currency": currency, "digits": exponent}}
                )
            if abs(minor) > MAX_AMOUNT:
                raise ValidationError(
                    {"amount": _("At most %(maximum)s minor units either way.") % {"maximum": f"{MAX_AMOUNT:,}"}}
                )
            cleaned["currency"], cleaned["amount_minor"] = currency, int(minor)
        return cleaned


@admin.register(InvoiceItem)
class InvoiceItemAdmin(admin.ModelAdmin):
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
        from billing.services.invoice_items import invoice_item_create

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


# ---------------------------------------------------------------------------
# Billing runs and test clocks


def run_rate(run: BillingRun) -> float:
    """Invoices issued per second of the run's wall-clock time so far."""
    end = run.finished_at or clock.system_now()
    seconds = (end - run.started_at).total_seconds()
    if seconds <= 0:
        return 0.0
    return run.invoices_created / seconds


def run_progress(run: BillingRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "status": run.status,
        "status_label": str(run.get_status_display()),
        "processed": run.processed,
        "total": run.total,
        "percent": run.progress_percent,
        "invoices_created": run.invoices_created,
        "failures": run.failures,
        "invoices_per_second": round(run_rate(run), 1),
        "invoices_per_second_label": number_format(run_rate(run), 1),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


class RunBillingForm(forms.Form):
    as_of = UtcDateTimeField(
        label=_("Bill periods ending by"),
        help_text=_("Every subscription whose period ended by this time is invoiced (time zone: %(tz)s)."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["as_of"].help_text = self.fields["as_of"].help_text % {"tz": timezone.get_current_timezone_name()}


class BillingRunFailureInline(ReadOnlyInline):
    """The subscriptions a run could not invoice, with the reason; the next run retries them."""

    model = BillingRunFailure
    fk_name = "run"
    show_change_link = False
    fields = ("subscription_link", "period_start", "code", "message", "attempts", "last_attempt_at", "state")
    readonly_fields = fields
    verbose_name_plural = _("subscriptions not invoiced")

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("subscription", "subscription__customer")

    @admin.display(description=_("subscription"))
    def subscription_link(self, failure: BillingRunFailure) -> str:
        return admin_link(failure.subscription)

    @admin.display(description=_("state"))
    def state(self, failure: BillingRunFailure) -> str:
        if failure.resolved_at is None:
            return gettext("open: retried by the next run")
        resolved = date_format(timezone.localtime(failure.resolved_at), "SHORT_DATETIME_FORMAT")
        return f"{failure.get_resolution_display()} ({resolved})"


@admin.register(BillingRun)
class BillingRunAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("started_at", "as_of", "status", "progress", "invoices_created", "rate", "failures")
    list_filter = ("status", ("test_clock", admin.EmptyFieldListFilter))
    list_select_related = ("test_clock",)
    date_hierarchy = "started_at"
    fields = (
        "status",
        "as_of",
        "scope",
        "test_clock",
        "processed",
        "total",
        "invoices_created",
        "rate",
        "failures",
        "last_error",
        "started_at",
        "heartbeat_at",
        "finished_at",
    )
    readonly_fields = fields
    inlines = (BillingRunFailureInline,)
    change_list_template = "admin/billing/billingrun/change_list.html"
    change_form_template = "admin/billing/billingrun/change_form.html"

    @property
    def media(self) -> forms.Media:
        return super().media + forms.Media(js=("tarif/admin/billing_run_progress.js",))

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path("run/", self.admin_site.admin_view(self.run_now_view), name="{}_{}_run".format(*info)),
            path(
                "<path:object_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="{}_{}_progress".format(*info),
            ),
            path(
                "<path:object_id>/retry-failures/",
                self.admin_site.admin_view(self.retry_failures_view),
                name="{}_{}_retry_failures".format(*info),
            ),
            *super().get_urls(),
        ]

    def can_start_runs(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.add_{self.opts.model_name}")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_start_runs": self.can_start_runs(request)}
        return super().changelist_view(request, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        run = BillingRun.objects.filter(pk=object_id).first()
        if run is not None:
            progress = run_progress(run)
            progress["max"] = max(run.total, 1)
            progress["value"] = run.processed if run.total else int(run.status == BillingRun.Status.DONE)
            open_failures = run.failed_subscriptions.filter(resolved_at__isnull=True).count()
            extra_context = {
                **(extra_context or {}),
                "progress": progress,
                "open_failures": open_failures,
                "can_retry_failures": open_failures > 0 and self.can_start_runs(request),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def progress_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = get_object_or_404(BillingRun, pk=object_id)
        return JsonResponse(run_progress(run))

    def retry_failures_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.can_start_runs(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:billing_billingrun_change", args=[object_id]))
        from billing.services.billing_run import billing_run_retry_failures

        run = get_object_or_404(BillingRun, pk=object_id)
        try:
            retry = billing_run_retry_failures(run=run, acting_user=request.user)
        except ValidationError as error:  # nothing to retry, or a run is already running
            self.message_user(request, error_text(error), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:billing_billingrun_change", args=[run.pk]))
        self.message_user(
            request,
            gettext("Retry started: %(total)d failed subscription(s) billed again.") % {"total": retry.total},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:billing_billingrun_change", args=[retry.pk]))

    def run_now_view(self, request: HttpRequest) -> HttpResponse:
        if not self.can_start_runs(request):
            raise PermissionDenied
        from billing.services.billing_run import billing_run_start

        form = RunBillingForm(request.POST or None, initial={"as_of": timezone.localtime().replace(microsecond=0)})
        if request.method == "POST" and form.is_valid():
            try:
                run = billing_run_start(as_of=form.cleaned_data["as_of"], acting_user=request.user)
            except ValidationError as error:
                form.add_error(None, error)
            except Exception as error:
                # The run records its failure (failures, last error) on its row; say so and show the list.
                logger.exception("billing run started from the console failed")
                self.message_user(
                    request,
                    gettext("The billing run stopped with an error: %(error)s") % {"error": error},
                    messages.ERROR,
                )
                return HttpResponseRedirect(reverse("admin:billing_billingrun_changelist"))
            else:
                self.message_user(
                    request,
                    gettext("Billing run started: %(total)d subscription-periods due.") % {"total": run.total},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:billing_billingrun_change", args=[run.pk]))
        return render_tool_form(
            self,
            request,
            title=gettext("Run billing now"),
            form=form,
            submit_label=gettext("Start the billing run"),
            intro=gettext(
                "Invoices every subscription-period that has ended by the chosen time, exactly once: periods "
                "already billed are skipped. Customers on test clocks are billed by advancing their clock instead."
            ),
        )

    @admin.display(description=_("progress"))
    def progress(self, run: BillingRun) -> str:
        url = reverse("admin:billing_billingrun_progress", args=[run.pk])
        done = run.processed if run.total else (1 if run.status == BillingRun.Status.DONE else 0)
        return format_html(
            '<div class="tarif-progress" data-billing-run-progress data-url="{}" data-status="{}">'
            '<progress max="{}" value="{}">{} %</progress> '
            '<span class="tarif-progress__label"><span data-field="processed">{}</span> / '
            '<span data-field="total">{}</span> (<span data-field="percent">{}</span> %)</span></div>',
            url,
            run.status,
            max(run.total, 1),
            done,
            run.progress_percent,
            run.processed,
            run.total,
            run.progress_percent,
        )

    @admin.display(description=_("invoices/s"))
    def rate(self, run: BillingRun) -> str:
        return number_format(run_rate(run), 1)


class AdvanceClockForm(forms.Form):
    to = UtcDateTimeField(label=_("New time"))

    def __init__(self, *args: Any, clocks: list[TestClock], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clocks = clocks
        self.fields["to"].help_text = gettext(
            "The clocks move forward to this time and bill their customers up to it (time zone: %(tz)s)."
        ) % {"tz": timezone.get_current_timezone_name()}

    def clean_to(self) -> datetime:
        to = self.cleaned_data["to"]
        behind = [test_clock for test_clock in self.clocks if to <= test_clock.frozen_time]
        if behind:
            raise ValidationError(
                _("A test clock only moves forward; %(clocks)s already show a later time."),
                params={"clocks": ", ".join(str(test_clock) for test_clock in behind)},
            )
        return to


@admin.register(TestClock)
class TestClockAdmin(admin.ModelAdmin):
    list_display = ("name", "frozen_time", "status", "customer_count", "created_at")
    list_filter = ("status",)
    search_fields = ("name",)
    actions = ["advance_clock"]
    change_form_template = "admin/billing/testclock/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[TestClock]:
        return super().get_queryset(request).annotate(customer_total=Count("customers"))

    def get_readonly_fields(self, request: HttpRequest, obj: TestClock | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("status", "created_at")
        return ("frozen_time", "status", "created_at")

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path("advance/", self.admin_site.admin_view(self.advance_view), name="{}_{}_advance".format(*info)),
            *super().get_urls(),
        ]

    def save_model(self, request: HttpRequest, obj: TestClock, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        from billing.services.test_clocks import test_clock_create

        created = test_clock_create(name=obj.name, frozen_time=obj.frozen_time)
        obj.pk, obj.status, obj.created_at = created.pk, created.status, created.created_at

    @admin.display(description=_("customers"), ordering="customer_total")
    def customer_count(self, test_clock: TestClock) -> int:
        return test_clock.customer_total

    @admin.action(description=_("Advance clock…"), permissions=["change"])
    def advance_clock(self, request: HttpRequest, queryset: QuerySet[TestClock]) -> HttpResponse:
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(f"{reverse('admin:billing_testclock_advance')}?ids={ids}")

    def advance_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        from billing.services.test_clocks import test_clock_advance

        ids = [int(pk) for pk in request.GET.get("ids", "").split(",") if pk.strip().isdigit()]
        clocks = list(TestClock.objects.filter(pk__in=ids).order_by("pk"))
        if not clocks:
            self.message_user(request, gettext("Choose at least one test clock to advance."), messages.WARNING)
            return HttpResponseRedirect(reverse("admin:billing_testclock_changelist"))
        form = AdvanceClockForm(request.POST or None, clocks=clocks)
        if request.method == "POST" and form.is_valid():
            for test_clock in clocks:
                try:
                    run = test_clock_advance(clock=test_clock, to=form.cleaned_data["to"], acting_user=request.user)
                except ValidationError as error:
                    self.message_user(request, f"{test_clock.name}: {error_text(error)}", messages.ERROR)
                else:
                    self.message_user(
                        request,
                        format_html(
                            "{} {}",
                            gettext("%(clock)s advanced to %(time)s: %(invoices)d invoices issued.")
                            % {
                                "clock": test_clock.name,
                                "time": date_format(timezone.localtime(test_clock.frozen_time), "DATETIME_FORMAT"),
                                "invoices": run.invoices_created,
                            },
                            admin_link(run, gettext("See the billing run.")),
                        ),
                        messages.SUCCESS,
                    )
            return HttpResponseRedirect(reverse("admin:billing_testclock_changelist"))
        latest = max(test_clock.frozen_time for test_clock in clocks)
        if not form.is_bound:
            form.initial["to"] = timezone.localtime(latest).replace(microsecond=0)
        return render_tool_form(
            self,
            request,
            title=gettext("Advance test clocks"),
            form=form,
            submit_label=gettext("Advance"),
            intro=gettext(
                "Moving a test clock forward bills its customers period by period, as if the time had really "
                "passed. It cannot be moved back."
            ),
            objects=[
                gettext("%(clock)s, now at %(time)s")
                % {
                    "clock": test_clock.name,
                    "time": date_format(timezone.localtime(test_clock.frozen_time), "DATETIME_FORMAT"),
                }
                for test_clock in clocks
            ],
        )


# ---------------------------------------------------------------------------
# Event log


@admin.register(EventCursor)
class EventCursorAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Where each consumer of the event log (notifications, feedback triggers) has read to."""

    list_display = ("name", "last_event_id", "updated_at")


@admin.register(DomainEvent)
class DomainEventAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("occurred_at", "type", "object_type", "object_id", "customer", "acting_user")
    list_filter = ("object_type", "type")
    search_fields = ("type", "=object_id", "customer__legal_name")
    list_select_related = ("customer", "acting_user")
    date_hierarchy = "occurred_at"
    fields = ("type", "object_type", "object_id", "customer", "acting_user", "occurred_at", "created_at", "payload")
    readonly_fields = fields

    @admin.display(description=_("data"))
    def payload(self, event: DomainEvent) -> str:
        return pretty_json(event.data)


# ---------------------------------------------------------------------------
# Payments: methods, payments and attempts, refunds (four-eyes), dunning


REFUND_OTP_SESSION_KEY = "tarif_refund_otp_verified_at"


def _linked(obj: Any, label: Any = None) -> str:
    try:
        return admin_link(obj, label)
    except Exception:  # the model has no admin page (yet): plain text
        return str(label if label is not None else obj)


def major_to_minor(value: Decimal, currency: str) -> int:
    """An amount typed in major units (12.50) as minor units (1250); refuses sub-cent input."""
    exponent = currency_exponent(currency)
    minor = Decimal(value).scaleb(exponent)
    if minor != minor.to_integral_value():
        raise ValidationError(
            _("Use at most %(digits)d decimals for %(currency)s.") % {"digits": exponent, "currency": currency}
        )
    return int(minor)


def otp_reverify(request: HttpRequest, token: str) -> datetime | None:
    """Check a fresh TOTP (or recovery) code of the signed-in staff member.

    On success the time is kept in the session and returned: the refund services refuse
    a verification older than TARIF_REFUND_OTP_MAX_AGE_MINUTES. A code already used
    (the login's, for instance) is refused by django-otp.
    """
    from django_otp import devices_for_user

    token = (token or "").strip().replace(" ", "")
    if token:
        for device in devices_for_user(request.user, confirmed=True):
            allowed, _details = device.verify_is_allowed()
            if allowed and device.verify_token(token):
                verified_at = timezone.now()
                request.session[REFUND_OTP_SESSION_KEY] = verified_at.isoformat()
                return verified_at
        return None
    stored = request.session.get(REFUND_OTP_SESSION_KEY)
    return datetime.fromisoformat(stored) if stored else None


class OtpField(forms.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", _("Two-factor code"))
        kwargs.setdefault("required", False)
        kwargs.setdefault(
            "help_text",
            _("A new code from your authenticator app (required for refunds above the approval threshold)."),
        )
        kwargs.setdefault("widget", forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))
        super().__init__(**kwargs)


class RefundRequestForm(forms.Form):
    amount = forms.DecimalField(label=_("Amount to refund"), min_value=Decimal("0.01"), decimal_places=3)
    reason = forms.ChoiceField(label=_("Reason"))
    memo = forms.CharField(label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    otp_token = OtpField()

    def __init__(self, *args: Any, payment: Any, **kwargs: Any) -> None:
        from invoices.models import CreditNote

        super().__init__(*args, **kwargs)
        self.payment = payment
        self.fields["reason"].choices = CreditNote.Reason.choices
        from billing.services.refunds import refundable_amount

        self.fields["amount"].help_text = _(
            "In %(currency)s; at most %(left)s left to refund (refunds awaiting approval and credit-note refunds "
            "included)."
        ) % {"currency": payment.currency, "left": format_money(refundable_amount(payment=payment), payment.currency)}

    def clean_amount(self) -> int:
        return major_to_minor(self.cleaned_data["amount"], self.payment.currency)


class RefundDecisionForm(forms.Form):
    otp_token = OtpField(required=True)
    note = forms.CharField(label=_("Note"), required=False, max_length=300)


class ManualPaymentForm(forms.Form):
    invoice_number = forms.CharField(label=_("Invoice number"), max_length=50)
    amount = forms.DecimalField(label=_("Amount received"), min_value=Decimal("0.01"), decimal_places=3)
    method = forms.ChoiceField(label=_("Method"))
    reference = forms.CharField(label=_("Reference"), required=False, max_length=100, help_text=_("Cheque number..."))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from billing.services.payments import MANUAL_METHODS

        super().__init__(*args, **kwargs)
        self.fields["method"].choices = [(value, Payment.Method(value).label) for value in MANUAL_METHODS]

    def clean(self) -> dict[str, Any]:
        from invoices.models import Invoice

        data = super().clean()
        number = (data.get("invoice_number") or "").strip()
        invoice = Invoice.objects.filter(number=number).first()
        if invoice is None:
            raise ValidationError({"invoice_number": _("No invoice has this number.")})
        data["invoice"] = invoice
        if data.get("amount") is not None:
            data["amount_minor"] = major_to_minor(data["amount"], invoice.currency)
        return data


@admin.register(PaymentMethod)
class PaymentMethodAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("customer", "kind", "__str__", "gateway", "is_default", "active", "created_at")
    list_filter = ("kind", "gateway", "is_default", "active")
    search_fields = ("customer__legal_name", "=last4", "=iban_last4", "mandate_reference")
    list_select_related = ("customer",)
    fields = (
        "customer",
        "kind",
        "gateway",
        "brand",
        "last4",
        "exp_month",
        "exp_year",
        "wallet",
        "iban_last4",
        "mandate_reference",
        "transfer_reference",
        "is_default",
        "active",
        "created_at",
        "detached_at",
    )
    readonly_fields = fields

    @admin.display(description=_("bank transfer reference"))
    def transfer_reference(self, method: PaymentMethod) -> str:
        from billing.services.payments import bank_transfer_reference

        return bank_transfer_reference(customer=method.customer)


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = (
        "attempted_at",
        "invoice_link",
        "customer",
        "amount_label",
        "method",
        "status",
        "attempt",
        "decline_code",
        "refunded_label",
    )
    list_filter = ("status", "method", "gateway", "decline_code")
    search_fields = ("invoice__number", "customer__legal_name", "=gateway_reference", "reference")
    list_select_related = ("invoice", "customer")
    date_hierarchy = "attempted_at"
    actions = ["retry_now"]
    change_form_template = "admin/billing/payments/payment_change_form.html"
    change_list_template = "admin/billing/payments/payment_change_list.html"
    fields = (
        "invoice_link",
        "customer",
        "payment_method",
        "method",
        "gateway",
        "status",
        "amount_label",
        "refunded_label",
        "attempt",
        "idempotency_key",
        "gateway_reference",
        "decline_code",
        "failure_message",
        "reference",
        "recorded_by",
        "attempted_at",
        "settled_at",
    )
    readonly_fields = fields

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "record-manual/",
                self.admin_site.admin_view(self.record_manual_view),
                name="{}_{}_record_manual".format(*info),
            ),
            path(
                "reconciliation/",
                self.admin_site.admin_view(self.reconciliation_view),
                name="{}_{}_reconciliation".format(*info),
            ),
            path(
                "<int:object_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="{}_{}_refund".format(*info),
            ),
            *super().get_urls(),
        ]

    @admin.display(description=_("invoice"), ordering="invoice__number")
    def invoice_link(self, payment: Payment) -> str:
        return _linked(payment.invoice, payment.invoice.number or f"#{payment.invoice_id}")

    @admin.display(description=_("amount"), ordering="amount")
    def amount_label(self, payment: Payment) -> str:
        return format_money(payment.amount, payment.currency)

    @admin.display(description=_("refunded"))
    def refunded_label(self, payment: Payment) -> str:
        return format_money(payment.amount_refunded, payment.currency) if payment.amount_refunded else "—"

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.add_refund")

    @admin.action(description=_("Retry now (charge what remains on their invoices)"), permissions=["view"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        from invoices.models import Invoice

        if not request.user.has_perm("billing.add_payment"):
            raise PermissionDenied
        invoice_ids = sorted(set(queryset.values_list("invoice_id", flat=True)))
        _retry_invoices(self, request, Invoice.objects.filter(pk__in=invoice_ids).order_by("pk"))

    def reconciliation_view(self, request: HttpRequest) -> HttpResponse:
        """Invoices waiting for money Tarif does not pull (transfers, cheques...), with the
        reference customers quote, to match what arrived and record it."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        from billing.services.payments import awaiting_payment, bank_transfer_reference

        query = request.GET.get("q", "").strip()
        rows = [
            {
                "invoice": invoice,
                "reference": bank_transfer_reference(customer=invoice.customer),
                "remaining": format_money(invoice.amount_remaining, invoice.currency),
                "record_url": f"{reverse('admin:billing_payment_record_manual')}?invoice_number={invoice.number}",
            }
            for invoice in awaiting_payment(search=query)[:200]
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Reconciliation: invoices awaiting a payment"),
            "rows": rows,
            "query": query,
            "can_record": request.user.has_perm("billing.add_payment"),
        }
        return TemplateResponse(request, "admin/billing/payments/reconciliation.html", context)

    def record_manual_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("billing.add_payment"):
            raise PermissionDenied
        from billing.services.payments import PaymentsError, payment_record_manual
        from invoices.errors import InvoiceError

        form = ManualPaymentForm(
            request.POST or None, initial={"invoice_number": request.GET.get("invoice_number", "")}
        )
        if request.method == "POST" and form.is_valid():
            payment = call_service(
                form,
                lambda: payment_record_manual(
                    invoice=form.cleaned_data["invoice"],
                    amount=form.cleaned_data["amount_minor"],
                    method=form.cleaned_data["method"],
                    reference=form.cleaned_data["reference"],
                    acting_user=request.user,
                ),
                errors=(InvoiceError, PaymentsError),
                atomic=False,
            )
            if payment is not None:
                self.message_user(
                    request,
                    gettext("%(amount)s recorded on invoice %(number)s.")
                    % {"amount": format_money(payment.amount, payment.currency), "number": payment.invoice.number},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:billing_payment_changelist"))
        return render_tool_form(
            self,
            request,
            title=gettext("Record a payment received"),
            form=form,
            submit_label=gettext("Record payment"),
            intro=gettext("A transfer, cheque or cash received for an invoice. Partial amounts are fine."),
        )

    def refund_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not self.has_refund_permission(request):
            raise PermissionDenied
        from billing.services.refunds import RefundError, approval_threshold, refund_request
        from invoices.errors import InvoiceError

        payment = get_object_or_404(Payment.objects.select_related("invoice"), pk=object_id)
        form = RefundRequestForm(request.POST or None, payment=payment)
        if request.method == "POST" and form.is_valid():
            verified_at = otp_reverify(request, form.cleaned_data["otp_token"])
            if form.cleaned_data["otp_token"] and verified_at is None:
                form.add_error("otp_token", gettext("Invalid or already used code. Wait for the next code."))
            else:
                refund = call_service(
                    form,
                    lambda: refund_request(
                        payment=payment,
                        amount=form.cleaned_data["amount"],
                        reason=form.cleaned_data["reason"],
                        memo=form.cleaned_data["memo"],
                        requested_by=request.user,
                        otp_verified_at=verified_at,
                    ),
                    errors=(RefundError, InvoiceError),
                    atomic=False,
                )
                if refund is not None:
                    if refund.status == Refund.Status.REQUESTED:
                        text = gettext("Refund requested: another staff member must approve it.")
                    elif refund.status == Refund.Status.EXECUTED:
                        text = gettext("Refunded; credit note %(number)s issued.") % {
                            "number": refund.credit_note.number
                        }
                    else:
                        text = gettext("The gateway refused the refund: %(message)s") % {
                            "message": refund.failure_message
                        }
                    level = messages.ERROR if refund.status == Refund.Status.FAILED else messages.SUCCESS
                    self.message_user(request, text, level)
                    return HttpResponseRedirect(reverse("admin:billing_refund_change", args=[refund.pk]))
        return render_tool_form(
            self,
            request,
            title=gettext("Refund a payment"),
            form=form,
            submit_label=gettext("Refund"),
            intro=gettext(
                "Refunds go back through the payment's gateway and issue a credit note. Above %(threshold)s a "
                "second staff member approves, and you confirm with a new two-factor code."
            )
            % {"threshold": format_money(approval_threshold(), payment.currency)},
            objects=[payment, gettext("Invoice %(number)s") % {"number": payment.invoice.number}],
        )


def _retry_invoices(model_admin: admin.ModelAdmin, request: HttpRequest, invoices: Any) -> None:
    from billing.services.payments import invoice_collect

    for invoice in invoices:
        payment = invoice_collect(invoice=invoice, acting_user=request.user)
        if payment is None:
            model_admin.message_user(
                request, gettext("%(number)s: nothing to collect.") % {"number": invoice.number}, messages.INFO
            )
        else:
            level = messages.SUCCESS if payment.status == Payment.Status.SUCCEEDED else messages.WARNING
            model_admin.message_user(
                request,
                gettext("%(number)s: %(status)s %(code)s")
                % {"number": invoice.number, "status": payment.get_status_display(), "code": payment.decline_code},
                level,
            )


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = (
        "requested_at",
        "payment",
        "amount_label",
        "status",
        "needs_approval",
        "requested_by",
        "decided_by",
        "credit_note_link",
    )
    list_filter = ("status", "needs_approval")
    search_fields = ("invoice__number", "payment__customer__legal_name", "=gateway_reference")
    list_select_related = ("payment", "requested_by", "decided_by", "credit_note")
    change_form_template = "admin/billing/payments/refund_change_form.html"
    fields = (
        "payment",
        "invoice",
        "amount_label",
        "status",
        "reason",
        "memo",
        "needs_approval",
        "requested_by",
        "requested_at",
        "decided_by",
        "decided_at",
        "decision_note",
        "credit_note_link",
        "gateway_reference",
        "failure_message",
        "executed_at",
    )
    readonly_fields = fields

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<int:object_id>/approve/",
                self.admin_site.admin_view(self.decide_view),
                {"approve": True},
                name="{}_{}_approve".format(*info),
            ),
            path(
                "<int:object_id>/reject/",
                self.admin_site.admin_view(self.decide_view),
                {"approve": False},
                name="{}_{}_reject".format(*info),
            ),
            *super().get_urls(),
        ]

    @admin.display(description=_("amount"), ordering="amount")
    def amount_label(self, refund: Refund) -> str:
        return format_money(refund.amount, refund.currency)

    @admin.display(description=_("credit note"))
    def credit_note_link(self, refund: Refund) -> str:
        return _linked(refund.credit_note, refund.credit_note.number) if refund.credit_note else "—"

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.approve_refund")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_decide": self.has_approve_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def decide_view(self, request: HttpRequest, object_id: int, approve: bool) -> HttpResponse:
        if not self.has_approve_permission(request):
            raise PermissionDenied
        from billing.services.refunds import RefundError, refund_approve, refund_reject
        from invoices.errors import InvoiceError

        refund = get_object_or_404(Refund.objects.select_related("payment", "requested_by"), pk=object_id)
        form = RefundDecisionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            verified_at = otp_reverify(request, form.cleaned_data["otp_token"])
            if verified_at is None:
                form.add_error("otp_token", gettext("Invalid or already used code. Wait for the next code."))
            else:
                pending = refund
                decided = call_service(
                    form,
                    (lambda: refund_approve(refund=pending, approver=request.user, otp_verified_at=verified_at))
                    if approve
                    else (lambda: refund_reject(refund=pending, approver=request.user, note=form.cleaned_data["note"])),
                    errors=(RefundError, InvoiceError),
                    atomic=False,
                )
                if decided is not None:
                    refund = decided
                    self.message_user(
                        request,
                        gettext("Refund %(status)s.") % {"status": refund.get_status_display()},
                        messages.ERROR if refund.status == Refund.Status.FAILED else messages.SUCCESS,
                    )
                    return HttpResponseRedirect(reverse("admin:billing_refund_change", args=[refund.pk]))
        return render_tool_form(
            self,
            request,
            title=gettext("Approve the refund") if approve else gettext("Reject the refund"),
            form=form,
            submit_label=gettext("Approve and refund") if approve else gettext("Reject"),
            intro=gettext("Requested by %(user)s. Confirm with a new two-factor code.") % {"user": refund.requested_by},
            objects=[refund, refund.payment],
        )


@admin.register(DunningCase)
class DunningCaseAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("invoice_link", "customer", "status", "retries_done", "next_retry_at", "final_action", "started_at")
    list_filter = ("status", "final_action")
    search_fields = ("invoice__number", "customer__legal_name")
    list_select_related = ("invoice", "customer")
    actions = ["retry_now"]
    fields = (
        "invoice_link",
        "customer",
        "status",
        "schedule_days",
        "retries_done",
        "started_at",
        "next_retry_at",
        "final_action",
        "closed_at",
    )
    readonly_fields = fields

    @admin.display(description=_("invoice"), ordering="invoice__number")
    def invoice_link(self, case: DunningCase) -> str:
        return _linked(case.invoice, case.invoice.number)

    @admin.action(description=_("Retry now (outside the schedule)"), permissions=["view"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[DunningCase]) -> None:
        from invoices.models import Invoice

        if not request.user.has_perm("billing.add_payment"):
            raise PermissionDenied
        invoice_ids = sorted(queryset.values_list("invoice_id", flat=True))
        _retry_invoices(self, request, Invoice.objects.filter(pk__in=invoice_ids).order_by("pk"))


# Bank statements and reconciliation live in their own module (registered on import).
# Webhook endpoints and deliveries too.
from billing import admin_reconciliation, admin_webhooks  # noqa: E402, F401
