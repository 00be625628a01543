# ruff: noqa: F811  (pytest fixtures imported from tests.invoices.test_admin)
"""Issue 14: write-offs and brand bank-detail changes need a fresh second factor.

The console form asks for a code unless one was verified within TARIF_MFA_FRESH_MINUTES;
the services refuse without that proof (so every entry point obeys) and audit it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from config.audit.models import AuditEntry
from config.events.models import DomainEvent
from invoices.errors import FreshVerificationRequired
from invoices.models import Brand, Invoice
from invoices.services.brands import brand_save
from invoices.services.lifecycle import invoice_mark_uncollectible
from tests.conftest import current_totp
from tests.invoices.rendering.test_admin_branding import brand_form
from tests.invoices.test_admin import buyer, open_invoice  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:invoices_invoice_changelist"
NEW_IBAN = "FR7630006000011234567890189"


@pytest.fixture
def clock_after_sign_in(console):
    """Wall clock moved past the sign-in's TOTP step (each code works once)."""
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False) as traveller:
        yield traveller


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def write_off(console, invoice, otp_token: str = ""):
    return console.post(
        reverse(CHANGELIST),
        {"action": "mark_uncollectible", "_selected_action": [invoice.pk], "apply": "1", "otp_token": otp_token},
    )


# -- write-offs ---------------------------------------------------------------------------------


def test_a_write_off_without_a_fresh_code_is_refused_with_a_form_error(console, open_invoice, clock_after_sign_in):
    response = write_off(console, open_invoice)

    assert response.status_code == 200
    assert response.context["form"].errors["otp_token"]
    open_invoice.refresh_from_db()
    assert open_invoice.status == Invoice.Status.OPEN


def test_a_wrong_code_is_refused_and_counted_by_the_throttle(
    console, open_invoice, staff_with_totp, clock_after_sign_in
):
    _user, device = staff_with_totp

    response = write_off(console, open_invoice, wrong(current_totp(device)))

    assert response.status_code == 200 and response.context["form"].errors["otp_token"]
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    open_invoice.refresh_from_db()
    assert open_invoice.status == Invoice.Status.OPEN


def test_a_fresh_code_writes_the_invoice_off_and_is_audited(
    console, open_invoice, staff_with_totp, clock_after_sign_in
):
    user, device = staff_with_totp

    response = write_off(console, open_invoice, current_totp(device))

    assert response.status_code == 302
    open_invoice.refresh_from_db()
    assert open_invoice.status == Invoice.Status.UNCOLLECTIBLE
    entry = AuditEntry.objects.get(action="invoice.write_off")
    assert entry.actor == user and entry.target_id == str(open_invoice.pk)
    assert entry.extra["second_factor_verified_at"]
    event = DomainEvent.objects.get(type="invoice.marked_uncollectible", object_id=open_invoice.pk)
    assert event.data["second_factor_verified_at"] == entry.extra["second_factor_verified_at"]


def test_within_the_window_no_new_code_is_asked_then_it_expires(
    console,
    open_invoice,
    buyer,
    staff_with_totp,
    clock_after_sign_in,
    settings,  # noqa: F811
):
    from tests.invoices.test_admin import make_invoice

    _user, device = staff_with_totp
    settings.TARIF_MFA_FRESH_MINUTES = 5
    assert write_off(console, open_invoice, current_totp(device)).status_code == 302
    second = make_invoice(buyer(legal_name="Deux SARL"), net=1000)
    third = make_invoice(buyer(legal_name="Trois SARL"), net=1000)

    clock_after_sign_in.shift(timedelta(minutes=4))
    assert write_off(console, second).status_code == 302  # fresh: no code asked
    clock_after_sign_in.shift(timedelta(minutes=2))
    stale = write_off(console, third)

    assert stale.status_code == 200 and stale.context["form"].errors["otp_token"]
    second.refresh_from_db()
    third.refresh_from_db()
    assert (second.status, third.status) == (Invoice.Status.UNCOLLECTIBLE, Invoice.Status.OPEN)


