"""Spreadsheet import and export (django-import-export) for the catalog and subscriptions.

Finance staff keep catalogs in spreadsheets, so the columns use what people read
(product names, meter keys, price lookup keys, "every 3 months") rather than ids;
ids are exported too so a re-import updates the same rows.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.formats import date_format
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.utils.translation import gettext as _
from import_export import fields, resources, widgets

from billing.cycles import CycleSpec, CycleSpecError
from billing.models import Coupon, Meter, Price, Product, Subscription
from billing.services.catalog import (
    meter_create,
    meter_update,
    price_create,
    price_update,
    product_create,
    product_update,
)
from billing.services.coupons import coupon_create, coupon_update
from billing.services.subscriptions import ItemSpec, subscription_create
from config.console import format_minor_decimal, format_money
from config.locking import lock_order_exempt
from config.modes import scope_to_mode
from config.write_path import ServiceResourceMixin
from customers.models import Customer

_SHORTHAND_UNITS = {"daily": "day", "weekly": "week", "monthly": "month", "yearly": "year", "annually": "year"}
_EVERY = re.compile(r"^every\s+(?:(\d+)\s+)?(day|week|month|year)s?$")


def cycle_from_text(text: str) -> dict:
    """Read a billing cycle written as people say it, or as the cycle's JSON; raise ValueError."""
    text = text.strip()
    try:
        if text.startswith("{"):
            return CycleSpec.from_dict(json.loads(text)).to_dict()
        lowered = text.lower()
        if lowered in _SHORTHAND_UNITS:
            return CycleSpec.every(1, _SHORTHAND_UNITS[lowered]).to_dict()
        if lowered == "quarterly":
            return CycleSpec.quarterly().to_dict()
        match = _EVERY.match(lowered)
        if match:
            return CycleSpec.every(int(match.group(1) or 1), match.group(2)).to_dict()
    except (CycleSpecError, json.JSONDecodeError, TypeError) as error:
        raise ValueError(_("Invalid billing cycle '%(value)s': %(error)s") % {"value": text, "error": error}) from error
    raise ValueError(
        _("Invalid billing cycle '%(value)s': write e.g. 'every month', 'every 3 months', 'yearly' or JSON.")
        % {"value": text}
    )


def cycle_to_text(value: Any) -> str:
    """The inverse of cycle_from_text: "every 3 months" for intervals, JSON for calendar cycles."""
    if not value:
        return ""
    try:
        spec = CycleSpec.from_dict(value)
    except (CycleSpecError, TypeError):
        return json.dumps(value)
    if spec.kind == "interval":
        return spec.describe()
    return json.dumps(spec.to_dict())


def cycle_display(value: Any) -> str:
    """A billing cycle as the console shows it, in the active language ("tous les 3 mois").

    cycle_to_text stays the English form that forms and import files are typed in."""
    if not value:
        return ""
    try:
        spec = CycleSpec.from_dict(value)
    except (CycleSpecError, TypeError):
        return json.dumps(value)
    if spec.kind == "interval":
        count = spec.count
        labels = {
            "day": ngettext("every day", "every %(count)d days", count),
            "week": ngettext("every week", "every %(count)d weeks", count),
            "month": ngettext("every month", "every %(count)d months", count),
            "year": ngettext("every year", "every %(count)d years", count),
        }
        return labels[str(spec.unit)] % {"count": count}
    if spec.kind == "last_business_day":
        label = gettext("on the last business day of the month")
    elif spec.kind == "explicit_dates":
        dates = [date_format(date(2000, month, day), "j F") for month, day in spec.dates]
        label = gettext("every year on %(dates)s") % {"dates": _join(dates)}
    else:
        days = [gettext("the last day") if day == -1 else str(day) for day in spec.days]
        label = gettext("every month on day %(days)s") % {"days": _join(days)}
    if spec.business_day == "previous" and spec.kind != "last_business_day":
        label += gettext(", or the business day before")
    elif spec.business_day == "next":
        label += gettext(", or the next business day")
    if spec.holiday_country:
        label += f" ({spec.holiday_country}{'-' + spec.holiday_subdivision if spec.holiday_subdivision else ''})"
    return label


