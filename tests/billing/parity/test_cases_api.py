"""Issue 16, API part: hand-worked cases through the integrator API (Stripe-style inputs:
`"up_to": "inf"`, lower-case currencies, customer balance adjustments), priced by the real
services (subscription preview: the first invoice as Tarif would issue it)."""

from __future__ import annotations

from typing import Any

import pytest

from config.api.keys import api_key_create
from tests.api.conftest import assert_problem, client_for

pytestmark = pytest.mark.django_db

MONTHLY = {"kind": "interval", "unit": "month", "count": 1}


@pytest.fixture
def api(db, staff_factory):
    """A live read-write API key's client (the API tests' fixture, for this directory)."""
    _key, raw = api_key_create(
        name="parity", scope="read_write", mode="live", created_by=staff_factory(username="integrations")
    )
    return client_for(raw)


# Lago's graduated example: $1 per call for the first 100, $0.50 for the next 100, $0.10 beyond.
LAGO_GRADUATED = [
    {"up_to": 100, "unit_amount": 100},
    {"up_to": 200, "unit_amount": 50},
    {"up_to": "inf", "unit_amount": 10},
]

PRICING_CASES = [
    pytest.param(
        # 100 x 100 + 100 x 50 + 50 x 10 = 10000 + 5000 + 500 = 15500 (155.00 USD)
        # Source: Lago, "Graduated rate model" (getlago.com/docs/v2/guide/rate-cards/pricing-models/graduated):
        # 250 API calls cost 155 USD; tiers written with Stripe's "up_to": "inf" and a lower-case currency.
        "usd", "tiered_graduated", LAGO_GRADUATED, 250, 15500,
        id="lago-graduated-250-calls-inf-last-tier",
    ),
    pytest.param(
        # up_to is inclusive (Stripe: "up to and including"): 100 x 100 = 10000, the second tier is not reached.
        # Source: hand-worked on Lago's tiers.
        "usd", "tiered_graduated", LAGO_GRADUATED, 100, 10000,
        id="graduated-boundary-inclusive",
    ),
    pytest.param(
        # 100 x 100 + 100 x 50 + 1 x 10 = 15010: the first unit of the open "inf" tier.
        # Source: hand-worked.
        "usd", "tiered_graduated", LAGO_GRADUATED, 201, 15010,
        id="graduated-first-unit-of-the-inf-tier",
    ),
    pytest.param(
        # Volume: the whole quantity at the tier it reaches: 6 x 400 = 2400 (not 5 x 500 + 1 x 400 = 2900).
        # Source: Stripe, "Tiered pricing" (docs.stripe.com/products-prices/pricing-models#volume-based-pricing):
        # volume tiers price every unit at the tier of the total quantity; hand-worked numbers.
        "EUR", "tiered_volume", [{"up_to": 5, "unit_amount": 500}, {"up_to": "inf", "unit_amount": 400}], 6, 2400,
        id="volume-inf-tier-prices-every-unit",
    ),
    pytest.param(
        # Flat fee and overages: 1000 (flat, first tier) + 500 (flat, second tier reached) + 2 x 100 = 1700.
        # Source: Stripe, "Usage-based pricing: flat fee and overages" (docs.stripe.com/billing/subscriptions/
        # usage-based/pricing-models#flat-fee-and-overages), as graduated tiers with flat_amount; hand-worked numbers.
        "eur", "tiered_graduated",
        [
            {"up_to": 10, "unit_amount": 0, "flat_amount": 1000},
            {"up_to": "inf", "unit_amount": 100, "flat_amount": 500},
        ],
        12, 1700,
        id="flat-fee-and-overage-with-inf",
    ),
    pytest.param(
        # Per seat, currency sent lower-case: 3 x 2900 = 8700 EUR cents (the invoice is in "EUR").
        # Source: hand-worked.
        "eur", "per_unit", None, 3, 8700,
        id="lower-case-currency-per-seat",
    ),
]  # fmt: skip


