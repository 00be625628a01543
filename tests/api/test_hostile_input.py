"""Hostile input on every write endpoint of the API schema: never a 5xx, never stored XSS.

`test_schemathesis.py` checks the API honours its schema with schema-shaped values. This
file feeds what an attacker sends instead: every write operation (POST, PATCH, DELETE)
listed in the live OpenAPI schema gets bodies built from its request schema where each
field is drawn from huge strings, odd Unicode, SQL and HTML injection, template syntax,
negative and overflowing numbers, wrong types, or a real id of the world below (so the
request gets past id checks and reaches the services). Bounded: a few examples per
operation, no shrinking. Then the stored-XSS check: what the API stores (customer and
product names, addresses) is rendered escaped in the console, the portal and the invoice
document.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from config.api.throttling import ApiKeyRateThrottle
from tests.api.conftest import client_for
from tests.ops.test_hostile_input import HOSTILE

pytestmark = pytest.mark.django_db

# A few per operation in `make test`; the 10,000-request run of docs/security.md sets more.
EXAMPLES_PER_OPERATION = int(os.environ.get("TARIF_HOSTILE_EXAMPLES", "6"))
COUNT_FILE = os.environ.get("TARIF_HOSTILE_COUNT_FILE")
XSS = '<script>alert("tarif-xss")</script>'
XSS_ATTRIBUTE = '"><img src=x onerror=alert("tarif-xss")>'
HOSTILE_NUMBERS = [-1, 0, -(2**31), 2**31, 2**53 + 1, 2**63, -(2**63) - 1, 10**30, 1.5, "12", "NaN", None, True]
HOSTILE_VALUES = [*HOSTILE, XSS, XSS_ATTRIBUTE, "", " ", "null", "cus_-1", "cus_99999999999999999999"]


def _schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


SCHEMA = _schema()
COMPONENTS = SCHEMA["components"]["schemas"]
WRITE_OPERATIONS = sorted(
    (method.upper(), path, operation)
    for path, operations in SCHEMA["paths"].items()
    for method, operation in operations.items()
    if method in ("post", "patch", "put", "delete")
)


USAGE_EVENT = {
    "type": "object",
    "properties": {
        name: {"type": kind}
        for name, kind in [
            ("id", "string"),
            ("customer", "string"),
            ("meter", "string"),
            ("timestamp", "string"),
            ("value", "number"),
            ("unique_value", "string"),
        ]
    },
}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = COMPONENTS[schema["$ref"].rsplit("/", 1)[-1]]
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return {**_resolve(schema["allOf"][0]), **{k: v for k, v in schema.items() if k != "allOf"}}
    return schema


def hostile_value(schema: dict[str, Any], name: str, plausible: dict[str, list[Any]], depth: int = 0):
    """A strategy for one field: a hostile value, a real id or enum value, or a wrong type."""
    schema = _resolve(schema)
    anything_hostile = st.one_of(st.sampled_from(HOSTILE_VALUES), st.sampled_from(HOSTILE_NUMBERS))
    choices = [anything_hostile]
    if plausible.get(name):
        choices.append(st.sampled_from(plausible[name]))
    if "enum" in schema:
        choices.append(st.sampled_from([value for value in schema["enum"] if value is not None]))
    kind = schema.get("type")
    if kind == "string":
        choices += [st.sampled_from(HOSTILE_VALUES), st.text(max_size=300)]
    elif kind in ("integer", "number"):
        choices += [st.sampled_from(HOSTILE_NUMBERS), st.integers(min_value=-(2**70), max_value=2**70)]
    elif kind == "array" and depth < 3:
        item = schema.get("items", {})
        if name == "events":  # the batch's items are free-form in the schema: send usage events
            item = USAGE_EVENT
        choices.append(st.lists(hostile_value(item, name, plausible, depth + 1), min_size=1, max_size=3))
    elif kind == "object" and depth < 3:
        choices.append(hostile_body(schema, plausible, depth + 1))
    return st.one_of(*choices)


def hostile_body(schema: dict[str, Any], plausible: dict[str, list[Any]], depth: int = 0):
    schema = _resolve(schema)
    properties = schema.get("properties") or {"metadata": {"type": "object"}, "note": {"type": "string"}}
    fields = {name: hostile_value(field, name, plausible, depth) for name, field in properties.items()}
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {name: strategy for name, strategy in fields.items() if name in required},
        optional={name: strategy for name, strategy in fields.items() if name not in required},
    )


@pytest.fixture
def world(make_key, brand_factory, tax_rate, customer_factory, price_factory, monkeypatch):
    """A sandbox read-write key without rate limit, and real objects for ids to point at."""
    from billing.services.webhooks import webhook_endpoint_create

    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "100000/second"})
    brand_factory(is_default=True)
    _key, raw = make_key(mode="test")
    api = client_for(raw)
    # The key is a sandbox key: the objects it points at are test mode (live ones are "no such object").
    customer = customer_factory(livemode=False)
    price = price_factory(unit_amount=2900, livemode=False, product__livemode=False)
    subscription = api.post(
        "/api/v1/subscriptions",
        {
            "customer": f"cus_{customer.pk}",
            "items": [{"price": f"price_{price.pk}"}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
        },
        format="json",
    ).json()
    assert subscription.get("object") == "subscription", subscription
    invoice = api.get("/api/v1/invoices", {"subscription": subscription["id"]}).json()["data"][0]
    clock = api.post(
        "/api/v1/test_clocks", {"name": "hostile", "frozen_time": "2026-01-01T00:00:00Z"}, format="json"
    ).json()
    endpoint = webhook_endpoint_create(url="https://hooks.example.com/tarif", enabled_events=["*"], livemode=False)
    ids = {
        "customers": f"cus_{customer.pk}",
        "prices": f"price_{price.pk}",
        "products": f"prod_{price.product_id}",
        "subscriptions": subscription["id"],
        "invoices": invoice["id"],
        "test_clocks": clock.get("id", "clock_1"),
        "webhook_endpoints": f"we_{endpoint.pk}",
        "payment_methods": "pm_1",
    }
    plausible = {
        "customer": [ids["customers"]],
        "price": [ids["prices"]],
        "product": [ids["products"]],
        "subscription": [ids["subscriptions"]],
        "invoice": [ids["invoices"]],
        "test_clock": [ids["test_clocks"]],
        "currency": ["EUR"],
        "country": ["FR"],
        "email": ["hostile@example.com"],
        "url": ["https://hooks.example.com/x"],
        "meter": ["api_calls"],
        "timestamp": ["2026-01-15T09:00:00Z"],
        "frozen_time": ["2026-02-01T00:00:00Z"],
    }
    return api, ids, plausible


def operation_path(path: str, ids: dict[str, str]) -> str:
    resource = path.split("/")[3]
    return path.replace("{id}", ids.get(resource, "x_1"))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # each request commits on its own, as in production
@pytest.mark.parametrize(
    ("method", "path", "operation"), WRITE_OPERATIONS, ids=[f"{m} {p}" for m, p, _ in WRITE_OPERATIONS]
)
def test_hostile_bodies_never_cause_a_server_error(world, method, path, operation):
    api, ids, plausible = world
    body_schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    url = operation_path(path, ids)
    seen: list[int] = []

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=not os.environ.get("TARIF_HOSTILE_RANDOM"),  # random: new examples for a longer hunt
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(body=hostile_body(body_schema, plausible))
    def send(body):
        response = api.generic(method, url, data=_json(body), content_type="application/json")
        seen.append(response.status_code)
        assert response.status_code < 500, (method, url, body, response.content[:500])
        if response.status_code != 204:
            assert response["Content-Type"].startswith(("application/json", "application/problem+json"))

    send()
    _record(len(seen), f"{method} {path}")
    assert len(seen) >= 1


def _record(count: int, what: str) -> None:
    if COUNT_FILE:
        with open(COUNT_FILE, "a") as out:
            out.write(f"api {what} {count}\n")


def _json(body: Any) -> str:
    import json

    return json.dumps(body, ensure_ascii=False)


def test_injection_in_query_strings_of_lists_never_fails(world):
    api, _ids, _plausible = world
    count = 0
    for resource in ("customers", "invoices", "subscriptions", "events", "usage_events", "prices"):
        for value in HOSTILE_VALUES:
            for parameter in ("customer", "status", "email", "cursor", "limit", "expand", "type_prefix"):
                response = api.get(f"/api/v1/{resource}", {parameter: value[:2000]})
                count += 1
                assert response.status_code < 500, (resource, parameter, value[:40], response.content[:300])
    _record(count, "GET list query strings")


def test_options_on_every_path_never_fails(world):
    """DRF's metadata answers OPTIONS by building the view's serializer: a view without one used to 500."""
    api, ids, _plausible = world
    for path in SCHEMA["paths"]:
        url = operation_path(path, ids) if "{id}" in path else path.replace("{name}", "mrr")
        response = api.options(url)
        assert response.status_code < 500, (url, response.content[:300])


# -- stored XSS: what the API stores is shown escaped everywhere -------------------------------------


def _assert_escaped(html: str, where: str) -> None:
    assert XSS not in html, f"raw <script> in {where}"
    assert "<img src=x" not in html, f"raw <img> in {where}"


def test_markup_stored_over_the_api_is_escaped_in_the_console_portal_and_invoice(world, console, user):
    from django.test import Client
    from django.urls import reverse

    from customers.models import Customer, CustomerUser
    from invoices.models import Invoice
    from invoices.rendering.context import invoice_document
    from invoices.rendering.html import document_html

    api, _ids, _plausible = world
    product = api.post("/api/v1/products", {"name": XSS_ATTRIBUTE}, format="json")
    assert product.status_code == 201, product.content
    price = api.post(
        "/api/v1/prices",
        {
            "product": product.json()["id"],
            "currency": "EUR",
            "unit_amount": "1500",
            "cycle": {"kind": "interval", "unit": "month", "count": 1},
            "nickname": XSS,
        },
        format="json",
    )
    assert price.status_code == 201, price.content
    created = api.post(
        "/api/v1/customers",
        {
            "legal_name": XSS,
            "email": "xss@example.com",
            "country": "FR",
            "address_line1": XSS_ATTRIBUTE,
            "city": XSS,
            "metadata": {"note": XSS},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    customer = Customer.objects.get(pk=int(created.json()["id"].removeprefix("cus_")))
    assert customer.legal_name == XSS  # stored as sent: escaping is the renderer's job, not the API's
    subscription = api.post(
        "/api/v1/subscriptions",
        {
            "customer": created.json()["id"],
            "items": [{"price": price.json()["id"]}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
        },
        format="json",
    )
    assert subscription.status_code == 201, subscription.content
    invoice = Invoice.objects.filter(customer=customer).exclude(number="").get()
    CustomerUser.objects.create(user=user, customer=customer)
    client = Client()  # the console fixture holds the default client's staff session
    client.force_login(user)
    console.post(reverse("admin:test_data"), {"test_data": "on"})  # the sandbox key's objects are test data

    pages = {
        "console customer list": console.get(reverse("admin:customers_customer_changelist")),
        "console customer page": console.get(reverse("admin:customers_customer_change", args=[customer.pk])),
        "console invoice page": console.get(reverse("admin:invoices_invoice_change", args=[invoice.pk])),
        "console subscription list": console.get(reverse("admin:billing_subscription_changelist")),
        "portal overview": client.get(reverse("portal:home")),
        "portal invoices": client.get(reverse("portal:invoices")),
        "portal invoice": client.get(reverse("portal:invoice", args=[invoice.pk])),
        "portal details": client.get(reverse("portal:details")),
    }
    for where, response in pages.items():
        assert response.status_code == 200, where
        _assert_escaped(response.content.decode(), where)
    assert "&lt;script&gt;" in pages["console customer page"].content.decode()

    lines = list(invoice.lines.all())
    for for_pdf in (False, True):
        html = document_html(invoice_document(invoice=invoice, lines=lines), for_pdf=for_pdf)
        _assert_escaped(html, f"invoice document (for_pdf={for_pdf})")
        assert "&lt;script&gt;" in html  # the buyer's name is on it, escaped
