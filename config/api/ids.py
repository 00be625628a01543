"""Public ids: a type prefix and the primary key (`cus_42`, `sub_7`, `in_1031`).

The encoding is the decimal pk behind a prefix: reversible without a lookup table or a
new column on every model, stable forever, and a wrong prefix (a `sub_` id where a
customer is expected) is refused instead of finding an unrelated row.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from django.utils.translation import gettext as _

PREFIXES: dict[str, str] = {
    "customers.customer": "cus",
    "billing.product": "prod",
    "billing.price": "price",
    "billing.meter": "mtr",
    "billing.coupon": "coupon",
    "billing.promotioncode": "promo",
    "billing.subscription": "sub",
    "billing.subscriptionitem": "si",
    "billing.subscriptiondiscount": "di",
    "billing.customerdiscount": "cdi",
    "billing.invoiceitem": "ii",
    "billing.usageevent": "ue",
    "billing.usagethreshold": "uth",
    "events.domainevent": "evt",
    "billing.paymentmethod": "pm",
    "billing.payment": "pay",
    "billing.refund": "re",
    "billing.testclock": "clock",
    "billing.webhookendpoint": "we",
    "billing.webhookdelivery": "whd",
    "invoices.invoice": "in",
    "invoices.invoiceline": "il",
    "invoices.creditnote": "cn",
    "invoices.brand": "brand",
    "entitlements.feature": "feat",
    "entitlements.productfeature": "prodft",
    # Issue 16 item 11: tax codes and rates are global data (no mode).
    "invoices.taxcode": "txcd",
    "invoices.taxrate": "txr",
    "wallets.wallet": "wlt",
    "wallets.creditgrant": "credgr",
    "wallets.wallettransaction": "wtxn",
    "invoices.balancetransaction": "cbtxn",
    # Issue 17 item 4: quotes.
    "quotes.quote": "qt",
}


class InvalidPublicId(ValueError):
    pass


def prefix_for(model: type[Model] | Model) -> str:
    return PREFIXES[model._meta.label_lower]


def public_id(obj: Model | None, *, model: type[Model] | None = None, pk: Any = None) -> str | None:
    """`cus_42` for a customer with pk 42 (None for None)."""
    if obj is None and pk is None:
        return None
    target = model or type(obj)
    return f"{prefix_for(target)}_{obj.pk if pk is None else pk}"


def pk_from_public_id(value: object, *, model: type[Model]) -> int:
    prefix = prefix_for(model)
    if not isinstance(value, str) or not value.startswith(prefix + "_"):
        raise InvalidPublicId(_("expected an id starting with '%(prefix)s_'") % {"prefix": prefix})
    digits = value[len(prefix) + 1 :]
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18 or digits.startswith("0"):
        raise InvalidPublicId(_("'%(value)s' is not a valid id") % {"value": value})
    return int(digits)
