"""Change preview benchmark: server time of `subscription_preview_change` for a 3-item subscription.

    .venv/bin/python bench/subscription_preview.py --repeat 300

Seeds one customer with a plan, seats and an add-on (a 10 % coupon, a pending one-off
item, some usage), then previews an upgrade in each proration mode, `--repeat` times,
freshly loading the subscription and prices each time as an API view would. Prints the
median and 95th percentile in milliseconds and the queries per preview. The target is
"well under 50 ms". Uses the database named by DATABASE_URL (default:
var/bench.sqlite3), which it empties first: never point it at real data.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from billing_run import reset_database, setup_django  # noqa: E402 - Django is set up first


def seed():
    from billing.models import Coupon, Meter, Price, Product, UsageEvent
    from billing.services.invoice_items import invoice_item_create
    from billing.services.subscriptions import ItemSpec, subscription_create
    from billing.services.usage import usage_events_insert
    from customers.models import Customer
    from invoices.models import Brand, TaxRate

    start = datetime(2026, 4, 1, tzinfo=UTC)
    brand = Brand.objects.create(
        slug="bench", name="Bench", legal_name="Bench SAS", address_line1="1 rue du Test", postal_code="75001",
        city="Paris", country="FR", siren="552100554", vat_number="FR03552100554", is_default=True,
    )  # fmt: skip
    TaxRate.objects.create(country="FR", percentage=Decimal(20))
    customer = Customer.objects.create(
        legal_name="Preview SARL", email="p@bench.example", country="FR", brand=brand, timezone="Europe/Paris"
    )
    monthly = {"kind": "interval", "unit": "month", "count": 1}
    product = Product.objects.create(name="Bench Pro")
    meter = Meter.objects.create(key="preview_calls", name="Calls", aggregation=Meter.Aggregation.SUM)

    def price(amount, **fields):
        return Price.objects.create(
            product=product, currency="EUR", unit_amount=Decimal(amount), cycle=monthly, **fields
        )

    plan, seat, addon, bigger = price(2900), price(1000), price(500), price(9900)
    calls = price("0.5", usage_type=Price.UsageType.METERED, meter=meter)
    coupon = Coupon.objects.create(name="Bench 10%", percent_off=Decimal(10), duration=Coupon.Duration.FOREVER)
    subscription = subscription_create(
        customer=customer,
        items=[ItemSpec(plan), ItemSpec(seat, 3), ItemSpec(addon), ItemSpec(calls)],
        at=start,
        coupon=coupon,
    )
    invoice_item_create(customer=customer, amount=1500, description="Workshop", at=start + timedelta(days=2))
    usage_events_insert(
        rows=[
            UsageEvent(
                customer=customer,
                meter=meter,
                external_id=str(n),
                value=Decimal(10),
                timestamp=start + timedelta(hours=n),
            )
            for n in range(300)
        ]
    )
    new_items = [(bigger.pk, 1), (seat.pk, 5), (addon.pk, 1), (calls.pk, 1)]
    return subscription.pk, new_items, start + timedelta(days=15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    arguments = parser.parse_args()
    setup_django(arguments.database_url)

    from django.db import connection

    from billing.models import Price, Subscription
    from billing.services.changes import PRORATION_MODES, subscription_preview_change
    from billing.services.subscriptions import ItemSpec

    reset_database()
    subscription_id, new_items, at = seed()
    print(f"database: {connection.vendor}")
    queries = 0

    def count_queries(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    for mode in PRORATION_MODES:
        timings = []
        queries = 0
        with connection.execute_wrapper(count_queries):
            for _ in range(arguments.repeat):
                started = time.perf_counter()
                subscription = Subscription.objects.get(pk=subscription_id)
                prices = Price.objects.in_bulk([price_id for price_id, _ in new_items])
                items = [ItemSpec(prices[price_id], quantity) for price_id, quantity in new_items]
                subscription_preview_change(subscription=subscription, items=items, at=at, proration=mode)
                timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        print(f"{mode}_median_ms: {statistics.median(timings):.2f}")
        print(f"{mode}_p95_ms: {timings[int(len(timings) * 0.95) - 1]:.2f}")
        print(f"{mode}_queries_per_preview: {queries / arguments.repeat:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
