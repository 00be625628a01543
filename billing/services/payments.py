"""Payment methods, collection of invoices and manual payments (docs/payments.md).

Collecting an invoice is three steps, so a crash anywhere never charges twice:

1. in a committed transaction, reserve the attempt: a `Payment` row in `pending`
   with the idempotency key `invoice:<pk>:attempt:<n>`;
2. call the gateway with that key, outside any transaction;
3. in a second transaction, record the outcome: the invoice takes the payment
   (`invoice_record_payment`) only when the gateway confirmed it.

If the process dies between 2 and 3, the attempt stays `pending`; the next collection
of that invoice reuses it (same key), and the gateway answers with the original charge.

Lock order: subscription -> customer -> invoice -> payment (the billing run's order).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils.translation import gettext

from billing.locks import (
    invoice_lock_with_owners,
    payment_method_qs_for_update,
    payment_qs_for_update,
)
from billing.models import DunningCase, GatewayEvent, Payment, PaymentMethod
from billing.payments.gateway import (
    CardDeclined,
    ChargeResult,
    GatewayError,
    PaymentMethodDetails,
    SetupIntentHandle,
    SetupSession,
)
from billing.payments.registry import MANUAL, default_gateway_name, gateway_for
from config import clock
from config.errors import DomainError
from config.events.log import event_record
from config.hooks import Hook
from config.jobs import enqueue
from config.types import ActingUser, JsonMapping
from customers.models import Customer
from invoices.errors import PaymentError
from invoices.ledger.postings import post_payment_succeeded
from invoices.ledger.services import accounting_period_check_open
from invoices.locks import customers_lock_balance
from invoices.models import Invoice
from invoices.services.balance import balance_transaction_create
from invoices.services.lifecycle import invoice_record_payment
from invoices.states import PAYABLE_STATUSES

logger = logging.getLogger(__name__)

CHARGE_AUTOMATICALLY = "charge_automatically"
NO_PAYMENT_METHOD = "no_payment_method"
MANUAL_METHODS = (Payment.Method.BANK_TRANSFER, Payment.Method.CHEQUE, Payment.Method.CASH, Payment.Method.OTHER)


# Dunning reacts to every outcome, in the transaction that records it: a failure opens or
# advances the invoice's case, a payment that settles the invoice closes it. Dunning calls
# collection (it is the only caller of `invoice_collect`), so this module cannot import it:
# dunning registers its receivers in BillingConfig.ready(), and a missing one raises.
payment_failed = Hook("billing.payment_failed", required=True)
payment_recorded = Hook("billing.payment_recorded", required=True)


class PaymentsError(DomainError):
    """A payment operation Tarif refuses (the message says why, for the operator)."""

    code = "payments"


def bank_transfer_reference(*, customer: Customer) -> str:
    """The customer's stable ISO 11649 ("RF") creditor reference to quote on transfers.

    Derived from the customer's id, so it never changes and needs no storage; its two
    check digits let reconciliation reject mistyped references.
    """
    body = f"TARIF{customer.pk:08d}"
    numeric = "".join(str(int(char, 36)) for char in body + "RF00")
    return f"RF{98 - int(numeric) % 97:02d}{body}"


def _customer_lock(customer: Customer) -> None:
    customers_lock_balance(customer_ids=[customer.pk])


def payment_method_attach(
    *, customer: Customer, source: JsonMapping, make_default: bool = True, acting_user: ActingUser = None
) -> PaymentMethod:
    """Add a payment method. `source` is `{"card": {...}}`, `{"iban": ...}`,
    `{"type": "bank_transfer"}` or `{"type": "manual"}` (see docs/payments.md).

    Card and IBAN data go to the gateway, which returns a token and display data;
    only those are stored. A new chargeable default retries the customer's invoices
    in dunning at once (after commit).
    """
    kind = source.get("type")
    if kind in (PaymentMethod.Kind.BANK_TRANSFER, PaymentMethod.Kind.MANUAL):
        fields: dict[str, Any] = {"kind": kind, "gateway": MANUAL}
    else:
        gateway = gateway_for(default_gateway_name(livemode=customer.livemode), livemode=customer.livemode)
        details = gateway.attach_payment_method(customer_reference=str(customer.pk), source=source)
        fields = _method_fields(gateway.name, details)
    return _method_store(customer=customer, fields=fields, make_default=make_default, acting_user=acting_user)


def _method_fields(gateway_name: str, details: PaymentMethodDetails) -> dict[str, Any]:
    return {
        "kind": details.kind,
        "gateway": gateway_name,
        "token": details.token,
        "brand": details.brand,
        "last4": details.last4,
        "exp_month": details.exp_month,
        "exp_year": details.exp_year,
        "wallet": details.wallet,
        "iban_last4": details.iban_last4,
        "mandate_reference": details.mandate_reference,
    }


def _method_store(
    *, customer: Customer, fields: dict[str, Any], make_default: bool, acting_user: ActingUser
) -> PaymentMethod:
    with transaction.atomic():
        _customer_lock(customer)
        has_default = PaymentMethod.objects.filter(customer=customer, is_default=True, active=True).exists()
        default = make_default or not has_default
        if default:
            PaymentMethod.objects.filter(customer=customer, is_default=True).update(is_default=False)
        method = PaymentMethod.objects.create(customer=customer, is_default=default, **fields)
        event_record(
            type="payment_method.attached",
            object_type="payment_method",
            object_id=method.pk,
            customer_id=customer.pk,
            occurred_at=clock.now(customer=customer),
            data={"kind": method.kind, "display": str(method), "default": default},
            acting_user=acting_user,
        )
        if default and method.chargeable:
            _retry_dunning_on_commit(customer)
    return method


def payment_method_store(
    *,
    customer: Customer,
    gateway_name: str,
    details: PaymentMethodDetails,
    make_default: bool = True,
    acting_user: ActingUser = None,
) -> PaymentMethod:
    """Store a method the gateway has already tokenized outside any customer (a checkout session's
    hosted page, issue 17: the customer is created after the card was entered). Once per token."""
    existing = PaymentMethod.objects.filter(
        customer=customer, gateway=gateway_name, token=details.token, active=True
    ).first()
    if existing is not None:
        return existing
    return _method_store(
        customer=customer,
        fields=_method_fields(gateway_name, details),
        make_default=make_default,
        acting_user=acting_user,
    )


def _retry_dunning_on_commit(customer: Customer) -> None:
    """A new chargeable default retries the customer's invoices in dunning at once."""
    if DunningCase.objects.filter(customer=customer, status=DunningCase.Status.ACTIVE).exists():
        transaction.on_commit(lambda: enqueue("billing.dunning_retry_customer", args=[customer.pk]))


