"""The sandbox gateway: tokenization, test cards, idempotency."""

from __future__ import annotations

import logging

import pytest
from django.apps import apps
from django.db import connection

from billing.models import PaymentMethod
from billing.payments.gateway import GatewayError
from billing.payments.sandbox import SandboxGateway
from billing.services.payments import bank_transfer_reference, payment_method_attach, payment_method_detach
from tests.billing.payments.conftest import VISA_OK, card

pytestmark = pytest.mark.django_db


def test_a_card_is_tokenized_and_only_display_data_is_kept(make_customer, caplog):
    caplog.set_level(logging.DEBUG)
    customer = make_customer()

    method = payment_method_attach(customer=customer, source=card(VISA_OK))

    assert method.token.startswith("pm_sandbox_")
    assert (method.kind, method.brand, method.last4, method.exp_month, method.exp_year) == (
        "card",
        "visa",
        "4242",
        12,
        2030,
    )
    assert method.is_default
    assert VISA_OK not in caplog.text
    # the number is nowhere in the database, in any table (events included)
    with connection.cursor() as cursor:
        for model in apps.get_models():
            columns = [
                f.column
                for f in model._meta.concrete_fields
                if f.get_internal_type() in ("CharField", "TextField", "JSONField")
            ]
            for column in columns:
                cursor.execute(
                    f'SELECT COUNT(*) FROM "{model._meta.db_table}" WHERE CAST("{column}" AS TEXT) LIKE %s',
                    [f"%{VISA_OK}%"],
                )
                assert cursor.fetchone()[0] == 0, f"{model._meta.label}.{column}"


def test_an_unknown_card_number_is_refused_without_echoing_it(make_customer):
    with pytest.raises(GatewayError) as refused:
        payment_method_attach(customer=make_customer(), source=card("4111111111111112"))
    assert "4111" not in str(refused.value)


def test_sepa_and_bank_transfer_methods(make_customer):
    customer = make_customer()

    sepa = payment_method_attach(customer=customer, source={"iban": "AT61 1904 3002 3457 3201"})
    transfer = payment_method_attach(customer=customer, source={"type": "bank_transfer"}, make_default=False)

    assert (sepa.kind, sepa.iban_last4, sepa.is_default) == ("sepa_debit", "3201", True)
    assert sepa.mandate_reference
    assert transfer.kind == "bank_transfer" and not transfer.chargeable and not transfer.is_default


def test_one_default_payment_method_per_customer(make_customer):
    customer = make_customer()
    first = payment_method_attach(customer=customer, source=card(VISA_OK))
    second = payment_method_attach(customer=customer, source=card("5555555555554444"))

    first.refresh_from_db()
    assert (first.is_default, second.is_default) == (False, True)
    payment_method_detach(payment_method=second)
    assert not PaymentMethod.objects.filter(customer=customer, is_default=True, active=True).exists()


def test_the_bank_transfer_reference_is_stable_and_checksummed(make_customer):
    customer = make_customer()

    reference = bank_transfer_reference(customer=customer)

    assert reference == bank_transfer_reference(customer=customer)
    assert reference.startswith("RF") and reference.endswith(f"TARIF{customer.pk:08d}")
    rearranged = reference[4:] + reference[:4]
    assert int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1  # ISO 11649


def test_the_same_idempotency_key_returns_the_same_charge(make_customer):
    gateway = SandboxGateway()
    method = payment_method_attach(customer=make_customer(), source=card(VISA_OK))

    first = gateway.charge(token=method.token, amount=500, currency="EUR", idempotency_key="k1", customer_reference="1")
    again = gateway.charge(token=method.token, amount=500, currency="EUR", idempotency_key="k1", customer_reference="1")

    assert first == again and first.status == "succeeded"
    with pytest.raises(GatewayError):
        gateway.charge(token=method.token, amount=900, currency="EUR", idempotency_key="k1", customer_reference="1")
