"""Dunning: retry failed collections on a schedule, then take the final action.

- The first failure of an invoice opens a `DunningCase`: the subscription goes
  `past_due`, and retries are scheduled TARIF_DUNNING_SCHEDULE_DAYS after that first
  failure (default 1, 3, 5 and 7 days), in the customer's clock (test clocks too).
- Each scheduled retry is an ordinary collection attempt (billing.services.payments);
  a new default payment method retries at once, outside the schedule.
- After the last retry fails, TARIF_DUNNING_FINAL_ACTION: `cancel` the subscription,
  mark it `unpaid`, or mark the invoice `uncollectible` (the subscription returns to
  active: the debt is written off, the service goes on).
- Send-invoice invoices are not charged: when they pass their due date unpaid a case
  opens the same way, and its steps are reminders (events) instead of charges.
  Charge-automatically invoices of a customer without a chargeable method (nothing was
  attempted) open a case an hour after finalization; its steps try to charge, and fail
  with `no_payment_method` until the customer adds one.
- A payment that settles the invoice closes the case as recovered; a past-due or
  unpaid subscription with no other case open becomes active again.

Every step appends a domain event (`dunning.*`); notifications come from them later.

Dunning is the only caller of collection (`payments.invoice_collect`): the collection at
issue (`invoices_collect`, run by the hand-off task), the schedule's retries, a new
method's retry and "pay now" (`dunning_collect_invoice`: console, portal, API). Payments
cannot import this module back, so it reports each outcome through the `payment_failed`
and `payment_recorded` hooks, which `dunning_register` connects at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from billing.locks import dunning_case_qs_for_update, invoice_lock_with_owners
from billing.models import DunningCase, Payment, Subscription, TestClock
from billing.services.payments import default_payment_method, invoice_collect, payment_failed, payment_recorded
from billing.services.subscriptions import subscription_transition
from billing.states import can_transition
from config import clock
from config.events.log import event_record
from config.ops.handoffs import Kind, handoffs_complete
from config.types import ActingUser
from invoices.models import Invoice
from invoices.services.lifecycle import invoice_mark_uncollectible
from invoices.states import PAYABLE_STATUSES

logger = logging.getLogger(__name__)

FINAL_ACTIONS = ("cancel", "unpaid", "uncollectible")
SEND_INVOICE = "send_invoice"
CHARGE_AUTOMATICALLY = "charge_automatically"
CHARGE_GRACE = timedelta(hours=1)


class DunningConfigurationError(Exception):
    pass


def schedule_days() -> list[int]:
    days = [int(day) for day in getattr(settings, "TARIF_DUNNING_SCHEDULE_DAYS", [1, 3, 5, 7])]
    if any(day < 0 for day in days) or days != sorted(days):
        raise DunningConfigurationError("TARIF_DUNNING_SCHEDULE_DAYS must be increasing days, e.g. 1,3,5,7.")
    return days


def final_action() -> str:
    action = getattr(settings, "TARIF_DUNNING_FINAL_ACTION", "cancel")
    if action not in FINAL_ACTIONS:
        raise DunningConfigurationError(f"TARIF_DUNNING_FINAL_ACTION must be one of {', '.join(FINAL_ACTIONS)}.")
    return action


def _event(case: DunningCase, type: str, at: datetime, acting_user: ActingUser = None, **data: Any) -> None:
    event_record(
        type=type,
        object_type="dunning_case",
        object_id=case.pk,
        customer_id=case.customer_id,
        occurred_at=at,
        data={
            "invoice": case.invoice_id,
            "status": case.status,
            "retries_done": case.retries_done,
            "next_retry_at": case.next_retry_at,
            **data,
        },
        acting_user=acting_user,
    )


def _subscription_to(invoice: Invoice, status: str, at: datetime, reason: str) -> None:
    if invoice.subscription_id is None:
        return
    subscription = Subscription.objects.get(pk=invoice.subscription_id)
    if subscription.status != status and can_transition(subscription.status, status):
        subscription_transition(subscription=subscription, to_status=status, at=at, reason=reason)


def _next_retry(case: DunningCase) -> datetime | None:
    if case.retries_done >= len(case.schedule_days):
        return None
    return case.started_at + timedelta(days=case.schedule_days[case.retries_done])


@transaction.atomic(savepoint=False)
def dunning_open(*, invoice: Invoice, at: datetime, reason: str, decline_code: str = "") -> DunningCase:
    """Open the invoice's case (idempotent): subscription past due, first retry scheduled."""
    case = dunning_case_qs_for_update().filter(invoice=invoice).first()
    if case is not None:
        return case
    case = DunningCase(invoice=invoice, customer_id=invoice.customer_id, schedule_days=schedule_days(), started_at=at)
    case.next_retry_at = _next_retry(case)
    case.save()
    _subscription_to(invoice, Subscription.Status.PAST_DUE, at, reason="payment_failed")
    _event(case, "dunning.started", at, reason=reason, decline_code=decline_code)
    if case.next_retry_at is None:
        _finish(case=case, invoice=invoice, at=at)
    return case


