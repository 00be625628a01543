"""The one interface every payment gateway implements.

A gateway is the remote provider (Stripe, or the embedded sandbox that plays one).
Tarif keeps only what a gateway returns here: tokens and display data, references,
statuses and decline codes. Every call that moves money takes a deterministic
idempotency key; a gateway must return the original result when it sees a key again
(that is what makes a retry after a crash safe).

Adding a gateway: implement `Gateway`, give it a `name`, and register it in
`billing.payments.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from config.errors import DomainError

ChargeStatus = Literal["succeeded", "failed", "requires_action", "pending"]
RefundStatus = Literal["succeeded", "failed", "pending"]


class GatewayError(DomainError):
    code = "gateway_refused"

    """The gateway refused the request itself (bad token, unknown card, bad signature)."""


class CardDeclined(GatewayError):
    """The gateway refused to save a card when verifying it (Stripe's SetupIntent, the sandbox's
    zero-amount check): `decline_code` says why, in the gateway's words (insufficient_funds...)."""

    code = "card_declined"
    http_status = 402

    def __init__(self, message: Any = None, *, decline_code: str = "generic_decline") -> None:
        super().__init__(message or "The card was declined.")
        self.decline_code = decline_code


class GatewayUnavailable(Exception):
    """The gateway could not be reached after a charge was sent: its outcome is unknown.

    Deliberately not a GatewayError: the attempt must stay `pending` (not fail), so the
    next collection resumes it with the same idempotency key instead of charging anew.
    """


@dataclass(frozen=True, slots=True)
class PaymentMethodDetails:
    """What Tarif may store about a payment method: token and display data only."""

    token: str
    kind: str  # PaymentMethod.Kind: card, wallet, sepa_debit
    brand: str = ""
    last4: str = ""
    exp_month: int | None = None
    exp_year: int | None = None
    wallet: str = ""
    iban_last4: str = ""
    mandate_reference: str = ""


@dataclass(frozen=True, slots=True)
class ChargeResult:
    status: ChargeStatus
    reference: str  # the gateway's id of the charge (PaymentIntent id for Stripe)
    amount: int
    currency: str
    decline_code: str = ""
    message: str = ""
    fee: int = 0  # what the gateway kept (minor units), posted D 627 / C clearing (issue 19)


@dataclass(frozen=True, slots=True)
class RefundResult:
    status: RefundStatus
    reference: str
    amount: int
    message: str = ""


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """An inbound event, already authenticated by the gateway's signature check."""

    id: str
    type: str  # normalised: "charge.succeeded", "charge.failed", "refund.succeeded", "refund.failed"
    reference: str  # the charge or refund reference the event is about
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SetupSession:
    """A hosted page where the customer enters a payment method (Stripe Checkout in setup mode)."""

    id: str
    url: str  # where to send the customer's browser


@dataclass(frozen=True, slots=True)
class SetupIntentHandle:
    """A started setup of a payment method (a Stripe SetupIntent): the browser finishes it."""

    reference: str  # the gateway's id (seti_...)
    client_secret: str  # for Stripe.js; never logged or stored
    status: str


class Gateway(Protocol):
    name: str

    def attach_payment_method(self, *, customer_reference: str, source: Mapping[str, Any]) -> PaymentMethodDetails:
        """Tokenize `source` (client-side token, or a sandbox test card/IBAN) for a customer."""

    def detach_payment_method(self, *, token: str) -> None: ...

    def charge(
        self,
        *,
        token: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        customer_reference: str,
        description: str = "",
    ) -> ChargeResult:
        """Charge `amount` minor units off-session. Same key, same result."""

    def refund(self, *, charge_reference: str, amount: int, currency: str, idempotency_key: str) -> RefundResult:
        """Refund part or all of a charge. Same key, same result."""

    def parse_webhook(self, *, payload: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify the signature and normalise the event; raise GatewayError if it does not verify."""

    def hosted_setup_types(self) -> tuple[str, ...]:
        """The payment method types (`card`, `sepa_debit`) its hosted setup page can take."""

    def hosted_setup_origins(self) -> tuple[str, ...]:
        """Other origins the hosted page lives on (a portal form redirects there: CSP form-action)."""

    def start_setup_session(
        self,
        *,
        customer_reference: str,
        return_url: str,
        cancel_url: str,
        payment_method_types: tuple[str, ...] = ("card",),
    ) -> SetupSession:
        """Open a hosted page to add a method of one of `payment_method_types`; the provider
        redirects to `return_url?session_id=...`. GatewayError for a type it does not take."""

    def complete_setup_session(self, *, session_id: str, customer_reference: str) -> PaymentMethodDetails:
        """The method the customer entered on the hosted page; GatewayError if not completed
        (or not this customer's). Completing the same session again returns the same method."""


class SupportsSetup(Protocol):
    """Optional: gateways that save a payment method through a customer-side flow (Stripe SetupIntents)."""

    def setup_start(
        self, *, customer_reference: str, payment_method_types: tuple[str, ...] = ("card",)
    ) -> SetupIntentHandle:
        """Start saving a payment method for off-session charges; the client secret goes to the browser."""

    def setup_complete(self, *, customer_reference: str, setup_reference: str) -> PaymentMethodDetails:
        """The payment method a succeeded setup saved; GatewayError if it did not succeed."""
