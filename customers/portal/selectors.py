"""The portal's reads: plain data for its templates, always scoped to one customer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from billing.models import Price, Subscription
from billing.selectors import cycle_spec
from billing.services.payments import default_payment_method
from billing.services.upcoming import NoUpcomingInvoice, upcoming_invoice
from config import clock
from customers.models import Customer
from invoices.models import Invoice
from invoices.rendering.formatting import money
from invoices.selectors import customer_balance


@dataclass(frozen=True, slots=True)
class SubscriptionSummary:
    subscription: Any
    items: tuple[tuple[str, int], ...]  # (plan name, quantity)
    renewal_at: datetime | None
    renewal_amount: int | None
    cancel_at: datetime | None


@dataclass(frozen=True, slots=True)
class PortalOverview:
    subscriptions: tuple[SubscriptionSummary, ...]
    balance: int
    currency: str
    default_method: Any
    past_due: tuple[Any, ...]


def cycle_label(cycle: dict[str, Any]) -> str:
    """ "per month", "every 3 months"... in the active language."""
    spec = cycle_spec(cycle)
    if spec.kind != "interval":
        return _("per billing period")
    count, unit = spec.count, str(spec.unit)
    labels = {
        "day": ngettext("per day", "every %(count)d days", count),
        "week": ngettext("per week", "every %(count)d weeks", count),
        "month": ngettext("per month", "every %(count)d months", count),
        "year": ngettext("per year", "every %(count)d years", count),
    }
    return labels[unit] % {"count": count}


def is_annual(cycle: dict[str, Any]) -> bool:
    return cycle_spec(cycle).periods_per_year() <= 1


def price_label(price: Any) -> str:
    language = (translation.get_language() or "fr")[:2]
    name = price.product.name + (f" – {price.nickname}" if price.nickname else "")
    if price.unit_amount is None or price.scheme not in ("per_unit", "flat"):
        return f"{name} ({cycle_label(price.cycle)})"
    amount = money(int(price.unit_amount), price.currency, language)
    return f"{name}: {amount} {cycle_label(price.cycle)}"


def portal_prices(*, subscription: Any) -> QuerySet:
    """Plans a customer may switch to from the portal: active licensed recurring prices in the
    subscription's currency, unless the price's metadata says {"portal": false}."""
    return portal_offered_prices(currency=subscription.currency, livemode=subscription.customer.livemode)


def portal_offered_prices(*, currency: str, livemode: bool) -> QuerySet:
    """Plans the portal offers in `currency` and mode (to switch to, or to start a subscription)."""
    prices = Price.objects.filter(
        active=True,
        product__active=True,
        type=Price.Type.RECURRING,
        usage_type=Price.UsageType.LICENSED,
        currency=currency,
        livemode=livemode,
    )
    # JSON `false` compares unevenly across databases: read the flag in Python (few prices).
    offered = [
        pk for pk, metadata in prices.values_list("pk", "metadata") if (metadata or {}).get("portal") is not False
    ]
    return Price.objects.filter(pk__in=offered).select_related("product").order_by("product__name", "unit_amount", "pk")


def portal_subscriptions(*, customer: Customer) -> QuerySet:
    return (
        Subscription.objects.filter(customer=customer)
        .exclude(status__in=[Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE])
        .prefetch_related("items__price__product")
        .order_by("pk")
    )


def past_due_invoices(*, customer: Customer, now: datetime) -> QuerySet:
    return (
        Invoice.objects.filter(customer=customer, status=Invoice.Status.OPEN, amount_remaining__gt=0)
        .filter(Q(due_at__lt=now) | Q(dunning__status="active"))
        .order_by("due_at", "pk")
    )


def portal_overview(*, customer: Customer) -> PortalOverview:
    now = clock.now(customer=customer)
    summaries = []
    for subscription in portal_subscriptions(customer=customer):
        try:
            upcoming = upcoming_invoice(subscription=subscription, at=now)
            renewal_amount: int | None = upcoming.amount_due
        except NoUpcomingInvoice:
            renewal_amount = None
        renewal_at = subscription.trial_end if subscription.status == "trialing" else subscription.current_period_end
        summaries.append(
            SubscriptionSummary(
                subscription=subscription,
                items=tuple((item.price.product.name, item.quantity) for item in subscription.items.all()),
                renewal_at=None if subscription.cancel_at_period_end else renewal_at,
                renewal_amount=None if subscription.cancel_at_period_end else renewal_amount,
                cancel_at=subscription.current_period_end if subscription.cancel_at_period_end else None,
            )
        )
    return PortalOverview(
        subscriptions=tuple(summaries),
        balance=customer_balance(customer_id=customer.pk, currency=customer.currency),
        currency=customer.currency,
        default_method=default_payment_method(customer=customer),
        past_due=tuple(past_due_invoices(customer=customer, now=now)),
    )
