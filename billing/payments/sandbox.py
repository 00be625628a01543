"""The sandbox gateway: the embedded default, a fake provider with Stripe's test cards.

It keeps its own state in its own tables (SandboxPaymentMethod, SandboxCharge,
SandboxRefund) as a remote provider would, so idempotency is real: a charge or refund
repeated with the same key returns the first result and moves no money twice.

Test cards (any future expiry, any CVC; the number itself is never stored or logged):

| number              | charge outcome                                  |
|---------------------|-------------------------------------------------|
| 4242 4242 4242 4242 | succeeds (Visa)                                 |
| 5555 5555 5555 4444 | succeeds (Mastercard)                           |
| 4000 0000 0000 0002 | declined, `card_declined` / `generic_decline`   |
| 4000 0000 0000 9995 | declined, `insufficient_funds`                  |
| 4000 0000 0000 0341 | attaches, then declined (`card_declined`)       |
| 4000 0025 0000 3155 | `requires_action` (authentication required)     |

SEPA test IBANs (Stripe's): AT61 1904 3002 3457 3201 succeeds, AT86 1904 3002 3547 3202
fails with `insufficient_funds`. Wallets: `{"wallet": "apple_pay"|"google_pay", "card": ...}`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.translation import gettext, gettext_noop

from billing.locks import sandbox_charge_qs_for_update, sandbox_setup_session_qs_for_update
from billing.models import SandboxCharge, SandboxPaymentMethod, SandboxRefund, SandboxSetupSession
from billing.payments.gateway import (
    CardDeclined,
    ChargeResult,
    GatewayError,
    PaymentMethodDetails,
    RefundResult,
    SetupSession,
    WebhookEvent,
)

SUCCEEDS = "succeeds"
DECLINED = "generic_decline"
INSUFFICIENT_FUNDS = "insufficient_funds"
REQUIRES_ACTION = "authentication_required"

# number -> (brand, behaviour)
TEST_CARDS: dict[str, tuple[str, str]] = {
    "4242424242424242": ("visa", SUCCEEDS),
    "5555555555554444": ("mastercard", SUCCEEDS),
    "4000000000000002": ("visa", DECLINED),
    "4000000000009995": ("visa", INSUFFICIENT_FUNDS),
    "4000000000000341": ("visa", DECLINED),
    "4000002500003155": ("visa", REQUIRES_ACTION),
}
TEST_IBANS: dict[str, str] = {
    "AT611904300234573201": SUCCEEDS,
    "AT861904300235473202": INSUFFICIENT_FUNDS,
    "DE89370400440532013000": SUCCEEDS,
}
SIGNATURE_HEADER = "X-Sandbox-Signature"


def _digits(value: Any) -> str:
    return "".join(ch for ch in str(value) if ch.isdigit())


def _webhook_secret() -> bytes:
    return hashlib.sha256(f"sandbox-webhooks:{settings.SECRET_KEY}".encode()).digest()


# Seconds a signed sandbox webhook stays acceptable, either side of now (replay protection).
WEBHOOK_TOLERANCE_SECONDS = 300


def _signature(payload: bytes, timestamp: int) -> str:
    return hmac.new(_webhook_secret(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


def sign_webhook(payload: bytes, *, timestamp: int | None = None) -> str:
    """The signature header the sandbox puts on its webhooks (tests and the demo post them):
    `t=<unix seconds>,v1=<HMAC-SHA256 of "t.payload">`, like Stripe's."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={_signature(payload, timestamp)}"


def _verify_webhook(payload: bytes, header: str) -> bool:
    try:
        parts = dict(item.strip().split("=", 1) for item in header.split(","))
        timestamp, signature = int(parts["t"]), parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > WEBHOOK_TOLERANCE_SECONDS:
        return False  # too old to be fresh, or dated in the future
    return hmac.compare_digest(signature, _signature(payload, timestamp))