@dataclass(frozen=True, slots=True)
class HostedSetupOptions:
    """What the default gateway's hosted setup page takes, and where it lives."""

    payment_method_types: tuple[str, ...]  # "card", "sepa_debit"
    origins: tuple[str, ...]  # other origins a portal form redirects to (CSP form-action)


def payment_method_hosted_setup_options() -> HostedSetupOptions:
    gateway = gateway_for(default_gateway_name())
    return HostedSetupOptions(
        payment_method_types=tuple(gateway.hosted_setup_types()), origins=tuple(gateway.hosted_setup_origins())
    )


def payment_method_setup_start(
    *, customer: Customer, return_url: str, cancel_url: str, payment_method_types: tuple[str, ...] = ("card",)
) -> SetupSession:
    """Open the gateway's hosted page where the customer adds a card or signs a SEPA mandate
    (never a card field of ours). GatewayError if the gateway's page does not take that type."""
    gateway = gateway_for(default_gateway_name(livemode=customer.livemode), livemode=customer.livemode)
    return gateway.start_setup_session(
        customer_reference=str(customer.pk),
        return_url=return_url,
        cancel_url=cancel_url,
        payment_method_types=payment_method_types,
    )


def payment_method_setup_complete(
    *, customer: Customer, session_id: str, make_default: bool = True, acting_user: ActingUser = None
) -> PaymentMethod:
    """Store the method the customer entered on the hosted page. Completing a session twice
    (a reloaded return page) returns the method stored the first time."""
    gateway = gateway_for(default_gateway_name(livemode=customer.livemode), livemode=customer.livemode)
    details = gateway.complete_setup_session(session_id=session_id, customer_reference=str(customer.pk))
    existing = PaymentMethod.objects.filter(customer=customer, gateway=gateway.name, token=details.token).first()
    if existing is None:
        _verify_or_drop(gateway, details)
    if existing is not None:
        if make_default and existing.active and not existing.is_default:
            # Stripe's setup_intent.succeeded webhook may have saved it first, as a spare method;
            # the customer coming back from the hosted page asked for it as the default.
            return payment_method_set_default(payment_method=existing, acting_user=acting_user)
        return existing
    return _method_store(
        customer=customer,
        fields=_method_fields(gateway.name, details),
        make_default=make_default,
        acting_user=acting_user,
    )


