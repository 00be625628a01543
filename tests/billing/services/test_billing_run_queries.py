"""The billing run selects what each invoice holds in bulk: its queries do not grow with the chunk."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import InvoiceItem, SubscriptionItem, UsageEvent
from billing.services.billing_run import RUN_WRITTEN_TABLES, billing_run_start
from billing.services.usage import usage_events_insert
from invoices.models import Invoice
from tests.billing.services.conftest import utc
from tests.billing.services.test_billing_run import make_due_subscriptions

pytestmark = pytest.mark.django_db

DUE = utc(2026, 5, 1)


def seed(count, *, make_customer, make_price, make_metered_price):
    """`count` due subscriptions, each with a plan, a metered item, usage and two pending items."""
    plan, metered = make_price(2900), make_metered_price("0.5")
    subscriptions = make_due_subscriptions(count=count, due_at=DUE, customer_factory=make_customer, price=plan)
    SubscriptionItem.objects.bulk_create([SubscriptionItem(subscription=s, price=metered) for s in subscriptions])
    usage_events_insert(
        rows=[
            UsageEvent(
                customer_id=s.customer_id,
                meter=metered.meter,
                external_id=f"u-{s.pk}",
                value=Decimal(100),
                timestamp=DUE - timedelta(days=3),
            )
            for s in subscriptions
        ]
    )
    InvoiceItem.objects.bulk_create(
        [
            InvoiceItem(customer_id=s.customer_id, subscription=owner, description=label, amount=500, currency="EUR")
            for s in subscriptions
            for owner, label in ((s, "Proration"), (None, "Setup"))
        ]
    )
    return subscriptions


def queries_to_bill(count, **factories) -> int:
    subscriptions = seed(count, **factories)
    with time_machine.travel(DUE + timedelta(hours=1), tick=False), CaptureQueriesContext(connection) as queries:
        billing_run_start(as_of=DUE + timedelta(hours=1))
    invoices = Invoice.objects.filter(billing_reason="subscription_cycle", subscription__in=subscriptions)
    assert invoices.count() == count
    assert not InvoiceItem.objects.filter(invoice__isnull=True).exists()
    # The statistics upkeep after a chunk ANALYZEs the run's small tables that outgrew their
    # statistics (issue 19): how many depends on how much the tables grew since the last one, not
    # on a query per subscription, and is bounded by the tables a run writes. Counted apart.
    analyses = [query for query in queries.captured_queries if query["sql"].startswith("ANALYZE ")]
    assert len(analyses) <= len(RUN_WRITTEN_TABLES)
    return len(queries) - len(analyses)


def test_billing_more_subscriptions_in_a_chunk_costs_no_more_queries(make_customer, make_price, make_metered_price):
    factories = {"make_customer": make_customer, "make_price": make_price, "make_metered_price": make_metered_price}

    queries_to_bill(1, **factories)  # first-time costs: the brand's number sequence, caches
    few = queries_to_bill(3, **factories)
    many = queries_to_bill(12, **factories)

    print(f"billing run queries: {few} for 3 subscriptions, {many} for 12")
    assert many == few, (few, many)


def test_negative_control_a_query_per_subscription_is_caught(
    monkeypatch, make_customer, make_price, make_metered_price
):
    from billing.services import billing_run

    real = billing_run.renewal_draft

    def renewal_draft_with_a_query(**kwargs):
        type(kwargs["subscription"]).objects.filter(pk=kwargs["subscription"].pk).exists()
        return real(**kwargs)

    # the run's own reference (imported at the top of billing_run since the imports were hoisted)
    monkeypatch.setattr(billing_run, "renewal_draft", renewal_draft_with_a_query)
    factories = {"make_customer": make_customer, "make_price": make_price, "make_metered_price": make_metered_price}

    queries_to_bill(1, **factories)
    few = queries_to_bill(3, **factories)
    many = queries_to_bill(12, **factories)

    assert many == few + 9
