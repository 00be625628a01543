"""Every write operation of the OpenAPI schema, generated from the schema itself (drf-spectacular's
generator, in-process), so endpoints added later are covered without editing this file:

(a) an unknown body parameter is refused: 400 `unknown_parameter` naming it;
(b) an invalid value without Accept-Language: an English problem (Content-Language: en);
(c) the same with Accept-Language: fr: the French problem (another text, Content-Language: fr).

The objects the paths need are created through the API with a sandbox key. A new resource
with `{id}` in a write path needs one line in `_world` (the test says so, it never skips).
"""

from __future__ import annotations

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

from config.api.throttling import ApiKeyRateThrottle
from tests.api.conftest import assert_problem, client_for

pytestmark = pytest.mark.django_db

WRITE_METHODS = ("post", "put", "patch", "delete")
UNKNOWN = "zz_unknown_parameter"
# Text that only a Python exception's message would put in a problem's detail.
PYTHON_TEXT = ("Traceback", "object has no attribute", "invalid literal", "NoneType", "unsupported operand", "KeyError")


def _schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


SCHEMA = _schema()


def _write_operations() -> list[tuple[str, str]]:
    return sorted(
        (path, method)
        for path, operations in SCHEMA["paths"].items()
        for method in operations
        if method in WRITE_METHODS
    )


OPERATIONS = _write_operations()


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _request_properties(path: str, method: str) -> dict[str, Any]:
    body = SCHEMA["paths"][path][method].get("requestBody")
    if body is None:
        return {}
    schema = _resolve(body["content"]["application/json"]["schema"])
    return {name: _resolve(prop) for name, prop in schema.get("properties", {}).items() if not prop.get("readOnly")}


# A wrong value per kind of property, and the order to prefer them in: framework messages
# (numbers, booleans, lists) before our own id fields, which the schema shows as plain strings.
_WRONG_VALUES: list[tuple[str, Any]] = [
    ("integer", "not-a-number"),
    ("boolean", "maybe"),
    ("number", "not-a-number"),
    ("array", 12345),
    ("object", 12345),
    ("enum", "zz-no-such-choice"),
    ("formatted", {"not": "a date"}),
    ("string", {"not": "a string"}),
]


def _kind(prop: dict[str, Any]) -> str:
    if "allOf" in prop or "oneOf" in prop or "enum" in prop:
        return "enum"
    kind = prop.get("type", "object")
    if kind == "string" and "format" in prop:
        return "formatted"
    return kind


def _invalid_body(path: str, method: str) -> tuple[str, dict[str, Any]] | None:
    properties = _request_properties(path, method)
    for kind, value in _WRONG_VALUES:
        for name, prop in properties.items():
            if _kind(prop) == kind:
                return name, {name: value}
    return None


def _resource(path: str) -> str:
    return path.removeprefix("/api/v1/").split("/")[0]


@pytest.fixture
def sandbox(make_key, monkeypatch, tax_rate, brand):
    brand.is_default = True  # customers created through the API invoice under the default brand
    brand.save(update_fields=["is_default"])
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "100000/second"})
    _key, raw = make_key(mode="test")
    return client_for(raw)


def _created(response) -> str:
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.fixture
def world(sandbox) -> dict[str, str]:
    """One object per resource whose id a write path takes, created in test mode through the API."""
    post = sandbox.post
    customer = _created(
        post("/api/v1/customers", {"legal_name": "Acme SAS", "email": "ops@acme.example", "country": "FR"}, "json")
    )
    product = _created(post("/api/v1/products", {"name": "Pro"}, "json"))
    price = _created(
        post(
            "/api/v1/prices",
            {
                "product": product,
                "currency": "EUR",
                "unit_amount": 2900,
                "cycle": {"kind": "interval", "unit": "month", "count": 1},
            },
            "json",
        )
    )
    coupon = _created(post("/api/v1/coupons", {"name": "Ten", "percent_off": "10"}, "json"))
    payment_method = _created(
        post("/api/v1/payment_methods", {"customer": customer, "source": {"type": "manual"}}, "json")
    )
    subscription = _created(
        post(
            "/api/v1/subscriptions",
            {
                "customer": customer,
                "items": [{"price": price}],
                "collection_method": "send_invoice",
                "days_until_due": 30,
            },
            "json",
        )
    )
    invoice = sandbox.get("/api/v1/invoices", {"subscription": subscription}).json()["data"][0]["id"]
    clock = _created(post("/api/v1/test_clocks", {"name": "c", "frozen_time": "2026-01-01T00:00:00Z"}, "json"))
    endpoint = _created(post("/api/v1/webhook_endpoints", {"url": "https://hooks.example.com/tarif"}, "json"))
    # Issue 16's resources, and the nested ones (products/{product_id}/features/{id}...).
    feature = _created(post("/api/v1/features", {"lookup_key": "sso", "name": "SSO"}, "json"))
    product_feature = _created(post(f"/api/v1/products/{product}/features", {"feature": feature}, "json"))
    meter = _created(post("/api/v1/meters", {"key": "calls", "name": "Calls", "aggregation": "sum"}, "json"))
    threshold = _created(post("/api/v1/usage_thresholds", {"subscription": subscription, "amount": 100}, "json"))
    grant = _created(post("/api/v1/credit_grants", {"customer": customer, "amount": 500, "currency": "EUR"}, "json"))
    discount = _created(post(f"/api/v1/subscriptions/{subscription}/discounts", {"coupon": coupon}, "json"))
    _created(post(f"/api/v1/customers/{customer}/discounts", {"coupon": coupon}, "json"))
    # Issue 17: a checkout session, a payment link and a draft quote.
    checkout_session = _created(
        post(
            "/api/v1/checkout/sessions",
            {
                "mode": "subscription",
                "line_items": [{"price": price}],
                "success_url": "https://shop.example/ok",
                "cancel_url": "https://shop.example/pricing",
            },
            "json",
        )
    )
    payment_link = _created(post("/api/v1/payment_links", {"name": "Link", "line_items": [{"price": price}]}, "json"))
    quote = _created(post("/api/v1/quotes", {"customer": customer, "lines": [{"price": price}]}, "json"))
    return {
        "checkout": checkout_session,
        "payment_links": payment_link,
        "quotes": quote,
        "features": feature,
        "product_features": product_feature,
        "meters": meter,
        "usage_thresholds": threshold,
        "credit_grants": grant,
        "subscription_discounts": discount,
        "customers": customer,
        "products": product,
        "prices": price,
        "coupons": coupon,
        "payment_methods": payment_method,
        "subscriptions": subscription,
        "invoices": invoice,
        "test_clocks": clock,
        "webhook_endpoints": endpoint,
    }