def _verify_or_drop(gateway: Any, details: PaymentMethodDetails) -> None:
    """Verify a new card with its gateway before it is saved (issue 17): a declining card is
    detached at the gateway and CardDeclined raised, so nothing is stored. Gateways whose setup
    flow verifies already (Stripe's SetupIntent) need no `verify_payment_method`."""
    verify = getattr(gateway, "verify_payment_method", None)
    if verify is None or details.kind not in ("card", "wallet"):
        return
    try:
        verify(token=details.token)
    except CardDeclined:
        gateway.detach_payment_method(token=details.token)
        raise


def _setup_gateway(gateway_name: str | None, *, livemode: bool = True) -> Any:
    gateway = gateway_for(gateway_name or default_gateway_name(livemode=livemode), livemode=livemode)
    if not hasattr(gateway, "setup_start"):
        raise PaymentsError(
            gettext("The %(name)s gateway cannot save payment methods through a setup flow.") % {"name": gateway.name}
        )
    return gateway


def payment_method_setup_intent_start(
    *, customer: Customer, payment_method_types: tuple[str, ...] = ("card",), gateway_name: str | None = None
) -> SetupIntentHandle:
    """Start saving a payment method (a Stripe SetupIntent): give `client_secret` to Stripe.js,
    then call `payment_method_setup_intent_complete` with `reference` once the browser confirmed it."""
    gateway = _setup_gateway(gateway_name, livemode=customer.livemode)
    try:
        return gateway.setup_start(customer_reference=str(customer.pk), payment_method_types=payment_method_types)
    except GatewayError as error:
        raise PaymentsError(str(error)) from error


def payment_method_setup_intent_complete(
    *,
    customer: Customer,
    setup_reference: str,
    make_default: bool = True,
    gateway_name: str | None = None,
    acting_user: ActingUser = None,
) -> PaymentMethod:
    """Turn a succeeded setup into a Tarif PaymentMethod (once: a second call returns the same one).

    Also reached from the `setup_intent.succeeded` webhook, so the method is saved even if
    the customer's browser never came back.
    """
    gateway = _setup_gateway(gateway_name, livemode=customer.livemode)
    try:
        details = gateway.setup_complete(customer_reference=str(customer.pk), setup_reference=setup_reference)
    except GatewayError as error:
        raise PaymentsError(str(error)) from error
    existing = PaymentMethod.objects.filter(gateway=gateway.name, token=details.token, active=True).first()
    if existing is not None:
        return existing
    _verify_or_drop(gateway, details)
    return _method_store(
        customer=customer,
        fields=_method_fields(gateway.name, details),
        make_default=make_default,
        acting_user=acting_user,
    )


