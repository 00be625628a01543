"""Console pages for the catalog: products, meters, prices, coupons and promotion codes."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportModelAdmin

from billing.cycles import CycleSpec, CycleSpecError
from billing.models import (
    Coupon,
    Meter,
    Price,
    Product,
    PromotionCode,
)
from billing.resources import (
    CouponResource,
    MeterResource,
    PriceResource,
    ProductResource,
    cycle_display,
    cycle_from_text,
    cycle_to_text,
)
from billing.services.catalog import (
    PRICE_TERM_FIELDS,
    meter_create,
    meter_frozen_fields,
    meter_update,
    meter_update_validate,
    price_create,
    price_frozen_fields,
    price_in_use_annotation,
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
from config.console import (
    ImportExportPermissions,
    ReadOnlyInline,
    StyledAdmin,
    error_text,
    format_minor_decimal,
    format_money,
)
from config.write_path import ServiceAdminMixin


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
        return cycle_display(price.cycle) or "—"


@admin.register(Product)
class ProductAdmin(ServiceAdminMixin, ImportExportPermissions, StyledAdmin, ImportExportModelAdmin):
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
class MeterAdmin(ServiceAdminMixin, ImportExportPermissions, StyledAdmin, ImportExportModelAdmin):
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
class PriceAdmin(ServiceAdminMixin, ImportExportPermissions, StyledAdmin, ImportExportModelAdmin):
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
        # The frozen terms are the catalog service's list (the product shows in the first group).
        (
            _("Terms (frozen once the price is used)"),
            {"fields": tuple(name for name in PRICE_TERM_FIELDS if name != "product")},
        ),
        (_("Other"), {"fields": ("trial_days", "metadata", "created_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Price]:
        # The catalog service's price-in-use predicate, not a copy of it.
        return super().get_queryset(request).annotate(used=price_in_use_annotation())

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
        return cycle_display(price.cycle) if price.cycle else gettext("one-time")

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
class CouponAdmin(ServiceAdminMixin, ImportExportPermissions, StyledAdmin, ImportExportModelAdmin):
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
class PromotionCodeAdmin(ServiceAdminMixin, StyledAdmin):
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
