"""Encryption key rotation, GDPR export and erasure."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from customers.fields import _fernet
from customers.models import Customer, CustomerUser
from customers.privacy import ErasureRefused, customer_data_export, customer_data_export_zip, customer_erase

pytestmark = pytest.mark.django_db
OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def stored_tax_id(customer: Customer) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tax_id FROM customers_customer WHERE id = %s", [customer.pk])
        return cursor.fetchone()[0]


def test_rotation_re_encrypts_with_the_newest_key_and_is_idempotent(settings):
    settings.TARIF_ENCRYPTION_KEYS = [OLD_KEY]
    customer = Customer.objects.create(legal_name="A", email="a@example.com", country="FR", tax_id="FR40303265045")
    empty = Customer.objects.create(legal_name="B", email="b@example.com", country="FR")
    settings.TARIF_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    out = io.StringIO()

    call_command("rotate_encryption_keys", stdout=out)

    assert "re-encrypted 1 value(s); 0 already" in out.getvalue()
    token = stored_tax_id(customer).removeprefix("fernet:")
    assert Fernet(NEW_KEY.encode()).decrypt(token.encode()) == b"FR40303265045"
    settings.TARIF_ENCRYPTION_KEYS = [NEW_KEY]  # the old key can go now
    _fernet.cache_clear()
    assert Customer.objects.get(pk=customer.pk).tax_id == "FR40303265045"
    assert Customer.objects.get(pk=empty.pk).tax_id == ""
    again = io.StringIO()
    call_command("rotate_encryption_keys", stdout=again)
    assert "re-encrypted 0 value(s); 1 already" in again.getvalue()


def test_rotation_stops_when_no_key_decrypts(settings):
    settings.TARIF_ENCRYPTION_KEYS = [OLD_KEY]
    Customer.objects.create(legal_name="A", email="a@example.com", country="FR", tax_id="FR40303265045")
    settings.TARIF_ENCRYPTION_KEYS = [NEW_KEY]

    with pytest.raises(CommandError, match="no key"):
        call_command("rotate_encryption_keys", stdout=io.StringIO())


def test_the_export_holds_the_customer_its_logins_and_documents(customer, user):
    CustomerUser.objects.create(user=user, customer=customer)

    data = customer_data_export(customer=customer)
    archive = zipfile.ZipFile(io.BytesIO(customer_data_export_zip(customer=customer)))

    assert data["customer"]["email"] == customer.email
    assert data["portal_users"][0]["email"] == user.email
    assert json.loads(archive.read("data.json"))["customer"]["id"] == customer.pk


def test_erasure_anonymizes_but_keeps_issued_invoices(customer, user):
    from config.clock import now

    CustomerUser.objects.create(user=user, customer=customer)
    email = customer.email

    customer_erase(customer=customer, at=now())

    customer.refresh_from_db()
    user.refresh_from_db()
    assert email not in customer.email and customer.legal_name.startswith("Erased customer")
    assert customer.tax_id == "" and customer.address_line1 == ""
    assert not user.is_active and not user.has_usable_password() and email not in user.email
    assert customer.events.filter(type="customer.erased").exists()


def test_erasure_is_refused_while_a_subscription_is_live(customer, price, tax_rate):
    from billing.services.subscriptions import ItemSpec, subscription_create
    from config.clock import now

    subscription_create(customer=customer, items=[ItemSpec(price=price, quantity=1)], at=now())

    with pytest.raises(ErasureRefused, match="live subscription"):
        customer_erase(customer=customer, at=now())
    assert not customer.legal_name.startswith("Erased")


def test_erase_command_demands_confirmation(customer):
    with pytest.raises(CommandError, match="--yes"):
        call_command("customer_erase", customer.pk)


def test_erasure_and_export_from_the_command_line_are_audited(customer, tmp_path):
    from config.audit.models import AuditEntry

    call_command("customer_data_export", customer.pk, "--output", str(tmp_path / "x.json"), stdout=io.StringIO())
    call_command("customer_erase", customer.pk, "--yes", stdout=io.StringIO())

    actions = list(AuditEntry.objects.filter(target_id=str(customer.pk)).values_list("action", "channel"))
    assert ("customer.data_export", "system") in actions and ("customer.erase", "system") in actions
    assert oct((tmp_path / "x.json").stat().st_mode & 0o777) == "0o600"


def test_finance_erases_from_the_console_after_confirming_and_it_is_audited(console, customer):
    from django.urls import reverse

    from config.audit.models import AuditEntry

    url = reverse("admin:customers_customer_changelist")
    data = {"action": "erase_personal_data", "_selected_action": [customer.pk]}

    asked = console.post(url, data)
    customer.refresh_from_db()
    assert asked.status_code == 200 and b"Yes, erase" in asked.content
    assert not customer.legal_name.startswith("Erased")

    console.post(url, data | {"confirm_erase": "yes"})

    customer.refresh_from_db()
    assert customer.legal_name.startswith("Erased customer")
    entries = AuditEntry.objects.filter(action="action:erase_personal_data", target_id=str(customer.pk))
    entry = entries.order_by("pk").last()
    assert entry.changes["legal_name"][1].startswith("Erased customer")


def test_the_console_exports_one_customer_as_a_zip(console, customer):
    from django.urls import reverse

    response = console.post(
        reverse("admin:customers_customer_changelist"),
        {"action": "export_personal_data", "_selected_action": [customer.pk]},
    )

    assert response["Content-Type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(response.content)).read("data.json")
