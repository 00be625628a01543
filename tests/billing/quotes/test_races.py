"""Quote services that lock, raced by threads on PostgreSQL: acceptance once, numbers once."""

from __future__ import annotations

import pytest

from billing.models import Subscription
from billing.quotes import services
from billing.quotes.errors import QuoteStateError
from billing.quotes.models import Quote
from billing.quotes.services import quote_accept, quote_create, quote_finalize
from invoices.models import Invoice
from tests.billing.services.test_races import errors_of, race, slowed

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_concurrent_acceptances_create_one_subscription(postgres_only, open_quote, monkeypatch):
    quote = open_quote()
    # Hold the quote's lock a while after reading it: without the lock both would accept.
    slowed(monkeypatch, services, "_acceptable_check")

    results = race(
        lambda: quote_accept(quote=Quote(pk=quote.pk), signer_name="First Tab"),
        lambda: quote_accept(quote=Quote(pk=quote.pk), signer_name="Second Tab"),
    )

    refused = errors_of(results, QuoteStateError)
    assert len(refused) == 1 and refused[0].problem_code == "quote_already_accepted"
    assert Subscription.objects.filter(customer=quote.customer).count() == 1
    assert Invoice.objects.filter(customer=quote.customer, billing_reason="subscription_create").count() == 1
    quote.refresh_from_db()
    assert quote.status == Quote.Status.ACCEPTED
    assert quote.accepted_name in ("First Tab", "Second Tab")


def test_concurrent_finalizations_take_distinct_consecutive_numbers(
    postgres_only, make_customer, make_price, monkeypatch
):
    from billing.quotes.services import QuoteLineInput

    price = make_price(2900)
    drafts = [quote_create(customer=make_customer(), lines=[QuoteLineInput(price=price)]) for _ in range(3)]
    slowed(monkeypatch, services, "_number_take")

    results = race(*[lambda draft=draft: quote_finalize(quote=draft) for draft in drafts])

    assert not [result for result in results if isinstance(result, Exception)]
    numbers = sorted(Quote.objects.values_list("number", flat=True))
    assert [number[-4:] for number in numbers] == ["0001", "0002", "0003"]
    by_number = sorted(Quote.objects.all(), key=lambda quote: quote.number)
    assert [quote.finalized_at for quote in by_number] == sorted(quote.finalized_at for quote in by_number)
