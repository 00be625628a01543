"""Bank transfer reconciliation: match statement credit lines with open invoices.

A line is matched to a customer by the ISO 11649 reference Tarif gives each customer
(`bank_transfer_reference`, found anywhere in the remittance text, spaces and case
ignored, check digits verified with python-stdnum), or else by an invoice number in the
text. The money then pays that customer's open invoices in the line's currency: the
quoted invoice first, then the oldest; what is left over becomes customer credit
(balance kind `overpayment`). Everything else stays `unmatched`, with the reason, for
finance staff to match by hand or ignore.

Each payment goes through `payment_record_manual` with an idempotency key derived from
the line's fingerprint, and the line's status changes in the same transaction, under the
line's row lock: a second run, a retried task or two concurrent imports never pay twice.

Lock order (the billing run's): subscription -> customer -> invoice -> payment, the
statement line coming last, in the payment's place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _
from stdnum import iso11649

from billing.locks import bank_statement_line_qs_for_update, subscription_qs_for_update
from billing.models import BankStatement, BankStatementLine, Payment
from billing.services.payments import payment_record_manual
from config import clock
from config.errors import DomainError
from config.events.log import event_record
from config.types import ActingUser
from customers.models import Customer
from invoices.ledger.postings import post_balance_transaction
from invoices.locks import customers_lock_balance, invoice_qs_for_update
from invoices.models import Invoice
from invoices.services.balance import balance_transaction_create
from invoices.states import PAYABLE_STATUSES

Status = BankStatementLine.Status

# Tarif's own creditor references: RF + 2 check digits + TARIF + the customer id on 8 digits.
_TARIF_REFERENCE = re.compile(r"RF\d{2}TARIF\d{8}")
_INVOICE_NUMBER_TOKEN = re.compile(r"[A-Z0-9][A-Z0-9/_.-]*[A-Z0-9]")


class ReconciliationError(DomainError):
    """A match Tarif refuses (the message says why, for the operator)."""

    code = "reconciliation_refused"


@dataclass(frozen=True, slots=True)
class Identification:
    customer_id: int | None
    invoice_id: int | None
    reason: str  # why no customer was found (empty when one was)


def reference_customer_id(*, text: str) -> tuple[int | None, str]:
    """The customer id in the first valid Tarif reference of `text`, and the first invalid one seen."""
    compact = re.sub(r"[^0-9A-Z]", "", text.upper())
    invalid = ""
    for found in _TARIF_REFERENCE.finditer(compact):
        candidate = found.group(0)
        if iso11649.is_valid(candidate):
            return int(candidate[9:]), ""
        invalid = invalid or candidate
    return None, invalid


def line_identify(*, text: str) -> Identification:
    """Who paid, from a line's remittance text: the RF reference first, an invoice number second."""
    customer_id, invalid = reference_customer_id(text=text)
    if customer_id is not None and not Customer.objects.filter(pk=customer_id).exists():
        reference = _format_reference(text, customer_id)
        return Identification(None, None, _("The reference %(reference)s is no customer's.") % {"reference": reference})
    tokens = {token for token in _INVOICE_NUMBER_TOKEN.findall(text.upper()) if len(token) >= 4}
    invoices = list(
        Invoice.objects.filter(number__in=tokens).exclude(number=None).order_by("pk").values_list("pk", "customer_id")
    )
    if customer_id is not None:
        quoted = next((pk for pk, owner in invoices if owner == customer_id), None)
        return Identification(customer_id, quoted, "")
    owners = {owner for _, owner in invoices}
    if len(owners) == 1:
        return Identification(owners.pop(), invoices[0][0], "")
    if len(owners) > 1:
        return Identification(None, None, _("The text quotes invoices of several customers."))
    if invalid:
        return Identification(
            None, None, _("The reference %(reference)s has wrong check digits (mistyped?).") % {"reference": invalid}
        )
    return Identification(None, None, _("No payment reference and no invoice number in the text."))


def _format_reference(text: str, customer_id: int) -> str:
    compact = re.sub(r"[^0-9A-Z]", "", text.upper())
    found = _TARIF_REFERENCE.search(compact)
    return found.group(0) if found else str(customer_id)