def payment_method_set_default(*, payment_method: PaymentMethod, acting_user: ActingUser = None) -> PaymentMethod:
    """Make an active method the customer's default (a chargeable one retries dunning at once)."""
    customer = payment_method.customer
    with transaction.atomic():
        _customer_lock(customer)
        locked = payment_method_qs_for_update().get(pk=payment_method.pk)
        if not locked.active:
            raise PaymentsError(gettext("This payment method was removed."))
        if not locked.is_default:
            PaymentMethod.objects.filter(customer=customer, is_default=True).update(is_default=False)
            locked.is_default = True
            locked.save(update_fields=["is_default"])
            event_record(
                type="payment_method.default_changed",
                object_type="payment_method",
                object_id=locked.pk,
                customer_id=customer.pk,
                occurred_at=clock.now(customer=customer),
                data={"kind": locked.kind, "display": str(locked)},
                acting_user=acting_user,
            )
            if locked.chargeable:
                _retry_dunning_on_commit(customer)
    return locked


def payment_method_detach(
    *, payment_method: PaymentMethod, acting_user: ActingUser = None, at_gateway: bool = True
) -> PaymentMethod:
    """Deactivate a method; `at_gateway=False` when the gateway detached it already (its webhook)."""
    if payment_method.token and at_gateway:
        gateway = gateway_for(payment_method.gateway, livemode=payment_method.customer.livemode)
        gateway.detach_payment_method(token=payment_method.token)
    with transaction.atomic():
        at = clock.now(customer=payment_method.customer)
        PaymentMethod.objects.filter(pk=payment_method.pk).update(active=False, is_default=False, detached_at=at)
        event_record(
            type="payment_method.detached",
            object_type="payment_method",
            object_id=payment_method.pk,
            customer_id=payment_method.customer_id,
            occurred_at=at,
            data={"kind": payment_method.kind},
            acting_user=acting_user,
        )
    payment_method.refresh_from_db()
    return payment_method


def awaiting_payment(*, search: str = "") -> QuerySet[Invoice]:
    """Open invoices Tarif does not charge itself (send-invoice terms, or a customer whose
    default method is a transfer or manual), oldest due first: what reconciliation matches.

    `search` matches an invoice number, a customer name or a transfer reference.
    """
    manual_default = PaymentMethod.objects.filter(
        customer=OuterRef("customer"),
        is_default=True,
        active=True,
        kind__in=[PaymentMethod.Kind.BANK_TRANSFER, PaymentMethod.Kind.MANUAL],
    )
    invoices = (
        Invoice.objects.filter(status__in=PAYABLE_STATUSES, amount_remaining__gt=0)
        .filter(Q(collection_method="send_invoice") | Exists(manual_default))
        .select_related("customer")
        .order_by("due_at", "pk")
    )
    search = search.strip()
    if search:
        matches = Q(number__icontains=search) | Q(customer__legal_name__icontains=search)
        compact = search.replace(" ", "").upper()
        if compact.startswith("RF") and compact[4:].startswith("TARIF") and compact[9:].isdigit():
            matches |= Q(customer_id=int(compact[9:]))
        invoices = invoices.filter(matches)
    return invoices


def default_payment_method(*, customer: Customer) -> PaymentMethod | None:
    return PaymentMethod.objects.filter(customer=customer, is_default=True, active=True).first()


def _attempt_key(invoice_id: int, attempt: int) -> str:
    return f"invoice:{invoice_id}:attempt:{attempt}"


def _payment_event(payment: Payment, type: str, at: datetime, acting_user: ActingUser = None, **data: Any) -> None:
    event_record(
        type=type,
        object_type="payment",
        object_id=payment.pk,
        customer_id=payment.customer_id,
        occurred_at=at,
        data={
            "invoice": payment.invoice_id,
            "amount": payment.amount,
            "currency": payment.currency,
            "method": payment.method,
            "status": payment.status,
            "attempt": payment.attempt,
            "decline_code": payment.decline_code,
            **data,
        },
        acting_user=acting_user,
    )


