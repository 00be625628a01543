"""Quote services: numbering, totals from the billing engine, acceptance exactly as quoted, refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest
import time_machine
from django.db import transaction

from billing.models import Price, Subscription
from billing.quotes.errors import QuoteError, QuoteStateError
from billing.quotes.models import Quote
from billing.quotes.services import (
    QuoteLineInput,
    quote_accept,
    quote_cancel,
    quote_create,
    quote_finalize,
    quote_revise,
    quote_update,
    quotes_expire_due,
)
from config.errors import DomainError
from config.events.models import DomainEvent
from invoices.models import Invoice

from .conftest import later, utc

pytestmark = pytest.mark.django_db


def _accept(quote: Quote, name: str = "Camille Martin") -> Quote:
    return quote_accept(quote=quote, signer_name=name, ip_address="203.0.113.9", user_agent="pytest")


def _assert_invoice_matches_quote(quote: Quote) -> Invoice:
    invoice = quote.invoice
    assert invoice is not None and invoice.subscription_id == quote.subscription_id
    snapshot = quote.snapshot
    assert (invoice.subtotal, invoice.discount_total, invoice.tax_total, invoice.total) == (
        snapshot["totals"]["subtotal"],
        snapshot["totals"]["discount_total"],
        snapshot["totals"]["tax_total"],
        snapshot["totals"]["total"],
    )
    assert (quote.subtotal, quote.discount_total, quote.tax_total, quote.total) == (
        invoice.subtotal,
        invoice.discount_total,
        invoice.tax_total,
        invoice.total,
    )
    lines = list(invoice.lines.order_by("position", "pk").values_list("description", "amount", "tax_amount"))
    quoted = [(line["description"], line["amount"], line["tax_amount"]) for line in snapshot["lines"]]
    assert sorted(lines) == sorted(quoted)
    return invoice


# -- numbering --------------------------------------------------------------------------------


@time_machine.travel(utc(2026, 3, 2, 9), tick=False)
def test_numbers_are_the_brands_own_gapless_series_in_date_order(open_quote, make_customer, brand_factory):
    other_brand = brand_factory(slug="other-brand", default_language="en")
    first = open_quote()
    with time_machine.travel(utc(2026, 3, 2, 10), tick=False):
        second = open_quote()
    elsewhere = open_quote(make_customer(brand=other_brand))
    with time_machine.travel(utc(2026, 3, 3), tick=False):
        third = open_quote()

    assert [first.number, second.number, third.number] == ["DEV-2026-0001", "DEV-2026-0002", "DEV-2026-0003"]
    assert elsewhere.number == "Q-2026-0001"  # an English-speaking brand's default prefix, its own series
    assert first.finalized_at < second.finalized_at < third.finalized_at


def test_a_rolled_back_finalization_gives_its_number_back(open_quote):
    draft = open_quote(finalize=False)
    with pytest.raises(RuntimeError), transaction.atomic():
        quote_finalize(quote=draft)
        raise RuntimeError("crash after numbering")
    draft.refresh_from_db()
    assert draft.status == Quote.Status.DRAFT and draft.number == ""

    assert quote_finalize(quote=draft).number.endswith("-0001")


def test_a_test_mode_quote_is_numbered_in_the_test_series(open_quote, make_customer, make_price):
    live = open_quote()
    test = open_quote(make_customer(livemode=False), lines=[QuoteLineInput(price=make_price(2900, livemode=False))])

    assert live.number.endswith("-0001") and not live.number.startswith("TEST-")
    assert test.number.startswith("TEST-DEV-") and test.number.endswith("-0001")


def test_the_number_format_is_configurable_per_brand(open_quote, quote_brand, settings):
    settings.TARIF_QUOTE_NUMBER_FORMATS = {quote_brand.slug: "ATL-DEVIS-{seq:05d}"}

    assert open_quote().number == "ATL-DEVIS-00001"


# -- totals -----------------------------------------------------------------------------------


def test_totals_come_from_the_billing_engine(open_quote, make_price, make_coupon, make_customer):
    customer = make_customer()
    plan = make_price(2900)
    quote = open_quote(
        customer,
        lines=[
            QuoteLineInput(price=plan, quantity=3),
            QuoteLineInput(description="Onboarding workshop", unit_amount=45000, quantity=1),
        ],
        coupon=make_coupon(percent_off=Decimal(10)),
    )

    # 3 × 29 € + 450 € = 537 €, 10 % off = 483.30 €, VAT 20 % = 96.66 €.
    assert (quote.subtotal, quote.discount_total, quote.tax_total, quote.total) == (53700, 5370, 9666, 57996)
    # Every month after: 87 € - 10 % = 78.30 €, + VAT = 93.96 €.
    assert quote.recurring_total == 9396
    assert quote.snapshot["coupon"]["name"] == "Bienvenue"
    assert not customer.invoice_items.exists(), "computing a quote leaves no pending item behind"


def test_a_trial_quotes_a_zero_first_invoice_and_the_price_after_it(open_quote, make_price):
    quote = open_quote(lines=[QuoteLineInput(price=make_price(10000))], trial_days=14)

    assert quote.total == 0
    assert quote.recurring_total == 12000
    assert quote.snapshot["trial_end"] is not None


def test_a_quote_the_subscription_would_refuse_is_refused_as_a_draft(make_customer, make_price):
    with pytest.raises(QuoteError), transaction.atomic():
        quote_create(customer=make_customer(), lines=[])
    dollars = make_price(2900, currency="USD")
    with pytest.raises(DomainError) as refused, transaction.atomic():
        quote_create(customer=make_customer(), lines=[QuoteLineInput(price=dollars)])
    assert refused.value.problem_code == "customer_currency"
    with pytest.raises(QuoteError), transaction.atomic():
        quote_create(
            customer=make_customer(), lines=[QuoteLineInput(price=make_price(100)), QuoteLineInput(unit_amount=-5)]
        )


def test_an_issued_quote_is_frozen(open_quote, make_price):
    quote = open_quote()

    with pytest.raises(QuoteStateError), transaction.atomic():
        quote_update(quote=quote, lines=[QuoteLineInput(price=make_price(1))])
    with pytest.raises(QuoteStateError), transaction.atomic():
        quote_finalize(quote=quote)


# -- acceptance -------------------------------------------------------------------------------


def test_accepting_creates_the_subscription_and_first_invoice_exactly_as_quoted(
    open_quote, make_price, make_coupon, make_customer
):
    customer = make_customer()
    plan, setup = make_price(2900), make_price(9900, type=Price.Type.ONE_TIME)
    quote = open_quote(
        customer,
        lines=[
            QuoteLineInput(price=plan, quantity=4),
            QuoteLineInput(price=setup),
            QuoteLineInput(description="Data migration", unit_amount=33333, quantity=2),
        ],
        coupon=make_coupon(percent_off=Decimal(15)),
        collection_method="send_invoice",
        days_until_due=45,
    )

    accepted = _accept(quote)

    assert accepted.status == Quote.Status.ACCEPTED
    assert (accepted.accepted_name, accepted.accepted_ip, accepted.accepted_user_agent) == (
        "Camille Martin",
        "203.0.113.9",
        "pytest",
    )
    subscription = accepted.subscription
    assert list(subscription.items.values_list("price_id", "quantity")) == [(plan.pk, 4)]
    assert (subscription.collection_method, subscription.days_until_due) == ("send_invoice", 45)
    assert subscription.coupon_id == quote.coupon_id
    invoice = _assert_invoice_matches_quote(accepted)
    assert invoice.status == Invoice.Status.OPEN and invoice.number
    assert invoice.discount_total > 0
    assert DomainEvent.objects.filter(type="quote.accepted", object_id=str(quote.pk)).exists()


def test_a_french_business_buyer_pays_french_vat_and_a_belgian_one_reverse_charge(open_quote, make_customer):
    french = open_quote(make_customer(country="FR", tax_id="FR40303265045", is_business=True))
    belgian = open_quote(
        make_customer(country="BE", tax_id="BE0403019261", is_business=True, city="Bruxelles", postal_code="1000")
    )

    assert french.tax_total == 1160 and french.total == 6960
    assert belgian.tax_total == 0 and belgian.total == 5800
    assert belgian.snapshot["vat_mention_key"]
    assert {group["category"] for group in belgian.snapshot["tax_breakdown"]} == {"AE"}
    for quote in (french, belgian):
        _assert_invoice_matches_quote(_accept(quote))


def test_a_trial_quote_starts_a_trialing_subscription(open_quote, make_price):
    accepted = _accept(open_quote(lines=[QuoteLineInput(price=make_price(10000))], trial_days=14))

    assert accepted.subscription.status == Subscription.Status.TRIALING
    _assert_invoice_matches_quote(accepted)


def test_a_second_acceptance_is_refused_and_creates_nothing(open_quote):
    quote = _accept(open_quote())

    with pytest.raises(QuoteStateError) as refused:
        _accept(quote, "Someone Else")

    assert refused.value.problem_code == "quote_already_accepted"
    assert Subscription.objects.filter(customer=quote.customer).count() == 1
    quote.refresh_from_db()
    assert quote.accepted_name == "Camille Martin"


def test_an_expired_quote_is_refused_even_before_the_sweeper_ran(open_quote):
    with time_machine.travel(utc(2026, 1, 10), tick=False):
        quote = open_quote(valid_until=utc(2026, 1, 20))

    with time_machine.travel(utc(2026, 1, 20, 0, 0, 1), tick=False), pytest.raises(QuoteStateError) as refused:
        _accept(quote)

    assert refused.value.problem_code == "quote_expired"
    assert not Subscription.objects.filter(customer=quote.customer).exists()
    quote.refresh_from_db()
    assert quote.status == Quote.Status.OPEN  # the sweeper marks it


def test_the_sweeper_expires_open_quotes_past_their_validity(open_quote):
    with time_machine.travel(utc(2026, 1, 10), tick=False):
        due = open_quote(valid_until=utc(2026, 1, 20))
        valid = open_quote(valid_until=utc(2026, 2, 20))

    with time_machine.travel(utc(2026, 1, 21), tick=False):
        assert quotes_expire_due() == 1
        assert quotes_expire_due() == 0

    due.refresh_from_db()
    valid.refresh_from_db()
    assert (due.status, valid.status) == (Quote.Status.EXPIRED, Quote.Status.OPEN)
    assert DomainEvent.objects.filter(type="quote.expired", object_id=str(due.pk)).count() == 1
    with pytest.raises(QuoteStateError) as refused:
        _accept(due)
    assert refused.value.problem_code == "quote_expired"


def test_a_canceled_quote_cannot_be_accepted(open_quote):
    quote = quote_cancel(quote=open_quote())

    with pytest.raises(QuoteStateError) as refused:
        _accept(quote)

    assert refused.value.problem_code == "quote_canceled"
    assert DomainEvent.objects.filter(type="quote.canceled", object_id=str(quote.pk)).exists()


def test_a_revision_supersedes_the_quote_it_revises(open_quote, make_price):
    original = open_quote()
    revision = quote_revise(quote=original)
    assert (revision.status, revision.revision, revision.revises_id) == (Quote.Status.DRAFT, 2, original.pk)
    quote_update(quote=revision, lines=[QuoteLineInput(price=make_price(3900), quantity=2)])

    revision = quote_finalize(quote=revision)

    original.refresh_from_db()
    assert revision.number == f"{original.number}-R2"
    assert (original.status, original.cancel_reason) == (Quote.Status.CANCELED, Quote.CancelReason.SUPERSEDED)
    with pytest.raises(QuoteStateError) as refused:
        _accept(original)
    assert refused.value.problem_code == "quote_superseded"
    assert _accept(revision).total == 9360


def test_a_revision_of_an_accepted_quote_cannot_be_finalized(open_quote):
    original = open_quote()
    revision = quote_revise(quote=original)
    _accept(original)

    with pytest.raises(QuoteStateError), transaction.atomic():
        quote_finalize(quote=revision)


def test_an_outdated_quote_is_refused_rather_than_accepted_at_another_price(open_quote, quote_brand):
    from invoices.models import TaxRate

    quote = open_quote()
    TaxRate.objects.filter(country="FR").update(percentage=25)

    with pytest.raises(QuoteStateError) as refused:
        _accept(quote)

    assert refused.value.problem_code == "quote_outdated"
    assert not Subscription.objects.filter(customer=quote.customer).exists()
    quote.refresh_from_db()
    assert quote.status == Quote.Status.OPEN


def test_the_quote_events_are_recorded_for_webhooks(open_quote):
    quote = open_quote()

    assert DomainEvent.objects.filter(type="quote.finalized", object_id=str(quote.pk)).exists()
    event = DomainEvent.objects.get(type="quote.finalized", object_id=str(quote.pk))
    assert event.data["number"] == quote.number and event.livemode is True


def test_a_signer_name_is_required(open_quote):
    with pytest.raises(QuoteError):
        _accept(open_quote(), "   ")


def later_than_validity(quote: Quote):
    return quote.valid_until + later(1)


def test_quote_events_carry_public_ids_for_webhooks(open_quote):
    from billing.serializers import DomainEventSerializer

    quote = _accept(open_quote())
    event = DomainEvent.objects.get(type="quote.accepted", object_id=str(quote.pk))

    payload = DomainEventSerializer(event).data

    assert payload["object_id"] == f"qt_{quote.pk}"
    assert payload["data"]["subscription"] == f"sub_{quote.subscription_id}"
    assert payload["data"]["invoice"] == f"in_{quote.invoice_id}"