def _price(api, product, *, currency: str, scheme: str, tiers: Any) -> str:
    body: dict[str, Any] = {"product": f"prod_{product.pk}", "currency": currency, "scheme": scheme, "cycle": MONTHLY}
    if tiers is None:
        body["unit_amount"] = 2900
    else:
        body["tiers"] = tiers
    response = api.post("/api/v1/prices", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _first_invoice(api, customer, price: str, quantity: int) -> dict[str, Any]:
    response = api.post(
        "/api/v1/subscriptions/preview",
        {"customer": f"cus_{customer.pk}", "items": [{"price": price, "quantity": quantity}]},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response.json()["first_invoice"]


@pytest.mark.parametrize(("currency", "scheme", "tiers", "quantity", "expected"), PRICING_CASES)
def test_stripe_style_prices_are_billed_right(
    api, tax_rate, product, customer_factory, currency, scheme, tiers, quantity, expected
):
    customer = customer_factory(currency=currency.upper())
    price = _price(api, product, currency=currency, scheme=scheme, tiers=tiers)

    invoice = _first_invoice(api, customer, price, quantity)

    assert invoice["currency"] == currency.upper()
    assert [line["amount"] for line in invoice["lines"]] == [expected]
    assert invoice["subtotal"] == expected
    # French customer, 20 % VAT on the subtotal, rounded half up once.
    assert invoice["tax_total"] == (expected * 20 + 50) // 100


BALANCE_CASES = [
    pytest.param(
        # Credit 10.00: 29.00 + 20 % VAT = 34.80; 10.00 of credit applied; 24.80 due.
        # Source: Stripe, "Customer credit balance" (docs.stripe.com/billing/customer/balance): the balance
        # is applied to the next finalized invoice; hand-worked numbers.
        [1000], 3480, 1000, 2480,
        id="credit-applied-to-next-invoice",
    ),
    pytest.param(
        # Credit 50.00 then debit 20.00: 30.00 held, the invoice (34.80) uses it all: 4.80 due.
        # Source: hand-worked.
        [5000, -2000], 3480, 3000, 480,
        id="credit-then-debit",
    ),
    pytest.param(
        # Credit 40.00 > 34.80: the invoice takes 34.80, nothing due, 5.20 stays for later.
        # Source: Stripe, "Customer credit balance": an invoice never takes more than its total.
        [4000], 3480, 3480, 0,
        id="credit-larger-than-invoice",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("adjustments", "total", "applied", "due"), BALANCE_CASES)
def test_balance_adjustments_reach_the_next_invoice(api, tax_rate, customer, price, adjustments, total, applied, due):
    for amount in adjustments:
        response = api.post(
            f"/api/v1/customers/cus_{customer.pk}/balance_transactions",
            {"amount": amount, "currency": "eur", "description": "Adjustment"},
            format="json",
        )
        assert response.status_code == 201, response.content

    invoice = _first_invoice(api, customer, f"price_{price.pk}", 1)

    assert (invoice["total"], invoice["balance_applied"], invoice["amount_due"]) == (total, applied, due)


def test_a_debit_beyond_the_credit_is_refused_and_changes_nothing(api, tax_rate, customer, price):
    # Credit 10.00, debit 10.01: refused (the balance never goes negative); the invoice still gets 10.00.
    # Source: hand-worked (Tarif's rule: debts are invoices, not balance).
    url = f"/api/v1/customers/cus_{customer.pk}/balance_transactions"
    api.post(url, {"amount": 1000, "currency": "EUR", "description": "Credit"}, format="json")

    refused = api.post(url, {"amount": -1001, "currency": "EUR", "description": "Debit"}, format="json")

    assert_problem(refused, 409, "insufficient_balance")
    assert _first_invoice(api, customer, f"price_{price.pk}", 1)["balance_applied"] == 1000
