"""Payment methods: a card through the sandbox's hosted page, SEPA, bank transfer, default, removal."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from django.conf import settings

from billing.models import DunningCase, PaymentMethod
from invoices.models import Invoice
from tests.billing.payments.conftest import DECLINED
from tests.customers.portal.conftest import fresh_step_up

pytestmark = pytest.mark.django_db


def add_card_through_checkout(client, number="4242424242424242", *, make_default=True):
    """Start on the portal, fill the sandbox's hosted page, follow its redirect back."""
    start = client.post("/portal/payment-methods/card/", {"make_default": "on"} if make_default else {})
    checkout_url = start["Location"]
    assert checkout_url.startswith("/sandbox/checkout/cs_sandbox_")
    page = client.get(checkout_url).content.decode()
    assert 'name="number"' in page
    filled = client.post(checkout_url, {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"})
    return filled


def test_adding_a_card_asks_for_step_up_then_walks_the_hosted_checkout(portal, account):
    customer = account[0]
    assert portal.get("/portal/payment-methods/card/")["Location"].startswith("/portal/verify/")
    assert 'name="number"' not in portal.get("/portal/payment-methods/").content.decode()  # no card field of ours
    fresh_step_up(portal)

    back = add_card_through_checkout(portal, "5555555555554444")

    assert back.status_code == 302
    returned = urlparse(back["Location"])
    assert returned.path == "/portal/payment-methods/card/return/" and "session_id=cs_sandbox_" in returned.query
    done = portal.get(back["Location"])
    assert done.status_code == 302
    default = PaymentMethod.objects.get(customer=customer, is_default=True, active=True)
    assert (default.brand, default.last4, default.exp_year) == ("mastercard", "4444", 2031)
    # Reloading the return page adds nothing twice.
    portal.get(back["Location"])
    assert PaymentMethod.objects.filter(customer=customer, last4="4444").count() == 1


def test_a_rejected_card_stays_on_the_hosted_page_with_an_error(portal, account):
    fresh_step_up(portal)
    filled = add_card_through_checkout(portal, "4111111111111112")
    assert filled.status_code == 200 and "errorlist" in filled.content.decode()


def test_a_checkout_session_of_another_customer_cannot_be_claimed(portal, account, make_portal_account, client):
    fresh_step_up(portal)
    back = add_card_through_checkout(portal)
    other, other_user, _subscription, _invoice = make_portal_account("bob@other.example")
    client.force_login(other_user)

    assert client.get(back["Location"]).status_code == 404
    assert PaymentMethod.objects.filter(customer=other).count() == 1  # only the card it started with


def test_a_new_card_retries_a_past_due_invoice_at_once(make_portal_account, client, django_capture_on_commit_callbacks):
    customer, user, _subscription, invoice = make_portal_account("late@client.example", number=DECLINED)
    assert DunningCase.objects.get(invoice=invoice).status == DunningCase.Status.ACTIVE
    client.force_login(user)
    assert f"past-due-{invoice.pk}" in client.get("/portal/").content.decode()
    fresh_step_up(client)

    with django_capture_on_commit_callbacks(execute=True):
        back = add_card_through_checkout(client)
        client.get(back["Location"])

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID


def test_pay_now_charges_the_default_method(make_portal_account, client):
    customer, user, _subscription, invoice = make_portal_account("payer@client.example", number=DECLINED)
    client.force_login(user)
    declined = PaymentMethod.objects.get(customer=customer)
    from billing.services.payments import payment_method_attach
    from tests.billing.payments.conftest import card

    good = payment_method_attach(customer=customer, source=card("4242424242424242"), make_default=False)
    client.post(f"/portal/payment-methods/{good.pk}/default/")
    assert PaymentMethod.objects.get(customer=customer, is_default=True) == good

    client.post(f"/portal/invoices/{invoice.pk}/pay/")

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert declined.pk != good.pk


def test_sepa_mandate_needs_a_valid_iban_and_the_mandate_accepted(portal, account):
    fresh_step_up(portal)
    url = "/portal/payment-methods/sepa/"

    bad = portal.post(url, {"account_holder": "Anna", "iban": "FR76 0000", "accept_mandate": "on"})
    unaccepted = portal.post(url, {"account_holder": "Anna", "iban": "AT611904300234573201"})
    assert bad.status_code == unaccepted.status_code == 200

    portal.post(url, {"account_holder": "Anna", "iban": "AT61 1904 3002 3457 3201", "accept_mandate": "on"})

    method = PaymentMethod.objects.get(customer=account[0], is_default=True)
    assert method.kind == "sepa_debit" and method.iban_last4 == "3201" and method.mandate_reference


def test_bank_transfer_instructions_show_the_rf_reference_and_the_brand_iban(portal, account):
    from billing.services.payments import bank_transfer_reference

    brand = account[0].brand
    brand.iban, brand.bic = "FR7630006000011234567890189", "AGRIFRPP"
    brand.save()

    page = portal.get("/portal/payment-methods/bank-transfer/").content.decode()

    assert bank_transfer_reference(customer=account[0]) in page
    assert "FR7630006000011234567890189" in page and "AGRIFRPP" in page


def test_removing_a_method_needs_step_up(portal, account):
    method = PaymentMethod.objects.get(customer=account[0])
    url = f"/portal/payment-methods/{method.pk}/remove/"

    assert portal.post(url)["Location"].startswith("/portal/verify/")
    method.refresh_from_db()
    assert method.active
    fresh_step_up(portal)
    portal.post(url)
    method.refresh_from_db()
    assert not method.active


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        (DECLINED, "declined the card without giving a reason"),
        ("4000000000000341", "declined the card without giving a reason"),
        ("4000000000009995", "not enough funds"),
    ],
)
def test_a_declining_card_is_refused_with_the_reason_and_not_saved(portal, account, number, reason):
    customer = account[0]
    before = list(PaymentMethod.objects.filter(customer=customer).values_list("pk", "is_default"))
    fresh_step_up(portal)
    portal.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"

    back = add_card_through_checkout(portal, number)
    done = portal.get(back["Location"], follow=True)

    page = done.content.decode()
    assert "not saved" in page and reason in page
    assert list(PaymentMethod.objects.filter(customer=customer).values_list("pk", "is_default")) == before
    from billing.models import SandboxPaymentMethod

    assert not SandboxPaymentMethod.objects.filter(behaviour__in=["generic_decline", "insufficient_funds"]).exists()


