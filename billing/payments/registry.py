"""Which gateway serves which payment method."""

from __future__ import annotations

from django.conf import settings

from billing.payments.gateway import Gateway, GatewayError

SANDBOX = "sandbox"
STRIPE = "stripe"
MANUAL = "manual"  # bank transfer, cheque, cash: nothing to call


def default_gateway_name() -> str:
    """Stripe when STRIPE_SECRET_KEY is set, else the sandbox (the embedded default);
    TARIF_PAYMENT_GATEWAY overrides (config/settings/payments.py)."""
    return getattr(settings, "TARIF_PAYMENT_GATEWAY", SANDBOX)


def gateway_for(name: str) -> Gateway:
    if name == SANDBOX:
        from billing.payments.sandbox import SandboxGateway

        return SandboxGateway()
    if name == STRIPE:
        from billing.payments.stripe import StripeGateway

        return StripeGateway()
    raise GatewayError(f"No payment gateway called {name!r} is configured.")
