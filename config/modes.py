"""Live and test mode (Stripe's model): every object belongs to one mode, and one helper scopes to it.

Root objects carry a `livemode` column (customers, products, prices, coupons, promotion
codes, webhook endpoints, domain events); what a customer owns (subscriptions, invoices,
payments, payment methods, refunds...) belongs to its customer's mode and is scoped through
it; a test clock is test mode by definition.

The mode of the current request lives in a context variable: the API sets it from the
calling key (`tk_test_…` is test mode), the console from the staff member's "Test data"
switch. `scope_to_mode` reads it where no mode is given; writes that create root objects
take it as their default mode. Outside a request (tasks, commands) no mode is set: nothing
is scoped and new objects are live unless the caller says otherwise.

A leaf module: it names models by label only, so every app may import it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from django.db.models import Model, Q, QuerySet

# The lookup from a model to the `livemode` flag that decides its mode. Every model the API
# or the console scopes must be listed: `scope_to_mode` refuses unknown models rather than
# showing another mode's rows.
MODE_LOOKUPS: dict[str, str] = {
    "customers.customer": "livemode",
    "billing.product": "livemode",
    "billing.price": "livemode",
    "billing.coupon": "livemode",
    "billing.promotioncode": "livemode",
    "billing.webhookendpoint": "livemode",
    "billing.meter": "livemode",
    "billing.usagethreshold": "subscription__customer__livemode",
    "billing.usagethresholdcrossing": "threshold__subscription__customer__livemode",
    "events.domainevent": "livemode",
    "billing.subscription": "customer__livemode",
    "billing.subscriptionitem": "subscription__customer__livemode",
    "billing.invoiceitem": "customer__livemode",
    "wallets.wallet": "customer__livemode",
    "wallets.creditgrant": "customer__livemode",
    "wallets.wallettransaction": "wallet__customer__livemode",
    "billing.usageevent": "customer__livemode",
    "billing.usageeventkey": "meter__livemode",
    "billing.usagerollup": "customer__livemode",
    "billing.usagemonthrollup": "customer__livemode",
    "billing.paymentmethod": "customer__livemode",
    "billing.payment": "customer__livemode",
    "billing.refund": "payment__customer__livemode",
    "billing.dunningcase": "customer__livemode",
    "billing.scheduledchange": "subscription__customer__livemode",
    "billing.subscriptionchange": "subscription__customer__livemode",
    "billing.pendingupdate": "subscription__customer__livemode",
    "billing.subscriptionnotice": "subscription__customer__livemode",
    "billing.subscriptiondiscount": "subscription__customer__livemode",
    "billing.customerdiscount": "customer__livemode",
    "billing.webhookdelivery": "endpoint__livemode",
    "invoices.invoice": "customer__livemode",
    "invoices.creditnote": "customer__livemode",
    "invoices.invoiceline": "invoice__customer__livemode",
    "invoices.balancetransaction": "customer__livemode",
    # Entitlements (issue 16)
    "entitlements.feature": "livemode",
    "entitlements.productfeature": "feature__livemode",
    "entitlements.subscriptionentitlement": "customer__livemode",
    # Pricing tables and payment links (issue 17)
    "storefront.pricingtable": "livemode",
    "storefront.pricingtableentry": "table__livemode",
    "storefront.paymentlink": "livemode",
    "storefront.paymentlinkitem": "link__livemode",
    # Checkout sessions (issue 17)
    "checkout.checkoutsession": "livemode",
    "checkout.checkoutsessionlineitem": "session__livemode",
    # Quotes (issue 17 item 4)
    "quotes.quote": "customer__livemode",
    "quotes.quoteline": "quote__customer__livemode",
    # E-invoicing through an approved platform (issue 18)
    "einvoicing.platformaccount": "livemode",
    "einvoicing.transmission": "customer__livemode",
    "einvoicing.lifecyclestatus": "transmission__customer__livemode",
    "einvoicing.directoryentry": "livemode",
    # E-reporting and the archive (issue 18 items 7-8)
    "ereporting.ereportingperiod": "livemode",
    "ereporting.ereportingstatus": "period__livemode",
    "archive.archiverecord": "livemode",
    "archive.archivehead": "livemode",
    # Accounting ledger (issue 19); accounts, mappings and rates are brand configuration (no mode)
    "ledger.journalentry": "livemode",
    "ledger.journalline": "entry__livemode",
    "ledger.accountingperiod": "livemode",
    "ledger.revenueschedule": "livemode",
    "ledger.ledgerexport": "livemode",
    # The reports' month summaries (issue 20): one row per mode, never shown as objects
    "reports.billedmonthsummary": "livemode",
    "reports.invoicestatussummary": "livemode",
    "reports.recognitionsummary": "livemode",
    "reports.mrrmonthtotal": "livemode",
    "reports.mrrcohortcell": "livemode",
    "reports.receivablessummary": "livemode",
    "reports.paymentsummary": "livemode",
    "reports.homefigures": "livemode",
    "reports.usagedigestrow": "livemode",
}
# Test mode by definition: a live-mode view never sees them.
TEST_ONLY_MODELS = frozenset({"billing.testclock", "billing.billingrun"})
# BillingRun: runs of test clocks are test mode, runs of the real clock live mode.
_BILLING_RUN_LOOKUP = "test_clock__isnull"

_current_livemode: ContextVar[bool | None] = ContextVar("tarif_livemode", default=None)


def current_livemode() -> bool | None:
    """The mode of the running request (True live, False test), None outside any request."""
    return _current_livemode.get()


def default_livemode() -> bool:
    """The mode a new root object gets when its creator does not say: the request's, else live."""
    mode = _current_livemode.get()
    return True if mode is None else mode


