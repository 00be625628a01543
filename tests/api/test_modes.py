"""Live and test mode never mix over the API (issue 13, hole 1): a sandbox key sees and changes
test-mode objects only, a live key live ones only, and another mode's id is a 404."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Meter, Payment, Refund, SandboxCharge, Subscription
from config.api.urls import router
from invoices.models import Invoice
from tests.api.conftest import assert_problem, client_for

pytestmark = pytest.mark.django_db

CARD = {"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}}
MONTHLY = {"kind": "interval", "unit": "month", "count": 1}


def created(response) -> str:
    assert response.status_code in (200, 201), response.content
    return response.json()["id"]


def build_world(client, *, tag: str, meter: Meter, at: str, clock: str | None = None) -> dict[str, set[str]]:
    """One of everything the API lists, created through the API with `client`'s key: {route: ids}."""
    ids: dict[str, set[str]] = {}

    def add(route: str, object_id: str) -> str:
        ids.setdefault(route, set()).add(object_id)
        return object_id

    product = add("products", created(client.post("/api/v1/products", {"name": f"Plan {tag}"}, format="json")))
    price = add(
        "prices",
        created(
            client.post(
                "/api/v1/prices",
                {"product": product, "currency": "EUR", "unit_amount": "2900", "cycle": MONTHLY},
                format="json",
            )
        ),
    )
    coupon = add(
        "coupons",
        created(
            client.post(
                "/api/v1/coupons", {"name": f"Welcome {tag}", "percent_off": "10", "duration": "once"}, format="json"
            )
        ),
    )
    add(
        "promotion_codes",
        created(client.post("/api/v1/promotion_codes", {"coupon": coupon, "code": f"HELLO{tag}"}, format="json")),
    )
    body = {"legal_name": f"Client {tag}", "email": f"{tag}@client.example", "country": "FR"}
    if clock is not None:
        body["test_clock"] = clock
    customer = add("customers", created(client.post("/api/v1/customers", body, format="json")))
    add(
        "payment_methods",
        created(client.post("/api/v1/payment_methods", {"customer": customer, "source": CARD}, format="json")),
    )
    subscription = add(
        "subscriptions",
        created(
            client.post("/api/v1/subscriptions", {"customer": customer, "items": [{"price": price}]}, format="json")
        ),
    )
    invoice = client.get("/api/v1/invoices", {"subscription": subscription}).json()["data"][0]["id"]
    add("invoices", invoice)
    paid = client.post(f"/api/v1/invoices/{invoice}/pay", {}, format="json")
    assert paid.status_code == 200, paid.content
    payment = add("payments", client.get("/api/v1/payments", {"customer": customer}).json()["data"][0]["id"])
    refund = client.post("/api/v1/refunds", {"payment": payment, "amount": 100, "reason": "duplicate"}, format="json")
    add("refunds", created(refund))
    add("credit_notes", refund.json()["credit_note"])
    add(
        "invoice_items",
        created(
            client.post(
                "/api/v1/invoice_items",
                {"customer": customer, "amount": 500, "description": "Setup", "currency": "EUR"},
                format="json",
            )
        ),
    )
    usage = client.post(
        "/api/v1/usage_events",
        {"events": [{"id": f"u-{tag}", "customer": customer, "meter": meter.key, "timestamp": at}]},
        format="json",
    )
    assert usage.status_code == 200 and usage.json()["accepted"] == 1, usage.content
    add("usage_events", client.get("/api/v1/usage_events", {"customer": customer}).json()["data"][0]["id"])
    add("events", client.get("/api/v1/events", {"customer": customer}).json()["data"][0]["id"])
    # Issue 16 (usage): meters and usage thresholds belong to a mode too.
    add(
        "meters",
        created(client.post("/api/v1/meters", {"key": f"m-{tag}", "name": "M", "aggregation": "sum"}, format="json")),
    )
    add(
        "usage_thresholds",
        created(client.post("/api/v1/usage_thresholds", {"subscription": subscription, "amount": 100}, format="json")),
    )
    # Prepaid credits (issue 16, wallets): a grant, its wallet and its ledger row.
    add(
        "credit_grants",
        created(
            client.post(
                "/api/v1/credit_grants", {"customer": customer, "amount": 500, "currency": "EUR"}, format="json"
            )
        ),
    )
    add("wallets", client.get("/api/v1/wallets", {"customer": customer}).json()["data"][0]["id"])
    add(
        "wallet_transactions", client.get("/api/v1/wallet_transactions", {"customer": customer}).json()["data"][0]["id"]
    )
    add(
        "features",
        created(client.post("/api/v1/features", {"lookup_key": f"f-{tag}", "name": "F"}, format="json")),
    )
    add(
        "webhook_endpoints",
        created(client.post("/api/v1/webhook_endpoints", {"url": f"https://hooks.example.com/{tag}"}, format="json")),
    )
    # Issue 17: checkout sessions (ids cs_live_… / cs_test_…).
    add(
        "checkout/sessions",
        created(
            client.post(
                "/api/v1/checkout/sessions",
                {
                    "mode": "subscription",
                    "line_items": [{"price": price}],
                    "success_url": "https://shop.example/ok",
                    "cancel_url": "https://shop.example/pricing",
                },
                format="json",
            )
        ),
    )
    # Issue 17: payment links (API) and pricing tables (console-made, read-only over the API).
    add(
        "payment_links",
        created(client.post("/api/v1/payment_links", {"name": tag, "line_items": [{"price": price}]}, format="json")),
    )
    from billing.models import Price
    from billing.storefront.services import TableEntrySpec, pricing_table_create
    from invoices.models import Brand

    monthly = Price.objects.get(pk=int(price.split("_")[1]))
    table = pricing_table_create(
        brand=Brand.objects.get(is_default=True),
        livemode=monthly.livemode,
        name=tag,
        entries=[TableEntrySpec(monthly_price=monthly)],
    )
    add("pricing_tables", table.public_id)
    # Issue 17 item 4: a quote belongs to its customer's mode.
    add(
        "quotes",
        created(client.post("/api/v1/quotes", {"customer": customer, "lines": [{"price": price}]}, format="json")),
    )
    return ids


