"""The Stripe gateway: the `Gateway` protocol through the stripe SDK (StripeClient) and dj-stripe.

What it keeps in Tarif's database: dj-stripe's mirror of the Stripe objects it touches
(Customer, PaymentMethod, PaymentIntent, SetupIntent) and, in Tarif's own tables, only
tokens and display data. Card numbers and IBANs go to Stripe (from Stripe.js in
production; raw test numbers only with test keys, for development and tests).

Idempotency, so a crash never charges twice:

- a charge is two calls. The PaymentIntent is created unconfirmed (Stripe idempotency
  key `<key>:create`) and mirrored into dj-stripe's table with the Tarif key in its
  metadata *before* it is confirmed (`<key>:confirm`). A retry with the same key finds
  the intent in that table and returns its outcome instead of confirming again, so the
  guarantee does not depend on Stripe's 24-hour idempotency window (nor on localstripe,
  which ignores Idempotency-Key). A crash before the mirror leaves at worst an
  unconfirmed intent: no money moved.
- a refund carries the key in its metadata too; before creating one, the refunds of the
  PaymentIntent are listed and one with the same key is returned.

Both PaymentIntent shapes are read: the current one (`latest_charge`) and the older one
with a `charges` list (localstripe, old API versions).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import stripe
from django.conf import settings
from django.utils.translation import gettext, gettext_noop
from djstripe import models as djstripe_models
from djstripe.models import Customer as StripeCustomer
from djstripe.models import PaymentIntent, PaymentMethod

from billing.payments.gateway import (
    CardDeclined,
    ChargeResult,
    GatewayError,
    GatewayUnavailable,
    PaymentMethodDetails,
    RefundResult,
    SetupIntentHandle,
    SetupSession,
    WebhookEvent,
)
from customers.models import Customer

logger = logging.getLogger(__name__)

NAME = "stripe"
KEY_METADATA = "tarif_idempotency_key"
CUSTOMER_METADATA = "tarif_customer"
SIGNATURE_HEADER = "Stripe-Signature"

# Stripe's PaymentIntent status -> Tarif's ChargeResult status.
INTENT_STATUS = {
    "succeeded": "succeeded",
    "processing": "pending",  # SEPA Direct Debit: settled later by a webhook
    "requires_capture": "pending",
    "requires_action": "requires_action",
    "requires_payment_method": "failed",  # declined (last_payment_error says why)
    "canceled": "failed",
}
REFUND_STATUS = {"succeeded": "succeeded", "pending": "pending", "requires_action": "pending"}
# Stripe's payment method type -> PaymentMethod.Kind.
PAYMENT_METHOD_KINDS = {"card": "card", "sepa_debit": "sepa_debit", "link": "wallet"}
# Where Stripe Checkout's hosted pages live (the portal's form-action CSP must allow it).
CHECKOUT_ORIGIN = "https://checkout.stripe.com"


def _plain(obj: Any) -> dict[str, Any]:
    """A StripeObject (or a dict) as plain JSON data."""
    if isinstance(obj, dict) and not hasattr(obj, "to_dict"):
        return obj
    return json.loads(str(obj))


def _id(value: Any) -> str:
    """An expandable field: an id, an object with an id, or nothing."""
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")


TEST_KEY_PREFIXES = ("sk_test_", "rk_test_")


def stripe_test_key() -> str:
    """Stripe's test-mode key for test-mode data: STRIPE_TEST_SECRET_KEY, else STRIPE_SECRET_KEY
    when that is itself a test key; "" when there is none (test mode then uses the sandbox)."""
    key = getattr(settings, "STRIPE_TEST_SECRET_KEY", "")
    if key:
        return key
    main = getattr(settings, "STRIPE_SECRET_KEY", "")
    return main if main.startswith(TEST_KEY_PREFIXES) else ""


def api_key(*, livemode: bool = True) -> str:
    """The key for one mode. Test-mode data never gets a live key, even misconfigured: test-mode
    money must never reach the live account (checked here, at every client the gateway builds)."""
    if livemode:
        key = getattr(settings, "STRIPE_SECRET_KEY", "")
        if not key:
            raise GatewayError("Stripe is not configured: set STRIPE_SECRET_KEY.")
        return key
    key = stripe_test_key()
    if not key:
        raise GatewayError("Stripe has no test key (STRIPE_TEST_SECRET_KEY): test-mode data uses the sandbox.")
    if not key.startswith(TEST_KEY_PREFIXES):
        raise GatewayError("Refused: test-mode data is never sent with a live Stripe key.")
    return key


def client(*, livemode: bool = True) -> stripe.StripeClient:
    """A StripeClient for the mode's key, pointed at STRIPE_API_HOST when set (localstripe)."""
    host = getattr(settings, "STRIPE_API_HOST", "")
    return stripe.StripeClient(
        api_key(livemode=livemode), base_addresses={"api": host} if host else {}, max_network_retries=2
    )


