"""Console pages for the catalog: products, meters, prices, coupons and promotion codes."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportModelAdmin
from unfold.widgets import UnfoldAdminTextareaWidget, UnfoldAdminTextInputWidget

from billing.cycles import CycleSpec, CycleSpecError
from billing.limits import MAX_AMOUNT
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
    MajorAmountField,
    ReadOnlyInline,
    StyledAdmin,
    babel_locale,
    error_text,
    format_minor_decimal,
    format_money,
    major_to_money,
    money_amount_field_help,
)
from config.money import AmountError, CurrencyError, Money, currency_exponent, parse_major
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
    list_display = ("name", "key", "aggregation", "dimensions", "created_at")
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


# A unit price may be a fraction of the currency's minor unit (metered: 0.5 cent a call); the
# column keeps 6 decimals of minor units, so a EUR unit price takes up to 8 decimals typed in euros.
UNIT_AMOUNT_MINOR_DECIMALS = 6


def minor_to_major(value: Decimal | int | None, currency: str) -> Decimal | None:
    """A stored minor-unit amount as the major-unit Decimal a form shows: 4900 EUR -> 49.00."""
    if value is None or not currency:
        return None
    exponent = currency_exponent(currency)
    major = Decimal(value).scaleb(-exponent)
    if major == major.quantize(Decimal(1).scaleb(-exponent)):
        return major.quantize(Decimal(1).scaleb(-exponent))
    return major.normalize()


def unit_amount_to_minor(text: str, currency: str) -> Decimal:
    """A unit price typed in major units ("49", "0,005") as the stored Decimal of minor units.

    Refuses what is not an amount, negatives, more decimals than the column keeps, and more
    than billing.limits.MAX_AMOUNT, each with a sentence for the form."""
    number = parse_major(text, locale=babel_locale())
    exponent = currency_exponent(currency)
    if number < 0:
        raise AmountError(gettext("A price cannot be negative."), code="out_of_bounds")
    try:
        minor = number.scaleb(exponent)
        stored = minor.quantize(Decimal(1).scaleb(-UNIT_AMOUNT_MINOR_DECIMALS))
    except InvalidOperation as error:
        raise AmountError(
            gettext("'%(value)s' is too large an amount.") % {"value": text}, code="out_of_bounds"
        ) from error
    if stored != minor:
        raise AmountError(
            gettext("'%(value)s' has more decimals than a %(currency)s unit price allows (at most %(digits)d).")
            % {"value": text, "currency": currency, "digits": exponent + UNIT_AMOUNT_MINOR_DECIMALS},
            code="too_many_decimals",
        )
    if stored > MAX_AMOUNT:
        raise AmountError(
            gettext("The amount must be at most %(maximum)s.") % {"maximum": format_money(MAX_AMOUNT, currency)},
            code="out_of_bounds",
        )
    return stored


def _plain(value: Decimal | None) -> str:
    """A major-unit Decimal in the reader's writing, without grouping: 1234.5 -> "1234,5" in French."""
    if value is None:
        return ""
    return MajorAmountField().prepare_value(value)


class MajorUnitPriceField(MajorAmountField):
    """A unit price in major units; unchanged when it says the same amount in other words."""

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            before = Decimal(initial) if initial not in (None, "") else None
            after = parse_major(data, locale=babel_locale()) if data not in (None, "") else None
        except (AmountError, InvalidOperation, TypeError, ValueError):
            return True
        return before != after


class TiersField(forms.CharField):
    """Tiers typed one per line in major units: "up to | unit price | flat fee"."""

    def has_changed(self, initial: Any, data: Any) -> bool:
        def lines(text: Any) -> list[str]:
            return [" ".join(line.split()) for line in str(text or "").splitlines() if line.strip()]

        return lines(initial) != lines(data)


INFINITY_WORDS = ("", "∞", "inf", "infinity", "and up", "et plus", "+")