def _join(items: list[str]) -> str:
    if len(items) < 2:
        return "".join(items)
    return gettext("%(first)s and %(last)s") % {"first": ", ".join(items[:-1]), "last": items[-1]}


class CycleWidget(widgets.Widget):
    """A billing cycle as "every month", "every 3 months", "yearly", or the cycle's JSON."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> dict | None:
        text = str(value or "").strip()
        return cycle_from_text(text) if text else None

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return cycle_to_text(value)


class JsonListWidget(widgets.JSONWidget):
    """JSON that must decode; an empty cell is an empty list (price tiers)."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Any:
        if value in (None, ""):
            return []
        try:
            return super().clean(value, row=row, **kwargs)
        except json.JSONDecodeError as error:
            raise ValueError(_("Not valid JSON: %(error)s") % {"error": error}) from error


class LookupWidget(widgets.ForeignKeyWidget):
    """A foreign key looked up by a readable column, with an error message people understand."""

    def __init__(self, model: Any, field: str, *, allow_id: bool = False, **kwargs: Any) -> None:
        super().__init__(model, field, **kwargs)
        self.allow_id = allow_id

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Any:
        text = str(value or "").strip()
        if not text:
            return None
        queryset = self.model.objects.filter(**{self.field: text})
        if self.allow_id and text.isdigit() and not queryset.exists():
            queryset = self.model.objects.filter(pk=int(text))
        matches = list(queryset[:2])
        name = self.model._meta.verbose_name
        if not matches:
            raise ValueError(_("No %(model)s '%(value)s'.") % {"model": name, "value": text})
        if len(matches) > 1:
            raise ValueError(
                _("Several %(models)s match '%(value)s'; use the id instead.")
                % {"models": self.model._meta.verbose_name_plural, "value": text}
            )
        return matches[0]


class ProductResource(ServiceResourceMixin, resources.ModelResource):
    class Meta:
        model = Product
        fields = ("id", "name", "description", "unit_label", "active")
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True
        use_transactions = True

    def service_create(self, *, data: dict, user: Any) -> Product:
        return product_create(data=data)

    def service_update(self, *, obj: Product, changes: dict, user: Any) -> Product:
        return product_update(product=obj, changes=changes)


class MeterResource(ServiceResourceMixin, resources.ModelResource):
    class Meta:
        model = Meter
        fields = ("id", "key", "name", "aggregation")
        import_id_fields = ("key",)
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True
        use_transactions = True

    def service_create(self, *, data: dict, user: Any) -> Meter:
        return meter_create(data=data)

    def service_update(self, *, obj: Meter, changes: dict, user: Any) -> Meter:
        return meter_update(meter=obj, changes=changes)


class PriceResource(ServiceResourceMixin, resources.ModelResource):
    product = fields.Field(
        column_name="product", attribute="product", widget=LookupWidget(Product, "name", allow_id=True)
    )
    meter = fields.Field(column_name="meter", attribute="meter", widget=LookupWidget(Meter, "key"))
    cycle = fields.Field(column_name="cycle", attribute="cycle", widget=CycleWidget())
    tiers = fields.Field(column_name="tiers", attribute="tiers", widget=JsonListWidget())
    # Exports keep unit_amount in minor units for machines (and re-import); people read this column.
    unit_price_display = fields.Field(column_name="unit_price_display", readonly=True)
    column_labels = {"unit_price_display": gettext_lazy("Unit price (for people)")}

    class Meta:
        model = Price
        fields = (
            "id",
            "product",
            "nickname",
            "lookup_key",
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
            "active",
            "unit_price_display",
            # issue 16, cycles (minor units, like unit_amount)
            "billing_timing",
            "minimum_amount",
        )
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True
        use_transactions = True

    def dehydrate_unit_price_display(self, price: Price) -> str:
        return format_minor_decimal(price.unit_amount, price.currency) if price.unit_amount is not None else ""

    # The price-in-use rule is price_update's (the same as the console's and the API's).
    def service_create(self, *, data: dict, user: Any) -> Price:
        return price_create(data=data)

    def service_update(self, *, obj: Price, changes: dict, user: Any) -> Price:
        return price_update(price=obj, changes=changes)


