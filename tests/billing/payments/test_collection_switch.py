"""Operators can issue invoices without charging anyone (e.g. while migrating)."""

from __future__ import annotations

import pytest

from billing.models import Payment
from billing.services.payments import payment_method_attach
from billing.services.subscriptions import ItemSpec, subscription_create

pytestmark = pytest.mark.django_db

CARD = {"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}}


@pytest.mark.parametrize(("collect_on_issue", "charged"), [(True, 1), (False, 0)])
def test_collection_on_issue_can_be_switched_off(
    settings, customer, price, tax_rate, django_capture_on_commit_callbacks, collect_on_issue, charged
):
    settings.TARIF_COLLECT_ON_ISSUE = collect_on_issue
    payment_method_attach(customer=customer, source=CARD)

    with django_capture_on_commit_callbacks(execute=True):
        subscription = subscription_create(customer=customer, items=[ItemSpec(price=price)])

    first = subscription.invoices.get()
    first.refresh_from_db()
    assert Payment.objects.filter(invoice=first).count() == charged
    assert first.status == ("paid" if collect_on_issue else "open")
