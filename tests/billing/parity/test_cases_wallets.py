"""Hand-worked cases for prepaid credits (issue 16, item 7), run through the real services.

Each case: grants given to a French customer (20 % VAT, invoices finalized with
`invoice_finalize`), one or more invoices, and what the credits pay. Amounts in cents.
Defaults: credits apply after tax (TARIF_WALLET_APPLIES=after_tax, Lago), priority 50.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.wallets.models import CreditGrant
from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.types import DraftInvoice, DraftLine
from tests.billing.wallets.helpers import GRANTED_AT, grant
from tests.invoices.helpers import ISSUED_AT

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)

CASES = [
    pytest.param(
        # Lago, "Wallets and prepaid credits" (docs.getlago.com/guide/wallet-and-prepaid-credits): credits are
        # deducted from the invoice total after taxes. 100.00 + 20 % = 120.00; wallet 50.00 -> 50.00 applied,
        # 70.00 due, wallet 0.
        dict(grants=[dict(amount=5000)], lines=[("subscription", 10000)], mode="after_tax"),
        dict(total=12000, credits=5000, due=7000, remaining=[0]),
        id="lago-after-tax-partial",
    ),
    pytest.param(
        # Stripe, "Billing credits" (docs.stripe.com/billing/subscriptions/usage-based/billing-credits): credits
        # apply to the pre-tax amount of eligible lines. 100.00 net + 20.00 VAT; grant 150.00 -> 100.00 applied
        # (the net), 20.00 (the VAT) due, 50.00 left.
        dict(grants=[dict(amount=15000)], lines=[("usage", 10000)], mode="before_tax"),
        dict(total=12000, credits=10000, due=2000, remaining=[5000]),
        id="stripe-pre-tax-cap",
    ),
    pytest.param(
        # Same invoice after tax: 120.00 applied, 0 due (paid), 30.00 left.  Hand-worked.
        dict(grants=[dict(amount=15000)], lines=[("usage", 10000)], mode="after_tax"),
        dict(total=12000, credits=12000, due=0, remaining=[3000]),
        id="after-tax-pays-all",
    ),
    pytest.param(
        # Stripe's applicability_config (metered prices only): a usage-only grant of 50.00 pays only the usage
        # line: usage 20.00 + 4.00 VAT = 24.00 applied; subscription 30.00 + 6.00 = 36.00 not eligible.
        # Total 60.00, credits 24.00, due 36.00, grant 26.00 left.  Hand-worked after Stripe's rule.
        dict(grants=[dict(amount=5000, applies_to="usage")], lines=[("subscription", 3000), ("usage", 2000)]),
        dict(total=6000, credits=2400, due=3600, remaining=[2600]),
        id="stripe-usage-only-eligibility",
    ),
    pytest.param(
        # Priority first: grants A (prio 10, 10.00) and B (prio 1, 10.00); invoice 12.00 TTC.
        # B pays 10.00, A pays 2.00: remaining A 8.00, B 0.  Hand-worked (Stripe: "priority", lower first).
        dict(grants=[dict(amount=1000, priority=10), dict(amount=1000, priority=1)], lines=[("one_off", 1000)]),
        dict(total=1200, credits=1200, due=0, remaining=[800, 0]),
        id="priority-lower-first",
    ),
    pytest.param(
        # Same priority: the earliest expiry first. A expires in 60 days, B in 10; invoice 12.00:
        # B 10.00 then A 2.00 -> A 8.00, B 0.  Hand-worked (Lago and Stripe both consume soonest-expiring first).
        dict(grants=[dict(amount=1000, expires_in=60), dict(amount=1000, expires_in=10)], lines=[("one_off", 1000)]),
        dict(total=1200, credits=1200, due=0, remaining=[800, 0]),
        id="earliest-expiry-first",
    ),
    pytest.param(
        # An expired grant is never used: A 50.00 expired the day before the invoice; B 5.00 pays 5.00 of 12.00.
        # Hand-worked.
        dict(grants=[dict(amount=5000, expires_in=8), dict(amount=500)], lines=[("one_off", 1000)]),
        dict(total=1200, credits=500, due=700, remaining=[5000, 0]),
        id="expired-not-used",
    ),
    pytest.param(
        # A proration credit line (-8.00) lowers the total: 20.00 - 8.00 = 12.00 net, 14.40 TTC. Grant 50.00
        # pays 14.40 (never the 24.00 of the positive line alone): 35.60 left.  Hand-worked.
        dict(grants=[dict(amount=5000)], lines=[("subscription", 2000), ("proration", -800)]),
        dict(total=1440, credits=1440, due=0, remaining=[3560]),
        id="credit-line-caps-total",
    ),
    pytest.param(
        # A grant limited to a price: it pays only that price's line. Line 1 (the price) 10.00 -> 12.00 TTC,
        # line 2 (no price) 5.00 -> 6.00. Grant 100.00 pays 12.00; due 6.00; 88.00 left.  Hand-worked.
        dict(
            grants=[dict(amount=10000, applies_to="prices", price=True)],
            lines=[("subscription", 1000, True), ("one_off", 500)],
        ),
        dict(total=1800, credits=1200, due=600, remaining=[8800]),
        id="stripe-price-applicability",
    ),
]


@pytest.fixture
def buyer(customer_factory, brand_factory, tax_rate_factory):
    tax_rate_factory(country="FR")
    return customer_factory(brand=brand_factory(slug="parity-wallets", invoice_number_format="PW-{year}-{seq:06d}"))


@pytest.mark.parametrize(("given", "expected"), CASES)
def test_wallet_case(buyer, price_factory, settings, given, expected):
    settings.TARIF_WALLET_APPLIES = given.get("mode", "after_tax")
    price = price_factory()
    grants: list[CreditGrant] = []
    for spec in given["grants"]:
        fields = {key: value for key, value in spec.items() if key not in ("expires_in", "price")}
        if "expires_in" in spec:
            fields["expires_at"] = GRANTED_AT + spec["expires_in"] * DAY
        if spec.get("price"):
            fields["price_ids"] = [price.pk]
        grants.append(grant(buyer, **fields))
    draft = DraftInvoice(
        customer_id=buyer.pk,
        currency="EUR",
        billing_reason="manual",
        lines=tuple(
            DraftLine(
                kind=line[0],
                description=f"Line {index}",
                amount=line[1],
                price_id=price.pk if len(line) > 2 and line[2] else None,
            )
            for index, line in enumerate(given["lines"])
        ),
    )
    invoice = invoice_finalize(invoice=invoice_create(draft=draft, at=ISSUED_AT, customer=buyer), at=ISSUED_AT)
    assert (invoice.total, invoice.credits_applied, invoice.amount_due) == (
        expected["total"],
        expected["credits"],
        expected["due"],
    )
    for grant_obj, remaining in zip(grants, expected["remaining"], strict=True):
        grant_obj.refresh_from_db()
        assert grant_obj.remaining == remaining, grant_obj