@pytest.fixture
def two_worlds(make_key, tax_rate, brand_factory):
    """The same objects in live mode (live key) and in test mode (sandbox key)."""
    brand_factory(is_default=True)
    meter = Meter.objects.create(key="calls", name="Calls", aggregation=Meter.Aggregation.SUM)
    _key, live_raw = make_key(mode="live", name="live")
    _key, test_raw = make_key(mode="test", name="sandbox")
    live, test = client_for(live_raw), client_for(test_raw)
    clock = created(
        test.post("/api/v1/test_clocks", {"name": "demo", "frozen_time": "2026-01-01T09:00:00Z"}, format="json")
    )
    now = (timezone.now() - timedelta(minutes=1)).isoformat()
    return {
        "live": (live, build_world(live, tag="live", meter=meter, at=now)),
        "test": (
            test,
            build_world(test, tag="test", meter=meter, at="2026-01-01T08:30:00Z", clock=clock)
            | {"test_clocks": {clock}},
        ),
    }


def _list_routes() -> list[str]:
    routes = []
    for prefix, viewset, _basename in router.registry:
        # Tax codes and rates, and brands, are global reference data, the same in both modes
        # (tests/api/test_tax_codes.py, tests/api/test_balance_and_brands.py).
        # Nested routes (customers/{id}/discounts) list under a parent the key must see first:
        # their mode is the parent's (tests/api/test_discounts.py checks another mode's parent is 404).
        if (
            hasattr(viewset, "list")
            and prefix not in ("feature_events", "tax_codes", "tax_rates", "brands")
            and "(?P<" not in prefix
        ):
            routes.append(prefix)
    return routes


def test_every_list_route_is_covered_by_the_world():
    # A new resource must be added to build_world, or the mode test below would miss it.
    covered = {
        "products",
        "prices",
        "coupons",
        "promotion_codes",
        "customers",
        "payment_methods",
        "subscriptions",
        "invoices",
        "payments",
        "refunds",
        "credit_notes",
        "invoice_items",
        "usage_events",
        "meters",
        "usage_thresholds",
        "events",
        "webhook_endpoints",
        "test_clocks",
        "credit_grants",
        "wallets",
        "wallet_transactions",
        "features",
        "checkout/sessions",
        "payment_links",
        "pricing_tables",
        "quotes",
    }
    assert set(_list_routes()) == covered


@pytest.mark.parametrize("route", _list_routes())
def test_each_key_lists_and_retrieves_its_own_mode_only(two_worlds, route):
    live, live_ids = two_worlds["live"]
    test, test_ids = two_worlds["test"]

    for client, own, other in ((live, live_ids, test_ids), (test, test_ids, live_ids)):
        response = client.get(f"/api/v1/{route}", {"limit": 100})
        if response.status_code == 403:  # test clocks: sandbox keys only
            assert route == "test_clocks" and client is live
            listed: set[str] = set()
        else:
            assert response.status_code == 200, response.content
            listed = {row["id"] for row in response.json()["data"]}
        assert listed.isdisjoint(other.get(route, set())), f"{route} shows the other mode's objects"
        assert own.get(route, set()) <= listed, f"{route} hides the key's own objects"
        for foreign in other.get(route, set()):
            retrieved = client.get(f"/api/v1/{route}/{foreign}")
            assert retrieved.status_code in (403, 404), (route, foreign, retrieved.status_code)
            if not (route == "test_clocks" and client is live):
                assert retrieved.status_code == 404  # never a 403 that tells the object exists