def bank_line_match(*, line: BankStatementLine, acting_user: ActingUser = None) -> BankStatementLine:
    """Match one unmatched credit line automatically; a line in any other status is left alone."""
    if line.status != Status.UNMATCHED:
        return line
    found = line_identify(text=line.remittance_info)
    if found.customer_id is None:
        return _leave_unmatched(line=line, reason=found.reason)
    return _settle(
        line=line,
        customer_id=found.customer_id,
        invoice_id=found.invoice_id,
        mode="auto",
        acting_user=acting_user,
    )


def bank_line_match_invoice(
    *, line: BankStatementLine, invoice: Invoice, acting_user: ActingUser = None
) -> BankStatementLine:
    """Finance staff match a line by hand to an open invoice; any excess becomes customer credit."""
    if invoice.currency != line.currency:
        raise ReconciliationError(
            _("The line is in %(line)s and invoice %(number)s in %(invoice)s: match it to an invoice in %(line)s.")
            % {"line": line.currency, "number": invoice.number, "invoice": invoice.currency}
        )
    return _settle(
        line=line, customer_id=invoice.customer_id, invoice_id=invoice.pk, mode="invoice", acting_user=acting_user
    )


def bank_line_credit_customer(
    *, line: BankStatementLine, customer: Customer, acting_user: ActingUser = None
) -> BankStatementLine:
    """Finance staff credit a line's whole amount to a customer's balance (used by the next invoices)."""
    return _settle(line=line, customer_id=customer.pk, invoice_id=None, mode="balance", acting_user=acting_user)


def bank_line_ignore(*, line: BankStatementLine, reason: str, acting_user: ActingUser = None) -> BankStatementLine:
    """Set a line aside (not a customer payment: interest, a refund from a supplier...), saying why."""
    reason = (reason or "").strip()
    if not reason:
        raise ReconciliationError(_("Say why the line is ignored."))
    with transaction.atomic():
        locked = bank_statement_line_qs_for_update().get(pk=line.pk)
        if locked.status != Status.UNMATCHED:
            raise ReconciliationError(
                _("Only an unmatched line can be ignored; this one is %(status)s.")
                % {"status": locked.get_status_display()}
            )
        locked.status = Status.IGNORED
        locked.status_reason = reason[:300]
        locked.matched_by = _user(acting_user)
        locked.matched_at = clock.system_now()
        locked.save(update_fields=["status", "status_reason", "matched_by", "matched_at"])
        _line_event(locked, "bank_transfer.ignored", acting_user, reason=locked.status_reason)
    return locked


def bank_line_reopen(*, line: BankStatementLine, acting_user: ActingUser = None) -> BankStatementLine:
    """Put an ignored line back among the unmatched ones."""
    with transaction.atomic():
        locked = bank_statement_line_qs_for_update().get(pk=line.pk)
        if locked.status != Status.IGNORED:
            raise ReconciliationError(_("Only an ignored line can be reopened."))
        locked.status = Status.UNMATCHED
        locked.status_reason = ""
        locked.matched_by = None
        locked.matched_at = None
        locked.save(update_fields=["status", "status_reason", "matched_by", "matched_at"])
        _line_event(locked, "bank_transfer.reopened", acting_user)
    return locked


def bank_statement_reconcile(*, statement: BankStatement, acting_user: ActingUser = None) -> dict[str, int]:
    """Try the statement's unmatched lines again (e.g. after the invoice they pay was issued).

    Safe to run any number of times, concurrently too: each line is matched at most once.
    Returns the number of lines per status afterwards.
    """
    for line in statement.lines.filter(status=Status.UNMATCHED).order_by("sequence"):
        bank_line_match(line=line, acting_user=acting_user)
    counts = {status: 0 for status in Status.values}
    for status in statement.lines.values_list("status", flat=True):
        counts[status] += 1
    return counts


def _user(acting_user: ActingUser) -> Any:
    return acting_user if getattr(acting_user, "is_authenticated", False) else None


def _leave_unmatched(*, line: BankStatementLine, reason: str, customer_id: int | None = None) -> BankStatementLine:
    BankStatementLine.objects.filter(pk=line.pk, status=Status.UNMATCHED).update(
        status_reason=reason[:300], customer_id=customer_id
    )
    line.refresh_from_db()
    return line


