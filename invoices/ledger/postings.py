"""The posting rules: which lines each money movement writes (docs/accounting.md, "Postings").

Each `post_*` function is called by the service that moves the money, inside its
transaction, in one line. Accounts are named by role (`Role`) and resolved through the
brand's mappings (product, tax code, VAT rate, payment method, brand default).

The table of movements and their lines is in docs/accounting.md ("Postings").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import cast
from zoneinfo import ZoneInfo

from django.apps import apps
from django.utils.translation import gettext as _

from config import clock
from invoices.ledger.errors import LedgerError
from invoices.ledger.fx import functional_amount_at
from invoices.ledger.models import Journal, JournalEntry, RevenueSchedule, Role
from invoices.ledger.services import (
    AccountKey,
    AccountResolver,
    EntryDraft,
    entries_post,
    entry_reverse,
    ledger_enabled,
)
from invoices.models import BalanceTransaction, Brand, CreditNote, Invoice, InvoiceLine

# The wallets' mark on a credit-purchase invoice (billing.wallets.consumption.PURCHASE_MARK).
PURCHASE_MARK = "credit_grant_purchase"
MANUAL_GATEWAY = "manual"

_brand_zones: dict[int, ZoneInfo] = {}


def _zone(brand_id: int) -> ZoneInfo:
    if brand_id not in _brand_zones:
        name = Brand.objects.filter(pk=brand_id).values_list("timezone", flat=True).first() or "Europe/Paris"
        _brand_zones[brand_id] = ZoneInfo(name)
    return _brand_zones[brand_id]


def local_day(moment: datetime | None, brand_id: int) -> date:
    """The accounting date of an instant: its day in the brand's time zone."""
    moment = moment or clock.system_now()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(_zone(brand_id)).date()


def _customer_livemode(customer_ids: Iterable[int]) -> dict[int, bool]:
    Customer = apps.get_model("customers", "Customer")
    return dict(Customer.objects.filter(pk__in=set(customer_ids)).values_list("pk", "livemode"))


def _product_ids(price_ids: Iterable[int | None]) -> dict[int, int]:
    Price = apps.get_model("billing", "Price")
    ids = {pk for pk in price_ids if pk is not None}
    return dict(Price.objects.filter(pk__in=ids).values_list("pk", "product_id")) if ids else {}


def line_net(line: InvoiceLine) -> int:
    """Revenue of a line: after discount, excluding tax (the reports' LINE_NET_SQL)."""
    return line.amount - line.discount_amount - (line.tax_amount if line.tax_inclusive else 0)


def is_deferred(line: InvoiceLine) -> bool:
    """Billed in advance for a service period: revenue waits in 487 until recognised."""
    return line.kind == InvoiceLine.Kind.SUBSCRIPTION and line.period_start is not None


def _revenue_role(invoice: Invoice, line: InvoiceLine) -> str:
    if PURCHASE_MARK in (invoice.custom_fields or {}):
        return Role.PREPAID_CREDITS
    if is_deferred(line):
        return Role.DEFERRED_REVENUE
    return Role.REVENUE_SERVICES