def payment_method_details(payment_method: Mapping[str, Any]) -> PaymentMethodDetails:
    """Display data of a Stripe PaymentMethod: brand, last 4, expiry, wallet, IBAN last 4, mandate."""
    pm_type = payment_method.get("type", "")
    kind = PAYMENT_METHOD_KINDS.get(pm_type)
    if kind is None:
        raise GatewayError(gettext("Tarif does not take Stripe payment methods of type %(type)r.") % {"type": pm_type})
    if pm_type == "card":
        card = payment_method.get("card") or {}
        # Apple Pay, Google Pay, Link... are cards whose `wallet` says how they were presented.
        wallet = str((card.get("wallet") or {}).get("type") or "")
        return PaymentMethodDetails(
            token=payment_method["id"],
            kind="wallet" if wallet else "card",
            brand=str(card.get("brand") or ""),
            last4=str(card.get("last4") or ""),
            exp_month=card.get("exp_month"),
            exp_year=card.get("exp_year"),
            wallet=wallet,
        )
    if pm_type == "sepa_debit":
        sepa = payment_method.get("sepa_debit") or {}
        return PaymentMethodDetails(
            token=payment_method["id"],
            kind="sepa_debit",
            iban_last4=str(sepa.get("last4") or ""),
            # Older shapes carry it on the method; current ones on the Mandate (see setup_complete).
            mandate_reference=str(sepa.get("mandate_reference") or ""),
        )
    return PaymentMethodDetails(token=payment_method["id"], kind="wallet", wallet="link")


def _latest_charge(intent: Mapping[str, Any]) -> Mapping[str, Any]:
    """The intent's last charge as an object, in either shape (`latest_charge` or `charges`)."""
    latest = intent.get("latest_charge")
    if isinstance(latest, Mapping):
        return latest
    charges = (intent.get("charges") or {}).get("data") or []
    if latest:
        return next((charge for charge in charges if charge.get("id") == latest), {"id": latest})
    return charges[-1] if charges else {}


def charge_result(intent: Mapping[str, Any], error: stripe.StripeError | None = None) -> ChargeResult:
    """Map a PaymentIntent (and the error a confirmation raised, if any) to a ChargeResult."""
    status = INTENT_STATUS.get(intent.get("status", ""), "pending")
    last_error = intent.get("last_payment_error") or {}
    charge = _latest_charge(intent)
    decline_code = message = ""
    if status == "failed":
        error_body = (getattr(error, "error", None) and _plain(error.error)) or {}
        decline_code = str(
            last_error.get("decline_code")
            or error_body.get("decline_code")
            or charge.get("failure_code")
            or last_error.get("code")
            or error_body.get("code")
            or ("canceled" if intent.get("status") == "canceled" else "card_declined")
        )
        message = str(last_error.get("message") or charge.get("failure_message") or "The payment was declined.")
        if decline_code == "authentication_required":
            # Off-session charge the bank wants the customer to authenticate: the customer must act.
            status = "requires_action"
    elif status == "requires_action":
        decline_code = "authentication_required"
        message = "The card requires authentication by the customer."
    return ChargeResult(
        status=status,  # type: ignore[arg-type]
        reference=intent["id"],
        amount=int(intent.get("amount") or 0),
        currency=str(intent.get("currency") or "").upper(),
        decline_code=decline_code,
        message=message[:300],
    )


