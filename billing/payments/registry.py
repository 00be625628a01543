"""Which gateway serves which payment method."""

from __future__ import annotations

from django.conf import settings

from billing.payments.gateway import Gateway, GatewayError

SANDBOX = "sandbox"
MANUAL = "manual"  # bank transfer, cheque, cash: nothing to call


def default_gateway_name() -> str:
    """The sandbox when no Stripe keys are set (the embedded default).

    The Stripe gateway is not written yet (next step of issue #4): until then the
    sandbox serves card and SEPA methods even when keys are set.
    """
    return getattr(settings, "TARIF_PAYMENT_GATEWAY", SANDBOX)


def gateway_for(name: str) -> Gateway:
    if name == SANDBOX:
        from billing.payments.sandbox import SandboxGateway

        return SandboxGateway()
    raise GatewayError(f"No payment gateway called {name!r} is configured.")