@transaction.atomic(savepoint=False)
def dunning_on_failure(
    *, invoice: Invoice, payment: Payment, at: datetime, scheduled_retry: bool = False
) -> DunningCase:
    """A collection attempt of `invoice` failed (or needs the customer's action)."""
    case = dunning_case_qs_for_update().filter(invoice=invoice).first()
    if case is None:
        return dunning_open(invoice=invoice, at=at, reason="payment_failed", decline_code=payment.decline_code)
    if case.status != DunningCase.Status.ACTIVE:
        return case
    if scheduled_retry:
        case.retries_done += 1
    case.next_retry_at = _next_retry(case)
    case.save(update_fields=["retries_done", "next_retry_at"])
    _event(case, "dunning.retry_failed", at, payment=payment.pk, decline_code=payment.decline_code)
    if case.next_retry_at is None:
        _finish(case=case, invoice=invoice, at=at)
    return case


def _finish(*, case: DunningCase, invoice: Invoice, at: datetime) -> None:
    action = final_action()
    if action == "cancel":
        _subscription_to(invoice, Subscription.Status.CANCELED, at, reason="dunning_exhausted")
    elif action == "unpaid":
        _subscription_to(invoice, Subscription.Status.UNPAID, at, reason="dunning_exhausted")
    else:
        if invoice.status == Invoice.Status.OPEN:
            invoice_mark_uncollectible(invoice=invoice, at=at, automatic=True)
        if not _other_cases_open(case):
            _subscription_to(invoice, Subscription.Status.ACTIVE, at, reason="invoice_written_off")
    case.status = DunningCase.Status.EXHAUSTED
    case.final_action = action
    case.next_retry_at = None
    case.closed_at = at
    case.save(update_fields=["status", "final_action", "next_retry_at", "closed_at"])
    _event(case, "dunning.exhausted", at, final_action=action)


def _other_cases_open(case: DunningCase) -> bool:
    if case.invoice.subscription_id is None:
        return False
    return (
        DunningCase.objects.filter(
            invoice__subscription_id=case.invoice.subscription_id,
            status=DunningCase.Status.ACTIVE,
        )
        .exclude(pk=case.pk)
        .exists()
    )


@transaction.atomic(savepoint=False)
def dunning_on_payment(*, invoice: Invoice, at: datetime) -> DunningCase | None:
    """A payment was recorded: when the invoice is settled, the case is recovered."""
    invoice.refresh_from_db(fields=["status", "amount_remaining"])
    if invoice.status != Invoice.Status.PAID:
        return None
    case = dunning_case_qs_for_update().filter(invoice=invoice).first()
    if case is None or case.status == DunningCase.Status.RECOVERED:
        return case
    case.status = DunningCase.Status.RECOVERED
    case.next_retry_at = None
    case.closed_at = at
    case.save(update_fields=["status", "next_retry_at", "closed_at"])
    if not _other_cases_open(case):
        _subscription_to(invoice, Subscription.Status.ACTIVE, at, reason="payment_recovered")
    _event(case, "dunning.recovered", at)
    return case


def _clock_filter(test_clock: TestClock | None) -> dict[str, Any]:
    return {"customer__test_clock": test_clock} if test_clock else {"customer__test_clock__isnull": True}


def _open_overdue(*, as_of: datetime, test_clock: TestClock | None) -> int:
    """Open cases for overdue invoices nobody tried to charge: send-invoice ones past their
    terms, and charge-automatically ones whose customer had no method to charge."""
    overdue = (
        Invoice.objects.filter(
            status=Invoice.Status.OPEN,
            amount_remaining__gt=0,
            dunning__isnull=True,
            payments__isnull=True,
            **_clock_filter(test_clock),
        )
        .filter(
            Q(collection_method=SEND_INVOICE, due_at__lte=as_of)
            # the grace leaves the collection task queued at finalization time to run first
            | Q(collection_method=CHARGE_AUTOMATICALLY, due_at__lte=as_of - CHARGE_GRACE)
        )
        .order_by("pk")
    )
    opened = 0
    for invoice in overdue:
        with transaction.atomic():
            # Locked in the one order before the case is opened (it moves the subscription),
            # then checked again: a payment may have settled the invoice since the query.
            locked = invoice_lock_with_owners(invoice.pk)
            if locked.status != Invoice.Status.OPEN or locked.amount_remaining <= 0 or locked.due_at is None:
                continue
            dunning_open(invoice=locked, at=locked.due_at, reason="invoice_overdue")
        opened += 1
    return opened