class CouponResource(ServiceResourceMixin, resources.ModelResource):
    """Coupons through coupon_create / coupon_update: a redeemed coupon's terms stay as sold."""

    applies_to = fields.Field(
        column_name="applies_to",
        attribute="applies_to",
        widget=widgets.ManyToManyWidget(Product, field="name", separator=";"),
    )
    # amount_off stays in minor units for machines (and re-import); people read this column.
    amount_off_display = fields.Field(column_name="amount_off_display", readonly=True)
    column_labels = {"amount_off_display": gettext_lazy("Amount off (for people)")}

    class Meta:
        model = Coupon
        fields = (
            "id",
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
            "amount_off_display",
        )
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True
        use_transactions = True

    def dehydrate_amount_off_display(self, coupon: Coupon) -> str:
        return format_money(coupon.amount_off, coupon.currency) if coupon.amount_off is not None else ""

    def service_create(self, *, data: dict, user: Any) -> Coupon:
        data = dict(data)
        applies_to = data.pop("applies_to", ())
        return coupon_create(data=data, applies_to=applies_to)

    def service_update(self, *, obj: Coupon, changes: dict, user: Any) -> Coupon:
        return coupon_update(coupon=obj, changes=changes, acting_user=user)


# -- subscriptions -------------------------------------------------------------------


ITEMS_ERROR_KEY = "items (price:quantity)"


def items_from_text(text: str) -> list[tuple[Price, int]]:
    """Read "pro-monthly:3; api-metered" (price lookup key or id, then quantity, default 1).

    Raises ValueError naming the first item that cannot be read.
    """
    parsed: list[tuple[Price, int]] = []
    for chunk in (part.strip() for part in text.replace("\n", ";").split(";")):
        if not chunk:
            continue
        key, _sep, quantity_text = chunk.partition(":")
        key, quantity_text = key.strip(), quantity_text.strip() or "1"
        try:
            quantity = int(quantity_text)
        except ValueError:
            raise ValueError(
                _("'%(item)s': the quantity after ':' must be a whole number.") % {"item": chunk}
            ) from None
        if "\x00" in key or len(key) > 100:  # the database refuses NUL; lookup keys are at most 100 long
            raise ValueError(_("'%(key)s' is not the lookup key of an active price.") % {"key": key[:100]})
        # In the console's current mode (live unless "Test data" is on): lookup keys repeat across modes.
        prices = scope_to_mode(Price.objects.select_related("product"))
        price = prices.filter(lookup_key=key, active=True).first()
        if price is None and key.isascii() and key.isdigit() and len(key) <= 18:
            price = prices.filter(pk=int(key)).first()
        if price is None:
            raise ValueError(_("'%(key)s' is not the lookup key of an active price.") % {"key": key})
        parsed.append((price, quantity))
    if not parsed:
        raise ValueError(_("Give at least one item, e.g. 'pro-monthly:3'."))
    return parsed


def items_to_text(items: Any) -> str:
    return ";".join(f"{item.price.lookup_key or item.price_id}:{item.quantity}" for item in items)