def _invoice_draft(
    invoice: Invoice, lines: Sequence[InvoiceLine], livemode: bool, products: dict[int, int]
) -> tuple[EntryDraft, list[RevenueSchedule]]:
    day = local_day(invoice.finalized_at, invoice.brand_id)
    draft = EntryDraft(
        brand_id=invoice.brand_id,
        livemode=livemode,
        journal=Journal.SALES,
        day=day,
        label=_("Invoice %(number)s") % {"number": invoice.number},
        source_type="invoice",
        source_id=invoice.pk,
        movement="invoice_finalized",
        currency=invoice.currency,
        customer_id=invoice.customer_id,
        document_number=invoice.number or "",
        document_date=day,
    )
    draft.add(AccountKey(Role.RECEIVABLE), invoice.amount_due, side="debit")
    draft.add(AccountKey(Role.ADVANCES), invoice.starting_balance_applied, side="debit")
    draft.add(AccountKey(Role.PREPAID_CREDITS), invoice.credits_applied, side="debit")
    schedules: list[RevenueSchedule] = []
    vat: dict[tuple[Decimal, str, str], int] = defaultdict(int)
    for line in lines:
        role = _revenue_role(invoice, line)
        key = AccountKey(role, product_id=products.get(line.price_id or 0), tax_code=line.tax_code)
        net = line_net(line)
        draft.add(
            key, net, side="credit", label=line.description, tax_rate=line.tax_rate, tax_category=line.tax_category
        )
        if line.tax_amount:
            vat[(line.tax_rate, line.tax_category, line.tax_code)] += line.tax_amount
        if role == Role.DEFERRED_REVENUE and net:
            schedules.append(
                RevenueSchedule(
                    brand_id=invoice.brand_id,
                    livemode=livemode,
                    invoice_id=invoice.pk,
                    invoice_line_id=line.pk,
                    customer_id=invoice.customer_id,
                    currency=invoice.currency,
                    amount=net,
                    service_start=cast(datetime, line.period_start),  # is_deferred: it has one
                    service_end=line.period_end or cast(datetime, line.period_start),
                    created_at=invoice.finalized_at or clock.system_now(),
                    # accounts and functional amount are filled by _save_schedules
                )
            )
            schedules[-1]._product_id = products.get(line.price_id or 0)  # type: ignore[attr-defined]
    for (rate, category, tax_code), amount in sorted(vat.items()):
        draft.add(
            AccountKey(Role.VAT_COLLECTED, vat_rate=rate, tax_code=tax_code),
            amount,
            side="credit",
            label=_("VAT %(rate)s%%") % {"rate": f"{rate.normalize():f}"},
            tax_rate=rate,
            tax_category=category,
        )
    return draft, schedules


def _save_schedules(schedules: list[RevenueSchedule], entries: list[JournalEntry]) -> None:
    """Deferred revenue schedules of the entries just posted (in the entries' functional rate)."""
    if not schedules or not entries:
        return
    rates = {(entry.brand_id, entry.source_id): entry for entry in entries}
    resolvers: dict[int, AccountResolver] = {}
    keep = []
    for schedule in schedules:
        if schedule.brand_id not in resolvers:
            resolvers[schedule.brand_id] = AccountResolver(schedule.brand_id)
        resolver = resolvers[schedule.brand_id]
        product_id = getattr(schedule, "_product_id", None)
        schedule.deferred_account_id = resolver.resolve(AccountKey(Role.DEFERRED_REVENUE, product_id=product_id))
        schedule.revenue_account_id = resolver.resolve(AccountKey(Role.REVENUE_SERVICES, product_id=product_id))
        entry = rates.get((schedule.brand_id, getattr(schedule, "_source_id", 0)))
        if entry is None:
            continue  # its movement was posted before (idempotent re-run)
        schedule.functional_amount = functional_amount_at(
            schedule.amount, entry.rate, schedule.currency, entry.functional_currency
        )
        keep.append(schedule)
    RevenueSchedule.objects.bulk_create(keep, batch_size=5000)


def post_invoices_finalized(*, invoices: Sequence[Invoice], lines: Sequence[InvoiceLine] | None = None) -> int:
    """Sales entries of freshly issued invoices (one or a billing run's chunk: bulk writes)."""
    if not ledger_enabled() or not invoices:
        return 0
    if lines is None:
        lines = list(InvoiceLine.objects.filter(invoice_id__in=[i.pk for i in invoices]).order_by("position", "pk"))
    by_invoice: dict[int, list[InvoiceLine]] = defaultdict(list)
    for line in lines:
        by_invoice[line.invoice_id].append(line)
    modes = _customer_livemode(invoice.customer_id for invoice in invoices)
    products = _product_ids(line.price_id for line in lines)
    drafts, schedules = [], []
    for invoice in invoices:
        draft, invoice_schedules = _invoice_draft(
            invoice, by_invoice[invoice.pk], modes.get(invoice.customer_id, True), products
        )
        for schedule in invoice_schedules:
            schedule._source_id = invoice.pk  # type: ignore[attr-defined]
        drafts.append(draft)
        schedules.extend(invoice_schedules)
    entries = entries_post(drafts=drafts)
    _save_schedules(schedules, [entry for entry in entries if entry.movement == "invoice_finalized"])
    return len(entries)