class SandboxGateway:
    name = "sandbox"

    def attach_payment_method(self, *, customer_reference: str, source: Mapping[str, Any]) -> PaymentMethodDetails:
        token = f"pm_sandbox_{secrets.token_hex(12)}"
        if "iban" in source:
            iban = str(source["iban"]).replace(" ", "").upper()
            behaviour = TEST_IBANS.get(iban)
            if behaviour is None:
                raise GatewayError(gettext("The sandbox only accepts its test IBANs (see docs/payments.md)."))
            SandboxPaymentMethod.objects.create(token=token, kind="sepa_debit", behaviour=behaviour)
            return PaymentMethodDetails(
                token=token,
                kind="sepa_debit",
                iban_last4=iban[-4:],
                mandate_reference=f"SBX-{customer_reference}-{token[-8:]}".upper(),
            )
        card = source.get("card") or {}
        number = _digits(card.get("number", ""))
        known = TEST_CARDS.get(number)
        if known is None:
            # Never echo the number back: only say it is not a test card.
            raise GatewayError(gettext("The sandbox only accepts its test card numbers (see docs/payments.md)."))
        brand, behaviour = known
        try:
            exp_month, exp_year = int(card["exp_month"]), int(card["exp_year"])
        except (KeyError, TypeError, ValueError) as error:
            raise GatewayError(gettext("A card needs an expiry month and year.")) from error
        if not 1 <= exp_month <= 12:
            raise GatewayError(gettext("The expiry month is between 1 and 12."))
        wallet = str(source.get("wallet", ""))
        kind = "wallet" if wallet else "card"
        SandboxPaymentMethod.objects.create(token=token, kind=kind, behaviour=behaviour)
        return PaymentMethodDetails(
            token=token,
            kind=kind,
            brand=brand,
            last4=number[-4:],
            exp_month=exp_month,
            exp_year=exp_year,
            wallet=wallet,
        )

    def detach_payment_method(self, *, token: str) -> None:
        SandboxPaymentMethod.objects.filter(token=token).delete()

    def verify_payment_method(self, *, token: str) -> None:
        """A zero-amount check before a card is saved (what a SetupIntent does at the issuer):
        the declining test cards (0002, 9995, 0341) are refused with their decline code."""
        method = SandboxPaymentMethod.objects.filter(token=token).first()
        if method is None:
            raise CardDeclined(decline_code="payment_method_not_found")
        if method.kind in ("card", "wallet") and method.behaviour in (DECLINED, INSUFFICIENT_FUNDS):
            raise CardDeclined(decline_code=method.behaviour)

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
        existing = SandboxCharge.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            method = SandboxPaymentMethod.objects.filter(token=token).first()
            if method is None:
                status, decline_code = "failed", "payment_method_not_found"
            elif method.behaviour == SUCCEEDS:
                status, decline_code = "succeeded", ""
            elif method.behaviour == REQUIRES_ACTION:
                status, decline_code = "requires_action", REQUIRES_ACTION
            else:
                status, decline_code = "failed", method.behaviour
            try:
                with transaction.atomic():
                    existing = SandboxCharge.objects.create(
                        idempotency_key=idempotency_key,
                        reference=f"ch_sandbox_{secrets.token_hex(12)}",
                        token=token,
                        amount=amount,
                        currency=currency,
                        status=status,
                        decline_code=decline_code,
                    )
            except IntegrityError:  # the same key raced in: return that one
                existing = SandboxCharge.objects.get(idempotency_key=idempotency_key)
        if (existing.amount, existing.currency) != (amount, currency):
            raise GatewayError(gettext("This idempotency key was used for a different amount."))
        messages = {
            "succeeded": "",
            "requires_action": "The card requires authentication by the customer.",
            "failed": "The card was declined.",
        }
        return ChargeResult(
            status=existing.status,  # type: ignore[arg-type]
            reference=existing.reference,
            amount=existing.amount,
            currency=existing.currency,
            decline_code=existing.decline_code,
            message=messages.get(existing.status, ""),
        )

    def refund(self, *, charge_reference: str, amount: int, currency: str, idempotency_key: str) -> RefundResult:
        existing = SandboxRefund.objects.filter(idempotency_key=idempotency_key).select_related("charge").first()
        if existing is None:
            with transaction.atomic():
                charge = sandbox_charge_qs_for_update().filter(reference=charge_reference, currency=currency).first()
                if charge is None or charge.status != "succeeded":
                    raise GatewayError(
                        gettext("No succeeded sandbox charge %(reference)s to refund.")
                        % {"reference": charge_reference}
                    )
                ok = amount <= charge.amount - charge.amount_refunded
                existing = SandboxRefund.objects.create(
                    idempotency_key=idempotency_key,
                    reference=f"re_sandbox_{secrets.token_hex(12)}",
                    charge=charge,
                    amount=amount,
                    status="succeeded" if ok else "failed",
                )
                if ok:
                    charge.amount_refunded += amount
                    charge.save(update_fields=["amount_refunded"])
        return RefundResult(
            status=existing.status,  # type: ignore[arg-type]
            reference=existing.reference,
            amount=existing.amount,
            message=""
            if existing.status == "succeeded"
            else gettext_noop("The refund exceeds what is left on the charge."),
        )

    def parse_webhook(self, *, payload: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        if not _verify_webhook(payload, headers.get(SIGNATURE_HEADER, "")):
            raise GatewayError("The sandbox webhook signature does not verify.")
        body = json.loads(payload)
        return WebhookEvent(id=body["id"], type=body["type"], reference=body["reference"], data=body)

    # Hosted "add a card" page (Stripe Checkout in setup mode): billing/payments/sandbox_views.py.
    def hosted_setup_types(self) -> tuple[str, ...]:
        return ("card",)  # its SEPA mandates are signed on the portal's own form

    def hosted_setup_origins(self) -> tuple[str, ...]:
        return ()  # the hosted page is served by Tarif itself

    def start_setup_session(
        self,
        *,
        customer_reference: str,
        return_url: str,
        cancel_url: str,
        payment_method_types: tuple[str, ...] = ("card",),
    ) -> SetupSession:
        if tuple(payment_method_types) != ("card",):
            raise GatewayError(gettext("The sandbox's hosted page takes cards only."))
        session = SandboxSetupSession.objects.create(
            session_id=f"cs_sandbox_{secrets.token_urlsafe(18)}",
            customer_reference=customer_reference,
            return_url=return_url,
            cancel_url=cancel_url,
        )
        return SetupSession(
            id=session.session_id, url=reverse("sandbox:checkout", kwargs={"session_id": session.session_id})
        )

    def complete_setup_session(self, *, session_id: str, customer_reference: str) -> PaymentMethodDetails:
        session = SandboxSetupSession.objects.filter(
            session_id=session_id, customer_reference=customer_reference
        ).first()
        if session is None or session.status not in ("complete", "consumed") or not session.token:
            raise GatewayError(gettext("This checkout session was not completed."))
        SandboxSetupSession.objects.filter(pk=session.pk).update(status="consumed")
        details = session.details
        return PaymentMethodDetails(
            token=session.token,
            kind="card",
            brand=details.get("brand", ""),
            last4=details.get("last4", ""),
            exp_month=details.get("exp_month"),
            exp_year=details.get("exp_year"),
        )

    # The "customer" side of the sandbox: what a browser would do after 3-D Secure.
    def complete_authentication(self, *, charge_reference: str, succeed: bool = True) -> bytes:
        """Finish a `requires_action` charge and return the signed webhook payload it emits."""
        charge = SandboxCharge.objects.get(reference=charge_reference, status="requires_action")
        charge.status = "succeeded" if succeed else "failed"
        charge.decline_code = "" if succeed else "authentication_failed"
        charge.save(update_fields=["status", "decline_code"])
        event = {
            "id": f"evt_sandbox_{secrets.token_hex(12)}",
            "type": "charge.succeeded" if succeed else "charge.failed",
            "reference": charge.reference,
            "decline_code": charge.decline_code,
        }
        return json.dumps(event).encode()


def setup_session_fill(*, session_id: str, card: Mapping[str, Any]) -> str:
    """The sandbox's hosted page received a card: tokenize it, return where to redirect.

    What Stripe Checkout does on its own servers; the card number is checked and
    dropped here, only the token and display data are kept on the session.
    """
    with transaction.atomic():
        session = sandbox_setup_session_qs_for_update().filter(session_id=session_id).first()
        if session is None or session.status != "open":
            raise GatewayError(gettext("This checkout session is no longer open."))
        details = SandboxGateway().attach_payment_method(
            customer_reference=session.customer_reference, source={"card": card}
        )
        session.status = "complete"
        session.token = details.token
        session.details = {
            "brand": details.brand,
            "last4": details.last4,
            "exp_month": details.exp_month,
            "exp_year": details.exp_year,
        }
        session.save(update_fields=["status", "token", "details"])
    separator = "&" if "?" in session.return_url else "?"
    return f"{session.return_url}{separator}{urlencode({'session_id': session.session_id})}"