@contextlib.contextmanager
def livemode_scope(livemode: bool | None) -> Iterator[None]:
    """Run a block in one mode (the API per key, the console per session switch)."""
    token = _current_livemode.set(livemode)
    try:
        yield
    finally:
        _current_livemode.reset(token)


def set_livemode(livemode: bool | None) -> Any:
    """For views whose start and end are separate hooks: returns the token for `reset_livemode`."""
    return _current_livemode.set(livemode)


def reset_livemode(token: Any) -> None:
    _current_livemode.reset(token)


def is_mode_scoped(model: type[Model]) -> bool:
    label = model._meta.label_lower
    return label in MODE_LOOKUPS or label in TEST_ONLY_MODELS


def mode_q(model: type[Model], *, livemode: bool) -> Q:
    label = model._meta.label_lower
    if label == "billing.billingrun":
        return Q(**{_BILLING_RUN_LOOKUP: livemode})
    if label in TEST_ONLY_MODELS:
        return Q() if not livemode else Q(pk__in=[])
    try:
        return Q(**{MODE_LOOKUPS[label]: livemode})
    except KeyError:
        raise LookupError(f"{label} has no mode: add it to config.modes.MODE_LOOKUPS") from None


def scope_to_mode(queryset: QuerySet, *, livemode: bool | None = None) -> QuerySet:
    """`queryset` restricted to one mode (the current request's when `livemode` is None).

    Outside a request (no mode set, none given) the queryset is returned as it is.
    """
    mode = _current_livemode.get() if livemode is None else livemode
    if mode is None:
        return queryset
    condition = mode_q(queryset.model, livemode=mode)
    if condition == Q(pk__in=[]):
        return queryset.none()
    return queryset.filter(condition)


def object_livemode(obj: Model) -> bool:
    """The mode an object belongs to (follows MODE_LOOKUPS through its relations)."""
    label = obj._meta.label_lower
    if label == "billing.billingrun":
        return obj.test_clock_id is None  # type: ignore[attr-defined]
    if label in TEST_ONLY_MODELS:
        return False
    value: Any = obj
    for part in MODE_LOOKUPS[label].split("__"):
        value = getattr(value, part)
    return bool(value)
