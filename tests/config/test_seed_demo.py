from __future__ import annotations

import io
import re

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
    from billing.quotes.models import Quote

    assert Quote.objects.filter(status="open").count() == 1  # the demo quote, once (issue 17 item 4)


def test_the_login_block_can_be_printed_on_its_own_once_the_server_runs():
    """`make run` seeds with --no-logins, then prints the logins alone once the server answers."""
    output = io.StringIO()

    call_command("seed_demo", "--logins-only", "--url", "http://127.0.0.1:8123", stdout=output)

    text = output.getvalue()
    assert Customer.objects.count() == 0  # nothing seeded
    block = text.strip().splitlines()
    assert block[0] == block[-1] == "=" * 78  # one framed block
    assert "Operator console   http://127.0.0.1:8123/admin/" in text
    assert "username:        finance" in text and "password:        tarif-demo-finance" in text
    assert re.search(r"current TOTP code: \d{6}", text)
