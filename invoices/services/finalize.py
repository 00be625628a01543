"""Finalization: a draft becomes an issued invoice with a number, frozen for good.

`invoice_finalize` issues one draft (admin, API, subscription changes);
`invoices_issue_bulk` creates and issues many invoices at once with a fixed number
of queries (the billing run). Both apply the same rules:

- totals come from the lines (they must add up, see `docs/billing.md`);
- customer credit (a positive balance) pays as much of the total as it can; a
  negative total is credited to the balance instead and nothing is due;
- the number is the next one of the brand's series, reserved under a row lock, and the
  issue time is taken under that lock too, so number order is date order (see
  `invoices/services/numbering.py`): everything dated (due date, snapshot dates) is
  computed from that instant, in the brand's time zone;
- the seller, buyer and legal mentions are frozen in `issued_snapshot`, and a sha256
  `content_hash` covers number, amounts, lines and snapshot; the invoice is linked into
  its series' keyed hash chain (`chain_previous`, `chain_hash`, invoices/chain.py);
- `amount_due == 0` makes the invoice paid at once;
- an `invoice.finalized` event (and `invoice.paid` when paid) is recorded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Value, When
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext as _

from billing.models import InvoiceItem
from billing.wallets.consumption import PURCHASE_MARK, PlanEntry, credits_plan, credits_record
from config import clock
from config.bulk import allocate_ids, copy_insert, copy_supported
from config.events.log import EventAmendment, EventRow, event_record, events_amend_bulk, events_record_bulk
from config.hooks import Hook
from config.ops.handoffs import Kind, handoff_enqueue_on_commit
from config.types import ActingUser, JsonDict, JsonMapping
from customers.models import Customer
from invoices.calculations import LineInput, TaxGroup, compute_invoice_totals, credit_split
from invoices.errors import InvoiceDoesNotReconcile, InvoiceError
from invoices.ledger.postings import invoice_entries_number, post_invoices_finalized
from invoices.locks import customers_lock_balance, invoice_qs_for_update
from invoices.models import BalanceTransaction, Brand, Invoice, InvoiceLine, NumberSequence
from invoices.selectors import NoBrandConfigured, customer_balance, customer_balances_by_currency, standard_tax_rates
from invoices.services.documents import (
    DEFAULT_DAYS_UNTIL_DUE,
    SEND_INVOICE,
    InvoiceContentHasher,
    buyer_snapshot,
    canonical_json,
    custom_fields_by_owner,
    invoice_content_hash,
    legal_mentions,
    line_columns_by_brand,
    local_date,
    seller_in_language,
    seller_snapshot,
)
from invoices.services.drafts import InvoiceDraftError, invoice_build, invoice_fields, invoice_line_objects
from invoices.services.drafts import tax_breakdown_rows as _tax_breakdown_rows
from invoices.services.numbering import (
    customer_numbered_as_test,
    number_series_commit,
    number_series_key,
    number_series_lock,
)
from invoices.services.pdf import documents_render_on_commit
from invoices.services.tax import TaxTable, tax_decision_for
from invoices.states import assert_invoice_transition
from invoices.types import DraftInvoice
from invoices.vat import VatDecision

# Fired once per issued invoice, in the issuing transaction, with `invoices` (a list): billing
# counts the discounted periods and uses up carry-over amounts the invoices' discounts took.
invoices_finalized = Hook("invoices.invoices_finalized", required=True)

Status = Invoice.Status

# Columns finalization writes on an existing draft.
_FINALIZED_FIELDS = [
    "number",
    "status",
    "subtotal",
    "discount_total",
    "tax_total",
    "total_excluding_tax",
    "total",
    "tax_breakdown",
    "starting_balance_applied",
    "credits_applied",
    "amount_due",
    "amount_remaining",
    "finalized_at",
    "due_at",
    "paid_at",
    "issued_snapshot",
    "content_hash",
    "chain_previous",
    "chain_hash",
    "updated_at",
]


def _check_aware(at: datetime | None, *, what: str = "at") -> None:
    if at is None or at.tzinfo is None:
        raise InvoiceError(
            f"`{what}` must be an aware datetime (UTC in the database), got {at!r}."
        )  # untranslated: programmer error / internal invariant


def days_until_due(*, custom_fields: JsonMapping) -> int:
    days = custom_fields.get("days_until_due")
    return DEFAULT_DAYS_UNTIL_DUE if days is None else int(days)


def due_at_for(*, at: datetime, collection_method: str, days: int) -> datetime:
    """send_invoice: `days` after issue; charge_automatically: due on issue."""
    return at + timedelta(days=days) if collection_method == SEND_INVOICE else at


def issued_snapshot(
    *,
    seller: JsonDict,
    buyer: JsonDict,
    brand: Brand,
    language: str,
    vat_mention_key: str | None,
    collection_method: str,
    days: int,
    at: datetime,
    due_at: datetime,
    discounts: Iterable[JsonDict] | None = (),
) -> JsonDict:
    due_date = local_date(due_at, brand.timezone)
    return {
        "seller": seller_in_language(seller, brand=brand, language=language),
        "buyer": buyer,
        "language": language,
        "issue_date": local_date(at, brand.timezone).isoformat(),
        "due_date": due_date.isoformat(),
        "collection_method": collection_method,
        "days_until_due": days if collection_method == SEND_INVOICE else 0,
        "vat_mention": vat_mention_key,
        "discounts": list(discounts or ()),
        "mentions": legal_mentions(
            brand=brand,
            language=language,
            vat_mention_key=vat_mention_key,
            collection_method=collection_method,
            days_until_due=days,
            due_date=due_date,
        ),
    }


@dataclass(frozen=True, slots=True)
class _Totals:
    subtotal: int
    discount_total: int
    tax_total: int
    total: int
    total_excluding_tax: int
    tax_breakdown: tuple[TaxGroup, ...]


def totals_of_lines(*, currency: str, lines: Sequence[InvoiceLine]) -> tuple[_Totals, tuple[int, ...]]:
    """The one rule for a draft's totals from its lines (saved or not): each line taxed with
    `invoices.calculations` on its amount after discount; the total adds the exclusive tax.
    Returns the totals and each line's tax share, in the lines' order. The console's draft editor
    stores them; finalization re-checks stored drafts against them. Raises CalculationError."""
    recomputed = compute_invoice_totals(
        currency=currency,
        lines=[
            LineInput(
                amount=line.amount - line.discount_amount,
                tax_rate=line.tax_rate,
                tax_category=line.tax_category,
                tax_inclusive=line.tax_inclusive,
                discountable=False,
                exemption_reason_code=line.tax_exemption_reason_code,
                exemption_reason=line.tax_exemption_reason,
            )
            for line in lines
        ],
    )
    subtotal = sum(line.amount for line in lines)
    discount_total = sum(line.discount_amount for line in lines)
    exclusive_tax = sum(group.tax_amount for group in recomputed.tax_breakdown if not group.inclusive)
    total = subtotal - discount_total + exclusive_tax
    totals = _Totals(
        subtotal=subtotal,
        discount_total=discount_total,
        tax_total=recomputed.tax_total,
        total=total,
        total_excluding_tax=total - recomputed.tax_total,
        tax_breakdown=recomputed.tax_breakdown,
    )
    return totals, tuple(line.tax_amount for line in recomputed.lines)


def invoice_totals_from_lines(*, invoice: Invoice, lines: Sequence[InvoiceLine]) -> _Totals:
    """Totals of a draft from its stored lines, or InvoiceDoesNotReconcile.

    The tax is recomputed with `invoices.calculations` on each line's amount after
    discount, so a line whose tax share, or an invoice whose totals, differ from what
    the rules give is refused rather than issued.
    """
    try:
        totals, line_taxes = totals_of_lines(currency=invoice.currency, lines=lines)
    except ValueError as error:
        raise InvoiceDoesNotReconcile(
            gettext("Draft invoice #%(pk)s has a line that cannot be taxed: %(error)s")
            % {"pk": invoice.pk, "error": error}
        ) from error
    problems = []
    for line, tax_amount in zip(lines, line_taxes, strict=True):
        label = f"line {line.position + 1} ({line.description})"
        if not 0 <= line.discount_amount <= max(line.amount, 0):
            problems.append(f"{label} has a discount of {line.discount_amount} on an amount of {line.amount}")
        if line.tax_amount != tax_amount:
            problems.append(f"{label} carries {line.tax_amount} of tax but its tax group gives {tax_amount}")
    for name in ("subtotal", "discount_total", "tax_total", "total", "total_excluding_tax"):
        stored, expected = getattr(invoice, name), getattr(totals, name)
        if stored != expected:
            problems.append(f"its {name.replace('_', ' ')} is {stored} but its lines give {expected}")
    if problems:
        raise InvoiceDoesNotReconcile(
            gettext("Draft invoice #%(pk)s does not add up: %(problems)s. Rebuild the draft before issuing it.")
            % {"pk": invoice.pk, "problems": "; ".join(problems)}
        )
    return totals


def _balance_transaction(*, invoice: Invoice, applied: int, at: datetime) -> BalanceTransaction:
    with translation.override(invoice.language):
        if applied > 0:
            description = _("Applied to invoice %(number)s") % {"number": invoice.number}
        else:
            description = _("Credit from invoice %(number)s (negative total)") % {"number": invoice.number}
    return BalanceTransaction(
        customer_id=invoice.customer_id,
        currency=invoice.currency,
        amount=-applied,
        kind=BalanceTransaction.Kind.APPLIED_TO_INVOICE,
        description=description,
        invoice=invoice,
        created_at=at,
    )


def _event_data(invoice: Invoice) -> dict[str, Any]:
    return {
        "number": invoice.number,
        "status": invoice.status,
        "currency": invoice.currency,
        "total": invoice.total,
        "amount_due": invoice.amount_due,
        "subscription_id": invoice.subscription_id,
        "credits_applied": invoice.credits_applied,
    }


@transaction.atomic(savepoint=False)
def invoice_finalize(*, invoice: Invoice, at: datetime | None = None, acting_user: ActingUser = None) -> Invoice:
    """Issue a draft invoice: number, frozen snapshot, customer credit, hash chain, events.

    The issue time is read from the billing clock (the customer's test clock included)
    once the number sequence is locked, so number order is date order. `at`: an issue
    time the caller read itself (tests, imports); it is honoured, but moved up to the
    series' last issue when a concurrent finalization overtook it, and refused when it
    would backdate the invoice (`invoices/services/numbering.py`).

    Locks (in order): the customer (its balance), the invoice, the number sequence.
    Raises InvalidInvoiceTransition unless the invoice is a draft, and
    InvoiceDoesNotReconcile when its lines do not add up to its totals.
    """
    if at is not None:
        _check_aware(at)
    customers_lock_balance(customer_ids=[invoice.customer_id])
    locked_customer_id = invoice.customer_id
    invoice = invoice_qs_for_update().select_related("brand", "customer").get(pk=invoice.pk)
    assert_invoice_transition(invoice, Status.OPEN)
    customer = invoice.customer
    if customer.pk != locked_customer_id:
        # The draft moved to another customer since the caller loaded it.
        customers_lock_balance(customer_ids=[customer.pk])
    brand = invoice.brand
    lines = list(invoice.lines.order_by("position", "pk"))
    totals = invoice_totals_from_lines(invoice=invoice, lines=lines)

    # Prepaid credits first (wallets: docs/billing.md "Prepaid credits"), then the customer balance.
    credit_plan = credits_plan(
        entries=[
            PlanEntry(
                customer_id=customer.pk,
                currency=invoice.currency,
                at=at or clock.now(customer=customer),
                lines=lines,
                total=totals.total,
                usable=PURCHASE_MARK not in invoice.custom_fields,
            )
        ]
    )
    credits = credit_plan.applied(0)
    applied = credit_split(
        total=totals.total - credits,
        balance=customer_balance(customer_id=customer.pk, currency=invoice.currency),
    )
    amount_due = totals.total - credits - applied
    days = days_until_due(custom_fields=invoice.custom_fields)
    # As late as possible: the sequence lock serializes the brand's finalizations until commit.
    series = number_series_lock(
        brand=brand,
        kind=NumberSequence.Kind.INVOICE,
        at=at,
        test_mode=customer_numbered_as_test(customer),
        now=lambda: clock.now(customer=customer),
    )
    at = series.issued_at
    due_at = due_at_for(at=at, collection_method=invoice.collection_method, days=days)

    invoice.subtotal = totals.subtotal
    invoice.discount_total = totals.discount_total
    invoice.tax_total = totals.tax_total
    invoice.total = totals.total
    invoice.total_excluding_tax = totals.total_excluding_tax
    invoice.tax_breakdown = _tax_breakdown_rows(totals.tax_breakdown)
    invoice.starting_balance_applied = applied
    invoice.credits_applied = credits
    invoice.amount_due = amount_due
    invoice.amount_remaining = amount_due
    invoice.finalized_at = at
    invoice.due_at = due_at
    invoice.issued_snapshot = issued_snapshot(
        seller=seller_snapshot(brand),
        buyer=buyer_snapshot(customer),
        brand=brand,
        language=invoice.language,
        vat_mention_key=invoice.custom_fields.get("vat_mention"),
        collection_method=invoice.collection_method,
        days=days,
        at=at,
        due_at=due_at,
        discounts=invoice.custom_fields.get("discounts"),
    )
    [invoice.number] = series.numbers(1)
    if amount_due == 0:
        assert_invoice_transition(invoice, Status.PAID)
        invoice.status = Status.PAID
        invoice.paid_at = at
    else:
        invoice.status = Status.OPEN
    invoice.content_hash = invoice_content_hash(invoice=invoice, lines=lines)
    [(invoice.chain_previous, invoice.chain_hash)] = number_series_commit(
        series=series, content_hashes=[invoice.content_hash]
    )
    invoice.save(update_fields=_FINALIZED_FIELDS)

    if applied:
        _balance_transaction(invoice=invoice, applied=applied, at=at).save()
    if credits:
        credits_record(plan=credit_plan, invoice_ids=[invoice.pk])
    invoices_finalized.fire(invoices=[invoice])
    post_invoices_finalized(invoices=[invoice], lines=lines)  # last: the journal lock follows the hooks
    data = _event_data(invoice)
    event_record(
        type="invoice.finalized",
        object_type="invoice",
        object_id=invoice.pk,
        customer_id=customer.pk,
        occurred_at=at,
        data=data,
        acting_user=acting_user,
    )
    if invoice.status == Status.PAID:
        event_record(
            type="invoice.paid",
            object_type="invoice",
            object_id=invoice.pk,
            customer_id=customer.pk,
            occurred_at=at,
            data=data,
            acting_user=acting_user,
        )
    # Collection: charge-automatically invoices are handed to billing's collection task
    # (dunning's `invoices_collect`) after this transaction commits; it skips anything not due.
    if invoice.status == Status.OPEN and invoice.collection_method == "charge_automatically":
        collection_enqueue(invoice_ids=[invoice.pk])
    # The PDF (Factur-X) is rendered by a Celery task after commit, never inline.
    documents_render_on_commit(invoice_ids=[invoice.pk])
    return invoice


def collection_enqueue(*, invoice_ids: Iterable[int]) -> None:
    """Hand these invoices to collection: durably in this transaction, and queue one task
    that charges them once it commits (the fast path).

    Called by the billing run once per chunk and by `invoice_finalize`. The task
    ("billing.collect_invoices": billing's dunning, `invoices_collect`) charges only open
    charge-automatically invoices with something due. A crash before the task is queued
    leaves the hand-off rows, which the sweeper re-enqueues (config/ops/handoffs.py).
    Finalizing never imports billing's payments: collection reacts to this hand-off.
    """
    ids = [int(pk) for pk in invoice_ids]
    if not ids or not settings.TARIF_COLLECT_ON_ISSUE:
        return
    handoff_enqueue_on_commit(kind=Kind.COLLECT_INVOICE, object_ids=ids)


# -- bulk ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    invoice: Invoice
    lines: list[InvoiceLine]
    brand: Brand
    issued_at: datetime  # the caller's time until the series is locked, then the issue instant
    item_ids: list[int]
    days: int
    sender: dict[str, Any]
    buyer: dict[str, Any]
    vat_mention_key: str | None
    snapshot_json: str = ""  # canonical JSON of the snapshot: hashed, and stored as is on PostgreSQL
    hasher: InvoiceContentHasher | None = None  # the content hash but the number (set when dated)
    balance_transaction: BalanceTransaction | None = None  # names the invoice: re-written once numbered
    redated: bool = False  # moved to the series' last issue under the lock: its snapshot is written again


def _brands_for(customers: Sequence[Customer]) -> tuple[dict[int, Brand], Brand | None]:
    brand_ids = {customer.brand_id for customer in customers if customer.brand_id is not None}
    need_default = any(customer.brand_id is None for customer in customers)
    query = Brand.objects.filter(pk__in=brand_ids)
    if need_default:
        query = query | Brand.objects.filter(is_default=True)
    brands = {brand.pk: brand for brand in query}
    default = next((brand for brand in brands.values() if brand.is_default), None)
    return brands, default


@transaction.atomic(savepoint=False)
def invoices_issue_bulk(
    *,
    items: Sequence[tuple[DraftInvoice, Customer]],
    at: datetime | None,
    rates: Mapping[str, Decimal] | None = None,
    balances: Mapping[tuple[int, str], int] | None = None,
    numbering: BulkNumbering | None = None,
) -> list[int]:
    """Create AND finalize one invoice per (draft, customer); return their ids in order.

    A fixed number of queries per call, whatever len(items): lock the customers, read
    their balances, load the brands, reserve each brand's numbers in one go, insert
    invoices, lines and balance transactions, attach the invoice items, record the
    events. `at` is the issue date; None issues each invoice at its draft's
    period_start (test clocks). `rates`: `standard_tax_rates()`, read once by the
    caller for many calls.

    `balances` is accepted for callers written against an earlier signature and is not
    used: a balance read before the customers are locked may already be spent by a
    concurrent transaction, so the balances are read here, under the lock (one query).

    The number series are locked last, only to number what was inserted
    (`invoices_number_bulk`): at the end of this call, or, when `numbering` is given, when
    the caller numbers it at the end of its transaction (the billing run's chunk). Until
    then the invoices are drafts without a number that only this transaction sees.
    """
    del balances  # see the docstring
    if not items:
        return []
    if at is not None:
        _check_aware(at)
    rates = standard_tax_rates() if rates is None else rates
    customers = [customer for _, customer in items]
    customers_lock_balance(customer_ids=[customer.pk for customer in customers])
    available = customer_balances_by_currency(customer_ids={customer.pk for customer in customers})
    brands, default_brand = _brands_for(customers)

    decisions: dict[tuple[Any, ...], Any] = {}
    # Tax codes of the chunk's prices: one query here, the codes' rates at most two more.
    tax_table = TaxTable.load(price_ids=[line.price_id for draft, _ in items for line in draft.lines], rates=rates)
    line_decisions: dict[tuple[object, ...], VatDecision] = {}
    # Custom fields and line columns printed on the invoices: two queries per call.
    brand_fields, buyer_fields = custom_fields_by_owner(
        brand_ids=list(brands), customer_ids={customer.pk for customer in customers}
    )
    columns = line_columns_by_brand(brand_ids=list(brands))
    sellers = {
        brand.pk: seller_snapshot(
            brand, custom_fields=brand_fields.get(brand.pk, []), line_columns=columns.get(brand.pk, [])
        )
        for brand in brands.values()
    }
    pending: list[_Pending] = []
    previews = []
    for draft, customer in items:
        brand = brands.get(customer.brand_id) if customer.brand_id is not None else default_brand
        if brand is None:
            raise NoBrandConfigured(
                gettext("Customer #%(pk)s has no brand and there is no default brand.") % {"pk": customer.pk}
            )
        issued_at = at if at is not None else draft.period_start
        _check_aware(issued_at, what="at (or the draft's period_start)")
        assert issued_at is not None  # _check_aware refused None
        tax_id = customer.tax_id if customer.is_business else ""
        decision_key = (brand.pk, str(customer.country), tax_id)
        decision = decisions.get(decision_key)
        if decision is None:
            decision = decisions[decision_key] = tax_decision_for(brand=brand, customer=customer, rates=rates)
        preview = invoice_build(
            customer=customer,
            draft=draft,
            brand=brand,
            decision=decision,
            balance=0,
            tax_table=tax_table,
            decision_cache=line_decisions,
        )
        previews.append((preview, invoice_line_objects(preview=preview), issued_at))
    # Prepaid credits first (one query locks the chunk's usable grants), then the customer balance.
    credit_plan = credits_plan(
        entries=[
            PlanEntry(
                customer_id=customer.pk, currency=draft.currency, at=issued_at, lines=lines, total=preview.totals.total
            )
            for (draft, customer), (preview, lines, issued_at) in zip(items, previews, strict=True)
        ]
    )
    for index, ((draft, customer), (preview, lines, issued_at)) in enumerate(zip(items, previews, strict=True)):
        brand = brands.get(customer.brand_id) if customer.brand_id is not None else default_brand
        assert brand is not None  # refused above
        credits = credit_plan.applied(index)
        total = preview.totals.total - credits
        balance_key = (customer.pk, draft.currency)
        applied = credit_split(total=total, balance=available.get(balance_key, 0))
        available[balance_key] = available.get(balance_key, 0) - applied
        amount_due = total - applied

        fields = invoice_fields(draft=draft, preview=preview, language=customer.preferred_language)
        fields.update(
            starting_balance_applied=applied,
            credits_applied=credits,
            amount_due=amount_due,
            amount_remaining=amount_due,
        )
        fields["status"] = Status.PAID if amount_due == 0 else Status.OPEN
        pending.append(
            _Pending(
                invoice=Invoice(**fields),
                lines=lines,
                brand=brand,
                issued_at=issued_at,
                item_ids=[line.invoice_item_id for line in draft.lines if line.invoice_item_id is not None],
                days=days_until_due(custom_fields=fields["custom_fields"]),
                sender=sellers[brand.pk],
                buyer=buyer_snapshot(customer, custom_fields=buyer_fields.get(customer.pk, [])),
                vat_mention_key=preview.vat_mention_key,
            )
        )

    for entry in pending:
        # Dated with the caller's instant for now: numbering moves it up only when the series'
        # last issue is later (rare: a concurrent finalization dated after it).
        _date_issued(entry)
    invoices = [entry.invoice for entry in pending]
    _insert_unnumbered(pending)

    transactions = []
    for entry in pending:
        if entry.invoice.starting_balance_applied:
            entry.balance_transaction = _balance_transaction(
                invoice=entry.invoice,
                applied=entry.invoice.starting_balance_applied,
                at=cast(datetime, entry.invoice.finalized_at),  # dated above
            )
            transactions.append(entry.balance_transaction)
    if transactions and copy_supported():
        for transaction_row, pk in zip(
            transactions, allocate_ids(model=BalanceTransaction, count=len(transactions)), strict=True
        ):
            transaction_row.pk = pk
        copy_insert(model=BalanceTransaction, objs=transactions, with_pk=True)
    elif transactions:
        BalanceTransaction.objects.bulk_create(transactions)

    livemode_of = {customer.pk: customer.livemode for customer in customers}
    credits_record(plan=credit_plan, invoice_ids=[invoice.pk for invoice in invoices], livemode_of=livemode_of)

    invoice_of_item = {item_id: entry.invoice.pk for entry in pending for item_id in entry.item_ids}
    if invoice_of_item:
        attached = InvoiceItem.objects.filter(pk__in=list(invoice_of_item), invoice__isnull=True).update(
            invoice_id=Case(
                *(When(pk=item_id, then=Value(invoice_id)) for item_id, invoice_id in invoice_of_item.items())
            )
        )
        if attached != len(invoice_of_item):
            raise InvoiceDraftError(gettext("A pending invoice item was already invoiced; the chunk was not issued."))

    events = []
    for invoice in invoices:
        data = _event_data(invoice)  # "number" is null until numbering sets it (same transaction)
        for event_type in _EVENT_TYPES[invoice.status]:
            events.append(
                EventRow(
                    type=event_type,
                    object_type="invoice",
                    object_id=invoice.pk,
                    customer_id=invoice.customer_id,
                    occurred_at=cast(datetime, invoice.finalized_at),  # dated above
                    data=data,
                    livemode=livemode_of[invoice.customer_id],
                )
            )
    events_record_bulk(rows=events)
    invoices_finalized.fire(invoices=invoices)
    # The sales entries, before the series lock (their numbers are filled in under it): last,
    # the accounting periods' share locks follow the hooks' locks.
    post_invoices_finalized(invoices=invoices, lines=_lines_of(pending), unnumbered=True)
    # Only ENQUEUE the PDFs: one task for the whole chunk, after commit (issue #5).
    documents_render_on_commit(invoice_ids=[invoice.pk for invoice in invoices], bulk=True)

    batch = BulkNumbering(entries=pending, simulated={c.pk for c in customers if customer_numbered_as_test(c)})
    if numbering is None:
        invoices_number_bulk(numbering=batch)
    else:
        numbering.extend(batch)
    return [invoice.pk for invoice in invoices]


_EVENT_TYPES: dict[str, tuple[str, ...]] = {
    Status.PAID: ("invoice.finalized", "invoice.paid"),
    Status.OPEN: ("invoice.finalized",),
}


@dataclass(slots=True)
class BulkNumbering:
    """Invoices inserted by `invoices_issue_bulk` in this transaction, waiting for their numbers.

    They are stored as drafts without a number, seen by nobody else until the transaction
    commits; `invoices_number_bulk` numbers them at the end of it. A caller that does more
    work after the bulk issue (the billing run's chunk) passes one to `invoices_issue_bulk`
    and numbers it just before committing, so the series lock is held only for numbering.
    A caller that rolls back a savepoint around a bulk issue must drop what it added (the
    billing run collects each savepoint's issue in a fresh one and `extend`s on success).
    """

    entries: list[_Pending] = field(default_factory=list)
    simulated: set[int] = field(default_factory=set)  # customers numbered in the TEST- series

    def extend(self, other: BulkNumbering) -> None:
        self.entries += other.entries
        self.simulated |= other.simulated


# Measurements only (bench/billing_run.py): fired with phase="requested" when the numbering
# asks for its first series lock and phase="locked" once it holds it. Nothing in the product
# connects to it (firing a hook without receivers costs a function call).
number_lock_timing = Hook("invoices.number_lock_timing")


@transaction.atomic(savepoint=False)
def invoices_number_bulk(*, numbering: BulkNumbering) -> int:
    """Number the invoices of `numbering`: the short critical section of the bulk issue.

    Locks each series (brand, scope) in order, dates each invoice no earlier than its
    series' last issue (number order is date order), takes the numbers, finishes the content
    hashes and chain links in Python, then writes them with one set-based UPDATE of the
    invoices (drafts -> open/paid), one of their events' payloads and one of the balance
    transactions that name them; the ledger postings follow (they carry the numbers).
    Everything is undone with the transaction: the numbers go back to the series, no gap.
    Returns how many invoices were numbered.
    """
    entries = numbering.entries
    if not entries:
        return 0
    series: dict[tuple[int, str], list[_Pending]] = defaultdict(list)
    for entry in entries:
        key = number_series_key(
            brand=entry.brand,
            kind=NumberSequence.Kind.INVOICE,
            at=entry.issued_at,
            test_mode=entry.invoice.customer_id in numbering.simulated,
        )
        series[(entry.brand.pk, key.scope)].append(entry)
    _check_deferred_constraints()
    number_lock_timing.fire(phase="requested")
    locked_first = True
    for (_brand_id, _scope), in_series in sorted(series.items()):
        in_series.sort(key=lambda entry: (entry.issued_at, entry.invoice.pk))
        locked = number_series_lock(
            brand=in_series[0].brand,
            kind=NumberSequence.Kind.INVOICE,
            at=in_series[0].issued_at,
            test_mode=in_series[0].invoice.customer_id in numbering.simulated,
        )
        if locked_first:
            number_lock_timing.fire(phase="locked")
            locked_first = False
        for entry, number in zip(in_series, locked.numbers(len(in_series)), strict=True):
            if entry.issued_at < locked.issued_at:
                entry.issued_at = locked.issued_at
                _date_issued(entry)  # re-dated: its snapshot and hash inputs change too
                entry.redated = True
            entry.invoice.number = number
            assert entry.hasher is not None  # set by _date_issued
            entry.invoice.content_hash = entry.hasher.for_number(number)
        links = number_series_commit(
            series=locked,
            content_hashes=[entry.invoice.content_hash for entry in in_series],
            issued_at=in_series[-1].issued_at,
        )
        for entry, (previous, link) in zip(in_series, links, strict=True):
            entry.invoice.chain_previous, entry.invoice.chain_hash = previous, link
    _write_numbers(entries)
    invoice_entries_number(
        invoices=[entry.invoice for entry in entries], redated={entry.invoice.pk for entry in entries if entry.redated}
    )
    return len(entries)


def _check_deferred_constraints() -> None:
    """Run the checks deferred to the commit now, before the number series is locked.

    Everything the transaction wrote so far queued its deferred checks (the foreign keys of
    the COPYed invoices, lines, events and balance rows, the ledger entries' balance
    triggers): thousands per chunk, which would otherwise run at the COMMIT, under the lock.
    `SET CONSTRAINTS ALL IMMEDIATE` runs them here; `DEFERRED` then defers what follows
    again. Every deferrable constraint and constraint trigger of the schema is initially
    deferred (Django's foreign keys, the ledger's balance triggers; a test holds it), so
    `ALL DEFERRED` restores their own mode. PostgreSQL only (SQLite checks immediately).
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def _date_issued(entry: _Pending) -> None:
    """The fields of a bulk-issued invoice that follow from its issue instant, and what its
    content hash needs but the number."""
    invoice, at = entry.invoice, entry.issued_at
    invoice.finalized_at = at
    invoice.due_at = due_at_for(at=at, collection_method=invoice.collection_method, days=entry.days)
    invoice.paid_at = at if invoice.status == Status.PAID else None
    invoice.issued_snapshot = issued_snapshot(
        seller=entry.sender,
        buyer=entry.buyer,
        brand=entry.brand,
        language=invoice.language,
        vat_mention_key=entry.vat_mention_key,
        collection_method=invoice.collection_method,
        days=entry.days,
        at=at,
        due_at=invoice.due_at,
        discounts=invoice.custom_fields["discounts"],
    )
    entry.snapshot_json = canonical_json(invoice.issued_snapshot)
    entry.hasher = InvoiceContentHasher(invoice=invoice, lines=entry.lines, snapshot_json=entry.snapshot_json)


def _insert_unnumbered(pending: Sequence[_Pending]) -> None:
    """Insert the invoices as drafts without a number (their lines with them), dated and
    totalled as they will be issued: `invoices_number_bulk` numbers them before the commit.

    PostgreSQL: the invoice ids are drawn first, then COPY of the lines and the invoices.
    The line trigger accepts lines of a draft (and of an invoice not inserted yet; the line's
    foreign key is deferred to commit). Elsewhere: bulk_create.
    """
    invoices = [entry.invoice for entry in pending]
    statuses = [invoice.status for invoice in invoices]
    for invoice in invoices:
        invoice.status = Status.DRAFT
    try:
        if copy_supported():
            for invoice, pk in zip(invoices, allocate_ids(model=Invoice, count=len(invoices)), strict=True):
                invoice.pk = pk
            copy_insert(model=InvoiceLine, objs=_lines_of(pending), with_pk=False)
            copy_insert(
                model=Invoice,
                objs=invoices,
                with_pk=True,
                json_texts={"issued_snapshot": [entry.snapshot_json for entry in pending]},
            )
        else:
            Invoice.objects.bulk_create(invoices)
            InvoiceLine.objects.bulk_create(_lines_of(pending))
    finally:
        for invoice, status in zip(invoices, statuses, strict=True):
            invoice.status = status


# One UPDATE of the chunk's invoices from arrays (unnest): drafts become open/paid with their
# number, hashes and chain links. It leaves the dates alone: naming `finalized_at` would fire
# the closed-period trigger (three lookups) for every row, under the lock.
_NUMBER_INVOICES_SQL = """
UPDATE invoices_invoice AS invoice
SET number = numbered.number, status = numbered.status, content_hash = numbered.content_hash,
    chain_previous = numbered.chain_previous, chain_hash = numbered.chain_hash
FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
    AS numbered(id, number, status, content_hash, chain_previous, chain_hash)
WHERE invoice.id = numbered.id AND invoice.status = 'draft' AND invoice.number IS NULL
"""

# Re-dated invoices only (rare), before the UPDATE above (a draft's dates may change): their
# dates and snapshot.
_REDATE_INVOICES_SQL = """
UPDATE invoices_invoice AS invoice
SET finalized_at = redated.finalized_at, due_at = redated.due_at, paid_at = redated.paid_at,
    issued_snapshot = redated.snapshot::jsonb
FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[], %s::text[])
    AS redated(id, finalized_at, due_at, paid_at, snapshot)
WHERE invoice.id = redated.id AND invoice.status = 'draft' AND invoice.number IS NULL
"""

_NUMBER_BALANCE_SQL = """
UPDATE invoices_balancetransaction AS row
SET description = numbered.description, created_at = numbered.created_at
FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS numbered(id, description, created_at)
WHERE row.id = numbered.id
"""


def _write_numbers(entries: Sequence[_Pending]) -> None:
    """Write the numbers (and what follows from them) of numbered entries: a fixed number of
    statements whatever their count."""
    invoices = [entry.invoice for entry in entries]
    transactions: list[BalanceTransaction] = []
    for entry in entries:
        if entry.balance_transaction is not None:
            fresh = _balance_transaction(
                invoice=entry.invoice,
                applied=entry.invoice.starting_balance_applied,
                at=cast(datetime, entry.invoice.finalized_at),
            )
            entry.balance_transaction.description = fresh.description
            entry.balance_transaction.created_at = fresh.created_at
            transactions.append(entry.balance_transaction)
    amendments = [
        EventAmendment(
            object_id=str(invoice.pk),
            types=_EVENT_TYPES[invoice.status],
            data={"number": invoice.number},
            occurred_at=cast(datetime, invoice.finalized_at),
        )
        for invoice in invoices
    ]
    if copy_supported():
        redated = [entry for entry in entries if entry.redated]
        with connection.cursor() as cursor:
            if redated:
                cursor.execute(
                    _REDATE_INVOICES_SQL,
                    [
                        [entry.invoice.pk for entry in redated],
                        [entry.invoice.finalized_at for entry in redated],
                        [entry.invoice.due_at for entry in redated],
                        [entry.invoice.paid_at for entry in redated],
                        [entry.snapshot_json for entry in redated],
                    ],
                )
            cursor.execute(
                _NUMBER_INVOICES_SQL,
                [
                    [invoice.pk for invoice in invoices],
                    [invoice.number for invoice in invoices],
                    [str(invoice.status) for invoice in invoices],
                    [invoice.content_hash for invoice in invoices],
                    [invoice.chain_previous for invoice in invoices],
                    [invoice.chain_hash for invoice in invoices],
                ],
            )
            numbered = cursor.rowcount
            if transactions:
                cursor.execute(
                    _NUMBER_BALANCE_SQL,
                    [
                        [row.pk for row in transactions],
                        [row.description for row in transactions],
                        [row.created_at for row in transactions],
                    ],
                )
    else:
        numbered = 0
        for invoice in invoices:
            numbered += Invoice.objects.filter(pk=invoice.pk, status=Status.DRAFT, number__isnull=True).update(
                number=invoice.number,
                status=invoice.status,
                finalized_at=invoice.finalized_at,
                due_at=invoice.due_at,
                paid_at=invoice.paid_at,
                content_hash=invoice.content_hash,
                chain_previous=invoice.chain_previous,
                chain_hash=invoice.chain_hash,
                issued_snapshot=invoice.issued_snapshot,
            )
        for row in transactions:
            BalanceTransaction.objects.filter(pk=row.pk).update(description=row.description, created_at=row.created_at)
    if numbered != len(invoices):
        raise InvoiceError(  # untranslated: programmer error / internal invariant
            f"Numbering found {numbered} of {len(invoices)} unnumbered invoices of this transaction: "
            "the chunk was not issued."
        )
    amended = events_amend_bulk(object_type="invoice", amendments=amendments)
    if amended != sum(len(amendment.types) for amendment in amendments):
        raise InvoiceError(
            f"Numbering found {amended} events of the chunk's invoices: the chunk was not issued."
        )  # untranslated: programmer error / internal invariant


def _lines_of(pending: Sequence[_Pending]) -> list[InvoiceLine]:
    lines: list[InvoiceLine] = []
    for entry in pending:
        for line in entry.lines:
            line.invoice_id = entry.invoice.pk
        lines += entry.lines
    return lines