def _lock_subscription_then_invoice(invoice_id: int) -> Invoice:
    """Lock in the one order: subscription, customer (its balance), invoice."""
    return invoice_lock_with_owners(invoice_id)


def invoice_collect(
    *,
    invoice: Invoice,
    at: datetime | None = None,
    scheduled_retry: bool = False,
    acting_user: ActingUser = None,
    first_attempt_only: bool = False,
) -> Payment | None:
    """Charge what remains due on an open invoice with the customer's default method.

    Returns the attempt (succeeded, failed or requires_action), or None when there is
    nothing to charge. A failure enters (or continues) dunning; `scheduled_retry` says
    this is one of the dunning schedule's retries. `first_attempt_only` (collection at
    issue, which the hand-off sweeper may enqueue twice): only a first attempt, or the
    resumption of a pending one; once an attempt has an outcome, the rest is dunning's.
    """
    with transaction.atomic(durable=True):
        locked = _lock_subscription_then_invoice(invoice.pk)
        if locked.status not in PAYABLE_STATUSES or locked.amount_remaining <= 0:
            return None
        at = at or clock.now(customer=locked.customer)
        attempt = (
            Payment.objects.select_related("payment_method")
            .filter(invoice=locked, status=Payment.Status.PENDING, attempt__isnull=False)
            .order_by("-attempt")
            .first()
        )
        if attempt is None and scheduled_retry and not _retry_still_due(invoice=locked, at=at):
            return None  # another runner took this step of the schedule already
        if attempt is None and first_attempt_only and Payment.objects.filter(invoice=locked).exists():
            return None  # a duplicate collection task (fast path + sweeper) came second
        if attempt is None:
            number = (Payment.objects.filter(invoice=locked).aggregate(last=Max("attempt"))["last"] or 0) + 1
            method = default_payment_method(customer=locked.customer)
            attempt = Payment.objects.create(
                invoice=locked,
                customer=locked.customer,
                payment_method=method if method is not None and method.chargeable else None,
                method=method.kind if method is not None and method.chargeable else Payment.Method.CARD,
                gateway=method.gateway if method is not None and method.chargeable else "",
                amount=locked.amount_remaining,
                currency=locked.currency,
                attempt=number,
                idempotency_key=_attempt_key(locked.pk, number),
                attempted_at=at,
            )
            if attempt.payment_method is None:
                # Nothing to charge with: a failed attempt, and dunning waits for a method.
                attempt.status = Payment.Status.FAILED
                attempt.decline_code = NO_PAYMENT_METHOD
                attempt.failure_message = "The customer has no payment method that can be charged."
                attempt.save(update_fields=["status", "decline_code", "failure_message", "updated_at"])
                _payment_event(attempt, "payment.failed", at, acting_user)
                _after_failure(invoice=locked, payment=attempt, at=at, scheduled_retry=scheduled_retry)
                return attempt
    # A pending attempt is only ever created with a method to charge and its idempotency key.
    assert attempt.payment_method is not None and attempt.idempotency_key is not None
    try:
        result = gateway_for(attempt.gateway, livemode=attempt.customer.livemode).charge(
            token=attempt.payment_method.token,
            amount=attempt.amount,
            currency=attempt.currency,
            idempotency_key=attempt.idempotency_key,
            customer_reference=str(attempt.customer_id),
            description=f"Invoice {invoice.number or invoice.pk}",
        )
    except GatewayError as error:
        result = ChargeResult(
            status="failed",
            reference="",
            amount=attempt.amount,
            currency=attempt.currency,
            decline_code="gateway_error",
            message=str(error)[:300],
        )
    return payment_record_outcome(payment=attempt, result=result, at=at, scheduled_retry=scheduled_retry)


