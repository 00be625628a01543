"""Portal fixtures: a customer on a 29.00 EUR monthly plan with a card, and its portal user."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model

from billing.models import Price
from billing.services.dunning import invoices_collect
from billing.services.payments import payment_method_attach
from billing.services.subscriptions import ItemSpec, subscription_create
from customers.models import CustomerUser
from customers.portal.access import STEP_UP_SESSION_KEY
from tests.billing.payments.conftest import T0, VISA_OK, card, now  # noqa: F401
from tests.billing.services.conftest import billing_brand, make_customer, make_price  # noqa: F401


@pytest.fixture
def plans(make_price, product_factory):  # noqa: F811
    """Two plans of one product family: Starter 29.00 and Pro 79.00 a month, per seat."""
    starter = make_price(2900, product=product_factory(name="Starter"), nickname="monthly")
    pro = make_price(7900, product=product_factory(name="Pro"), nickname="monthly")
    hidden = make_price(1000, product=product_factory(name="Legacy"), metadata={"portal": False})
    return {"starter": starter, "pro": pro, "hidden": hidden}


@pytest.fixture
def make_portal_account(make_customer, plans, now):  # noqa: F811
    """make_portal_account(email) -> (customer, user, subscription, first invoice paid by card)."""

    def make(email: str = "anna@client.example", *, number: str | None = VISA_OK, **customer_fields):
        customer = make_customer(email=email, **customer_fields)
        user = get_user_model().objects.create_user(
            username=email, email=email, password="correct horse battery staple"
        )
        CustomerUser.objects.create(user=user, customer=customer)
        if number is not None:
            payment_method_attach(customer=customer, source=card(number))
        subscription = subscription_create(customer=customer, items=[ItemSpec(plans["starter"], 2)], at=T0)
        invoice = subscription.invoices.get()
        invoices_collect(invoice_ids=[invoice.pk])
        invoice.refresh_from_db()
        return customer, user, subscription, invoice

    return make


@pytest.fixture
def account(make_portal_account):
    return make_portal_account()


def fresh_step_up(client) -> None:
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time()
    session.save()


@pytest.fixture
def portal(client, account):
    """A client signed in as the account's portal user (no TOTP enrolled)."""
    client.force_login(account[1])
    return client


__all__ = ["Price", "T0", "now", "billing_brand", "make_customer", "make_price"]
