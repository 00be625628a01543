"""The portal's billing details are saved by customer_update: webhooks see the customer's own edits."""

from __future__ import annotations

import pytest
from django.urls import reverse

from config.events.models import DomainEvent

pytestmark = pytest.mark.django_db


def test_a_customer_editing_its_address_in_the_portal_writes_customer_updated(portal, account):
    # given a signed-in portal user
    customer, user = account[0], account[1]

    # when it changes its city
    response = portal.post(
        reverse("portal:details"),
        {"email": customer.email, "country": "FR", "preferred_language": "fr", "city": "Lyon"},
    )

    # then the change is saved with its event, by that portal user, naming only what changed
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.city == "Lyon"
    event = DomainEvent.objects.get(type="customer.updated", object_id=str(customer.pk))
    assert "city" in event.data["changed"] and "email" not in event.data["changed"]
    assert event.acting_user == user
