from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from billing.models import Price
from customers.models import Customer
from invoices.models import Brand

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_prints_the_login():
    first = io.StringIO()
    call_command("seed_demo", stdout=first)
    counts = (Brand.objects.count(), Customer.objects.count(), Price.objects.count())
    second = io.StringIO()

    call_command("seed_demo", stdout=second)

    assert (Brand.objects.count(), Customer.objects.count(), Price.objects.count()) == counts
    assert counts[0] == 1 and counts[1] >= 3 and counts[2] >= 3
    output = second.getvalue()
    assert "username:        finance" in output
    assert "otpauth://totp/" in output
    assert "one-time recovery code:" in output
    assert "email:           client@boulangerie-martin.example" in output  # the demo portal login
    from customers.models import CustomerUser

    assert CustomerUser.objects.get(user__email="client@boulangerie-martin.example").customer.subscriptions.exists()