def _open_invoice_ids(customer_id: int) -> list[int]:
    return list(
        Invoice.objects.filter(customer_id=customer_id, status__in=PAYABLE_STATUSES, amount_remaining__gt=0)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _settle(
    *, line: BankStatementLine, customer_id: int, invoice_id: int | None, mode: str, acting_user: ActingUser
) -> BankStatementLine:
    """Pay invoices with the line's money (mode `auto`, `invoice` or `balance`) under the locks."""
    if mode == "balance":
        candidates: list[int] = []
    elif mode == "invoice":
        candidates = [invoice_id] if invoice_id is not None else []
    else:
        candidates = _open_invoice_ids(customer_id)
    with transaction.atomic():
        subscription_ids = (
            Invoice.objects.filter(pk__in=candidates, subscription__isnull=False)
            .values_list("subscription_id", flat=True)
            .distinct()
        )
        list(subscription_qs_for_update().filter(pk__in=list(subscription_ids)).values_list("pk", flat=True))
        customers_lock_balance(customer_ids=[customer_id])
        invoices = list(invoice_qs_for_update().filter(pk__in=candidates))
        locked = bank_statement_line_qs_for_update().get(pk=line.pk)
        if locked.status != Status.UNMATCHED:
            if mode == "auto":
                return locked  # matched meanwhile (another import, a retried task): nothing to do
            raise ReconciliationError(_("This line is already %(status)s.") % {"status": locked.get_status_display()})
        customer = Customer.objects.get(pk=customer_id)
        payable = [
            invoice for invoice in invoices if invoice.status in PAYABLE_STATUSES and invoice.amount_remaining > 0
        ]
        usable = [invoice for invoice in payable if invoice.currency == locked.currency]
        if mode == "invoice" and not usable:
            raise ReconciliationError(_("This invoice is not open: it takes no payment."))
        if mode == "auto" and not usable and (payable or customer.currency != locked.currency):
            currencies = sorted({invoice.currency for invoice in payable} or {customer.currency})
            return _leave_unmatched(
                line=locked,
                customer_id=customer_id,
                reason=_("The line is in %(line)s but %(customer)s is invoiced in %(currencies)s.")
                % {"line": locked.currency, "customer": customer, "currencies": ", ".join(currencies)},
            )
        usable.sort(
            key=lambda invoice: (invoice.pk != invoice_id, invoice.finalized_at or invoice.created_at, invoice.pk)
        )
        at = clock.now(customer=customer)
        remaining = locked.amount
        payments: list[Payment] = []
        left_open = False
        last_invoice = None
        for invoice in usable:
            if remaining == 0:
                break
            applied = min(remaining, invoice.amount_remaining)
            payments.append(
                payment_record_manual(
                    invoice=invoice,
                    amount=applied,
                    method=Payment.Method.BANK_TRANSFER,
                    reference=(locked.entry_reference or locked.remittance_info)[:100],
                    at=at,
                    acting_user=acting_user,
                    idempotency_key=f"bank:{locked.fingerprint[:48]}:{invoice.pk}",
                )
            )
            left_open = applied < invoice.amount_remaining
            last_invoice = invoice
            remaining -= applied
        if remaining:
            locked.balance_transaction = balance_transaction_create(
                customer_id=customer_id,
                currency=locked.currency,
                amount=remaining,
                kind="overpayment",
                description=_("Bank transfer of %(date)s: more than the open invoices") % {"date": locked.booking_date}
                if payments
                else _("Bank transfer of %(date)s credited to the balance") % {"date": locked.booking_date},
                at=at,
                invoice=last_invoice,
            )
            post_balance_transaction(entry=locked.balance_transaction)
        locked.amount_credited = remaining
        if mode != "auto":
            locked.status = Status.MANUALLY_MATCHED
        else:
            locked.status = Status.PARTIALLY_MATCHED if left_open else Status.MATCHED
        locked.customer = customer
        locked.status_reason = ""
        locked.matched_by = _user(acting_user)
        locked.matched_at = clock.system_now()
        locked.save()
        locked.payments.add(*payments)
        _line_event(
            locked,
            "bank_transfer.matched",
            acting_user,
            payments=[payment.pk for payment in payments],
            invoices=[payment.invoice_id for payment in payments],
            credited_to_balance=remaining,
            manual=mode != "auto",
        )
    return locked


def _line_event(line: BankStatementLine, type: str, acting_user: ActingUser, **data: Any) -> None:
    event_record(
        type=type,
        object_type="bank_statement_line",
        object_id=line.pk,
        customer_id=line.customer_id,
        occurred_at=clock.system_now(),
        data={
            "statement": line.statement_id,
            "amount": line.amount,
            "currency": line.currency,
            "status": line.status,
            "booking_date": line.booking_date,
            **data,
        },
        acting_user=acting_user,
    )