def test_the_default_checkbox_is_unticked_when_a_default_exists_and_keeps_it(portal, account):
    customer = account[0]
    old_default = PaymentMethod.objects.get(customer=customer, is_default=True)
    fresh_step_up(portal)
    page = portal.get("/portal/payment-methods/card/").content.decode()
    assert 'name="make_default"' in page and "checked" not in page.split('name="make_default"')[1].split(">")[0]

    back = add_card_through_checkout(portal, "5555555555554444", make_default=False)
    portal.get(back["Location"])

    new = PaymentMethod.objects.get(customer=customer, last4="4444")
    assert not new.is_default
    assert PaymentMethod.objects.get(pk=old_default.pk).is_default
    portal.post(f"/portal/payment-methods/{new.pk}/default/")  # and chosen later
    new.refresh_from_db()
    assert new.is_default


def test_the_first_card_becomes_the_default_whatever_the_box(make_portal_account, client):
    customer, user, _subscription, _invoice = make_portal_account("nocard@client.example", number=None)
    client.force_login(user)
    fresh_step_up(client)
    page = client.get("/portal/payment-methods/card/").content.decode()
    assert "checked" in page.split('name="make_default"')[1].split(">")[0]

    back = add_card_through_checkout(client, "5555555555554444", make_default=False)
    client.get(back["Location"])

    assert PaymentMethod.objects.get(customer=customer, last4="4444").is_default