def test_the_service_refuses_a_person_without_a_fresh_verification(open_invoice, staff_factory):
    person = staff_factory(username="finance")
    at = timezone.now()

    with pytest.raises(FreshVerificationRequired), transaction.atomic():
        invoice_mark_uncollectible(invoice=open_invoice, at=at, acting_user=person)
    with pytest.raises(FreshVerificationRequired), transaction.atomic():
        invoice_mark_uncollectible(
            invoice=open_invoice, at=at, acting_user=person, otp_verified_at=at - timedelta(minutes=6)
        )
    open_invoice.refresh_from_db()
    assert open_invoice.status == Invoice.Status.OPEN
    # dunning's configured outcome involves no person
    assert invoice_mark_uncollectible(invoice=open_invoice, at=at, automatic=True).status == "uncollectible"


# -- brand bank details ---------------------------------------------------------------------------


def brand_change(console, brand: Brand, **overrides):
    return console.post(reverse("admin:invoices_brand_change", args=[brand.pk]), brand_form(brand, **overrides))


def test_changing_the_iban_without_a_code_is_refused(console, brand, clock_after_sign_in):
    response = brand_change(console, brand, iban=NEW_IBAN)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["otp_token"]
    brand.refresh_from_db()
    assert brand.iban != NEW_IBAN


def test_changing_the_iban_with_a_wrong_code_is_refused_and_counted(
    console, brand, staff_with_totp, clock_after_sign_in
):
    _user, device = staff_with_totp

    response = brand_change(console, brand, iban=NEW_IBAN, otp_token=wrong(current_totp(device)))

    assert response.status_code == 200 and response.context["adminform"].form.errors["otp_token"]
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    brand.refresh_from_db()
    assert brand.iban != NEW_IBAN


def test_changing_the_iban_with_a_fresh_code_is_saved_and_audited(console, brand, staff_with_totp, clock_after_sign_in):
    user, device = staff_with_totp

    response = brand_change(console, brand, iban=NEW_IBAN, bic="BNPAFRPP", otp_token=current_totp(device))

    assert response.status_code == 302
    brand.refresh_from_db()
    assert (brand.iban, brand.bic) == (NEW_IBAN, "BNPAFRPP")
    entry = AuditEntry.objects.get(action="brand.bank_details_changed")
    assert entry.actor == user and sorted(entry.extra["fields"]) == ["bic", "iban"]
    assert entry.extra["second_factor_verified_at"]


@pytest.mark.parametrize("language", ["fr", "en"])
def test_changing_the_payment_instructions_in_either_language_needs_a_code(
    console, brand, clock_after_sign_in, language
):
    # the instructions are kept per language: each one is a bank detail
    response = brand_change(console, brand, **{f"payment_instructions_{language}": "Pay to FR76 9999"})

    assert response.status_code == 200 and response.context["adminform"].form.errors["otp_token"]
    brand.refresh_from_db()
    assert getattr(brand, f"payment_instructions_{language}") != "Pay to FR76 9999"


def test_other_brand_fields_need_no_code(console, brand, clock_after_sign_in):
    response = brand_change(console, brand, footer_text_fr="Merci !")

    assert response.status_code == 302
    brand.refresh_from_db()
    assert brand.footer_text_fr == "Merci !"
    assert not AuditEntry.objects.filter(action="brand.bank_details_changed").exists()


def test_the_preview_never_spends_a_code(console, brand, staff_with_totp, clock_after_sign_in):
    _user, device = staff_with_totp
    code = current_totp(device)

    console.post(
        reverse("admin:invoices_brand_preview", args=[brand.pk]), brand_form(brand, iban=NEW_IBAN, otp_token=code)
    )

    assert brand_change(console, brand, iban=NEW_IBAN, otp_token=code).status_code == 302


def test_the_brand_service_refuses_bank_details_without_proof(brand, staff_factory):
    person = staff_factory(username="finance")
    brand.iban = NEW_IBAN

    with pytest.raises(FreshVerificationRequired), transaction.atomic():
        brand_save(brand=brand, acting_user=person)
    assert Brand.objects.get(pk=brand.pk).iban != NEW_IBAN
    brand_save(brand=brand, acting_user=person, otp_verified_at=timezone.now())
    assert Brand.objects.get(pk=brand.pk).iban == NEW_IBAN