def post_credit_note_issued(*, credit_note: CreditNote) -> int:
    if not ledger_enabled():
        return 0
    invoice = credit_note.invoice
    livemode = _customer_livemode([credit_note.customer_id]).get(credit_note.customer_id, True)
    day = local_day(credit_note.issued_at, credit_note.brand_id)
    draft = EntryDraft(
        brand_id=credit_note.brand_id,
        livemode=livemode,
        journal=Journal.SALES,
        day=day,
        label=_("Credit note %(number)s") % {"number": credit_note.number},
        source_type="credit_note",
        source_id=credit_note.pk,
        movement="credit_note_issued",
        currency=credit_note.currency,
        customer_id=credit_note.customer_id,
        document_number=credit_note.number,
        document_date=day,
    )
    cn_lines = list(credit_note.lines.select_related("invoice_line").order_by("pk"))
    products = _product_ids(cl.invoice_line.price_id for cl in cn_lines if cl.invoice_line is not None)
    schedules = []
    vat: dict[tuple[Decimal, str], int] = defaultdict(int)
    for cn_line in cn_lines:
        invoice_line = cn_line.invoice_line
        role = _revenue_role(invoice, invoice_line) if invoice_line is not None else Role.REVENUE_SERVICES
        product_id = products.get(invoice_line.price_id or 0) if invoice_line is not None else None
        tax_code = invoice_line.tax_code if invoice_line is not None else ""
        draft.add(
            AccountKey(role, product_id=product_id, tax_code=tax_code),
            cn_line.amount,
            side="debit",
            label=cn_line.description,
            tax_rate=cn_line.tax_rate,
            tax_category=cn_line.tax_category,
        )
        if cn_line.tax_amount:
            vat[(cn_line.tax_rate, cn_line.tax_category)] += cn_line.tax_amount
        if role == Role.DEFERRED_REVENUE and cn_line.amount:
            schedule = RevenueSchedule(
                brand_id=credit_note.brand_id,
                livemode=livemode,
                credit_note_id=credit_note.pk,
                credit_note_line_id=cn_line.pk,
                customer_id=credit_note.customer_id,
                currency=credit_note.currency,
                amount=-cn_line.amount,
                service_start=invoice_line.period_start,
                service_end=invoice_line.period_end or invoice_line.period_start,
                created_at=credit_note.issued_at,
            )
            schedule._product_id = product_id  # type: ignore[attr-defined]
            schedule._source_id = credit_note.pk  # type: ignore[attr-defined]
            schedules.append(schedule)
    for (rate, category), amount in sorted(vat.items()):
        draft.add(
            AccountKey(Role.VAT_COLLECTED, vat_rate=rate),
            amount,
            side="debit",
            label=_("VAT %(rate)s%%") % {"rate": f"{rate.normalize():f}"},
            tax_rate=rate,
            tax_category=category,
        )
    written_off = _written_off(invoice.pk)
    draft.add(
        AccountKey(Role.BAD_DEBTS if written_off else Role.RECEIVABLE), credit_note.reduced_amount_due, side="credit"
    )
    draft.add(AccountKey(Role.RECEIVABLE), credit_note.refunded, side="credit")
    draft.add(AccountKey(Role.ADVANCES), credit_note.credited_to_balance, side="credit")
    entries = entries_post(drafts=[draft])
    _save_schedules(schedules, entries)
    return len(entries)


def _money_account(payment: object) -> AccountKey:
    gateway = getattr(payment, "gateway", "")
    if gateway == MANUAL_GATEWAY:
        return AccountKey(Role.BANK, payment_method=getattr(payment, "method", ""))
    return AccountKey(Role.CLEARING, payment_method=gateway)


def _written_off(invoice_id: int) -> bool:
    return (
        JournalEntry.objects.filter(
            source_type="invoice", source_id=invoice_id, movement="invoice_uncollectible"
        ).exists()
        and not JournalEntry.objects.filter(
            source_type="invoice", source_id=invoice_id, movement="invoice_uncollectible_reversed"
        ).exists()
    )


