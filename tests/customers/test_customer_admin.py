from __future__ import annotations

import pytest
import tablib
from django.core import mail

from customers.admin import CustomerResource
from customers.models import Customer, CustomerUser

pytestmark = pytest.mark.django_db

HEADERS = ["legal_name", "email", "country", "preferred_language", "currency", "timezone", "is_business"]


def test_customers_import_from_a_spreadsheet():
    dataset = tablib.Dataset(headers=HEADERS)
    dataset.append(["Café Lumière", "compta@cafe.example", "FR", "fr", "EUR", "Europe/Paris", "1"])
    dataset.append(["Bergwerk AG", "ap@bergwerk.example", "DE", "en", "EUR", "Europe/Berlin", "1"])

    result = CustomerResource().import_data(dataset, dry_run=False)

    assert not result.has_errors() and not result.has_validation_errors()
    assert set(Customer.objects.values_list("legal_name", flat=True)) == {"Café Lumière", "Bergwerk AG"}


def test_an_import_with_one_bad_row_imports_nothing_and_says_why(console):
    from django.core.files.uploadedfile import SimpleUploadedFile

    dataset = tablib.Dataset(headers=HEADERS)
    dataset.append(["Café Lumière", "compta@cafe.example", "FR", "fr", "EUR", "Europe/Paris", "1"])
    dataset.append(["Broken Ltd", "not-an-email", "GB", "en", "EURO", "Mars/Olympus", "1"])
    upload = SimpleUploadedFile("customers.csv", dataset.export("csv").encode(), content_type="text/csv")

    response = console.post(
        "/admin/customers/customer/import/", {"import_file": upload, "format": "0", "resource": "0"}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "is not an ISO 4217 currency code" in page and "not a known time zone" in page
    assert "Enter a valid email address" in page
    assert "process_import" not in page and 'name="import_file_name"' not in page  # no confirm button
    assert Customer.objects.count() == 0


def test_the_console_exports_customers_as_csv(console, customer_factory):
    customer_factory(legal_name="Export Me SAS")

    response = console.post(
        "/admin/customers/customer/export/",
        {"format": "0", "resource": "0", "customerresource_legal_name": "on", "customerresource_email": "on"},
    )

    assert response.status_code == 200
    assert "text/csv" in response["Content-Type"]
    assert "Export Me SAS" in response.content.decode()


def test_the_console_lists_searches_and_filters_customers(console, customer_factory):
    customer_factory(legal_name="Findable SARL", country="FR")
    customer_factory(legal_name="Hidden GmbH", country="DE")

    found = console.get("/admin/customers/customer/", {"q": "Findable"})
    filtered = console.get("/admin/customers/customer/", {"country__exact": "DE"})

    assert "Findable SARL" in found.content.decode() and "Hidden GmbH" not in found.content.decode()
    assert "Hidden GmbH" in filtered.content.decode() and "Findable SARL" not in filtered.content.decode()


def test_inviting_a_customer_sends_a_set_password_link_that_leads_to_the_portal(
    console, customer_factory, django_capture_on_commit_callbacks
):
    from django.test import Client

    customer = customer_factory(legal_name="Invitée SAS", email="Admin@Invitee.example", preferred_language="fr")
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(
            "/admin/customers/customer/", {"action": "invite_to_portal", "_selected_action": [customer.pk]}
        )
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["admin@invitee.example"]
    assert "Invitée SAS" in message.subject  # French subject for a French customer
    link = next(word for word in message.body.split() if "/accounts/password/reset/key/" in word)
    path = link.split("http://127.0.0.1:8000", 1)[1]

    visitor = Client()
    form_page = visitor.get(path, follow=True)
    set_password = visitor.post(
        form_page.redirect_chain[-1][0] if form_page.redirect_chain else path,
        {"password1": "Une-phrase-secrete-2026", "password2": "Une-phrase-secrete-2026"},
    )
    assert set_password.status_code == 302
    logged_in = visitor.post(
        "/accounts/login/", {"login": "admin@invitee.example", "password": "Une-phrase-secrete-2026"}
    )
    assert logged_in.status_code == 302
    portal = visitor.get("/portal/")
    assert portal.status_code == 200
    assert "Invitée SAS" in portal.content.decode()
    assert CustomerUser.objects.get(user__email="admin@invitee.example").customer == customer


def test_signup_is_closed_to_the_public(client):
    response = client.post(
        "/accounts/signup/",
        {
            "email": "walk-in@example.com",
            "password1": "Une-phrase-secrete-2026",
            "password2": "Une-phrase-secrete-2026",
        },
    )

    assert response.status_code == 200
    assert "closed" in response.content.decode().lower() or "fermée" in response.content.decode().lower()
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(email="walk-in@example.com").exists()


def test_a_portal_user_only_sees_its_own_customer(client, customer_factory, user_factory):
    mine = customer_factory(legal_name="Mine SARL")
    theirs = customer_factory(legal_name="Theirs SARL")
    user = user_factory(username="me@mine.example", email="me@mine.example")
    CustomerUser.objects.create(user=user, customer=mine)
    client.force_login(user)

    page = client.get("/portal/").content.decode()

    assert "Mine SARL" in page and "Theirs SARL" not in page
    assert theirs.pk != mine.pk


def test_a_user_without_a_customer_gets_404_in_the_portal(client, user):
    client.force_login(user)

    assert client.get("/portal/").status_code == 404


def test_the_console_customer_form_offers_the_e_invoice_format(console, customer_factory):
    customer = customer_factory()

    page = console.get(f"/admin/customers/customer/{customer.pk}/change/").content.decode()

    assert 'name="einvoice_syntax"' in page and 'for="id_einvoice_syntax"' in page
    assert 'value="ubl"' in page and 'value="cii"' in page


def test_the_country_filter_offers_the_countries_in_use_in_the_consoles_mode_only(console, customer_factory):
    from customers.selectors import customer_countries_in_use

    for country in ("FR", "DE", "BE", "DE"):
        customer_factory(country=country)
    customer_factory(country="JP", livemode=False)

    page = console.get("/admin/customers/customer/").content.decode()

    # the loose index scan (PostgreSQL) gives what a plain DISTINCT gives, per mode
    reference = sorted(set(Customer.objects.filter(livemode=True).values_list("country", flat=True)))
    assert customer_countries_in_use(livemode=True) == reference == ["BE", "DE", "FR"]
    assert customer_countries_in_use(livemode=False) == ["JP"]
    assert "Belgium" in page and "Germany" in page and "Japan" not in page