def _mirror(model_name: str, data: Mapping[str, Any], *, required: bool = False, livemode: bool = True) -> Any:
    """Sync a Stripe object into dj-stripe's table. Only the pre-confirmation mirror of a
    PaymentIntent is `required` (it is the crash-safety record); others are best effort."""
    try:
        model = getattr(djstripe_models, model_name)
        return model.sync_from_stripe_data(dict(data), api_key=api_key(livemode=livemode))
    except Exception:
        if required:
            raise
        logger.exception("dj-stripe could not mirror %s %s", model_name, data.get("id"))
        return None


def _error_message(error: stripe.StripeError) -> str:
    return str(error.user_message or "Stripe refused the request.")[:300]


def signed_timestamp(header: str) -> int:
    """The `t=` of a Stripe-Signature header (verify_header has checked it is there)."""
    for item in header.split(","):
        name, _sep, value = item.strip().partition("=")
        if name == "t":
            return int(value)
    raise ValueError("no timestamp in the signature header")


class StripeGateway:
    """One gateway object per mode: `livemode=False` talks to Stripe with the test key only."""

    name = NAME

    def __init__(self, *, livemode: bool = True) -> None:
        self.livemode = livemode

    def secret_key(self) -> str:
        return api_key(livemode=self.livemode)

    def _client(self) -> stripe.StripeClient:
        return client(livemode=self.livemode)

    def _live_key(self) -> bool:
        return self.secret_key().startswith("sk_live_") or self.secret_key().startswith("rk_live_")

    # --- customers ---------------------------------------------------------------------

    def _known_customer_id(self, *, customer_reference: str) -> str:
        """The Stripe customer of a Tarif customer if it has one already ("" if not)."""
        live = self._live_key()
        existing = StripeCustomer.objects.filter(subscriber_id=int(customer_reference), livemode=live).first()
        return existing.id if existing is not None else ""

    def customer_id(self, *, customer_reference: str) -> str:
        """The Stripe customer of a Tarif customer, created and mirrored into dj-stripe the first time."""
        existing = self._known_customer_id(customer_reference=customer_reference)
        if existing:
            return existing
        customer = Customer.objects.get(pk=int(customer_reference))
        try:
            created = self._client().v1.customers.create(
                params={
                    "email": customer.email,
                    "name": customer.legal_name or customer.email,
                    "metadata": {CUSTOMER_METADATA: customer_reference},
                },
                options={"idempotency_key": f"customer:{customer_reference}"},
            )
        except stripe.StripeError as error:
            raise GatewayError(_error_message(error)) from error
        mirrored = _mirror("Customer", _plain(created), required=True, livemode=self.livemode)
        mirrored.subscriber = customer
        mirrored.save(update_fields=["subscriber"])
        return created.id

    def customer_adopt(self, *, customer_reference: str, stripe_customer_id: str) -> None:
        """Link a Tarif customer to its existing Stripe customer (an import from Stripe), so
        charges use the payment methods already saved there. Refused if it has another one."""
        known = self._known_customer_id(customer_reference=customer_reference)
        if known == stripe_customer_id:
            return
        if known:
            raise GatewayError(gettext("This customer is already linked to another Stripe customer."))
        try:
            stripe_customer = self._client().v1.customers.retrieve(stripe_customer_id)
        except stripe.StripeError as error:
            raise GatewayError(_error_message(error)) from error
        mirrored = _mirror("Customer", _plain(stripe_customer), required=True, livemode=self.livemode)
        mirrored.subscriber = Customer.objects.get(pk=int(customer_reference))
        mirrored.save(update_fields=["subscriber"])

    def customer_reference_for(self, *, stripe_customer_id: str) -> str:
        subscriber_id = (
            StripeCustomer.objects.filter(id=stripe_customer_id).values_list("subscriber_id", flat=True).first()
        )
        return str(subscriber_id or "")

    # --- payment methods ---------------------------------------------------------------

    def attach_payment_method(self, *, customer_reference: str, source: Mapping[str, Any]) -> PaymentMethodDetails:
        """Attach a payment method to the customer's Stripe customer.

        `source` is `{"payment_method": "pm_..."}` (created by Stripe.js or a SetupIntent)
        or, with test keys only, a raw test card `{"card": {...}}` or `{"iban": ...}`.
        """
        api = self._client().v1
        customer_id = self.customer_id(customer_reference=customer_reference)
        try:
            if source.get("payment_method"):
                payment_method = api.payment_methods.retrieve(str(source["payment_method"]))
            else:
                payment_method = api.payment_methods.create(params=self._raw_params(source))
            if _id(payment_method.get("customer")) != customer_id:
                if payment_method.get("customer"):
                    raise GatewayError(gettext("This payment method belongs to another customer."))
                payment_method = api.payment_methods.attach(payment_method.id, params={"customer": customer_id})
        except stripe.StripeError as error:
            # Stripe's message ("Your card was declined.") never contains the number.
            raise GatewayError(_error_message(error)) from error
        data = _plain(payment_method)
        details = payment_method_details(data)
        _mirror("PaymentMethod", data, livemode=self.livemode)
        return details

    def _raw_params(self, source: Mapping[str, Any]) -> dict[str, Any]:
        if self._live_key():
            raise GatewayError(
                gettext("With live keys, card and bank details are collected by Stripe.js, never by Tarif.")
            )
        if "iban" in source:
            return {
                "type": "sepa_debit",
                "sepa_debit": {"iban": str(source["iban"]).replace(" ", "").upper()},
                "billing_details": {"name": str(source.get("name") or "Tarif customer")},
            }
        card = source.get("card") or {}
        try:
            return {
                "type": "card",
                "card": {
                    "number": "".join(ch for ch in str(card["number"]) if ch.isdigit()),
                    "exp_month": int(card["exp_month"]),
                    "exp_year": int(card["exp_year"]),
                    "cvc": str(card.get("cvc") or "123"),
                },
            }
        except (KeyError, TypeError, ValueError) as error:
            raise GatewayError(gettext("A card needs a number and an expiry month and year.")) from error

    def detach_payment_method(self, *, token: str) -> None:
        try:
            detached = self._client().v1.payment_methods.detach(token)
        except stripe.InvalidRequestError as error:
            # Already detached (or removed at Stripe): the outcome Tarif wants.
            logger.info("Stripe payment method %s was not attached: %s", token, error.user_message)
            return
        except stripe.StripeError as error:
            raise GatewayError(_error_message(error)) from error
        _mirror("PaymentMethod", _plain(detached), livemode=self.livemode)

    def payment_method_retrieve(self, *, token: str) -> PaymentMethodDetails:
        try:
            payment_method = self._client().v1.payment_methods.retrieve(token)
        except stripe.StripeError as error:
            raise GatewayError(_error_message(error)) from error
        return payment_method_details(_plain(payment_method))

    # --- SetupIntents: save a payment method for later, off-session charges ------------

    def setup_start(
        self, *, customer_reference: str, payment_method_types: tuple[str, ...] = ("card",)
    ) -> SetupIntentHandle:
        """Create a SetupIntent; its client secret goes to Stripe.js, which collects the card."""
        customer_id = self.customer_id(customer_reference=customer_reference)
        try:
            intent = self._client().v1.setup_intents.create(
                params={
                    "customer": customer_id,
                    "usage": "off_session",
                    "payment_method_types": list(payment_method_types),
                    "metadata": {CUSTOMER_METADATA: customer_reference},
                }
            )
        except stripe.StripeError as error:
            raise GatewayError(_error_message(error)) from error
        _mirror("SetupIntent", _plain(intent), livemode=self.livemode)
        return SetupIntentHandle(reference=intent.id, client_secret=intent.client_secret or "", status=intent.status)

    def setup_complete(self, *, customer_reference: str, setup_reference: str) -> PaymentMethodDetails:
        """The payment method a succeeded SetupIntent saved, attached to the customer."""
        api = self._client().v1
        customer_id = self.customer_id(customer_reference=customer_reference)
        try:
            intent = api.setup_intents.retrieve(setup_reference)
        except stripe.StripeError as error:
            raise GatewayError(_error_message(error)) from error
        if _id(intent.get("customer")) != customer_id:
            raise GatewayError(gettext("This setup belongs to another customer."))
        if intent.status != "succeeded":
            error = _plain(intent).get("last_setup_error") or {}
            if error.get("decline_code") or error.get("code") == "card_declined":
                # Stripe verified the card with its issuer and the issuer said no.
                raise CardDeclined(decline_code=str(error.get("decline_code") or "card_declined"))
            raise GatewayError(gettext("The setup is not complete (status %(status)s).") % {"status": intent.status})
        _mirror("SetupIntent", _plain(intent), livemode=self.livemode)
        details = self.attach_payment_method(
            customer_reference=customer_reference, source={"payment_method": _id(intent.get("payment_method"))}
        )
        mandate_id = _id(intent.get("mandate"))
        if details.kind == "sepa_debit" and mandate_id and not details.mandate_reference:
            try:
                mandate = _plain(api.mandates.retrieve(mandate_id))
            except stripe.StripeError as error:
                raise GatewayError(_error_message(error)) from error
            reference = ((mandate.get("payment_method_details") or {}).get("sepa_debit") or {}).get("reference")
            details = PaymentMethodDetails(**{**asdict(details), "mandate_reference": str(reference or mandate_id)})
        return details

    # --- Checkout in setup mode: Stripe's hosted page adds the method -------------------

    def hosted_setup_types(self) -> tuple[str, ...]:
        """The payment method types the portal sends to Checkout (STRIPE_CHECKOUT_SETUP_TYPES)."""
        configured = getattr(settings, "STRIPE_CHECKOUT_SETUP_TYPES", ("card", "sepa_debit"))
        return tuple(kind for kind in configured if kind in ("card", "sepa_debit"))

    def hosted_setup_origins(self) -> tuple[str, ...]:
        """Origins the browser is redirected to from a portal form (Checkout; localstripe in tests)."""
        host = getattr(settings, "STRIPE_API_HOST", "")
        return (CHECKOUT_ORIGIN, host.rstrip("/")) if host else (CHECKOUT_ORIGIN,)

    def start_setup_session(
        self,
        *,
        customer_reference: str,
        return_url: str,
        cancel_url: str,
        payment_method_types: tuple[str, ...] = ("card",),
    ) -> SetupSession:
        """A Checkout Session in setup mode; Checkout sends the browser back to
        `return_url?session_id=cs_...` (Stripe fills in `{CHECKOUT_SESSION_ID}`)."""
        offered = self.hosted_setup_types()
        if not payment_method_types or any(kind not in offered for kind in payment_method_types):
            raise GatewayError(
                gettext("Stripe Checkout is not set up for %(types)s.")
                % {"types": ", ".join(payment_method_types) or gettext("no payment method type")}
            )
        customer_id = self.customer_id(customer_reference=customer_reference)
        separator = "&" if "?" in return_url else "?"
        try:
            session = self._client().v1.checkout.sessions.create(
                params={
                    "mode": "setup",
                    "customer": customer_id,
                    "payment_method_types": list(payment_method_types),
                    "success_url": f"{return_url}{separator}session_id={{CHECKOUT_SESSION_ID}}",
                    "cancel_url": cancel_url,
                    "client_reference_id": customer_reference,
                    "metadata": {CUSTOMER_METADATA: customer_reference},
                    "setup_intent_data": {"metadata": {CUSTOMER_METADATA: customer_reference}},
                }
            )
        except stripe.StripeError as error:
            raise GatewayError(_error_message(error)) from error
        if not session.get("url"):
            raise GatewayError(gettext("Stripe did not return a Checkout page for this session."))
        return SetupSession(id=session.id, url=str(session.url))

    def complete_setup_session(self, *, session_id: str, customer_reference: str) -> PaymentMethodDetails:
        """The method saved on a completed Checkout Session of this customer (same one every time:
        the session's SetupIntent goes through `setup_complete`)."""
        if not session_id.startswith("cs_"):
            raise GatewayError(gettext("This is not a Checkout Session."))
        customer_id = self._known_customer_id(customer_reference=customer_reference)
        try:
            session = self._client().v1.checkout.sessions.retrieve(session_id)
        except stripe.StripeError as error:
            raise GatewayError(_error_message(error)) from error
        if not customer_id or _id(session.get("customer")) != customer_id:
            raise GatewayError(gettext("This checkout session belongs to another customer."))
        if session.get("mode") != "setup" or session.get("status") != "complete":
            raise GatewayError(gettext("This checkout session was not completed."))
        setup_reference = _id(session.get("setup_intent"))
        if not setup_reference:
            raise GatewayError(gettext("This checkout session saved no payment method."))
        return self.setup_complete(customer_reference=customer_reference, setup_reference=setup_reference)

    # --- money ---------------------------------------------------------------------------

    def _intent_for_key(self, idempotency_key: str) -> dict[str, Any] | None:
        mirrored = PaymentIntent.objects.filter(**{f"stripe_data__metadata__{KEY_METADATA}": idempotency_key}).first()
        if mirrored is None:
            return None
        return _plain(self._client().v1.payment_intents.retrieve(mirrored.id))

    def _payment_method_type(self, token: str) -> str:
        mirrored = PaymentMethod.objects.filter(id=token).first()
        if mirrored is not None and mirrored.stripe_data.get("type"):
            return str(mirrored.stripe_data["type"])
        return str(self._client().v1.payment_methods.retrieve(token).type)

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
        """An off-session PaymentIntent; same key, same intent and same result."""
        api = self._client().v1
        try:
            intent = self._intent_for_key(idempotency_key)
            if intent is None:
                created = api.payment_intents.create(
                    params={
                        "amount": amount,
                        "currency": currency.lower(),
                        "customer": self.customer_id(customer_reference=customer_reference),
                        "payment_method": token,
                        "payment_method_types": [self._payment_method_type(token)],
                        "description": description[:1000],
                        "metadata": {KEY_METADATA: idempotency_key, CUSTOMER_METADATA: customer_reference},
                    },
                    options={"idempotency_key": f"{idempotency_key}:create"},
                )
                intent = _plain(created)
                # The durable record of key -> intent, before any money can move.
                _mirror("PaymentIntent", intent, required=True, livemode=self.livemode)
        except stripe.StripeError as error:
            raise GatewayError(_error_message(error)) from error
        if (int(intent["amount"]), str(intent["currency"]).upper()) != (amount, currency.upper()):
            raise GatewayError(gettext("This idempotency key was used for a different amount."))
        if intent["status"] != "requires_confirmation":
            return charge_result(intent)  # confirmed before: the original outcome
        error: stripe.StripeError | None = None
        try:
            intent = _plain(
                api.payment_intents.confirm(
                    intent["id"],
                    params={"off_session": True},
                    options={"idempotency_key": f"{idempotency_key}:confirm"},
                )
            )
        except stripe.CardError as declined:
            error = declined
            try:
                intent = _plain(api.payment_intents.retrieve(intent["id"]))
            except stripe.StripeError:
                intent = {**intent, "status": "requires_payment_method"}
        except stripe.InvalidRequestError as refused:  # refused before anything happened
            raise GatewayError(_error_message(refused)) from refused
        except stripe.StripeError as unknown:  # network, 5xx, rate limit: it may have gone through
            raise GatewayUnavailable(_error_message(unknown)) from unknown
        _mirror("PaymentIntent", intent, livemode=self.livemode)
        return charge_result(intent, error)

    def refund(self, *, charge_reference: str, amount: int, currency: str, idempotency_key: str) -> RefundResult:
        api = self._client().v1
        try:
            existing = api.refunds.list(params={"payment_intent": charge_reference, "limit": 100})
            refund = next(
                (item for item in existing.data if (item.get("metadata") or {}).get(KEY_METADATA) == idempotency_key),
                None,
            )
            if refund is None:
                refund = api.refunds.create(
                    params={
                        "payment_intent": charge_reference,
                        "amount": amount,
                        "metadata": {KEY_METADATA: idempotency_key},
                    },
                    options={"idempotency_key": idempotency_key},
                )
        except stripe.StripeError as error:
            raise GatewayError(_error_message(error)) from error
        data = _plain(refund)
        if str(data.get("currency") or currency).upper() != currency.upper():
            raise GatewayError(gettext("The refund's currency differs from the payment's."))
        status = REFUND_STATUS.get(str(data.get("status")), "failed")
        return RefundResult(
            status=status,  # type: ignore[arg-type]
            reference=data["id"],
            amount=int(data.get("amount") or amount),
            message=""
            if status != "failed"
            else str(data.get("failure_reason") or gettext_noop("Stripe refused the refund.")),
        )

    # --- webhooks ------------------------------------------------------------------------

    def parse_webhook(self, *, payload: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify the Stripe-Signature header (HMAC-SHA256, timestamp within the tolerance)."""
        secret = getattr(settings, "STRIPE_WEBHOOK_SECRET", "")
        if not secret:
            raise GatewayError("STRIPE_WEBHOOK_SECRET is not set: Stripe webhooks cannot be verified.")
        header = next((value for name, value in headers.items() if name.lower() == SIGNATURE_HEADER.lower()), "")
        tolerance = int(getattr(settings, "STRIPE_WEBHOOK_TOLERANCE", 300))
        try:
            stripe.WebhookSignature.verify_header(payload.decode("utf-8"), header, secret, tolerance)
            # The SDK refuses only old timestamps; one far in the future would stay valid (replayable)
            # until that day comes.
            if signed_timestamp(header) > time.time() + tolerance:
                raise stripe.SignatureVerificationError("Timestamp in the future", header, payload)
            body = json.loads(payload)
            obj = body["data"]["object"]
            event_id, stripe_type = str(body["id"]), str(body["type"])
        except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
            raise GatewayError("The Stripe webhook signature does not verify.") from error
        return self._normalise(event_id, stripe_type, obj)

    def _normalise(self, event_id: str, stripe_type: str, obj: Mapping[str, Any]) -> WebhookEvent:
        data: dict[str, Any] = {"stripe_type": stripe_type, "object": obj.get("object", "")}
        reference = str(obj.get("id") or "")
        if stripe_type in (
            "payment_intent.succeeded",
            "payment_intent.payment_failed",
            "payment_intent.requires_action",
        ):
            result = charge_result(obj)
            event_type = {
                "payment_intent.succeeded": "charge.succeeded",
                "payment_intent.payment_failed": "charge.failed",
                "payment_intent.requires_action": "charge.requires_action",
            }[stripe_type]
            data.update(decline_code=result.decline_code, amount=result.amount, currency=result.currency)
        elif stripe_type == "charge.refunded":
            event_type = "refund.succeeded"
            reference = _id(obj.get("payment_intent")) or reference
            data.update(amount_refunded=obj.get("amount_refunded"), charge=obj.get("id"))
        elif stripe_type == "setup_intent.succeeded":
            event_type = "setup.succeeded"
            data.update(
                customer_reference=self.customer_reference_for(stripe_customer_id=_id(obj.get("customer"))),
                payment_method=_id(obj.get("payment_method")),
            )
        elif stripe_type in ("payment_method.updated", "payment_method.automatically_updated"):
            event_type = "payment_method.updated"
            details = payment_method_details(obj) if obj.get("type") in PAYMENT_METHOD_KINDS else None
            data.update(details=asdict(details) if details else {})
        elif stripe_type == "payment_method.detached":
            event_type = "payment_method.detached"
        else:
            event_type = f"stripe.{stripe_type}"  # stored, nothing to settle
        return WebhookEvent(id=event_id, type=event_type, reference=reference, data=data)

    def mirror_event(self, *, event: WebhookEvent, payload: bytes) -> None:
        """Keep dj-stripe's tables current with what the event carries (best effort)."""
        obj = json.loads(payload)["data"]["object"]
        model = {
            "payment_intent": "PaymentIntent",
            "payment_method": "PaymentMethod",
            "setup_intent": "SetupIntent",
        }.get(str(obj.get("object")))
        if model is not None:
            _mirror(model, obj, livemode=self.livemode)
