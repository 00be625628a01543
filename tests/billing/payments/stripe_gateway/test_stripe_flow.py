"""The Stripe gateway end to end against localstripe: save, charge, decline, authenticate, refund."""

from __future__ import annotations

import pytest
from djstripe import models as djstripe_models

from billing.models import DunningCase, Payment, PaymentMethod
from billing.payments.gateway import GatewayError
from billing.payments.stripe import StripeGateway
from billing.services.payments import (
    invoices_collect,
    payment_method_attach,
    payment_method_setup_complete,
    payment_method_setup_start,
)
from tests.billing.payments.stripe_gateway.conftest import (
    DECLINED_AT_ATTACH,
    DECLINED_AT_CHARGE,
    REQUIRES_ACTION,
    VISA_OK,
    stripe_card,
)


def test_attach_card_stores_only_token_and_display_data_and_syncs_dj_stripe(stripe_on, make_customer):
    customer = make_customer()

    method = payment_method_attach(customer=customer, source=stripe_card(VISA_OK))

    assert method.gateway == "stripe" and method.token.startswith("pm_")
    assert (method.kind, method.brand, method.last4, method.exp_month, method.exp_year) == (
        "card",
        "visa",
        "4242",
        12,
        2030,
    )
    synced = djstripe_models.Customer.objects.get(subscriber=customer)
    assert synced.id.startswith("cus_")
    mirrored = djstripe_models.PaymentMethod.objects.get(id=method.token)
    assert mirrored.customer_id == synced.id
    assert VISA_OK not in str(mirrored.stripe_data)
    # The second method reuses the same Stripe customer.
    payment_method_attach(customer=customer, source=stripe_card("5555555555554444"))
    assert djstripe_models.Customer.objects.filter(subscriber=customer).count() == 1

