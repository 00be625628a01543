"""The console's read-only checkout session pages."""

from __future__ import annotations

import pytest

from billing.checkout.models import CheckoutSession
from tests.billing.checkout.conftest import FR_PERSON
from tests.billing.checkout.helpers import pay

pytestmark = pytest.mark.django_db


def test_console_lists_sessions_with_status_origin_and_amount(console, make_session):
    open_session = make_session()
    done = pay(make_session(), FR_PERSON)
    listing = console.get("/admin/checkout/checkoutsession/")
    html = listing.content.decode()
    assert listing.status_code == 200
    assert open_session.public_id in html and done.public_id in html and "€34.80" in html
    detail = console.get(f"/admin/checkout/checkoutsession/{done.pk}/change/")
    assert detail.status_code == 200 and done.customer.legal_name in detail.content.decode()


def test_console_cannot_add_change_or_delete_sessions(console, make_session):
    session = make_session()
    assert console.get("/admin/checkout/checkoutsession/add/").status_code == 403
    console.post(f"/admin/checkout/checkoutsession/{session.pk}/change/", {"status": "complete"})
    assert CheckoutSession.objects.get().status == "open"
    assert console.post(f"/admin/checkout/checkoutsession/{session.pk}/delete/", {"post": "yes"}).status_code == 403