# Parameters of nested paths, and the world's object each stands for.
NESTED = {"{customer_id}": "customers", "{product_id}": "products", "{discount_id}": "subscription_discounts"}


def _url(path: str, world: dict[str, str]) -> str:
    for parameter, resource in NESTED.items():
        path = path.replace(parameter, world[resource])
    if "{id}" not in path:
        return path
    segments = path.removeprefix("/api/v1/").split("/")
    # /products/prod_1/features/{id} is a product feature; /features/{id} a feature.
    nested = segments.index("{id}") > 2
    resource = f"product_{segments[segments.index('{id}') - 1]}" if nested else _resource(path)
    assert resource in world, f"{path}: add an object of {resource!r} to the `world` fixture of this test"
    return path.replace("{id}", world[resource])


def _send(client, method: str, url: str, body: dict[str, Any], **headers: str):
    return getattr(client, method)(url, body, format="json", **headers)


def _no_python_text(problem: dict[str, Any]) -> None:
    texts = [problem["detail"], *(error["message"] for error in problem.get("errors", []))]
    for text in texts:
        assert not any(marker in text for marker in PYTHON_TEXT), text


def test_the_schema_has_write_operations_to_check():
    # A negative control for the generator: an empty list would make the tests below vacuous.
    assert len(OPERATIONS) >= 25
    assert ("/api/v1/subscriptions", "post") in OPERATIONS


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_an_unknown_parameter_is_refused_and_named(sandbox, world, path, method):
    response = _send(sandbox, method, _url(path, world), {UNKNOWN: 1})

    problem = assert_problem(response, 400, "unknown_parameter")
    assert problem["field"] == UNKNOWN
    assert UNKNOWN in problem["detail"]
    assert [error["field"] for error in problem["errors"] if error["code"] == "unknown_parameter"] == [UNKNOWN]


# Operations that take no body: no value can be invalid, so only (a) applies to them.
BODYLESS = [(path, method) for path, method in OPERATIONS if _invalid_body(path, method) is None]
WITH_BODY = [(path, method) for path, method in OPERATIONS if (path, method) not in BODYLESS]


def test_only_actions_without_a_request_body_escape_the_language_check():
    for path, method in BODYLESS:
        assert "requestBody" not in SCHEMA["paths"][path][method], (path, method)


@pytest.mark.parametrize(("path", "method"), WITH_BODY, ids=[f"{m.upper()} {p}" for p, m in WITH_BODY])
def test_an_invalid_value_is_explained_in_english_by_default_and_in_french_on_request(sandbox, world, path, method):
    field, body = _invalid_body(path, method)
    url = _url(path, world)

    english = _send(sandbox, method, url, body)
    french = _send(sandbox, method, url, body, HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9,en;q=0.5")

    english_problem = assert_problem(english, 400)
    french_problem = assert_problem(french, 400)
    assert english_problem["field"] == french_problem["field"]
    # The invalid value is named (a required field left out may be named first).
    named = {error["field"].split("[")[0].split(".")[0] for error in english_problem["errors"] if error["field"]}
    assert field in named
    assert english["Content-Language"] == "en" and french["Content-Language"] == "fr"
    assert english_problem["detail"] != french_problem["detail"], (english_problem["detail"], "not translated")
    _no_python_text(english_problem)
    _no_python_text(french_problem)