def post_payment_succeeded(*, payment: object, applied: int, fee: int = 0) -> int:
    """Money received: `applied` pays the invoice, the rest is customer credit; `fee` the gateway kept."""
    if not ledger_enabled():
        return 0
    customer_id = payment.customer_id  # type: ignore[attr-defined]
    invoice = Invoice.objects.only("brand_id", "number").get(pk=payment.invoice_id)  # type: ignore[attr-defined]
    livemode = _customer_livemode([customer_id]).get(customer_id, True)
    day = local_day(payment.settled_at, invoice.brand_id)  # type: ignore[attr-defined]
    common = dict(
        brand_id=invoice.brand_id,
        livemode=livemode,
        journal=Journal.BANK,
        day=day,
        source_type="payment",
        source_id=payment.pk,  # type: ignore[attr-defined]
        currency=payment.currency,  # type: ignore[attr-defined]
        customer_id=customer_id,
        document_number=invoice.number or "",
        document_date=day,
    )
    money = _money_account(payment)
    draft = EntryDraft(
        label=_("Payment for invoice %(number)s") % {"number": invoice.number}, movement="payment_succeeded", **common
    )
    draft.add(money, payment.amount, side="debit")  # type: ignore[attr-defined]
    receivable = Role.BAD_DEBTS if _written_off(invoice.pk) else Role.RECEIVABLE
    draft.add(AccountKey(receivable), applied, side="credit")
    draft.add(AccountKey(Role.ADVANCES), payment.amount - applied, side="credit")  # type: ignore[attr-defined]
    drafts = [draft]
    if fee:
        fee_draft = EntryDraft(
            label=_("Gateway fee on invoice %(number)s") % {"number": invoice.number}, movement="gateway_fee", **common
        )
        fee_draft.add(AccountKey(Role.BANK_FEES), fee, side="debit")
        fee_draft.add(money, fee, side="credit")
        drafts.append(fee_draft)
    return len(entries_post(drafts=drafts))


def post_refund(*, refund: object) -> int:
    """Money sent back (its credit note is posted by credit_note_create)."""
    if not ledger_enabled():
        return 0
    payment = refund.payment  # type: ignore[attr-defined]
    invoice = Invoice.objects.only("brand_id", "number").get(pk=refund.invoice_id)  # type: ignore[attr-defined]
    livemode = _customer_livemode([payment.customer_id]).get(payment.customer_id, True)
    day = local_day(refund.executed_at, invoice.brand_id)  # type: ignore[attr-defined]
    draft = EntryDraft(
        brand_id=invoice.brand_id,
        livemode=livemode,
        journal=Journal.BANK,
        day=day,
        label=_("Refund on invoice %(number)s") % {"number": invoice.number},
        source_type="refund",
        source_id=refund.pk,  # type: ignore[attr-defined]
        movement="refund_executed",
        currency=refund.currency,  # type: ignore[attr-defined]
        customer_id=payment.customer_id,
        document_number=invoice.number or "",
        document_date=day,
    )
    draft.add(AccountKey(Role.RECEIVABLE), refund.amount, side="debit")  # type: ignore[attr-defined]
    draft.add(_money_account(payment), refund.amount, side="credit")  # type: ignore[attr-defined]
    return len(entries_post(drafts=[draft]))


def post_invoice_uncollectible(*, invoice: Invoice, at: datetime) -> int:
    """Write-off: what remains due moves from 411 to 654 (VAT regularisation: by credit note)."""
    if not ledger_enabled() or not invoice.amount_remaining:
        return 0
    livemode = _customer_livemode([invoice.customer_id]).get(invoice.customer_id, True)
    day = local_day(at, invoice.brand_id)
    draft = EntryDraft(
        brand_id=invoice.brand_id,
        livemode=livemode,
        journal=Journal.MISC,
        day=day,
        label=_("Write-off of invoice %(number)s") % {"number": invoice.number},
        source_type="invoice",
        source_id=invoice.pk,
        movement="invoice_uncollectible",
        currency=invoice.currency,
        customer_id=invoice.customer_id,
        document_number=invoice.number or "",
        document_date=local_day(invoice.finalized_at, invoice.brand_id),
    )
    draft.add(AccountKey(Role.BAD_DEBTS), invoice.amount_remaining, side="debit")
    draft.add(AccountKey(Role.RECEIVABLE), invoice.amount_remaining, side="credit")
    return len(entries_post(drafts=[draft]))


