"""Which gateway serves which payment method."""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext

from billing.payments.gateway import Gateway, GatewayError
from billing.payments.sandbox import SandboxGateway
from billing.payments.stripe import StripeGateway, stripe_test_key

SANDBOX = "sandbox"
STRIPE = "stripe"
MANUAL = "manual"  # bank transfer, cheque, cash: nothing to call


def default_gateway_name(*, livemode: bool = True) -> str:
    """Stripe when STRIPE_SECRET_KEY is set, else the sandbox (the embedded default);
    TARIF_PAYMENT_GATEWAY overrides (config/settings/payments.py).

    Test-mode data (sandbox API keys, test clocks) uses Stripe only with a Stripe test key
    (STRIPE_TEST_SECRET_KEY, or a STRIPE_SECRET_KEY that is itself `sk_test_…`), else the sandbox:
    test-mode money never reaches a live account.
    """
    name = getattr(settings, "TARIF_PAYMENT_GATEWAY", SANDBOX)
    if livemode or name != STRIPE:
        return name

    return STRIPE if stripe_test_key() else SANDBOX


def gateway_for(name: str, *, livemode: bool = True) -> Gateway:
    """The gateway `name` for data of one mode (Stripe with its test key for test-mode data)."""
    if name == SANDBOX:
        return SandboxGateway()
    if name == STRIPE:
        return StripeGateway(livemode=livemode)
    raise GatewayError(gettext("No payment gateway called %(name)r is configured.") % {"name": name})
