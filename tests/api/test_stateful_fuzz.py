"""Stateful API fuzz: random sequences of billing actions with both key modes (issue 13).

A hypothesis rule-based state machine drives the API through the DRF test client with a
live key and a sandbox (test) key: it creates customers, subscriptions, one-off items,
payment methods and payments, then applies random sequences of actions (change, cancel,
pause, resume, pay, refund, void, finalize, advance a test clock) to whatever exists, in
either mode. After every step: no 5xx and every refusal is problem+json. After every
sequence: `verify_integrity` finds nothing.

Each request commits on its own (transactional test), as in production. Cheap by default
(a few sequences in `make test`); the bigger run is

    TARIF_FUZZ_SEQUENCES=200 TARIF_FUZZ_STEPS=40 .venv/bin/python -m pytest tests/api/test_stateful_fuzz.py

Modes: `test_objects_never_cross_modes` asserts an object created with one mode's key is a
404 with the other's.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule, run_state_machine_as_test

from config.api.throttling import ApiKeyRateThrottle
from tests.api.conftest import client_for

SEQUENCES = int(os.environ.get("TARIF_FUZZ_SEQUENCES", "4"))
STEPS = int(os.environ.get("TARIF_FUZZ_STEPS", "18"))
MODES = ("live", "test")
CARD = {"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}}
DECLINED = {"card": {"number": "4000000000000002", "exp_month": 12, "exp_year": 2030}}


class Counter:
    requests = 0


def check(response: Any, what: str) -> dict[str, Any]:
    """No 5xx; a refusal is problem+json; returns the body (empty for 204)."""
    Counter.requests += 1
    assert response.status_code < 500, (what, response.status_code, response.content[:600])
    if response.status_code == 204:
        return {}
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/problem+json"), (what, response["Content-Type"])
    return response.json() if response["Content-Type"].startswith("application/") else {}


class BillingMachine(RuleBasedStateMachine):
    """The world: a product with EUR prices in each mode, a test clock, and one API client per mode."""

    customers = Bundle("customers")
    subscriptions = Bundle("subscriptions")
    invoices = Bundle("invoices")
    payments = Bundle("payments")

    world: dict[str, Any] = {}

    def __init__(self) -> None:
        super().__init__()
        self.api = self.world["api"]
        self.prices = self.world["prices"]
        self.clock = self.world["clock"]
        self.clock_time = self.world["clock_time"]

    # -- creation ----------------------------------------------------------------------------

    @rule(target=customers, mode=st.sampled_from(MODES), on_clock=st.booleans())
    def create_customer(self, mode: str, on_clock: bool) -> tuple[str, str]:
        body: dict[str, Any] = {"legal_name": "Fuzz SAS", "email": "fuzz@example.com", "country": "FR"}
        if mode == "test" and on_clock:
            body["test_clock"] = self.clock
        created = check(self.api[mode].post("/api/v1/customers", body, format="json"), "create customer")
        assert "id" in created, created
        return mode, created["id"]

    @rule(
        target=subscriptions,
        customer=customers,
        price=st.sampled_from(["monthly", "seats"]),
        quantity=st.integers(1, 5),
        send_invoice=st.booleans(),
    )
    def subscribe(self, customer: tuple[str, str], price: str, quantity: int, send_invoice: bool) -> Any:
        mode, customer_id = customer
        body: dict[str, Any] = {
            "customer": customer_id,
            "items": [{"price": self.prices[mode][price], "quantity": quantity}],
        }
        if send_invoice:
            body.update(collection_method="send_invoice", days_until_due=15)
        response = self.api[mode].post("/api/v1/subscriptions", body, format="json")
        created = check(response, "subscribe")
        return (mode, created["id"]) if response.status_code == 201 else (mode, "sub_999999999")

    @rule(customer=customers, amount=st.integers(-5000, 20000), invoice_now=st.booleans())
    def add_item(self, customer: tuple[str, str], amount: int, invoice_now: bool) -> None:
        mode, customer_id = customer
        body = {"customer": customer_id, "amount": amount, "description": "Extra", "invoice_now": invoice_now}
        check(self.api[mode].post("/api/v1/invoice_items", body, format="json"), "invoice item")

    @rule(customer=customers, declined=st.booleans())
    def add_payment_method(self, customer: tuple[str, str], declined: bool) -> None:
        mode, customer_id = customer
        body = {"customer": customer_id, "source": DECLINED if declined else CARD}
        check(self.api[mode].post("/api/v1/payment_methods", body, format="json"), "payment method")

    @rule(target=invoices, customer=customers)
    def list_invoices(self, customer: tuple[str, str]) -> Any:
        mode, customer_id = customer
        listed = check(self.api[mode].get("/api/v1/invoices", {"customer": customer_id}), "invoices")
        rows = listed.get("data") or [{"id": "in_999999999"}]
        return mode, rows[0]["id"]

    # -- actions -----------------------------------------------------------------------------

    @rule(
        subscription=subscriptions,
        price=st.sampled_from(["monthly", "seats", "yearly"]),
        quantity=st.integers(1, 9),
        proration=st.sampled_from(["create_prorations", "always_invoice", "none"]),
    )
    def change(self, subscription: tuple[str, str], price: str, quantity: int, proration: str) -> None:
        mode, subscription_id = subscription
        body = {"items": [{"price": self.prices[mode][price], "quantity": quantity}], "proration_behavior": proration}
        check(self.api[mode].post(f"/api/v1/subscriptions/{subscription_id}/change", body, format="json"), "change")

    @rule(subscription=subscriptions, at_period_end=st.booleans())
    def cancel(self, subscription: tuple[str, str], at_period_end: bool) -> None:
        mode, subscription_id = subscription
        body = {"at_period_end": at_period_end}
        check(self.api[mode].post(f"/api/v1/subscriptions/{subscription_id}/cancel", body, format="json"), "cancel")

    @rule(subscription=subscriptions)
    def pause(self, subscription: tuple[str, str]) -> None:
        mode, subscription_id = subscription
        check(self.api[mode].post(f"/api/v1/subscriptions/{subscription_id}/pause", {}, format="json"), "pause")

    @rule(subscription=subscriptions)
    def resume(self, subscription: tuple[str, str]) -> None:
        mode, subscription_id = subscription
        check(self.api[mode].post(f"/api/v1/subscriptions/{subscription_id}/resume", format="json"), "resume")

    @rule(target=payments, invoice=invoices, out_of_band=st.booleans())
    def pay(self, invoice: tuple[str, str], out_of_band: bool) -> Any:
        mode, invoice_id = invoice
        body: dict[str, Any] = {"paid_out_of_band": out_of_band}
        if out_of_band:
            body.update(amount=500, method="bank_transfer", reference="FUZZ")
        check(self.api[mode].post(f"/api/v1/invoices/{invoice_id}/pay", body, format="json"), "pay")
        listed = check(self.api[mode].get("/api/v1/payments", {"invoice": invoice_id}), "payments")
        rows = listed.get("data") or [{"id": "pay_999999999"}]
        return mode, rows[0]["id"]

    @rule(payment=payments, amount=st.integers(1, 3000))
    def refund(self, payment: tuple[str, str], amount: int) -> None:
        mode, payment_id = payment
        body = {"payment": payment_id, "amount": amount, "reason": "requested_by_customer"}
        check(self.api[mode].post("/api/v1/refunds", body, format="json"), "refund")

    @rule(invoice=invoices)
    def finalize(self, invoice: tuple[str, str]) -> None:
        mode, invoice_id = invoice
        check(self.api[mode].post(f"/api/v1/invoices/{invoice_id}/finalize"), "finalize")

    @rule(invoice=consumes(invoices))
    def void(self, invoice: tuple[str, str]) -> None:
        mode, invoice_id = invoice
        body = {"reason": "Fuzz"}
        check(self.api[mode].post(f"/api/v1/invoices/{invoice_id}/void", body, format="json"), "void")

    @rule(days=st.integers(1, 70))
    def advance_clock(self, days: int) -> None:
        from datetime import timedelta

        self.clock_time += timedelta(days=days)
        self.world["clock_time"] = self.clock_time
        body = {"frozen_time": self.clock_time.isoformat().replace("+00:00", "Z")}
        check(self.api["test"].post(f"/api/v1/test_clocks/{self.clock}/advance", body, format="json"), "advance")

    @invariant()
    def lists_answer(self) -> None:
        for mode in MODES:
            check(self.api[mode].get("/api/v1/subscriptions", {"limit": 5}), "list subscriptions")

    def teardown(self) -> None:
        from config.ops.integrity import integrity_verify

        violations = {name: found for name, found in integrity_verify().items() if found}
        assert not violations, violations


@pytest.fixture
def fuzz_world(make_key, brand_factory, tax_rate, price_factory, product_factory, monkeypatch):
    from datetime import UTC, datetime

    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "100000/second"})
    brand_factory(is_default=True)
    prices: dict[str, dict[str, str]] = {}
    for mode in MODES:  # each mode has its own catalog, as at Stripe
        product = product_factory(name="Fuzz Cloud", livemode=mode == "live")
        monthly = price_factory(product=product, unit_amount=2900, livemode=product.livemode)
        seats = price_factory(product=product, unit_amount=1000, livemode=product.livemode)
        yearly = price_factory(
            product=product,
            unit_amount=29000,
            cycle={"kind": "interval", "unit": "year", "count": 1},
            livemode=product.livemode,
        )
        prices[mode] = {"monthly": f"price_{monthly.pk}", "seats": f"price_{seats.pk}", "yearly": f"price_{yearly.pk}"}
    api = {mode: client_for(make_key(mode=mode)[1]) for mode in MODES}
    start = datetime(2026, 1, 1, 9, tzinfo=UTC)
    clock = api["test"].post(
        "/api/v1/test_clocks", {"name": "fuzz", "frozen_time": "2026-01-01T09:00:00Z"}, format="json"
    )
    assert clock.status_code == 201, clock.content
    return {
        "api": api,
        "prices": prices,
        "clock": clock.json()["id"],
        "clock_time": start,
    }


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_random_action_sequences_never_fail_and_keep_the_books_sound(fuzz_world):
    BillingMachine.world = fuzz_world
    Counter.requests = 0
    run_state_machine_as_test(
        BillingMachine,
        settings=settings(
            max_examples=SEQUENCES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=not os.environ.get("TARIF_FUZZ_RANDOM"),
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )
    print(f"stateful fuzz: {Counter.requests} requests over {SEQUENCES} sequences")
    assert Counter.requests > 0


@pytest.mark.django_db(transaction=True)
def test_objects_never_cross_modes(fuzz_world):
    """An object made with one mode's key is invisible and unusable with the other's (404)."""
    api = fuzz_world["api"]
    for mode, other in (("test", "live"), ("live", "test")):
        customer = check(
            api[mode].post(
                "/api/v1/customers", {"legal_name": "Mode", "email": "m@example.com", "country": "FR"}, format="json"
            ),
            "customer",
        )
        subscription = check(
            api[mode].post(
                "/api/v1/subscriptions",
                {"customer": customer["id"], "items": [{"price": fuzz_world["prices"][mode]["monthly"]}]},
                format="json",
            ),
            "subscribe",
        )
        invoice = check(api[mode].get("/api/v1/invoices", {"customer": customer["id"]}), "invoices")["data"][0]

        assert api[other].get(f"/api/v1/customers/{customer['id']}").status_code == 404
        assert api[other].get(f"/api/v1/subscriptions/{subscription['id']}").status_code == 404
        assert api[other].get(f"/api/v1/invoices/{invoice['id']}").status_code == 404
        assert (
            api[other].post(f"/api/v1/subscriptions/{subscription['id']}/cancel", {}, format="json").status_code == 404
        )
        listed = check(api[other].get("/api/v1/subscriptions", {"customer": customer["id"]}), "list")
        assert listed["data"] == []
        item = api[other].post(
            "/api/v1/invoice_items", {"customer": customer["id"], "amount": 100, "description": "x"}, format="json"
        )
        assert item.status_code in (400, 404), item.content
