from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.db import connection

from customers.fields import decrypt, rotate
from customers.models import Customer

pytestmark = pytest.mark.django_db


def raw_column(customer: Customer, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM customers_customer WHERE id = %s", [customer.pk])
        return cursor.fetchone()[0]


def test_the_vat_number_is_encrypted_at_rest(customer_factory):
    customer = customer_factory(tax_id="FR40303265045")

    stored = raw_column(customer, "tax_id")

    assert "303265045" not in stored
    assert stored.startswith("fernet:")
    assert Customer.objects.get(pk=customer.pk).tax_id == "FR40303265045"


def test_rotated_keys_still_decrypt_and_the_newest_key_encrypts(customer_factory, settings):
    old_key = settings.TARIF_ENCRYPTION_KEYS[0]
    customer = customer_factory(tax_id="FR40303265045")
    stored_with_old_key = raw_column(customer, "tax_id")
    new_key = Fernet.generate_key().decode()
    settings.TARIF_ENCRYPTION_KEYS = [new_key, old_key]

    assert Customer.objects.get(pk=customer.pk).tax_id == "FR40303265045"
    rotated = rotate(stored_with_old_key)
    settings.TARIF_ENCRYPTION_KEYS = [new_key]
    assert decrypt(rotated) == "FR40303265045"
    with pytest.raises(Exception, match="cannot be decrypted"):
        decrypt(stored_with_old_key)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("currency", "EURO", "not an ISO 4217"),
        ("currency", "XYZ", "not a known ISO 4217"),
        ("currency", "eur", "capitals"),
        ("timezone", "Europe/Atlantis", "not a known time zone"),
        ("siren", "123456789", "not a valid SIREN"),
        ("tax_id", "FR00000000000", "VAT"),
        ("tax_id", "DE136695976", "belongs to DE"),
        ("email", "not-an-email", "valid email"),
    ],
)
def test_bad_customer_details_are_refused_with_a_clear_message(customer_factory, field, value, message):
    customer = customer_factory.build(brand=None, **{field: value})

    with pytest.raises(ValidationError) as error:
        customer.full_clean()

    assert field in error.value.message_dict
    assert message.lower() in " ".join(error.value.message_dict[field]).lower()


def test_a_valid_customer_passes_and_its_vat_number_is_normalised(customer_factory):
    customer = customer_factory.build(brand=None, tax_id="fr 40 303 265 045", siren="732829320")

    customer.full_clean()

    assert customer.tax_id == "FR40303265045"
