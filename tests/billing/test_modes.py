"""Live and test mode never mix in the services, the gateways, the webhooks and the data
migration (issue 13, hole 1; the API side is tests/api/test_modes.py)."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError

from billing.models import TestClock, WebhookDelivery
from billing.payments.gateway import GatewayError
from billing.services.payments import payment_method_attach
from billing.services.subscriptions import ItemSpec, subscription_create
from billing.services.webhooks import webhook_endpoint_create, webhook_events_fan_out
from config.events.models import DomainEvent
from customers.models import Customer
from customers.services import customer_create, customer_update

pytestmark = pytest.mark.django_db

CARD = {"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}}
LIVE_KEY = "sk_live_" + "a" * 30
TEST_KEY = "sk_test_" + "b" * 30


def _test_customer(**fields) -> Customer:
    return customer_create(
        data={"legal_name": "Test SAS", "email": "t@example.com", "country": "FR", **fields}, livemode=False
    )


def _clock() -> TestClock:
    return TestClock.objects.create(name="c", frozen_time=datetime(2026, 1, 1, tzinfo=UTC))


def test_a_live_customer_never_goes_onto_a_test_clock(customer_factory):
    customer = customer_factory()

    with pytest.raises(ValidationError) as refused:
        customer_update(customer=customer, data={"test_clock": _clock()})

    assert "test_clock" in refused.value.message_dict
    customer.refresh_from_db()
    assert customer.test_clock_id is None


def test_a_test_customer_with_a_payment_method_never_moves_onto_or_off_a_clock():
    # given a test-mode customer with a card, and one on a clock with a card
    loose = _test_customer()
    payment_method_attach(customer=loose, source=CARD)
    on_clock = _test_customer(test_clock=_clock())
    payment_method_attach(customer=on_clock, source=CARD)

    # when each is moved
    with pytest.raises(ValidationError):
        customer_update(customer=loose, data={"test_clock": _clock()})
    with pytest.raises(ValidationError):
        customer_update(customer=on_clock, data={"test_clock": None})

    # then neither moved
    loose.refresh_from_db()
    on_clock.refresh_from_db()
    assert loose.test_clock_id is None and on_clock.test_clock_id is not None


def test_a_fresh_test_customer_may_join_a_clock():
    customer = _test_customer()
    clock = _clock()

    customer_update(customer=customer, data={"test_clock": clock})

    customer.refresh_from_db()
    assert customer.test_clock_id == clock.pk


def test_a_live_customer_cannot_subscribe_to_a_test_price(customer_factory, price_factory, tax_rate):
    customer = customer_factory()
    test_price = price_factory(livemode=False, product__livemode=False)

    with pytest.raises(ValidationError) as refused:
        subscription_create(customer=customer, items=[ItemSpec(price=test_price)])

    assert refused.value.code == "livemode_mismatch"


def test_a_test_customer_never_reaches_the_live_stripe_account(settings, monkeypatch):
    # given Stripe configured with a live key only
    settings.STRIPE_SECRET_KEY = LIVE_KEY
    settings.STRIPE_TEST_SECRET_KEY = ""
    settings.TARIF_PAYMENT_GATEWAY = "stripe"
    import stripe

    def no_network(*args, **kwargs):
        raise AssertionError("a test-mode customer reached Stripe")

    monkeypatch.setattr(stripe, "StripeClient", no_network)
    customer = _test_customer()

    # when the test customer adds a card
    method = payment_method_attach(customer=customer, source=CARD)

    # then it went to the sandbox, never to the live account
    assert method.gateway == "sandbox"


def test_a_test_customer_uses_stripe_test_keys_when_there_are(settings):
    from billing.payments.registry import default_gateway_name, gateway_for

    settings.STRIPE_SECRET_KEY = LIVE_KEY
    settings.STRIPE_TEST_SECRET_KEY = TEST_KEY
    settings.TARIF_PAYMENT_GATEWAY = "stripe"

    assert default_gateway_name(livemode=False) == "stripe"
    assert gateway_for("stripe", livemode=False).secret_key() == TEST_KEY
    assert gateway_for("stripe", livemode=True).secret_key() == LIVE_KEY


def test_the_stripe_gateway_refuses_a_live_key_in_test_mode(settings):
    from billing.payments.stripe import StripeGateway

    settings.STRIPE_SECRET_KEY = LIVE_KEY
    settings.STRIPE_TEST_SECRET_KEY = LIVE_KEY  # misconfigured: a live key where a test key belongs

    with pytest.raises(GatewayError):
        StripeGateway(livemode=False).charge(
            token="pm_1", amount=100, currency="EUR", idempotency_key="k", customer_reference="1", description="x"
        )


def test_webhooks_of_each_mode_go_to_endpoints_of_that_mode(customer_factory):
    from config.events.log import event_record

    live_endpoint = webhook_endpoint_create(url="https://hooks.example.com/live", enabled_events=[])
    test_endpoint = webhook_endpoint_create(url="https://hooks.example.com/test", enabled_events=[], livemode=False)
    live_customer = customer_factory()
    test_customer = _test_customer()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    live_event = event_record(
        type="invoice.paid", object_type="invoice", object_id=1, customer_id=live_customer.pk, occurred_at=at
    )
    test_event = event_record(
        type="invoice.paid", object_type="invoice", object_id=2, customer_id=test_customer.pk, occurred_at=at
    )

    webhook_events_fan_out()

    sent = set(WebhookDelivery.objects.values_list("endpoint_id", "event_id"))
    assert (live_endpoint.pk, live_event.pk) in sent and (test_endpoint.pk, test_event.pk) in sent
    assert (live_endpoint.pk, test_event.pk) not in sent and (test_endpoint.pk, live_event.pk) not in sent
    for delivery in WebhookDelivery.objects.select_related("endpoint", "event"):
        assert delivery.endpoint.livemode == delivery.event.livemode


class _AppsBeforeTheEventLogMoved:
    """The app registry as billing 0011 saw it: DomainEvent still in `billing` (it is `events`' now)."""

    def get_model(self, app_label: str, model_name: str):
        if (app_label, model_name) == ("billing", "DomainEvent"):
            app_label = "events"
        return apps.get_model(app_label, model_name)


def test_the_data_migration_puts_test_clock_customers_in_test_mode(customer_factory):
    # given data as it was before modes: everything flagged live
    clock = _clock()
    live = customer_factory()
    simulated = customer_factory(test_clock=clock)
    Customer.objects.update(livemode=True)
    event = DomainEvent.objects.create(
        type="invoice.paid", object_type="invoice", object_id="1", customer=simulated, occurred_at=clock.frozen_time
    )
    DomainEvent.objects.update(livemode=True)

    # when the migration's data step runs
    migration = importlib.import_module("billing.migrations.0011_livemode")
    migration.existing_data_by_mode(_AppsBeforeTheEventLogMoved(), None)

    # then only the test clock's customer and its events are test mode
    live.refresh_from_db()
    simulated.refresh_from_db()
    event.refresh_from_db()
    assert live.livemode is True and simulated.livemode is False and event.livemode is False
