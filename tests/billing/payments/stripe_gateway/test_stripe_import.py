"""`import_from_stripe` end to end against localstripe, seeded by each test (issue 16, item 14).

The expected renewal of every imported subscription is worked out by hand from the seeded
Stripe objects (what Stripe's upcoming invoice would show), then Tarif's billing run on a
test clock must issue the same date and amount.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.models import Coupon, PaymentMethod, Price, Product, PromotionCode, StripeImportMapping, StripeImportRun
from billing.models import Subscription as TarifSubscription
from billing.services import stripe_import as importer
from billing.services.stripe_import import stripe_import_run, stripe_import_start
from billing.services.test_clocks import test_clock_advance, test_clock_create
from customers.models import Customer
from invoices.models import Invoice
from tests.billing.payments.stripe_gateway.conftest import SECRET_KEY, VISA_OK
from tests.factories import BrandFactory, TaxRateFactory

pytestmark = pytest.mark.django_db

DAY = 86400


def seed(localstripe, *, tag: str) -> dict:
    """A small Stripe account: 2 products, 3 prices (one tiered, one unmappable), a coupon with a
    promotion code, 3 customers (one with a VAT number and an address), 3 subscriptions."""
    now = int(time.time())
    pro = localstripe.post("/v1/products", {"name": f"Pro {tag}"})
    seats = localstripe.post("/v1/products", {"name": f"Seats {tag}"})
    monthly = localstripe.post(
        "/v1/prices",
        {
            "product": pro["id"],
            "currency": "eur",
            "unit_amount": 2000,
            "recurring[interval]": "month",
            "tax_behavior": "exclusive",
            "nickname": "Pro monthly",
        },
    )
    tiered = localstripe.post(
        "/v1/prices",
        {
            "product": seats["id"],
            "currency": "eur",
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            "recurring[interval]": "month",
            "recurring[interval_count]": 1,
            "tiers[0][up_to]": 5,
            "tiers[0][unit_amount]": 1000,
            "tiers[1][up_to]": "inf",
            "tiers[1][unit_amount]": 800,
            "tiers[1][flat_amount]": 500,
        },
    )
    packaged = localstripe.post(
        "/v1/prices",
        {
            "product": seats["id"],
            "currency": "eur",
            "unit_amount": 100,
            "recurring[interval]": "month",
            "transform_quantity[divide_by]": 10,
        },
    )
    coupon = localstripe.post("/v1/coupons", {"id": f"TWENTY{tag}", "percent_off": 20, "duration": "forever"})
    promo = localstripe.post("/v1/promotion_codes", {"coupon": coupon["id"], "code": f"WELCOME{tag}"})
    anna = localstripe.post(
        "/v1/customers",
        {
            "email": f"anna{tag}@example.com",
            "name": "Anna GmbH",
            "preferred_locales[0]": "de-DE",
            "preferred_locales[1]": "en",
            "address[line1]": "Unter den Linden 1",
            "address[city]": "Berlin",
            "address[postal_code]": "10117",
            "address[country]": "DE",
        },
    )
    localstripe.post(f"/v1/customers/{anna['id']}/tax_ids", {"type": "eu_vat", "value": "DE136695976"})
    bob = localstripe.post(
        "/v1/customers",
        {"email": f"bob{tag}@example.com", "name": "Bob", "preferred_locales[0]": "fr-FR", "address[country]": "FR"},
    )
    cleo = localstripe.post(
        "/v1/customers", {"email": f"cleo{tag}@example.com", "name": "Cleo", "address[country]": "FR"}
    )
    # Anna: 3 x Pro monthly since 40 days ago, 20 % forever.
    start = now - 40 * DAY
    anna_sub = localstripe.post(
        "/v1/subscriptions",
        {
            "customer": anna["id"],
            "items[0][price]": monthly["id"],
            "items[0][quantity]": 3,
            "backdate_start_date": start,
            "discounts[0][coupon]": coupon["id"],
        },
    )
    # Bob: 7 seats on the tiered price, in a 14-day trial.
    bob_sub = localstripe.post(
        "/v1/subscriptions",
        {"customer": bob["id"], "items[0][price]": tiered["id"], "items[0][quantity]": 7, "trial_end": now + 14 * DAY},
    )
    # Cleo: the packaged price (not mappable) -> the subscription is not mapped either.
    cleo_sub = localstripe.post(
        "/v1/subscriptions", {"customer": cleo["id"], "items[0][price]": packaged["id"], "items[0][quantity]": 30}
    )
    return {
        "now": now,
        "start": start,
        "pro": pro,
        "monthly": monthly,
        "tiered": tiered,
        "packaged": packaged,
        "coupon": coupon,
        "promo": promo,
        "anna": anna,
        "bob": bob,
        "cleo": cleo,
        "anna_sub": anna_sub,
        "bob_sub": bob_sub,
        "cleo_sub": cleo_sub,
    }


def by_stripe_id(model, stripe_id: str):
    row = StripeImportMapping.objects.get(stripe_id=stripe_id)
    return model.objects.get(pk=row.object_id)


def run_import(localstripe, **options):
    run = stripe_import_start(api_key=SECRET_KEY, api_base=localstripe.url, **options)
    stripe_import_run(run=run)
    run.refresh_from_db()
    return run


def test_full_import_then_renewals_on_stripes_dates_and_amounts(localstripe):
    # given a seeded Stripe account and a test clock at "now"
    BrandFactory(is_default=True)
    TaxRateFactory()
    world = seed(localstripe, tag="full")
    clock = test_clock_create(name="import", frozen_time=datetime.fromtimestamp(world["now"], tz=UTC))
    # when it is imported
    run = run_import(localstripe, test_clock=clock)
    # then the catalog, the customers and the subscriptions exist in test mode
    assert run.status == StripeImportRun.Status.DONE and run.api_key == "" and not run.livemode, run.last_error
    # (localstripe is shared by the session: other tests' objects are imported too, so counts are not exact)
    price = by_stripe_id(Price, world["monthly"]["id"])
    assert (price.unit_amount, price.currency, price.cycle["unit"], price.livemode) == (2000, "EUR", "month", False)
    tiered = by_stripe_id(Price, world["tiered"]["id"])
    assert tiered.scheme == Price.Scheme.TIERED_GRADUATED
    assert tiered.tiers == [
        {"up_to": 5, "unit_amount": "1000", "flat_amount": 0},
        {"up_to": None, "unit_amount": "800", "flat_amount": 500},
    ]
    assert by_stripe_id(PromotionCode, world["promo"]["id"]).coupon == by_stripe_id(Coupon, world["coupon"]["id"])
    anna = by_stripe_id(Customer, world["anna"]["id"])
    assert (anna.tax_id, anna.country.code, anna.city, anna.postal_code) == ("DE136695976", "DE", "Berlin", "10117")
    assert anna.preferred_language == "en" and anna.is_business and anna.timezone == "UTC"
    assert by_stripe_id(Customer, world["bob"]["id"]).preferred_language == "fr"
    # the packaged price and Cleo's subscription are reported, not half-created
    reported = {row["id"]: row["code"] for row in run.report}
    assert reported[world["packaged"]["id"]] == "transform_quantity"
    assert reported[world["cleo_sub"]["id"]] == "price"
    assert not TarifSubscription.objects.filter(customer=by_stripe_id(Customer, world["cleo"]["id"])).exists()

    # Anna: anchor = start; periods start + k months; the renewal is at start + 2 months
    # (40 days ago + 1 month is the current period's start). 3 x 20.00 = 60.00, 20 % off = 48.00.
    anna_sub = by_stripe_id(TarifSubscription, world["anna_sub"]["id"])
    stripe_item = world["anna_sub"]["items"]["data"][0]
    renewal = datetime.fromtimestamp(stripe_item["current_period_end"], tz=UTC)
    assert anna_sub.current_period_end == renewal
    assert anna_sub.coupon is not None and not Invoice.objects.filter(customer=anna).exists()  # Stripe billed it
    # Bob: the trial ends in 14 days; then 7 graduated seats: 5 x 10.00 + 2 x 8.00 + 5.00 flat = 71.00.
    bob = by_stripe_id(Customer, world["bob"]["id"])
    bob_sub = by_stripe_id(TarifSubscription, world["bob_sub"]["id"])
    assert bob_sub.status == "trialing" and bob_sub.trial_end == datetime.fromtimestamp(world["now"] + 14 * DAY, UTC)

    # when the clock passes both renewals
    test_clock_advance(clock=clock, to=max(renewal, bob_sub.trial_end) + timedelta(seconds=1))
    # then Tarif invoiced each on Stripe's date and amount (before tax, which Tarif computes itself)
    anna_invoice = Invoice.objects.get(customer=anna, period_start=renewal)
    assert (anna_invoice.subtotal, anna_invoice.discount_total, anna_invoice.total_excluding_tax) == (6000, 1200, 4800)
    bob_invoice = Invoice.objects.get(customer=bob, period_start=bob_sub.trial_end)
    assert bob_invoice.total_excluding_tax == 7100


def test_second_run_changes_nothing(localstripe):
    world = seed(localstripe, tag="twice")
    first = run_import(localstripe)
    counts = (
        Product.objects.count(),
        Price.objects.count(),
        Customer.objects.count(),
        TarifSubscription.objects.count(),
        StripeImportMapping.objects.count(),
    )
    second = run_import(localstripe)
    assert second.pk != first.pk
    assert (
        Product.objects.count(),
        Price.objects.count(),
        Customer.objects.count(),
        TarifSubscription.objects.count(),
        StripeImportMapping.objects.count(),
    ) == counts
    assert "created" not in second.counts["customers"] and second.counts["customers"]["unchanged"] >= 3
    assert by_stripe_id(Customer, world["anna"]["id"]).subscriptions.count() == 1


def test_interrupted_run_resumes_without_duplicates(localstripe, monkeypatch):
    world = seed(localstripe, tag="crash")
    real = importer._Importer.customer
    calls = {"n": 0}

    def crash_on_second_customer(self, obj):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("network down")
        return real(self, obj)

    monkeypatch.setattr(importer._Importer, "customer", crash_on_second_customer)
    run = stripe_import_start(api_key=SECRET_KEY, api_base=localstripe.url)
    with pytest.raises(ConnectionError):
        stripe_import_run(run=run)
    run.refresh_from_db()
    assert run.status == StripeImportRun.Status.FAILED and "prices" in run.stages_done
    assert run.api_key == SECRET_KEY  # kept (encrypted) for the resume
    # when it is started again: the unfinished run resumes from its cursor
    resumed = stripe_import_start(api_key=SECRET_KEY, api_base=localstripe.url)
    assert resumed.pk == run.pk
    stripe_import_run(run=resumed)
    resumed.refresh_from_db()
    assert resumed.status == StripeImportRun.Status.DONE
    for customer in ("anna", "bob", "cleo"):
        assert Customer.objects.filter(email=world[customer]["email"]).count() == 1
    assert TarifSubscription.objects.filter(metadata__stripe_id=world["anna_sub"]["id"]).count() == 1


def test_dry_run_lists_what_cannot_be_mapped_and_writes_nothing(localstripe):
    world = seed(localstripe, tag="dry")
    localstripe.post("/v1/subscription_schedules", {"from_subscription": world["anna_sub"]["id"]})
    usd = localstripe.post(
        "/v1/prices",
        {"product": world["pro"]["id"], "currency": "usd", "unit_amount": 900, "recurring[interval]": "month"},
    )
    both = localstripe.post("/v1/subscriptions", {"customer": world["bob"]["id"], "items[0][price]": usd["id"]})
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as exit_code:
        call_command("import_from_stripe", "--dry-run", "--no-progress", api_base=localstripe.url, stdout=out,
                     stderr=err)  # fmt: skip
    assert exit_code.value.returncode == 5
    assert "transform_quantity" in err.getvalue()
    assert SECRET_KEY not in out.getvalue() + err.getvalue()  # the key is never printed
    run = StripeImportRun.objects.get(dry_run=True)
    reported = {row["id"]: row["code"] for row in run.report}
    assert reported[world["packaged"]["id"]] == "transform_quantity"
    assert reported[world["anna_sub"]["id"]] == "subscription_schedule"
    assert reported[world["cleo_sub"]["id"]] == "price"
    assert reported[both["id"]] == "customer_currency"  # Bob: EUR and USD
    assert run.counts["customers"]["would_create"] >= 3
    assert not Customer.objects.exists() and not StripeImportMapping.objects.exists()


def test_mode_comes_from_the_key(localstripe, settings):
    world = seed(localstripe, tag="mode")
    run = run_import(localstripe)
    assert not run.livemode and not Customer.objects.filter(livemode=True).exists()
    assert by_stripe_id(Customer, world["anna"]["id"]).livemode is False
    # a live key sees none of the test-mode import (mappings are per mode): all of it would be created
    live = stripe_import_start(api_key="sk_live_tarifLocalstripeTests0123456789", api_base=localstripe.url,
                               dry_run=True)  # fmt: skip
    stripe_import_run(run=live)
    live.refresh_from_db()
    assert live.livemode and "unchanged" not in live.counts["customers"]
    assert live.counts["customers"]["would_create"] >= 3
    with pytest.raises(importer.StripeImportError) as refused:
        stripe_import_start(api_key="pk_test_notASecretKey", api_base=localstripe.url)
    assert refused.value.problem_code == "api_key"


def test_payment_methods_are_references_at_stripe(localstripe):
    world = seed(localstripe, tag="pm")
    method = localstripe.post(
        "/v1/payment_methods",
        {"type": "card", "card[number]": VISA_OK, "card[exp_month]": 12, "card[exp_year]": 2030, "card[cvc]": "123"},
    )
    localstripe.post(f"/v1/payment_methods/{method['id']}/attach", {"customer": world["anna"]["id"]})
    run = run_import(localstripe)
    anna = by_stripe_id(Customer, world["anna"]["id"])
    saved = PaymentMethod.objects.get(customer=anna)
    assert (saved.gateway, saved.token, saved.last4) == ("stripe", method["id"], "4242")
    assert run.counts["payment_methods"]["created"] >= 1
