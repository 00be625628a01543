"""The portal's pages as a customer sees them."""

from __future__ import annotations

import pytest

from tests.customers.portal.conftest import fresh_step_up

pytestmark = pytest.mark.django_db


def test_the_overview_shows_plan_renewal_balance_and_default_method(portal, account):
    customer, _user, subscription, _invoice = account

    page = portal.get("/portal/").content.decode()

    assert "Starter" in page and "× 2" in page
    assert "visa •••• 4242" in page
    assert "69,60" in page  # next invoice: 2 × 29.00 + 20 % VAT, from the upcoming-invoice service
    assert customer.legal_name in page


def test_the_portal_speaks_the_customers_language_until_the_visitor_switches(portal):
    assert "Prochaine facture" in portal.get("/portal/").content.decode()

    portal.post("/i18n/setlang/", {"language": "en", "next": "/portal/"})

    assert "Next invoice" in portal.get("/portal/").content.decode()


def test_signed_out_visitors_are_sent_to_the_login_page(client, account):
    response = client.get("/portal/invoices/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_invoices_list_filters_and_downloads(portal, account):
    _customer, _user, _subscription, invoice = account

    listing = portal.get("/portal/invoices/").content.decode()
    assert invoice.number in listing
    assert invoice.number not in portal.get("/portal/invoices/?status=open").content.decode()
    assert invoice.number in portal.get("/portal/invoices/?status=paid").content.decode()
    assert invoice.number not in portal.get("/portal/invoices/?document=credit_notes").content.decode()

    pdf = portal.get(f"/portal/invoices/{invoice.pk}/pdf/")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert b"".join(pdf.streaming_content).startswith(b"%PDF")
    xml = portal.get(f"/portal/invoices/{invoice.pk}/factur-x/")
    assert b"CrossIndustryInvoice" in xml.content


def test_a_bad_filter_value_is_a_form_error_not_a_crash(portal):
    response = portal.get("/portal/invoices/?status=bogus&year=abc")
    assert response.status_code == 200


def test_billing_details_validate_the_vat_number(portal, account):
    customer = account[0]
    fields = {
        "email": customer.email,
        "invoice_email": "",
        "address_line1": "2 rue Neuve",
        "postal_code": "31000",
        "city": "Toulouse",
        "country": "FR",
        "preferred_language": "fr",
    }

    bad = portal.post("/portal/details/", {**fields, "tax_id": "FR00123"})
    assert bad.status_code == 200 and "errorlist" in bad.content.decode()
    customer.refresh_from_db()
    assert customer.address_line1 == "1 place du Capitole"

    good = portal.post("/portal/details/", {**fields, "tax_id": "FR40303265045"})
    assert good.status_code == 302
    customer.refresh_from_db()
    assert (customer.address_line1, customer.tax_id) == ("2 rue Neuve", "FR40303265045")


def test_changing_the_billing_email_needs_a_fresh_second_factor(portal, account):
    customer = account[0]
    fields = {"email": "new@client.example", "country": "FR", "preferred_language": "fr"}

    response = portal.post("/portal/details/", fields)

    assert response.status_code == 302 and response["Location"].startswith("/portal/verify/")
    customer.refresh_from_db()
    assert customer.email == "anna@client.example"
    fresh_step_up(portal)
    assert portal.post("/portal/details/", fields).status_code == 302
    customer.refresh_from_db()
    assert customer.email == "new@client.example"


def test_notification_preferences_turn_off_reminders_only(portal, account):
    from customers.models import NotificationPreference

    portal.post("/portal/details/notifications/", {"upcoming_renewal": "", "card_expiring": "on", "trial_ending": "on"})

    saved = dict(NotificationPreference.objects.filter(customer=account[0]).values_list("kind", "enabled"))
    assert saved == {"upcoming_renewal": False, "card_expiring": True, "trial_ending": True}


def test_data_export_needs_step_up_then_gives_json(portal, account):
    assert portal.post("/portal/export/").status_code == 302
    fresh_step_up(portal)

    response = portal.post("/portal/export/")

    data = response.json()
    assert data["customer"]["email"] == "anna@client.example"
    assert data["invoices"][0]["number"] == account[3].number
    assert "4242" in data["payment_methods"][0]["display"]
