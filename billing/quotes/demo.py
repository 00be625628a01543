"""Demo data of the quotes (seed_demo): one open quote for a demo customer, idempotent."""

from __future__ import annotations

from django.db import transaction

from billing.models import Price
from billing.quotes.models import Quote
from billing.quotes.services import QuoteLineInput, quote_create, quote_finalize
from customers.models import Customer

DEMO_EMAIL = "compta@boulangerie-martin.example"


def quotes_demo_seed() -> Quote | None:
    """An open quote for the Boulangerie Martin: 5 Pro seats a year and an onboarding day."""
    customer = Customer.objects.filter(email=DEMO_EMAIL, livemode=True, test_clock__isnull=True).first()
    price = Price.objects.filter(lookup_key="pro-yearly", livemode=True, active=True).first()
    if customer is None or price is None:
        return None
    existing = Quote.objects.filter(customer=customer).order_by("pk").first()
    if existing is not None:
        return existing
    with transaction.atomic():
        quote = quote_create(
            customer=customer,
            lines=[
                QuoteLineInput(price=price, quantity=5),
                QuoteLineInput(description="Journée de formation et de mise en route", unit_amount=90000),
            ],
            header="Proposition pour l'équipement de vos trois boutiques.",
            terms="Devis valable 30 jours. Facture à 30 jours à compter de l'acceptation.",
        )
        return quote_finalize(quote=quote)
