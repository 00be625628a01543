"""The customer balance: credit a customer holds, per currency, as a ledger.

Sign convention: a positive `BalanceTransaction.amount` gives the customer credit
(adjustment, credit note, unused time, overpayment, voided invoice); a negative one
uses it (applied to an invoice, manual debit). The balance is the sum and never goes
negative: Tarif does not lend, and debts are invoices, not balance.

Every movement locks the customer row first (invoices/locks.py), so two
transactions never spend the same credit.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils.translation import gettext as _

from config.events.log import event_record
from config.money import CurrencyError, validate_currency
from config.types import ActingUser
from customers.models import Customer
from invoices.errors import InsufficientBalance, InvoiceError
from invoices.ledger.postings import post_balance_transaction
from invoices.locks import customers_lock_balance
from invoices.models import BalanceTransaction, CreditNote, Invoice
from invoices.selectors import customer_balance

Kind = BalanceTransaction.Kind


@transaction.atomic(savepoint=False)
def balance_transaction_create(
    *,
    customer_id: int,
    currency: str,
    amount: int,
    kind: str,
    description: str,
    at: datetime,
    invoice: Invoice | None = None,
    credit_note: CreditNote | None = None,
) -> BalanceTransaction:
    """Append one movement to a customer's balance (locks the customer).

    For other services too: proration credits (kind `proration_credit`), overpayments
    (`overpayment`). Refuses a zero amount and a debit larger than the balance.
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
        raise InvoiceError(
            _("A balance movement is a non-zero number of minor units, not %(amount)s.") % {"amount": amount},
            code="invalid_amount",
        )
    if kind not in Kind.values:
        raise InvoiceError(
            f"Unknown balance transaction kind {kind!r}; expected one of {', '.join(Kind.values)}."
        )  # untranslated: programmer error (kinds and instants come from code)
    if at is None or at.tzinfo is None:
        raise InvoiceError(
            f"`at` must be an aware datetime (UTC in the database), got {at!r}."
        )  # untranslated: programmer error (kinds and instants come from code)
    try:
        currency = validate_currency(currency)
    except CurrencyError as error:
        raise InvoiceError(str(error)) from error
    customers_lock_balance(customer_ids=[customer_id])
    if amount < 0:
        balance = customer_balance(customer_id=customer_id, currency=currency)
        if balance + amount < 0:
            raise InsufficientBalance(
                _(
                    "The customer holds %(balance)s %(currency)s of credit: a debit of %(debit)s would make the "
                    "balance negative."
                )
                % {"balance": balance, "currency": currency, "debit": -amount}
            )
    return BalanceTransaction.objects.create(
        customer_id=customer_id,
        currency=currency,
        amount=amount,
        kind=kind,
        description=description[:300],
        invoice=invoice,
        credit_note=credit_note,
        created_at=at,
    )


@transaction.atomic(savepoint=False)
def balance_adjust(
    *, customer: Customer, currency: str, amount: int, description: str, at: datetime, acting_user: ActingUser = None
) -> BalanceTransaction:
    """A manual credit (amount > 0) or debit (amount < 0) of the customer's balance.

    The next invoices use the credit automatically. A debit cannot exceed the credit.
    """
    if not description or not description.strip():
        raise InvoiceError(
            _("Say why the balance is adjusted: the description is shown to the customer."), code="description_required"
        )
    entry = balance_transaction_create(
        customer_id=customer.pk,
        currency=currency,
        amount=amount,
        kind=Kind.ADJUSTMENT,
        description=description.strip(),
        at=at,
    )
    post_balance_transaction(entry=entry)
    event_record(
        type="customer.balance_transaction.created",
        object_type="balance_transaction",
        object_id=entry.pk,
        customer_id=customer.pk,
        occurred_at=at,
        data={
            "kind": entry.kind,
            "amount": entry.amount,
            "currency": entry.currency,
            "description": entry.description,
            "balance": customer_balance(customer_id=customer.pk, currency=entry.currency),
        },
        acting_user=acting_user,
    )
    return entry