def _retry_still_due(*, invoice: Invoice, at: datetime) -> bool:
    # Read under the invoice's lock: the outcome of a retry moves `next_retry_at` under it too.
    return DunningCase.objects.filter(invoice=invoice, status=DunningCase.Status.ACTIVE, next_retry_at__lte=at).exists()


def payment_record_outcome(
    *,
    payment: Payment,
    result: ChargeResult,
    at: datetime,
    scheduled_retry: bool = False,
    acting_user: ActingUser = None,
) -> Payment:
    """Step 3 of a collection (also reached from gateway webhooks): record what the gateway said."""
    with transaction.atomic():
        invoice = _lock_subscription_then_invoice(payment.invoice_id)
        locked = payment_qs_for_update().get(pk=payment.pk)
        if locked.status not in (Payment.Status.PENDING, Payment.Status.REQUIRES_ACTION):
            return locked  # already recorded: a duplicate webhook, or a retry after the fact
        locked.gateway_reference = result.reference or locked.gateway_reference
        locked.decline_code = result.decline_code
        locked.failure_message = result.message[:300]
        if result.status == "succeeded":
            locked.status = Payment.Status.SUCCEEDED
            locked.settled_at = at
            locked.save()
            applied = _apply_to_invoice(payment=locked, invoice=invoice, at=at, acting_user=acting_user)
            _payment_event(locked, "payment.succeeded", at, acting_user)
            payment_recorded.fire(invoice=invoice, at=at)
            # Last: its journal sequence lock comes after every lock the hooks take (dunning...).
            post_payment_succeeded(payment=locked, applied=applied, fee=result.fee)
        elif result.status == "pending":
            locked.save()  # e.g. SEPA processing: a webhook will settle it
        else:
            already_waiting = locked.status == Payment.Status.REQUIRES_ACTION
            locked.status = (
                Payment.Status.REQUIRES_ACTION if result.status == "requires_action" else Payment.Status.FAILED
            )
            locked.save()
            if not already_waiting:
                _payment_event(
                    locked,
                    "payment.requires_action" if locked.status == Payment.Status.REQUIRES_ACTION else "payment.failed",
                    at,
                    acting_user,
                )
                if locked.status == Payment.Status.REQUIRES_ACTION:
                    _payment_action_required_event(invoice=invoice, payment=locked, at=at)
                _after_failure(invoice=invoice, payment=locked, at=at, scheduled_retry=scheduled_retry)
    return locked


def _payment_action_required_event(*, invoice: Invoice, payment: Payment, at: datetime) -> None:
    """Stripe's `invoice.payment_action_required` (3-D Secure): the customer must act on the invoice."""
    event_record(
        type="invoice.payment_action_required",
        object_type="invoice",
        object_id=invoice.pk,
        customer_id=invoice.customer_id,
        occurred_at=at,
        data={
            "invoice": invoice.pk,
            "number": invoice.number,
            "subscription": invoice.subscription_id,
            "payment": payment.pk,
            "amount_due": invoice.amount_remaining,
            "currency": invoice.currency,
            # Where the customer completes the payment: the portal's page for the invoice.
            "hosted_invoice_url": settings.TARIF_BASE_URL.rstrip("/")
            + reverse("portal:invoice_pay", args=[invoice.pk]),
        },
    )


def _apply_to_invoice(*, payment: Payment, invoice: Invoice, at: datetime, acting_user: ActingUser) -> int:
    """Pay the invoice with the confirmed amount; what it no longer owes becomes customer credit.

    That happens when an old attempt is confirmed late (the customer finished 3-D Secure
    after a retry with another card paid): the money was taken, so it is credited to the
    customer's balance (kind `overpayment`) and used by the next invoices, or refunded.
    """
    owed = invoice.amount_remaining if invoice.status in PAYABLE_STATUSES else 0
    applied = min(payment.amount, owed)
    if applied:
        invoice_record_payment(invoice=invoice, amount=applied, at=at, acting_user=acting_user)
    excess = payment.amount - applied
    if excess:
        balance_transaction_create(
            customer_id=payment.customer_id,
            currency=payment.currency,
            amount=excess,
            kind="overpayment",
            description=f"Payment received after invoice {invoice.number} was settled",
            at=at,
            invoice=invoice,
        )
        _payment_event(payment, "payment.overpaid", at, acting_user, credited_to_balance=excess)
    return applied