def tiers_to_text(tiers: list[dict[str, Any]] | None, currency: str) -> str:
    rows = []
    for tier in tiers or []:
        up_to = tier.get("up_to")
        unit = minor_to_major(Decimal(str(tier.get("unit_amount", "0"))), currency)
        flat = minor_to_major(int(tier.get("flat_amount", 0) or 0), currency)
        rows.append(" | ".join(("∞" if up_to is None else str(up_to), _plain(unit), _plain(flat))))
    return "\n".join(rows)


def tiers_from_text(text: str, currency: str) -> list[dict[str, Any]]:
    """The tiers' lines as Price.tiers JSON in minor units; ValidationError names the line."""
    tiers: list[dict[str, Any]] = []
    for number, line in enumerate((line for line in text.splitlines() if line.strip()), start=1):
        parts = [part.strip() for part in line.split("|")]
        if len(parts) not in (2, 3):
            raise ValidationError(
                gettext('Tier %(line)d: write "up to | unit price | flat fee", e.g. "10 | 5,00 | 0".')
                % {"line": number}
            )
        up_to_text = parts[0].lower()
        try:
            up_to = None if up_to_text in INFINITY_WORDS else int(up_to_text)
        except ValueError as error:
            raise ValidationError(
                gettext("Tier %(line)d: “%(value)s” is not a quantity (a whole number, or ∞ for the last tier).")
                % {"line": number, "value": parts[0]}
            ) from error
        try:
            unit = unit_amount_to_minor(parts[1] or "0", currency)
            flat = Money.from_major(
                parts[2] if len(parts) == 3 and parts[2] else "0",
                currency,
                locale=babel_locale(),
                minimum=0,
                maximum=MAX_AMOUNT,
            ).amount
        except (AmountError, CurrencyError) as error:
            raise ValidationError(
                gettext("Tier %(line)d: %(error)s") % {"line": number, "error": error_text(error)}
            ) from error
        tiers.append({"up_to": up_to, "unit_amount": format(unit.normalize(), "f"), "flat_amount": flat})
    return tiers


# Issue 16 (usage): pricing fields a form may leave empty, and what empty means.
USAGE_PRICING_DEFAULTS: dict[str, Any] = {
    "free_units": 0,
    "fixed_amount": Decimal(0),
    "free_amount": Decimal(0),
    "usage_filter": dict,
}


# Percentage pricing's amounts: typed in major units, stored as Decimal minor units.
PERCENTAGE_FEE_FIELDS = ("fixed_amount", "free_amount", "per_transaction_min_amount", "per_transaction_max_amount")


def _amount_field(label: Any, help_text: Any) -> MajorUnitPriceField:
    """An optional amount of the price form, typed in the price's major units."""
    return MajorUnitPriceField(
        label=label,
        required=False,
        widget=UnfoldAdminTextInputWidget(attrs={"inputmode": "decimal"}),
        help_text=help_text,
    )


