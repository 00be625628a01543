"""The portal's prepaid credits page: balance, grants with expiry, history (issue 16, wallets)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from billing.wallets.services import GrantRequest, credit_grant_create
from tests.billing.payments.conftest import T0

pytestmark = pytest.mark.django_db


def test_the_customer_sees_its_balance_grants_and_history(portal, account, make_portal_account):
    customer = account[0]
    credit_grant_create(
        customer=customer,
        request=GrantRequest(amount=4250, currency="EUR", name="Welcome pack", expires_at=T0 + timedelta(days=30)),
        at=T0,
    )
    other = make_portal_account("other@client.example")[0]
    credit_grant_create(customer=other, request=GrantRequest(amount=999, currency="EUR", name="Not yours"), at=T0)

    response = portal.get(reverse("portal:credits"))

    assert response.status_code == 200
    body = response.content.decode()
    assert "Welcome pack" in body and "Not yours" not in body
    assert "42,50" in body or "42.50" in body  # money through the formatting helper, never 4250
    assert "4250" not in body
    assert 'id="credit-history"' in body


def test_without_credits_the_page_says_so(portal):
    response = portal.get(reverse("portal:credits"))
    assert response.status_code == 200
    assert 'class="wallet-balance"' in response.content.decode()
