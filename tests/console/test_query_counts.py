"""Issue 20: every busy console list, and the customer hub, makes a fixed number of queries
however many rows it shows (no N+1 in list_display, related rows joined), and counts no
large table exactly (config/console_pagination.py).

Each page is opened with the one row of console_world(), then with 30: the second must not
need more queries than the first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.db.models import Model
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.console_pages import console_world, role_user, signed_in_client

pytestmark = pytest.mark.django_db

ROWS = 30


def _clone(instance: Model, count: int, unique: Callable[[int], dict[str, Any]]) -> None:
    """`count` copies of a row, each with its own unique fields (inserted directly: list
    pages only read them; the services that write them have their own tests)."""
    model = type(instance)
    fields = {
        field.attname: getattr(instance, field.attname)
        for field in model._meta.concrete_fields
        if not field.primary_key and not getattr(field, "auto_now_add", False)
    }
    model.objects.bulk_create([model(**{**fields, **unique(n)}) for n in range(count)])


def _more_rows(model_label: str, world: dict[str, Any]) -> None:
    from billing.models import Payment, Subscription, UsageEvent
    from config.audit.models import AuditEntry
    from config.events.models import DomainEvent
    from customers.models import Customer
    from invoices.models import CreditNote, Invoice

    extra = ROWS - 1
    if model_label == "invoices.invoice":
        _clone(Invoice.objects.order_by("pk").first(), extra, lambda n: {"number": f"Q-{n}"})
    elif model_label == "customers.customer":
        _clone(
            Customer.objects.order_by("pk").first(),
            extra,
            lambda n: {"email": f"q{n}@example.com", "legal_name": f"Client {n}"},
        )
    elif model_label == "billing.subscription":
        _clone(Subscription.objects.order_by("pk").first(), extra, lambda n: {})
    elif model_label == "billing.payment":
        _clone(Payment.objects.order_by("pk").first(), extra, lambda n: {"idempotency_key": f"q:{n}"})
    elif model_label == "events.domainevent":
        _clone(DomainEvent.objects.order_by("pk").first(), extra, lambda n: {"object_id": f"q{n}"})
    elif model_label == "audit.auditentry":
        _clone(AuditEntry.objects.order_by("pk").first(), extra, lambda n: {"target_id": f"q{n}"})
    elif model_label == "invoices.creditnote":
        _clone(CreditNote.objects.order_by("pk").first(), extra, lambda n: {"number": f"QA-{n}"})
    elif model_label == "billing.usageevent":
        _clone(UsageEvent.objects.order_by("pk").first(), extra, lambda n: {"external_id": f"q{n}"})
    else:  # pragma: no cover - a page listed below without a way to add rows
        raise AssertionError(model_label)


LISTS = [
    "invoices.invoice",
    "customers.customer",
    "billing.subscription",
    "billing.payment",
    "events.domainevent",
    "audit.auditentry",
    "invoices.creditnote",
    "billing.usageevent",
]


def _queries(client, url: str) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(captured), response.content.decode()


@pytest.fixture
def world_and_console():
    world = console_world()
    client = signed_in_client(role_user("Finance"))
    return world, client


@pytest.mark.parametrize("model_label", LISTS)
def test_a_console_list_makes_the_same_queries_for_1_and_30_rows(model_label, world_and_console):
    world, client = world_and_console
    app_label, model_name = model_label.split(".")
    url = reverse(f"admin:{app_label}_{model_name}_changelist")
    client.get(url)  # warm caches filled once per process (content types, permissions)
    one, page_of_one = _queries(client, url)

    _more_rows(model_label, world)
    thirty, page = _queries(client, url)

    assert page.count("<tr") >= page_of_one.count("<tr") + ROWS - 1  # the new rows are on the page
    assert thirty <= one, f"{model_label}: {one} queries with 1 row, {thirty} with {ROWS}"


def test_the_customer_hub_makes_the_same_queries_for_1_and_30_invoices(world_and_console):
    from invoices.models import Invoice

    world, client = world_and_console
    url = reverse("admin:customers_customer_change", args=[world["customer"].pk])
    client.get(url)
    one, _ = _queries(client, url)

    _clone(Invoice.objects.order_by("pk").first(), ROWS - 1, lambda n: {"number": f"Q-{n}"})
    thirty, _ = _queries(client, url)

    assert thirty <= one, f"customer hub: {one} queries with 1 invoice, {thirty} with {ROWS}"
