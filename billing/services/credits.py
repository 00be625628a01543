"""Credit for unused time (issue 16, items 1 and 3): what a change or a cancellation gives back.

Two bases, as Stripe documents them (billing_mode classic / flexible, "Prorations"):

* ``classic``: the unused time at the item's current price, net of the discounts the current
  period was billed with (every discount of the list, percent and amount off alike, allocated
  over the items as an invoice allocates it: calculations.compute_invoice_totals).
* ``flexible``: what was last billed for that item for the current period: the issued invoice
  lines of the subscription covering the period (net of their allocated discount share) and
  its pending items, each prorated over its own span; an item never billed for the period
  (in a trial, say) gets no credit.

In both, a credit never exceeds what was billed for the unused time: a classic credit is
capped at the flexible amount whenever the subscription has issued invoices for the period
(a subscription imported without any keeps the classic amount). The basis is
`Subscription.proration_credit_basis`, blank = `settings.TARIF_PRORATION_CREDIT_BASIS`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime
from fractions import Fraction

from django.conf import settings
from django.utils.translation import gettext as _

from billing.errors import SubscriptionError
from billing.models import InvoiceItem, Price, Subscription
from billing.proration import ProrationLine, remaining_fraction
from config.money import round_fraction
from invoices.models import Invoice, InvoiceLine

CREDIT_BASES = ("classic", "flexible")
BILLED_STATUSES = (Invoice.Status.OPEN, Invoice.Status.PAID, Invoice.Status.UNCOLLECTIBLE)


def credit_basis_of(subscription: Subscription) -> str:
    return subscription.proration_credit_basis or settings.TARIF_PRORATION_CREDIT_BASIS


def credit_basis_validate(basis: str) -> str:
    """'' (the platform default), classic or flexible; anything else is refused."""
    if basis not in ("", *CREDIT_BASES):
        raise SubscriptionError(
            _("Unknown proration credit basis %(basis)s; use classic or flexible.") % {"basis": basis},
            code="proration_credit_basis",
        )
    return basis


def _share_after(*, amount: int, start: datetime | None, end: datetime | None, at: datetime) -> Fraction:
    """The part of `amount` (billed for [start, end)) that covers [at, end)."""
    if start is None or end is None or end <= start:
        return Fraction(0)
    return amount * remaining_fraction(period_start=start, period_end=end, at=at)


def billed_for_unused_time(
    *, subscription: Subscription, at: datetime, pending: Sequence[InvoiceItem] | None = None
) -> dict[str, Fraction] | None:
    """What was billed for each item key ("price:<id>") for [at, current period end), exactly.

    None when no issued invoice of the subscription covers any of the current period (nothing
    to read: an imported subscription). Lines of drafts and voided invoices do not count.
    """
    start, end = subscription.current_period_start, subscription.current_period_end
    lines = list(
        InvoiceLine.objects.filter(
            invoice__subscription_id=subscription.pk,
            invoice__status__in=BILLED_STATUSES,
            period_end__gt=start,
            period_start__lt=end,
        ).values_list("price_id", "amount", "discount_amount", "period_start", "period_end")
    )
    billed: dict[str, Fraction] = defaultdict(Fraction)
    for price_id, amount, discount, line_start, line_end in lines:
        if price_id is not None:
            billed[f"price:{price_id}"] += _share_after(amount=amount - discount, start=line_start, end=line_end, at=at)
    if pending is None:  # `pending`: the subscription's pending items, when the caller has them
        pending = list(InvoiceItem.objects.filter(subscription_id=subscription.pk, invoice__isnull=True))
    for item in pending:
        if item.price_id is None or item.subscription_id != subscription.pk or item.period_end is None:
            continue
        if item.period_start is None or not (item.period_end > start and item.period_start < end):
            continue
        billed[f"price:{item.price_id}"] += _share_after(
            amount=item.amount, start=item.period_start, end=item.period_end, at=at
        )
    if not lines and not billed:
        return None
    return billed


def credits_apply_basis(
    *,
    subscription: Subscription,
    lines: Sequence[ProrationLine],
    at: datetime,
    basis: str | None = None,
    kept_keys: Collection[str] = (),
    pending: Sequence[InvoiceItem] | None = None,
) -> list[ProrationLine]:
    """The proration lines with each credit (negative line) set by the credit basis.

    `lines` come from billing.proration with the classic amounts; charges pass unchanged.
    A credit that comes to 0 is left out. In `flexible`, what was billed for the unused time
    of a price that is no longer an item (changed earlier without proration) is credited
    too, unless its key is in `kept_keys` (the items that stay unchanged).
    """
    basis = basis or credit_basis_of(subscription)
    if basis == "classic" and not any(line.amount < 0 for line in lines):
        return list(lines)
    billed = billed_for_unused_time(subscription=subscription, at=at, pending=pending)
    if billed is None and basis == "classic":
        return list(lines)
    billed = billed or {}
    adjusted = []
    credited = set()
    for line in lines:
        if line.amount < 0:
            credited.add(line.key)
            paid = max(round_fraction(billed.get(line.key, Fraction(0))), 0)
            credit = paid if basis == "flexible" else min(-line.amount, paid)
            if credit == 0:
                continue
            line = replace(line, amount=-credit)
        adjusted.append(line)
    if basis == "flexible":
        adjusted = (
            _orphan_credits(
                subscription=subscription,
                billed=billed,
                skip={*credited, *kept_keys, *(line.key for line in lines)},
                at=at,
            )
            + adjusted
        )
    return adjusted


def _orphan_credits(
    *, subscription: Subscription, billed: dict[str, Fraction], skip: set[str], at: datetime
) -> list[ProrationLine]:
    owed = {key: round_fraction(amount) for key, amount in billed.items() if key not in skip}
    owed = {key: amount for key, amount in owed.items() if amount > 0}
    if not owed:
        return []
    prices = Price.objects.select_related("product").in_bulk([int(key.split(":", 1)[1]) for key in owed])
    lines = []
    for key, amount in owed.items():
        price = prices[int(key.split(":", 1)[1])]
        label = price.nickname or price.product.name
        lines.append(
            ProrationLine(
                key=key,
                description=f"Unused time on {label}",
                quantity=1,
                amount=-amount,
                period_start=max(at, subscription.current_period_start),
                period_end=subscription.current_period_end,
                item_description=label,
            )
        )
    return lines