def _after_failure(*, invoice: Invoice, payment: Payment, at: datetime, scheduled_retry: bool) -> None:
    payment_failed.fire(invoice=invoice, payment=payment, at=at, scheduled_retry=scheduled_retry)


def payment_record_manual(
    *,
    invoice: Invoice,
    amount: int,
    method: str,
    reference: str = "",
    at: datetime | None = None,
    acting_user: ActingUser = None,
    idempotency_key: str | None = None,
) -> Payment:
    """Finance staff record money received outside a gateway (transfer, cheque, cash...).

    Partial amounts are fine; the invoice is paid once nothing remains. With an
    `idempotency_key` (bank reconciliation derives one from the statement line), a second
    call with the same key returns the first payment and records nothing.
    """
    if method not in MANUAL_METHODS:
        raise PaymentsError(gettext("%(method)r is not a manual payment method.") % {"method": method})
    with transaction.atomic():
        locked = _lock_subscription_then_invoice(invoice.pk)
        if idempotency_key is not None:
            existing = Payment.objects.filter(idempotency_key=idempotency_key).first()
            if existing is not None:
                return existing
        at = at or clock.now(customer=locked.customer)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise PaymentError(
                gettext("A payment is a positive number of minor units, not %(amount)r.") % {"amount": amount}
            )
        accounting_period_check_open(brand_id=locked.brand_id, livemode=locked.customer.livemode, at=at)
        payment = Payment.objects.create(
            invoice=locked,
            customer=locked.customer,
            method=method,
            gateway=MANUAL,
            status=Payment.Status.SUCCEEDED,
            amount=amount,
            currency=locked.currency,
            reference=reference[:100],
            idempotency_key=idempotency_key,
            recorded_by=acting_user if getattr(acting_user, "is_authenticated", False) else None,
            attempted_at=at,
            settled_at=at,
        )
        invoice_record_payment(invoice=locked, amount=amount, at=at, acting_user=acting_user)
        _payment_event(payment, "payment.succeeded", at, acting_user, reference=reference, manual=True)
        payment_recorded.fire(invoice=locked, at=at)
        post_payment_succeeded(payment=payment, applied=amount)
    return payment


def payment_webhook_handle(*, gateway_name: str, payload: bytes, headers: Mapping[str, str]) -> bool:
    """Apply an inbound gateway event once (its id is stored under a unique constraint).

    Returns False for a duplicate. Charge events settle attempts that were waiting
    (authentication, SEPA processing); payment-method events keep display data current
    (card expiry updates), deactivate methods detached at the gateway and save methods
    from completed setups.
    """
    gateway = gateway_for(gateway_name)
    event = gateway.parse_webhook(payload=payload, headers=headers)
    if GatewayEvent.objects.filter(gateway=gateway_name, event_id=event.id).exists():
        return False
    # Calls to the gateway happen with no transaction open (no row lock held while it
    # answers): a completed setup is read from the gateway first, then recorded.
    setup = _setup_from_event(gateway_name=gateway_name, event=event) if event.type == "setup.succeeded" else None
    # Stored and applied in one transaction: a crash while applying leaves no row, so the
    # provider's redelivery is applied instead of being taken for a duplicate.
    with transaction.atomic():
        try:
            with transaction.atomic():
                stored = GatewayEvent.objects.create(
                    gateway=gateway_name, event_id=event.id, type=event.type, payload=dict(event.data)
                )
        except IntegrityError:
            return False
        if event.type in ("charge.succeeded", "charge.failed"):
            _apply_charge_event(gateway_name=gateway_name, reference=event.reference, event=event)
        elif event.type in ("payment_method.updated", "payment_method.detached"):
            _apply_payment_method_event(gateway_name=gateway_name, event=event)
        elif setup is not None:
            _store_setup(setup)
        stored.processed_at = clock.system_now()
        stored.save(update_fields=["processed_at"])
    if hasattr(gateway, "mirror_event"):
        # dj-stripe's mirror may fetch related objects from Stripe: after the commit, best effort.
        gateway.mirror_event(event=event, payload=payload)
    return True


