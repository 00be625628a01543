"""Issue 20: console lists that stay fast on millions of rows keep showing what they showed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from billing.models import Subscription
from tests.invoices.test_admin import make_invoice

pytestmark = pytest.mark.django_db


@pytest.fixture
def buyer(customer_factory, brand):
    def make(**fields):
        return customer_factory(brand=brand, **fields)

    return make


@time_machine.travel(datetime(2026, 6, 15, 12, tzinfo=UTC), tick=False)
def test_a_list_longer_than_the_chart_limit_says_to_filter_it_instead_of_charting(
    console, buyer, tax_rate, monkeypatch
):
    make_invoice(buyer(), net=10000, finalized_at=datetime(2026, 4, 10, tzinfo=UTC))
    make_invoice(buyer(), net=20000, finalized_at=datetime(2026, 5, 10, tzinfo=UTC))
    monkeypatch.setattr("invoices.admin.invoices.CHART_MAX_ROWS", 1)

    response = console.get(reverse("admin:invoices_invoice_changelist"))

    assert response.status_code == 200
    assert response.context_data["invoice_chart"] == []
    page = response.content.decode()
    assert "tarif-chart__series" not in page
    assert "filter the list" in page


@time_machine.travel(datetime(2026, 6, 15, 12, tzinfo=UTC), tick=False)
def test_a_list_within_the_chart_limit_is_charted(console, buyer, tax_rate, monkeypatch):
    make_invoice(buyer(), net=10000, finalized_at=datetime(2026, 4, 10, tzinfo=UTC))
    monkeypatch.setattr("invoices.admin.invoices.CHART_MAX_ROWS", 1)

    response = console.get(reverse("admin:invoices_invoice_changelist"))

    assert response.context_data["invoice_chart"][0].currency == "EUR"
    assert "filter the list" not in response.content.decode()


def test_the_invoice_currency_filter_offers_the_catalogs_currencies_and_filters(
    console, buyer, tax_rate, price_factory
):
    price_factory(currency="EUR")
    price_factory(currency="USD")
    invoice = make_invoice(buyer(legal_name="Euro SARL"))

    listed = console.get(reverse("admin:invoices_invoice_changelist"))
    in_usd = console.get(reverse("admin:invoices_invoice_changelist"), {"currency__exact": "USD"})
    in_eur = console.get(reverse("admin:invoices_invoice_changelist"), {"currency__exact": "EUR"})

    assert "currency__exact=USD" in listed.content.decode()
    assert invoice not in in_usd.context_data["cl"].result_list
    assert invoice in in_eur.context_data["cl"].result_list


def test_the_customer_list_shows_each_customers_status(console, buyer, tax_rate):
    overdue = buyer(legal_name="Retard SARL")
    make_invoice(overdue)  # issued on 15 January 2026, open: due long before today
    active = buyer(legal_name="Actif SAS")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    Subscription.objects.create(  # read only by the list: its services have their own tests
        customer=active,
        status=Subscription.Status.ACTIVE,
        currency="EUR",
        cycle={"kind": "interval", "unit": "month", "count": 1},
        billing_cycle_anchor=start,
        current_period_start=start,
        current_period_end=datetime(2026, 2, 1, tzinfo=UTC),
    )
    buyer(legal_name="Sans abonnement SA")

    response = console.get(reverse("admin:customers_customer_changelist"), HTTP_ACCEPT_LANGUAGE="en")

    statuses = {customer.legal_name: customer for customer in response.context_data["cl"].result_list}
    assert statuses["Retard SARL"].has_overdue is True
    assert statuses["Actif SAS"].has_live_subscription is True and statuses["Actif SAS"].has_overdue is False
    assert statuses["Sans abonnement SA"].has_live_subscription is False
    page = response.content.decode()
    assert "overdue" in page and "no subscription" in page


def test_the_payment_gateway_filter_keeps_djangos_parameter(console):
    response = console.get(reverse("admin:billing_payment_changelist"), {"gateway__exact": "sandbox"})

    assert response.status_code == 200
    assert "gateway__exact=stripe" in response.content.decode()