def test_objects_say_their_mode(two_worlds):
    live, live_ids = two_worlds["live"]
    test, test_ids = two_worlds["test"]

    assert live.get(f"/api/v1/customers/{next(iter(live_ids['customers']))}").json()["livemode"] is True
    assert test.get(f"/api/v1/customers/{next(iter(test_ids['customers']))}").json()["livemode"] is False
    assert test.get(f"/api/v1/prices/{next(iter(test_ids['prices']))}").json()["livemode"] is False


def test_the_issue_attack_a_sandbox_key_cannot_put_a_live_customer_on_a_clock(
    api, sandbox_api, billing_world, brand_factory
):
    # given a live customer paying by card, on a live subscription
    customer, price = billing_world
    api.post("/api/v1/payment_methods", {"customer": f"cus_{customer.pk}", "source": CARD}, format="json")
    api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}"}]},
        format="json",
    )
    invoices_before = Invoice.objects.filter(customer=customer).count()
    charges_before = SandboxCharge.objects.count()
    payments_before = Payment.objects.filter(customer=customer).count()
    clock = sandbox_api.post(
        "/api/v1/test_clocks", {"name": "attack", "frozen_time": "2026-01-01T00:00:00Z"}, format="json"
    ).json()

    # when the sandbox key moves the live customer onto its clock and advances it a year
    moved = sandbox_api.patch(f"/api/v1/customers/cus_{customer.pk}", {"test_clock": clock["id"]}, format="json")
    sandbox_api.post(
        f"/api/v1/test_clocks/{clock['id']}/advance", {"frozen_time": "2027-01-02T00:00:00Z"}, format="json"
    )

    # then the live customer does not exist for that key, and nothing was invoiced or charged
    assert_problem(moved, 404)
    customer.refresh_from_db()
    assert customer.test_clock_id is None
    assert Invoice.objects.filter(customer=customer).count() == invoices_before
    assert not Invoice.objects.filter(customer=customer, number__startswith="TEST-").exists()
    assert Payment.objects.filter(customer=customer).count() == payments_before
    assert SandboxCharge.objects.count() == charges_before


def test_a_live_key_cannot_attach_a_test_clock_either(api, sandbox_api, customer_factory):
    customer = customer_factory()
    clock = sandbox_api.post(
        "/api/v1/test_clocks", {"name": "c", "frozen_time": "2026-01-01T00:00:00Z"}, format="json"
    ).json()

    response = api.patch(f"/api/v1/customers/cus_{customer.pk}", {"test_clock": clock["id"]}, format="json")

    assert 400 <= response.status_code < 500
    customer.refresh_from_db()
    assert customer.test_clock_id is None


def test_a_sandbox_key_cannot_refund_a_live_payment(api, sandbox_api, billing_world):
    # given a paid live invoice
    customer, price = billing_world
    api.post("/api/v1/payment_methods", {"customer": f"cus_{customer.pk}", "source": CARD}, format="json")
    subscription = api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}"}]},
        format="json",
    ).json()
    invoice = api.get("/api/v1/invoices", {"subscription": subscription["id"]}).json()["data"][0]
    api.post(f"/api/v1/invoices/{invoice['id']}/pay", {}, format="json")
    payment = Payment.objects.get(customer=customer)

    # when a sandbox key asks for a refund of it, or reads it
    refund = sandbox_api.post(
        "/api/v1/refunds", {"payment": f"pay_{payment.pk}", "amount": 1000, "reason": "duplicate"}, format="json"
    )
    read = sandbox_api.get(f"/api/v1/payments/pay_{payment.pk}")

    # then the payment is "no such object" and nothing is refunded
    body = assert_problem(refund, 400)
    assert body["errors"][0]["code"] == "resource_missing" and body["field"] == "payment"
    assert_problem(read, 404)
    assert not Refund.objects.exists()


def test_a_sandbox_key_cannot_subscribe_its_customer_to_a_live_price(sandbox_api, tax_rate, price_factory):
    live_price = price_factory()
    customer = sandbox_api.post(
        "/api/v1/customers", {"legal_name": "T", "email": "t@example.com", "country": "FR"}, format="json"
    ).json()

    response = sandbox_api.post(
        "/api/v1/subscriptions",
        {"customer": customer["id"], "items": [{"price": f"price_{live_price.pk}"}]},
        format="json",
    )

    body = assert_problem(response, 400)
    assert body["errors"][0]["code"] == "resource_missing"
    assert not Subscription.objects.exists()


def test_usage_for_another_modes_customer_is_refused(api, sandbox_api, billing_world):
    customer, _price = billing_world
    meter = Meter.objects.create(key="calls", name="Calls", aggregation=Meter.Aggregation.SUM)

    response = sandbox_api.post(
        "/api/v1/usage_events",
        {
            "events": [
                {"id": "e1", "customer": f"cus_{customer.pk}", "meter": meter.key, "timestamp": "2026-01-02T00:00:00Z"}
            ]
        },
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["accepted"] == 0 and response.json()["errors"][0]["code"] == "unknown_customer"
