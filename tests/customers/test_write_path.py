"""Console edits and spreadsheet imports of customers go through customer_create / customer_update."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import tablib
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from billing.models import Subscription, WebhookDelivery, WebhookEndpoint
from config.events.models import DomainEvent
from customers.admin import CustomerResource
from customers.models import Customer, CustomerUser
from tests.admin_forms import change_form_data

pytestmark = pytest.mark.django_db

HEADERS = ["legal_name", "email", "country", "preferred_language", "currency", "timezone", "is_business"]


def _subscribe(customer: Customer) -> Subscription:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return Subscription.objects.create(
        customer=customer,
        status=Subscription.Status.ACTIVE,
        currency=customer.currency,
        cycle={"kind": "interval", "unit": "month", "count": 1},
        billing_cycle_anchor=start,
        current_period_start=start,
        current_period_end=datetime(2026, 2, 1, tzinfo=UTC),
    )


def _upload(dataset: tablib.Dataset) -> SimpleUploadedFile:
    return SimpleUploadedFile("customers.csv", dataset.export("csv").encode(), content_type="text/csv")


def test_the_console_refuses_to_change_a_subscribed_customers_currency_with_a_form_error(console, customer):
    # given a customer with a subscription in EUR
    _subscribe(customer)
    url = reverse("admin:customers_customer_change", args=[customer.pk])

    # when a staff member changes its currency in the console
    response = console.post(url, change_form_data(console.get(url), currency="USD"))

    # then the form says why and nothing changed
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "currency can no longer change" in " ".join(errors.get("currency", []))
    customer.refresh_from_db()
    assert customer.currency == "EUR"
    assert not DomainEvent.objects.filter(type="customer.updated").exists()


def test_a_console_edit_writes_customer_updated_and_a_webhook_sees_it(console, customer):
    # given an endpoint listening to customer events
    from billing.services.webhooks import webhook_events_fan_out

    endpoint = WebhookEndpoint.objects.create(
        url="https://hooks.example.com/tarif", secret="whsec_test", enabled_events=["customer.*"]
    )
    url = reverse("admin:customers_customer_change", args=[customer.pk])

    # when a staff member renames the customer in the console
    response = console.post(url, change_form_data(console.get(url), legal_name="Renommée SARL"))

    # then the change is saved with its event, by that staff member, and the webhook fan-out picks it up
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    customer.refresh_from_db()
    assert customer.legal_name == "Renommée SARL"
    event = DomainEvent.objects.get(type="customer.updated", object_id=str(customer.pk))
    assert event.data["changed"] == ["legal_name"]
    assert event.acting_user == console.user
    webhook_events_fan_out()
    assert WebhookDelivery.objects.filter(endpoint=endpoint, event=event).exists()


def test_a_customer_added_in_the_console_writes_customer_created(console):
    # given the empty add form
    url = reverse("admin:customers_customer_add")

    # when a staff member fills it in
    response = console.post(
        url,
        change_form_data(
            console.get(url),
            legal_name="Nouvelle SAS",
            email="compta@nouvelle.example",
            country="FR",
            currency="EUR",
            preferred_language="fr",
            timezone="Europe/Paris",
        ),
    )

    # then the customer exists with its creation event
    assert response.status_code == 302
    customer = Customer.objects.get(email="compta@nouvelle.example")
    assert DomainEvent.objects.filter(type="customer.created", object_id=str(customer.pk)).exists()


def test_an_import_writes_customer_created_and_customer_updated():
    # given one customer already known by its billing email
    first = tablib.Dataset(headers=HEADERS)
    first.append(["Café Lumière", "compta@cafe.example", "FR", "fr", "EUR", "Europe/Paris", "1"])
    assert not CustomerResource().import_data(first, dry_run=False).has_validation_errors()

    # when a second spreadsheet renames it
    second = tablib.Dataset(headers=HEADERS)
    second.append(["Café Lumière & Fils", "compta@cafe.example", "FR", "fr", "EUR", "Europe/Paris", "1"])
    result = CustomerResource().import_data(second, dry_run=False)

    # then both rows went through the customer service: one creation, one update naming what changed
    assert not result.has_errors() and not result.has_validation_errors()
    customer = Customer.objects.get(email="compta@cafe.example")
    assert customer.legal_name == "Café Lumière & Fils"
    assert DomainEvent.objects.filter(type="customer.created", object_id=str(customer.pk)).count() == 1
    update = DomainEvent.objects.get(type="customer.updated", object_id=str(customer.pk))
    assert update.data["changed"] == ["legal_name"]


def test_an_import_cannot_change_a_subscribed_customers_currency(console, customer_factory):
    # given a subscribed customer in EUR
    customer = customer_factory(email="compta@abonne.example", legal_name="Abonné SARL")
    _subscribe(customer)
    dataset = tablib.Dataset(headers=HEADERS)
    dataset.append(["Abonné SARL", "compta@abonne.example", "FR", "fr", "USD", "Europe/Paris", "1"])

    # when a spreadsheet changes its currency
    response = console.post(
        "/admin/customers/customer/import/", {"import_file": _upload(dataset), "format": "0", "resource": "0"}
    )

    # then the row is refused with the service's reason, there is nothing to confirm, and nothing changed
    page = response.content.decode()
    assert response.status_code == 200
    assert "currency can no longer change" in page
    assert 'name="import_file_name"' not in page
    customer.refresh_from_db()
    assert customer.currency == "EUR"
    assert not DomainEvent.objects.filter(type="customer.updated").exists()


def test_support_staff_cannot_link_a_portal_login_to_a_customer(client, staff_factory, customer, user_factory):
    # given a support staff member signed in to the console, a customer and someone else's login
    from django.contrib.auth.models import Group
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.conftest import current_totp

    support = staff_factory(username="support-agent")
    support.groups.add(Group.objects.get(name="Support"))
    device = TOTPDevice.objects.create(user=support, name="phone", confirmed=True)
    client.post("/admin/login/", {"username": "support-agent", "password": "correct horse battery staple"})
    client.post("/admin/otp/verify/", {"otp_token": current_totp(device)})
    outsider = user_factory(username="outsider", email="outsider@elsewhere.example")

    # when they try to link that login to the customer from the portal users page
    add_page = client.get(reverse("admin:customers_customeruser_add"))
    client.post(reverse("admin:customers_customeruser_add"), {"user": outsider.pk, "customer": customer.pk})

    # then the page does not exist for them and no link was made
    assert add_page.status_code == 403
    assert not CustomerUser.objects.filter(user=outsider).exists()


def test_not_even_a_superuser_can_type_in_or_repoint_a_portal_link(console, customer_factory, user_factory):
    # given a portal login of one customer
    first, second = customer_factory(), customer_factory()
    login = user_factory(username="client-a", email="client-a@example.com")
    link = CustomerUser.objects.create(user=login, customer=first)
    other = user_factory(username="other", email="other@example.com")

    # when the console is asked to add a link, or to move the existing one to another customer
    added = console.post(reverse("admin:customers_customeruser_add"), {"user": other.pk, "customer": second.pk})
    moved = console.post(
        reverse("admin:customers_customeruser_change", args=[link.pk]), {"user": login.pk, "customer": second.pk}
    )

    # then both are refused: portal access comes from an invitation the person accepts
    assert added.status_code == 403
    assert moved.status_code == 403
    link.refresh_from_db()
    assert link.customer == first
    assert not CustomerUser.objects.filter(user=other).exists()


def test_revoking_portal_access_in_the_console_is_recorded(console, customer):
    # given a portal login of the customer
    login = get_user_model().objects.create_user(username="leaving", email="leaving@client.example")
    link = CustomerUser.objects.create(user=login, customer=customer)

    # when a staff member revokes it
    response = console.post(
        reverse("admin:customers_customeruser_changelist"),
        {"action": "revoke_portal_access", "_selected_action": [link.pk]},
    )

    # then the link is gone and an event says who lost access
    assert response.status_code == 302
    assert not CustomerUser.objects.filter(pk=link.pk).exists()
    event = DomainEvent.objects.get(type="customer.portal_user.revoked")
    assert event.customer_id == customer.pk and event.data["email"] == "leaving@client.example"
    assert event.acting_user == console.user


def test_deleting_a_customer_in_the_console_is_recorded(console, customer_factory):
    # given a customer entered by mistake
    mistake = customer_factory(legal_name="Doublon SARL", email="doublon@client.example")
    pk = mistake.pk

    # when a staff member deletes it
    response = console.post(reverse("admin:customers_customer_delete", args=[pk]), {"post": "yes"})

    # then it is gone and the event log says so, by whom
    assert response.status_code == 302
    assert not Customer.objects.filter(pk=pk).exists()
    event = DomainEvent.objects.get(type="customer.deleted", object_id=str(pk))
    assert event.data["email"] == "doublon@client.example" and event.acting_user == console.user