@dataclass(frozen=True, slots=True)
class _CompletedSetup:
    customer: Any
    gateway_name: str
    details: PaymentMethodDetails


def _setup_from_event(*, gateway_name: str, event: Any) -> _CompletedSetup | None:
    """Read the method a `setup.succeeded` event saved (a gateway call: no transaction open)."""
    customer = Customer.objects.filter(pk=int(event.data.get("customer_reference") or 0)).first()
    if customer is None:
        return None
    try:
        gateway = _setup_gateway(gateway_name, livemode=customer.livemode)
        details = gateway.setup_complete(customer_reference=str(customer.pk), setup_reference=event.reference)
    except (GatewayError, PaymentsError):
        # Refused for good (another customer's setup, not succeeded): redelivery would not help.
        logger.warning("setup %s from event %s not saved", event.reference, event.id, exc_info=True)
        return None
    return _CompletedSetup(customer=customer, gateway_name=gateway.name, details=details)


def _store_setup(setup: _CompletedSetup) -> PaymentMethod:
    existing = PaymentMethod.objects.filter(gateway=setup.gateway_name, token=setup.details.token, active=True).first()
    if existing is not None:
        return existing
    return _method_store(
        customer=setup.customer,
        fields=_method_fields(setup.gateway_name, setup.details),
        make_default=False,
        acting_user=None,
    )


def _apply_payment_method_event(*, gateway_name: str, event: Any) -> None:
    method = PaymentMethod.objects.filter(gateway=gateway_name, token=event.reference, active=True).first()
    if method is None:
        return
    if event.type == "payment_method.detached":
        payment_method_detach(payment_method=method, at_gateway=False)
        return
    details = event.data.get("details") or {}
    # A new expiry (the network's card updater) or display data; never the token or the kind.
    changed = {
        name: details[name]
        for name in ("brand", "last4", "exp_month", "exp_year", "wallet", "iban_last4", "mandate_reference")
        if name in details and details[name] not in (None, "") and details[name] != getattr(method, name)
    }
    if changed:
        PaymentMethod.objects.filter(pk=method.pk).update(**changed)
        event_record(
            type="payment_method.updated",
            object_type="payment_method",
            object_id=method.pk,
            customer_id=method.customer_id,
            occurred_at=clock.system_now(),
            data={"changed": sorted(changed), "gateway_event": event.id},
        )


def _apply_charge_event(*, gateway_name: str, reference: str, event: Any) -> None:
    payment = Payment.objects.filter(gateway=gateway_name, gateway_reference=reference).first()
    if payment is None:
        return
    result = ChargeResult(
        status="succeeded" if event.type == "charge.succeeded" else "failed",
        reference=reference,
        amount=payment.amount,
        currency=payment.currency,
        decline_code=str(event.data.get("decline_code", "")),
    )
    if result.status == "failed" and payment.status == Payment.Status.REQUIRES_ACTION:
        # Dunning already counted this failure when the charge asked for action.
        Payment.objects.filter(pk=payment.pk).update(
            status=Payment.Status.FAILED, decline_code=result.decline_code, updated_at=clock.system_now()
        )
        return
    payment_record_outcome(payment=payment, result=result, at=clock.now(customer=payment.customer))