class SubscriptionResource(resources.ModelResource):
    """Exports subscriptions with their items; an import creates new subscriptions through
    `subscription_create` (first invoice, events and all). Rows of subscriptions that
    already exist are skipped: those change from their page, where proration applies."""

    customer = fields.Field(
        column_name="customer", attribute="customer", widget=LookupWidget(Customer, "email", allow_id=True)
    )
    items = fields.Field(column_name="items", attribute=None, readonly=False)
    cycle = fields.Field(column_name="cycle", attribute="cycle", widget=CycleWidget(), readonly=True)
    coupon = fields.Field(column_name="coupon", attribute="coupon", widget=LookupWidget(Coupon, "name", allow_id=True))
    trial_days = fields.Field(column_name="trial_days", attribute=None)
    promotion_code = fields.Field(column_name="promotion_code", attribute=None)

    class Meta:
        model = Subscription
        fields = (
            "id",
            "customer",
            "items",
            "status",
            "currency",
            "cycle",
            "collection_method",
            "days_until_due",
            "trial_days",
            "coupon",
            "promotion_code",
            "current_period_start",
            "current_period_end",
            "trial_end",
            "cancel_at_period_end",
            "created_at",
        )
        skip_unchanged = False
        report_skipped = True
        clean_model_instances = False
        use_transactions = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Written by subscription_create from the items and the customer's clock, never imported.
        for name in ("status", "currency", "current_period_start", "current_period_end", "trial_end", "created_at"):
            self.fields[name].readonly = True

    def get_queryset(self):
        return super().get_queryset().select_related("customer", "coupon").prefetch_related("items__price")

    def dehydrate_items(self, subscription: Subscription) -> str:
        return items_to_text(subscription.items.all()) if subscription.pk else ""

    def dehydrate_trial_days(self, subscription: Subscription) -> str:
        return ""

    def dehydrate_promotion_code(self, subscription: Subscription) -> str:
        return subscription.promotion_code.code if subscription.promotion_code_id else ""

    def skip_row(self, instance: Subscription, original: Any, row: Any, import_validation_errors: Any = None) -> bool:
        # A subscription already in Tarif changes from its page (with proration), not by import.
        return original is not None and original.pk is not None

    def import_instance(self, instance: Subscription, row: Any, **kwargs: Any) -> None:
        errors: dict[str, Any] = {}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        if instance.pk is None:
            try:
                instance._import_items = items_from_text(str(row.get("items") or ""))
            except ValueError as error:
                # Not keyed "items": import-export's template reads `errors.items` as a dict lookup.
                errors[ITEMS_ERROR_KEY] = ValidationError(str(error))
            trial_text = str(row.get("trial_days") or "").strip()
            instance._import_trial_days = None
            if trial_text:
                if trial_text.isdigit():
                    instance._import_trial_days = int(trial_text)
                else:
                    errors["trial_days"] = ValidationError(_("The trial is a whole number of days."))
            instance._import_promotion_code = str(row.get("promotion_code") or "").strip() or None
            if instance.customer_id is None and "customer" not in errors:
                errors["customer"] = ValidationError(_("Give the customer's billing email."))
        if errors:
            raise ValidationError(errors)

    def save_instance(self, instance: Subscription, is_create: bool, row: Any, **kwargs: Any) -> None:
        if not is_create:
            return
        try:
            # Known exception to the lock order (docs/billing.md): one transaction for the file.
            with transaction.atomic(), lock_order_exempt("a spreadsheet import writes every row in one transaction"):
                created = subscription_create(
                    customer=instance.customer,
                    items=[ItemSpec(price=price, quantity=quantity) for price, quantity in instance._import_items],
                    trial_days=instance._import_trial_days,
                    coupon=instance.coupon,
                    promotion_code=instance._import_promotion_code,
                    collection_method=instance.collection_method,
                    days_until_due=instance.days_until_due,
                    acting_user=kwargs.get("user"),
                )
        except (ValidationError, ValueError) as error:
            messages = error.messages if isinstance(error, ValidationError) else [str(error)]
            raise ValidationError({"__all__": messages}) from error
        for field in Subscription._meta.concrete_fields:
            setattr(instance, field.attname, getattr(created, field.attname))
        instance._state.adding = False