def _remind(*, case: DunningCase, at: datetime) -> None:
    """A step of a send-invoice case: nothing to charge, the customer is reminded."""
    with transaction.atomic():
        # The one order: subscription, customer, invoice, then the case (its last step may
        # move the subscription, which must never be locked after the case).
        invoice = invoice_lock_with_owners(case.invoice_id)
        locked = dunning_case_qs_for_update().get(pk=case.pk)
        locked.invoice = invoice
        if locked.status != DunningCase.Status.ACTIVE:
            return
        locked.retries_done += 1
        locked.next_retry_at = _next_retry(locked)
        locked.save(update_fields=["retries_done", "next_retry_at"])
        _event(locked, "dunning.reminder", at)
        if locked.next_retry_at is None:
            _finish(case=locked, invoice=locked.invoice, at=at)


def dunning_run_due(*, as_of: datetime | None = None, test_clock: TestClock | None = None) -> int:
    """Run every retry due by `as_of` (real customers, or one test clock's customers).

    Call it after advancing a test clock, with the clock's new time: retries happen at
    their scheduled simulated instants, one after the other, until none is due.
    Returns the number of steps taken.
    """
    as_of = as_of or (test_clock.frozen_time if test_clock else clock.system_now())
    steps = _open_overdue(as_of=as_of, test_clock=test_clock)
    seen_steps: set[tuple[int, datetime | None]] = set()
    while True:
        due = list(
            DunningCase.objects.filter(
                status=DunningCase.Status.ACTIVE, next_retry_at__lte=as_of, **_clock_filter(test_clock)
            )
            .select_related("invoice")
            .order_by("next_retry_at", "pk")[:500]
        )
        due = [case for case in due if (case.pk, case.next_retry_at) not in seen_steps]
        if not due:
            return steps
        for case in due:
            seen_steps.add((case.pk, case.next_retry_at))
            assert case.next_retry_at is not None  # the query filtered on next_retry_at__lte
            at = case.next_retry_at if test_clock is not None else as_of
            invoice = case.invoice
            if invoice.status not in PAYABLE_STATUSES or invoice.amount_remaining <= 0:
                DunningCase.objects.filter(pk=case.pk).update(
                    status=DunningCase.Status.CLOSED, next_retry_at=None, closed_at=at
                )
                continue
            if invoice.collection_method == SEND_INVOICE:
                _remind(case=case, at=at)
            else:
                invoice_collect(invoice=invoice, at=at, scheduled_retry=True)
            steps += 1


def dunning_retry_customer(*, customer_id: int, acting_user: ActingUser = None) -> int:
    """Retry now every invoice of the customer in dunning (a new payment method came in)."""
    cases = DunningCase.objects.filter(customer_id=customer_id, status=DunningCase.Status.ACTIVE).select_related(
        "invoice"
    )
    retried = 0
    for case in cases.order_by("pk"):
        if case.invoice.collection_method != SEND_INVOICE and invoice_collect(
            invoice=case.invoice, acting_user=acting_user
        ):
            retried += 1
    return retried


def dunning_collect_invoice(*, invoice: Invoice, acting_user: ActingUser = None) -> Payment | None:
    """Charge what remains due on `invoice` now (the console's retry, the portal's and the
    API's "pay"): one attempt outside the schedule; a failure enters or continues dunning."""
    return invoice_collect(invoice=invoice, acting_user=acting_user)


def invoices_collect(*, invoice_ids: Iterable[int]) -> int:
    """Charge freshly finalized charge-automatically invoices (one billing-run chunk).

    Customers without a chargeable default method are skipped (no attempt). Safe to run
    twice: an invoice that already had an attempt is dunning's business, except a
    `pending` one (a crash after the gateway call), which is resumed.
    """
    invoice_ids = [int(pk) for pk in invoice_ids]
    charged = 0
    failed: set[int] = set()
    invoices = (
        Invoice.objects.filter(pk__in=invoice_ids, collection_method=CHARGE_AUTOMATICALLY, status=Invoice.Status.OPEN)
        .select_related("customer")
        .order_by("pk")
    )
    for invoice in invoices:
        if invoice.amount_remaining <= 0:
            continue
        if Payment.objects.filter(invoice=invoice).exclude(status=Payment.Status.PENDING).exists():
            continue
        method = default_payment_method(customer=invoice.customer)
        if method is None or not method.chargeable:
            # Nothing to charge with: the invoice waits; dunning opens a case for it once
            # it is overdue (billing.services.dunning), and a new method retries it.
            continue
        # A test-clock customer is charged at the simulated instant the invoice was issued.
        at = invoice.finalized_at if invoice.customer.test_clock_id is not None else None
        try:
            if invoice_collect(invoice=invoice, at=at, first_attempt_only=True) is not None:
                charged += 1
        except Exception:  # one bad invoice must not stop the chunk; its hand-off stays pending
            logger.exception("collection of invoice %s failed", invoice.pk)
            failed.add(invoice.pk)
    handoffs_complete(kind=Kind.COLLECT_INVOICE, object_ids=[pk for pk in invoice_ids if pk not in failed])
    return charged


def dunning_register() -> None:
    """Connect dunning to the payment outcomes (called once by BillingConfig.ready())."""
    payment_failed.connect(dunning_on_failure)
    payment_recorded.connect(dunning_on_payment)