def post_invoice_voided(*, invoice: Invoice, at: datetime) -> int:
    """Void: the invoice's sales entry (and its write-off) are reversed; schedules cancelled."""
    if not ledger_enabled():
        return 0
    day = local_day(at, invoice.brand_id)
    posted = 0
    originals = JournalEntry.objects.filter(
        source_type="invoice", source_id=invoice.pk, movement__in=["invoice_finalized", "invoice_uncollectible"]
    )
    for original in originals:
        if original.movement == "invoice_uncollectible" and not _written_off(invoice.pk):
            continue
        reversal = entry_reverse(
            entry=original,
            movement=f"{original.movement}_reversed",
            source_type="invoice",
            source_id=invoice.pk,
            day=day,
        )
        posted += reversal is not None
        if original.movement == "invoice_finalized" and reversal is not None:
            _cancel_schedules(invoice=invoice, at=at, livemode=original.livemode)
    return posted


def _cancel_schedules(*, invoice: Invoice, at: datetime, livemode: bool) -> None:
    """A voided invoice's deferred revenue: negative schedules undo what was, and will be, recognised."""
    negatives = [
        RevenueSchedule(
            brand_id=schedule.brand_id,
            livemode=livemode,
            invoice_id=invoice.pk,
            customer_id=schedule.customer_id,
            currency=schedule.currency,
            revenue_account_id=schedule.revenue_account_id,
            deferred_account_id=schedule.deferred_account_id,
            amount=-schedule.amount,
            functional_amount=-schedule.functional_amount,
            service_start=schedule.service_start,
            service_end=schedule.service_end,
            created_at=at,
        )
        for schedule in RevenueSchedule.objects.filter(invoice_id=invoice.pk, amount__gt=0)
    ]
    RevenueSchedule.objects.bulk_create(negatives)


_BALANCE_COUNTERPARTS = {
    BalanceTransaction.Kind.ADJUSTMENT: (Role.DISCOUNTS, Journal.MISC),
    BalanceTransaction.Kind.PRORATION_CREDIT: (Role.REVENUE_SERVICES, Journal.MISC),
    BalanceTransaction.Kind.OVERPAYMENT: (Role.BANK, Journal.BANK),
}


def post_balance_transaction(*, entry: BalanceTransaction) -> int:
    """A customer balance movement without a document: credit (amount > 0) C 4191, debit D 4191."""
    if not ledger_enabled() or not entry.amount:
        return 0
    try:
        counterpart, journal = _BALANCE_COUNTERPARTS[BalanceTransaction.Kind(entry.kind)]
    except (KeyError, ValueError):
        raise LedgerError(f"Balance movements of kind {entry.kind} are posted with their document.") from None
    Customer = apps.get_model("customers", "Customer")
    customer = Customer.objects.only("livemode").get(pk=entry.customer_id)
    brand_id = _brand_of_customer(entry.customer_id, entry.invoice_id)
    day = local_day(entry.created_at, brand_id)
    draft = EntryDraft(
        brand_id=brand_id,
        livemode=customer.livemode,
        journal=journal,
        day=day,
        label=entry.description or entry.get_kind_display(),
        source_type="balance_transaction",
        source_id=entry.pk,
        movement=f"balance_{entry.kind}",
        currency=entry.currency,
        customer_id=entry.customer_id,
    )
    draft.add(AccountKey(counterpart), entry.amount, side="debit")
    draft.add(AccountKey(Role.ADVANCES), entry.amount, side="credit")
    return len(entries_post(drafts=[draft]))


def _brand_of_customer(customer_id: int, invoice_id: int | None) -> int:
    if invoice_id is not None:
        return Invoice.objects.filter(pk=invoice_id).values_list("brand_id", flat=True).get()
    Customer = apps.get_model("customers", "Customer")
    own = Customer.objects.filter(pk=customer_id).values_list("brand_id", flat=True).first()
    if own is not None:
        return own
    default = Brand.objects.order_by("-is_default", "pk").values_list("pk", flat=True).first()
    if default is None:
        raise LedgerError(_("No brand exists to post this movement to."))
    return default