class PriceForm(forms.ModelForm):
    cycle = CycleFormField(
        label=_("billing cycle"),
        required=False,
        widget=UnfoldAdminTextInputWidget(),
        help_text=_(
            'e.g. "every month", "every 3 months", "yearly", or JSON for calendar cycles; empty for one-time prices.'
        ),
    )
    # Typed in major units (euros, not cents); stored in minor units (Price.unit_amount).
    unit_amount = _amount_field(
        _("Unit price"),
        _("In the price's currency, as on an invoice: 49 or 49,00 for €49; 0,005 for half a cent."),
    )
    # Issue 16, cycles: a metered price's minimum spend per period, typed in major units too.
    minimum_amount = _amount_field(
        _("Minimum spend per period"),
        _("Metered prices: a period whose usage costs less is topped up to this amount. Empty: none."),
    )
    # Percentage pricing (issue 16): fees typed in major units like every other amount of the form.
    fixed_amount = _amount_field(
        _("Fixed fee per transaction"),
        _("In the price's currency: 0,25 for €0.25 per transaction. Empty: none."),
    )
    free_amount = _amount_field(
        _("Free transaction amount per period"),
        _("The first part of the period's transaction amount bears no rate. Empty: none."),
    )
    per_transaction_min_amount = _amount_field(
        _("Per-transaction minimum fee"),
        _("In the price's currency. Empty: no minimum."),
    )
    per_transaction_max_amount = _amount_field(
        _("Per-transaction maximum fee"),
        _("In the price's currency. Empty: no maximum."),
    )
    tiers = TiersField(
        label=_("Tiers"),
        required=False,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 4}),
        help_text=_(
            "One tier per line, in the price's currency: up to | unit price | flat fee. E.g. “10 | 5,00 | 0”, "
            "then “∞ | 4,00” for the last tier."
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
            "billing_timing",
            "minimum_amount",
            "trial_days",
            "metadata",
            # Issue 16 (usage)
            "free_units",
            "percentage_rate",
            "fixed_amount",
            "free_amount",
            "per_transaction_min_amount",
            "per_transaction_max_amount",
            "usage_filter",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "billing_timing" in self.fields:  # a form (or an older page) without it keeps the default
            self.fields["billing_timing"].required = False
        currency = self.instance.currency if self.instance.pk else ""
        if currency:
            if "unit_amount" in self.fields:
                self.initial["unit_amount"] = minor_to_major(self.instance.unit_amount, currency)
            if "minimum_amount" in self.fields:
                self.initial["minimum_amount"] = minor_to_major(self.instance.minimum_amount or None, currency)
            for name in PERCENTAGE_FEE_FIELDS:
                if name in self.fields:
                    stored = getattr(self.instance, name)
                    self.initial[name] = minor_to_major(stored if stored else None, currency)
            if "tiers" in self.fields:
                self.initial["tiers"] = tiers_to_text(self.instance.tiers, currency)
        elif "tiers" in self.fields:
            self.initial["tiers"] = ""
        # Issue 16 (usage): optional in the form; left empty they keep their defaults.
        for name in USAGE_PRICING_DEFAULTS:
            if name in self.fields:
                self.fields[name].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for name, default in USAGE_PRICING_DEFAULTS.items():
            if name in self.fields and data.get(name) in (None, ""):
                data[name] = default() if callable(default) else default
        currency = data.get("currency") or (self.instance.currency if self.instance.pk else "")
        if "unit_amount" in self.fields:
            text = self.cleaned_data.get("unit_amount")
            data["unit_amount"] = None
            if text and currency:
                try:
                    data["unit_amount"] = unit_amount_to_minor(text, currency)
                except (AmountError, CurrencyError) as error:
                    self.add_error("unit_amount", error_text(error))
        for name in PERCENTAGE_FEE_FIELDS:
            if name not in self.fields:
                continue
            text = self.cleaned_data.get(name)
            data[name] = Decimal(0) if name in USAGE_PRICING_DEFAULTS else None
            if text and currency:
                try:
                    data[name] = unit_amount_to_minor(text, currency)
                except (AmountError, CurrencyError) as error:
                    self.add_error(name, error_text(error))
        if "billing_timing" in self.fields and not data.get("billing_timing"):
            data["billing_timing"] = self.instance.billing_timing or Price.BillingTiming.IN_ADVANCE
        if "minimum_amount" in self.fields:
            text = self.cleaned_data.get("minimum_amount")
            data["minimum_amount"] = 0
            if text and currency:
                try:
                    data["minimum_amount"] = Money.from_major(
                        text, currency, locale=babel_locale(), minimum=0, maximum=MAX_AMOUNT
                    ).amount
                except (AmountError, CurrencyError) as error:
                    self.add_error("minimum_amount", error_text(error))
        if "tiers" in self.fields:
            text = self.cleaned_data.get("tiers") or ""
            data["tiers"] = []
            if text.strip() and currency:
                try:
                    data["tiers"] = tiers_from_text(text, currency)
                except ValidationError as error:
                    self.add_error("tiers", error)
        return data


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
        (_("Other"), {"fields": ("trial_days", "tax_code", "metadata", "created_at")}),
    )

    # Frozen terms show read-only: the amounts as money, not the stored minor units.
    MONEY_LABELS = {"unit_amount": "unit_amount_label", "tiers": "tiers_label"}

    def get_fieldsets(self, request: HttpRequest, obj: Price | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        frozen = set(self.get_readonly_fields(request, obj))
        return [
            (
                title,
                {
                    **options,
                    "fields": tuple(
                        self.MONEY_LABELS.get(name, name) if name in frozen else name for name in options["fields"]
                    ),
                },
            )
            for title, options in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Price | None = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        return readonly + tuple(label for name, label in self.MONEY_LABELS.items() if name in readonly)

    @admin.display(description=_("unit price"))
    def unit_amount_label(self, price: Price) -> str:
        return format_minor_decimal(price.unit_amount, price.currency) if price.unit_amount is not None else "—"

    @admin.display(description=_("tiers"))
    def tiers_label(self, price: Price) -> str:
        if not price.tiers:
            return "—"
        rows = []
        for tier in price.tiers:
            unit = format_minor_decimal(Decimal(str(tier.get("unit_amount", "0"))), price.currency)
            flat = int(tier.get("flat_amount", 0) or 0)
            up_to = tier.get("up_to")
            text = (
                gettext("up to %(count)s: %(unit)s each") % {"count": up_to, "unit": unit}
                if up_to is not None
                else gettext("beyond: %(unit)s each") % {"unit": unit}
            )
            if flat:
                text += " + " + format_money(flat, price.currency)
            rows.append(text)
        return format_html_join(mark_safe("<br>"), "{}", ((row,) for row in rows))

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


class CouponForm(forms.ModelForm):
    # Typed in major units; stored in minor units (Coupon.amount_off).
    amount_off = MajorAmountField(
        label=_("Amount off"),
        required=False,
        widget=UnfoldAdminTextInputWidget(attrs={"inputmode": "decimal"}),
        help_text=_("In the coupon's currency, as on an invoice: 10 or 10,00 for €10. Leave empty for a percentage."),
    )

    class Meta:
        model = Coupon
        fields = (
            "name",
            "percent_off",
            "amount_off",
            "currency",
            "duration",
            "duration_in_periods",
            "max_redemptions",
            "redeem_by",
            "applies_to",
            "active",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.currency and "amount_off" in self.fields:
            self.initial["amount_off"] = minor_to_major(self.instance.amount_off, self.instance.currency)
            self.fields["amount_off"].help_text = money_amount_field_help(self.instance.currency)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if "amount_off" in self.fields:
            text = self.cleaned_data.get("amount_off")
            currency = data.get("currency") or ""
            money = None
            if text and not currency:
                self.add_error("currency", gettext("An amount-off coupon needs a currency."))
            elif text:
                money = major_to_money(self, "amount_off", currency, minimum=1, maximum=MAX_AMOUNT)
            if "amount_off" in self.cleaned_data:  # not refused above: minor units for the model
                self.cleaned_data["amount_off"] = money.amount if money is not None else None
        return data


@admin.register(Coupon)
class CouponAdmin(ServiceAdminMixin, ImportExportPermissions, StyledAdmin, ImportExportModelAdmin):
    resource_classes = [CouponResource]
    form = CouponForm
    list_display = ("name", "discount", "duration_label", "redemptions", "redeem_by", "active")
    list_filter = ("active", "duration", "currency")
    search_fields = ("name",)
    # A search box over products instead of two side-by-side lists (which ran past 1366 px).
    autocomplete_fields = ("applies_to",)
    readonly_fields = ("times_redeemed", "created_at")

    def get_fields(self, request: HttpRequest, obj: Coupon | None = None) -> Any:
        fields = super().get_fields(request, obj)
        frozen = obj is not None and "amount_off" in self.get_readonly_fields(request, obj)
        return [("amount_off_label" if frozen and name == "amount_off" else name) for name in fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Coupon | None = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        return (*readonly, "amount_off_label") if "amount_off" in readonly else readonly

    @admin.display(description=_("amount off"))
    def amount_off_label(self, coupon: Coupon) -> str:
        return format_money(coupon.amount_off, coupon.currency) if coupon.amount_off is not None else "—"

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
