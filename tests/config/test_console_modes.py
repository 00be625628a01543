"""The console's "Test data" switch (issue 13, hole 1): staff see one mode at a time, with a badge."""

from __future__ import annotations

import pytest

from customers.models import Customer

pytestmark = pytest.mark.django_db


def test_the_console_shows_live_data_until_the_test_data_switch_is_on(console, customer_factory):
    # given a live and a test-mode customer
    customer_factory(legal_name="Vraie Boulangerie")
    test_customer = customer_factory(legal_name="Boulangerie Fictive")
    Customer.objects.filter(pk=test_customer.pk).update(livemode=False)

    # when staff look at the customers, switch to test data, look again
    live_page = console.get("/admin/customers/customer/").content.decode()
    switched = console.post("/admin/test-data/", {"test_data": "on", "next": "/admin/customers/customer/"})
    test_page = console.get("/admin/customers/customer/").content.decode()
    foreign = console.get(f"/admin/customers/customer/{test_customer.pk}/change/")
    console.post("/admin/test-data/", {"test_data": "off", "next": "/admin/"})
    back = console.get("/admin/customers/customer/").content.decode()

    # then each view shows its own mode only, with a badge while on test data
    assert "Vraie Boulangerie" in live_page and "Boulangerie Fictive" not in live_page
    assert switched.status_code == 302
    assert "Boulangerie Fictive" in test_page and "Vraie Boulangerie" not in test_page
    assert 'id="test-data-badge"' in test_page and 'id="test-data-badge"' not in live_page
    assert foreign.status_code == 200
    assert "Vraie Boulangerie" in back and "Boulangerie Fictive" not in back


def test_a_live_object_is_not_found_from_test_data(console, customer_factory):
    live_customer = customer_factory(legal_name="Vraie Boulangerie")
    console.post("/admin/test-data/", {"test_data": "on", "next": "/admin/"})

    response = console.get(f"/admin/customers/customer/{live_customer.pk}/change/", follow=True)

    assert response.redirect_chain, "a live customer opened from test data should bounce to the list"


def test_what_staff_create_while_on_test_data_is_test_mode(console):
    console.post("/admin/test-data/", {"test_data": "on", "next": "/admin/"})

    response = console.post(
        "/admin/customers/customer/add/",
        {
            "legal_name": "Client Fictif",
            "email": "fictif@client.example",
            "is_business": "on",
            "country": "FR",
            "preferred_language": "fr",
            "currency": "EUR",
            "timezone": "Europe/Paris",
            "metadata": "{}",
            "portal_users-TOTAL_FORMS": "0",
            "portal_users-INITIAL_FORMS": "0",
            "portal_users-MIN_NUM_FORMS": "0",
            "portal_users-MAX_NUM_FORMS": "1000",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Customer.objects.get(email="fictif@client.example").livemode is False


def test_the_test_data_switch_is_in_the_header_of_every_kind_of_page(console, customer_factory):
    # change lists and change forms replace unfold's nav-global-side block: the switch lives in
    # the header's user links instead, so it must be on lists, forms and tool pages alike
    customer = customer_factory(legal_name="Vraie Boulangerie")
    pages = ["/admin/", "/admin/customers/customer/", f"/admin/customers/customer/{customer.pk}/change/"]

    for url in pages:
        html = console.get(url).content.decode()
        assert html.count('id="test-data-switch"') == 1, url
        assert 'name="test_data" value="on"' in html, url
    console.post("/admin/test-data/", {"test_data": "on", "next": "/admin/"})
    assert 'name="test_data" value="off"' in console.get("/admin/customers/customer/").content.decode()
