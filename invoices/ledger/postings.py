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
from fractions import Fraction
from typing import cast
from zoneinfo import ZoneInfo

from django.apps import apps
from django.db import connection
from django.db.models import OuterRef, Subquery, Sum, Value
from django.db.models.functions import Replace
from django.utils.translation import gettext as _

from config import clock
from config.bulk import copy_insert, copy_supported
from config.money import round_fraction
from invoices.ledger.errors import LedgerError
from invoices.ledger.exchange import HistoricalReceivable, historical_receivable
from invoices.ledger.fx import functional_amount_at
from invoices.ledger.models import (
    AccountingPeriod,
    AccountMapping,
    Journal,
    JournalEntry,
    JournalLine,
    RevenueSchedule,
    Role,
)
from invoices.ledger.services import (
    COPY_FROM_ENTRIES,
    AccountKey,
    AccountResolver,
    EntryDraft,
    chart_load,
    entries_post,
    entry_reverse,
    fiscal_year_of,
    ledger_enabled,
    ledger_settings_read,
    month_start,
    write_off_vat_relief,
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


def ledger_brand_ready(*, brand_id: int, at: datetime) -> None:
    """Create what a posting of the brand at `at` would insert, before the number series lock.

    A brand's first posting loads its chart of accounts, and a month's first posting creates its
    period rows: inserts under unique keys, held until commit. A bulk chunk posts before it takes
    the series lock; a single finalization (or credit note) posts under it. Inserting there, the
    single one waited for the chunk's uncommitted rows while the chunk waited for the lock: a
    deadlock (CI, 7 December 2026). Called before the lock, the single one waits for the chunk
    holding nothing. Two indexed reads once both exist (the daily validation creates the months).
    """
    if not ledger_enabled():
        return
    # In a posting's order: the periods (entries_post), then the chart (its account resolver).
    month = month_start(local_day(at, brand_id))
    have = set(AccountingPeriod.objects.filter(brand_id=brand_id, month=month).values_list("livemode", flat=True))
    AccountingPeriod.objects.create_missing(brand_id=brand_id, livemodes={True, False} - have, months=[month])
    if not AccountMapping.objects.filter(brand_id=brand_id).exists():
        chart_load(brand=Brand.objects.get(pk=brand_id))


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


def _draft(
    *,
    brand_id: int,
    customer_id: int,
    journal: str,
    day: date,
    label: str,
    source: tuple[str, int, str],
    currency: str,
    document_number: str | None,
    document_date: date | None = None,
    livemode: bool | None = None,
) -> EntryDraft:
    """An empty draft of one movement (`source`: type, id, movement) of a customer's document."""
    if livemode is None:
        livemode = _customer_livemode([customer_id]).get(customer_id, True)
    source_type, source_id, movement = source
    return EntryDraft(
        brand_id=brand_id,
        livemode=livemode,
        journal=journal,
        day=day,
        label=label,
        source_type=source_type,
        source_id=source_id,
        movement=movement,
        currency=currency,
        customer_id=customer_id,
        document_number=document_number or "",
        document_date=document_date or day,
    )


VatKey = tuple[Decimal, str, str]  # rate, category, tax code


def _add_vat(draft: EntryDraft, vat: dict[VatKey, int], *, side: str, label: str | None = None) -> None:
    """One line per VAT rate, on the rate's collected-VAT account (44571x)."""
    for (rate, category, tax_code), amount in sorted(vat.items()):
        draft.add(
            AccountKey(Role.VAT_COLLECTED, vat_rate=rate, tax_code=tax_code),
            amount,
            side=side,
            label=(label or _("VAT %(rate)s%%")) % {"rate": f"{rate.normalize():f}"},
            tax_rate=rate,
            tax_category=category,
        )


# Stands for the invoice number in the labels of an entry posted before its invoice is numbered
# (a bulk issue posts before it locks the number series): a private-use character no label
# contains. `invoice_entries_number` replaces it, once, under the series lock; the database
# lets exactly that change through (ledger migration 0005).
NUMBER_PLACEHOLDER = "\ue000"


def _invoice_draft(
    invoice: Invoice, lines: Sequence[InvoiceLine], livemode: bool, products: dict[int, int], *, unnumbered: bool
) -> tuple[EntryDraft, list[RevenueSchedule]]:
    number = NUMBER_PLACEHOLDER if unnumbered else invoice.number
    draft = _draft(
        brand_id=invoice.brand_id,
        customer_id=invoice.customer_id,
        livemode=livemode,
        journal=Journal.SALES,
        day=local_day(invoice.finalized_at, invoice.brand_id),
        label=_("Invoice %(number)s") % {"number": number},
        source=("invoice", invoice.pk, "invoice_finalized"),
        currency=invoice.currency,
        document_number="" if unnumbered else invoice.number,
    )
    draft.add(AccountKey(Role.RECEIVABLE), invoice.amount_due, side="debit")
    draft.add(AccountKey(Role.ADVANCES), invoice.starting_balance_applied, side="debit")
    draft.add(AccountKey(Role.PREPAID_CREDITS), invoice.credits_applied, side="debit")
    schedules: list[RevenueSchedule] = []
    vat: dict[VatKey, int] = defaultdict(int)
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
    _add_vat(draft, vat, side="credit")
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
    if copy_supported() and len(keep) >= COPY_FROM_ENTRIES:
        copy_insert(model=RevenueSchedule, objs=keep, with_pk=False)
    else:
        RevenueSchedule.objects.bulk_create(keep, batch_size=5000)


def post_invoices_finalized(
    *, invoices: Sequence[Invoice], lines: Sequence[InvoiceLine] | None = None, unnumbered: bool = False
) -> int:
    """Sales entries of freshly issued invoices (one or a billing run's chunk: bulk writes).

    `unnumbered`: the invoices are dated and totalled but not numbered yet (the bulk issue
    posts before it locks the number series, so the postings stay out of that lock): the
    entries carry no document number and `NUMBER_PLACEHOLDER` in their labels until
    `invoice_entries_number` fills them in, in the same transaction.
    """
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
            invoice, by_invoice[invoice.pk], modes.get(invoice.customer_id, True), products, unnumbered=unnumbered
        )
        for schedule in invoice_schedules:
            schedule._source_id = invoice.pk  # type: ignore[attr-defined]
        drafts.append(draft)
        schedules.extend(invoice_schedules)
    entries = entries_post(drafts=drafts)
    _save_schedules(schedules, [entry for entry in entries if entry.movement == "invoice_finalized"])
    return len(entries)


# Re-dated invoices (moved to their series' last issue under the lock): their entries' dates.
_REDATE_ENTRIES_SQL = """
UPDATE ledger_journalentry AS entry
SET date = moved.date, document_date = moved.document_date, fiscal_year = moved.fiscal_year
FROM unnest(%s::bigint[], %s::date[], %s::date[], %s::int[]) AS moved(id, date, document_date, fiscal_year)
WHERE entry.id = moved.id
"""


# The entries' numbers and their lines' labels in one statement, from the numbers the caller
# holds: no correlated lookups of the invoices or entries, one round trip.
_NUMBER_ENTRIES_SQL = """
WITH numbered AS (
    UPDATE ledger_journalentry AS entry
       SET document_number = invoice.number, label = replace(entry.label, %(placeholder)s, invoice.number)
      FROM unnest(%(ids)s::bigint[], %(numbers)s::text[]) AS invoice(id, number)
     WHERE entry.source_type = 'invoice' AND entry.source_id = invoice.id AND entry.movement = 'invoice_finalized'
       AND entry.document_number = '' AND entry.number IS NULL AND strpos(entry.label, %(placeholder)s) > 0
 RETURNING entry.id, invoice.number
), lines AS (
    UPDATE ledger_journalline AS line
       SET label = replace(line.label, %(placeholder)s, numbered.number)
      FROM numbered
     WHERE line.entry_id = numbered.id AND strpos(line.label, %(placeholder)s) > 0
 RETURNING line.id
)
SELECT (SELECT count(*) FROM numbered), (SELECT count(*) FROM lines)
"""


def invoice_entries_number(*, invoices: Sequence[Invoice], redated: Iterable[int] = ()) -> int:
    """Give the entries that `post_invoices_finalized(unnumbered=True)` posted for `invoices`
    their invoices' numbers, once the invoices are numbered in this transaction (under the
    number-series lock): the entries' document number and label, then their lines' labels,
    set-based whatever their count (one statement on PostgreSQL). `redated`: ids of invoices
    whose issue instant moved since they were posted; their entries move to the new day
    first. Returns how many entries were numbered."""
    if not ledger_enabled() or not invoices:
        return 0
    redated_ids = set(redated)
    if redated_ids:  # first: the database lets an entry's dates move only while it is unnumbered
        _redate_entries([invoice for invoice in invoices if invoice.pk in redated_ids])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _NUMBER_ENTRIES_SQL,
                {
                    "placeholder": NUMBER_PLACEHOLDER,
                    "ids": [invoice.pk for invoice in invoices],
                    "numbers": [invoice.number for invoice in invoices],
                },
            )
            numbered, _lines = cursor.fetchone()
        return int(numbered)
    entries = JournalEntry.objects.filter(
        source_type="invoice",
        source_id__any_of=[invoice.pk for invoice in invoices],
        movement="invoice_finalized",
        document_number="",
        number__isnull=True,
        label__contains=NUMBER_PLACEHOLDER,
    )
    # (django-stubs type Replace's replacement as a Value; any expression is valid SQL there.)
    number = cast(Value, Subquery(Invoice.objects.filter(pk=OuterRef("source_id")).values("number")[:1]))
    numbered = entries.update(document_number=number, label=Replace("label", Value(NUMBER_PLACEHOLDER), number))
    JournalLine.objects.filter(
        entry__source_type="invoice",
        entry__source_id__any_of=[invoice.pk for invoice in invoices],
        entry__movement="invoice_finalized",
        entry__number__isnull=True,
        label__contains=NUMBER_PLACEHOLDER,
    ).update(
        label=Replace(
            "label",
            Value(NUMBER_PLACEHOLDER),
            cast(Value, Subquery(JournalEntry.objects.filter(pk=OuterRef("entry_id")).values("document_number")[:1])),
        )
    )
    return numbered


def _redate_entries(invoices: Sequence[Invoice]) -> None:
    """Move the sales entries (and deferred-revenue schedules) of re-dated invoices to their
    new issue day. Rare: a concurrent finalization was dated after the chunk's instant."""
    finalized = {invoice.pk: invoice for invoice in invoices}
    entries = list(
        JournalEntry.objects.filter(
            source_type="invoice", source_id__in=list(finalized), movement="invoice_finalized", number__isnull=True
        ).only("pk", "brand_id", "source_id", "date", "document_date", "fiscal_year")
    )
    moved = []
    for entry in entries:
        day = local_day(finalized[entry.source_id].finalized_at, entry.brand_id)
        if entry.document_date == day:
            continue
        # An entry moved to a later open month (its own was closed) keeps that date if later.
        date = day if entry.date == entry.document_date or entry.date < day else entry.date
        start_month = ledger_settings_read(brand=Brand(pk=entry.brand_id)).fiscal_year_start_month
        moved.append((entry.pk, date, day, fiscal_year_of(date, start_month=start_month)))
    if moved and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_REDATE_ENTRIES_SQL, [list(column) for column in zip(*moved, strict=True)])
    else:
        for entry_id, date, day, year in moved:
            JournalEntry.objects.filter(pk=entry_id).update(date=date, document_date=day, fiscal_year=year)
    for invoice in invoices:
        RevenueSchedule.objects.filter(invoice_id=invoice.pk, credit_note_id__isnull=True).update(
            created_at=invoice.finalized_at
        )


def post_credit_note_issued(*, credit_note: CreditNote) -> int:
    if not ledger_enabled():
        return 0
    invoice = credit_note.invoice
    draft = _draft(
        brand_id=credit_note.brand_id,
        customer_id=credit_note.customer_id,
        journal=Journal.SALES,
        day=local_day(credit_note.issued_at, credit_note.brand_id),
        label=_("Credit note %(number)s") % {"number": credit_note.number},
        source=("credit_note", credit_note.pk, "credit_note_issued"),
        currency=credit_note.currency,
        document_number=credit_note.number,
    )
    livemode = draft.livemode
    # A foreign-currency credit note cancels part of its invoice at the invoice's rate.
    receivable = historical_receivable(invoice_id=invoice.pk)
    draft.rate = receivable.rate if receivable is not None else None
    cn_lines = list(credit_note.lines.select_related("invoice_line").order_by("pk"))
    products = _product_ids(cl.invoice_line.price_id for cl in cn_lines if cl.invoice_line is not None)
    schedules = []
    vat: dict[VatKey, int] = defaultdict(int)
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
            vat[(cn_line.tax_rate, cn_line.tax_category, "")] += cn_line.tax_amount
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
    _add_vat(draft, vat, side="debit")
    if _written_off(invoice.pk):  # not reachable today: an uncollectible invoice takes no credit note
        draft.add(AccountKey(Role.BAD_DEBTS), credit_note.reduced_amount_due, side="credit")
    else:
        receivable = _add_receivable(draft, receivable, credit_note.reduced_amount_due, side="credit")
    _add_receivable(draft, receivable, credit_note.refunded, side="credit")
    draft.add(AccountKey(Role.ADVANCES), credit_note.credited_to_balance, side="credit")
    entries = entries_post(drafts=[draft])
    _save_schedules(schedules, entries)
    return len(entries)


def _money_account(payment: object) -> AccountKey:
    gateway = getattr(payment, "gateway", "")
    if gateway == MANUAL_GATEWAY:
        return AccountKey(Role.BANK, payment_method=getattr(payment, "method", ""))
    return AccountKey(Role.CLEARING, payment_method=gateway)


def _write_off_entry(invoice_id: int) -> JournalEntry | None:
    """The invoice's write-off entry, unless a void reversed it."""
    entry = JournalEntry.objects.filter(
        source_type="invoice", source_id=invoice_id, movement="invoice_uncollectible"
    ).first()
    if entry is None:
        return None
    reversed_ = JournalEntry.objects.filter(
        source_type="invoice", source_id=invoice_id, movement="invoice_uncollectible_reversed"
    ).exists()
    return None if reversed_ else entry


def _written_off(invoice_id: int) -> bool:
    return _write_off_entry(invoice_id) is not None


def _write_off_vat_lines(write_off: JournalEntry) -> list[JournalLine]:
    """The VAT a write-off recovered, one line per rate (they carry the rate; 654 does not)."""
    return list(write_off.lines.filter(debit__gt=0, tax_rate__isnull=False).order_by("position"))


def _add_receivable(
    draft: EntryDraft, receivable: HistoricalReceivable | None, amount: int, *, side: str
) -> HistoricalReceivable | None:
    """`amount` on the customer's receivable (411): at its historical rate when foreign."""
    if receivable is None or not amount:
        draft.add(AccountKey(Role.RECEIVABLE), amount, side=side)
        return receivable
    value, left = receivable.settle(amount if side == "credit" else -amount)
    draft.add(AccountKey(Role.RECEIVABLE), amount, side=side, functional=abs(value))
    return left


def _unpaid_vat(invoice: Invoice, unpaid: int) -> dict[VatKey, int]:
    """The VAT inside `unpaid` (the written-off part), per rate: the invoice's VAT net of its
    credit notes, in proportion of what is unpaid to what remains invoiced (payments are deemed
    to carry VAT pro rata, as the French administration reads it)."""
    vat: dict[VatKey, int] = defaultdict(int)
    codes: dict[tuple[Decimal, str], str] = {}
    for line in invoice.lines.all():
        if line.tax_amount:
            vat[(line.tax_rate, line.tax_category, "")] += line.tax_amount
            codes.setdefault((line.tax_rate, line.tax_category), line.tax_code)
    gross = invoice.total
    for credit_note in CreditNote.objects.filter(invoice_id=invoice.pk, status=CreditNote.Status.ISSUED):
        gross -= credit_note.total
        for cn_line in credit_note.lines.all():
            vat[(cn_line.tax_rate, cn_line.tax_category, "")] -= cn_line.tax_amount
    if gross <= 0 or unpaid <= 0:
        return {}
    share = Fraction(min(unpaid, gross), gross)
    return {
        (rate, category, codes.get((rate, category), "")): round_fraction(amount * share)
        for (rate, category, _code), amount in vat.items()
        if amount > 0
    }


def _add_recovery(draft: EntryDraft, write_off: JournalEntry, invoice_id: int, applied: int) -> None:
    """A payment of a written-off invoice: income (7714), and the VAT the write-off recovered is
    due again on what comes in, pro rata (cumulative rounding over partial recoveries)."""
    vat_lines = _write_off_vat_lines(write_off)
    written_off = sum(write_off.lines.values_list("credit", flat=True))
    due: dict[int, int] = {}
    if vat_lines and written_off:
        Payment = apps.get_model("billing", "Payment")
        advances = AccountMapping.objects.filter(brand_id=write_off.brand_id, role=Role.ADVANCES).values("account_id")
        before = (
            JournalLine.objects.filter(
                entry__source_type="payment",
                entry__source_id__in=Payment.objects.filter(invoice_id=invoice_id).values("pk"),
                entry__movement="payment_succeeded",
                entry__pk__gt=write_off.pk,
                credit__gt=0,
            )
            .exclude(account_id__in=advances)
            .aggregate(total=Sum("credit"))["total"]
            or 0
        )
        for line in vat_lines:
            due[line.pk] = round_fraction(Fraction((before + applied) * line.debit, written_off)) - round_fraction(
                Fraction(before * line.debit, written_off)
            )
    draft.add(AccountKey(Role.BAD_DEBTS_RECOVERED), applied - sum(due.values()), side="credit")
    for line in vat_lines:
        draft.add(
            AccountKey(f"#{line.account_id}"),
            due[line.pk],
            side="credit",
            label=_("VAT %(rate)s%% due again on a recovered bad debt")
            % {"rate": f"{(line.tax_rate or Decimal(0)).normalize():f}"},
            tax_rate=line.tax_rate,
            tax_category=line.tax_category,
        )


def post_payment_succeeded(*, payment: object, applied: int, fee: int = 0) -> int:
    """Money received: `applied` pays the invoice, the rest is customer credit; `fee` the gateway kept.

    A foreign-currency invoice's receivable is settled at its historical rate, the money at the
    payment day's rate: the difference goes to exchange gain (766) or loss (666).
    """
    if not ledger_enabled():
        return 0
    customer_id = payment.customer_id  # type: ignore[attr-defined]
    invoice = Invoice.objects.only("brand_id", "number").get(pk=payment.invoice_id)  # type: ignore[attr-defined]
    day = local_day(payment.settled_at, invoice.brand_id)  # type: ignore[attr-defined]

    def payment_draft(label: str, movement: str) -> EntryDraft:
        return _draft(
            brand_id=invoice.brand_id,
            customer_id=customer_id,
            journal=Journal.BANK,
            day=day,
            label=label % {"number": invoice.number},
            source=("payment", payment.pk, movement),  # type: ignore[attr-defined]
            currency=payment.currency,  # type: ignore[attr-defined]
            document_number=invoice.number,
        )

    money = _money_account(payment)
    draft = payment_draft(_("Payment for invoice %(number)s"), "payment_succeeded")
    draft.add(money, payment.amount, side="debit")  # type: ignore[attr-defined]
    write_off = _write_off_entry(invoice.pk)
    if write_off is not None:
        _add_recovery(draft, write_off, invoice.pk, applied)
    else:
        receivable = historical_receivable(invoice_id=invoice.pk)
        draft.fx_difference = receivable is not None
        _add_receivable(draft, receivable, applied, side="credit")
    draft.add(AccountKey(Role.ADVANCES), payment.amount - applied, side="credit")  # type: ignore[attr-defined]
    drafts = [draft]
    if fee:
        fee_draft = payment_draft(_("Gateway fee on invoice %(number)s"), "gateway_fee")
        fee_draft.add(AccountKey(Role.BANK_FEES), fee, side="debit")
        fee_draft.add(money, fee, side="credit")
        drafts.append(fee_draft)
    return len(entries_post(drafts=drafts))


def post_refund(*, refund: object) -> int:
    """Money sent back (its credit note is posted by credit_note_create).

    The receivable comes back at its historical rate, the money leaves at the refund day's
    rate: the difference is again an exchange gain or loss.
    """
    if not ledger_enabled():
        return 0
    payment = refund.payment  # type: ignore[attr-defined]
    invoice = Invoice.objects.only("brand_id", "number").get(pk=refund.invoice_id)  # type: ignore[attr-defined]
    draft = _draft(
        brand_id=invoice.brand_id,
        customer_id=payment.customer_id,
        journal=Journal.BANK,
        day=local_day(refund.executed_at, invoice.brand_id),  # type: ignore[attr-defined]
        label=_("Refund on invoice %(number)s") % {"number": invoice.number},
        source=("refund", refund.pk, "refund_executed"),  # type: ignore[attr-defined]
        currency=refund.currency,  # type: ignore[attr-defined]
        document_number=invoice.number,
    )
    receivable = historical_receivable(invoice_id=invoice.pk)
    draft.fx_difference = receivable is not None
    _add_receivable(draft, receivable, refund.amount, side="debit")  # type: ignore[attr-defined]
    draft.add(_money_account(payment), refund.amount, side="credit")  # type: ignore[attr-defined]
    return len(entries_post(drafts=[draft]))


def post_invoice_uncollectible(*, invoice: Invoice, at: datetime) -> int:
    """Write-off: what remains due leaves 411. With VAT relief (the brand's setting, on by default
    for the French PCG: article 272 CGI) D 654 net + D 44571x the VAT of the unpaid part; without,
    D 654 the whole. A foreign-currency receivable is written off at its historical rate."""
    if not ledger_enabled() or not invoice.amount_remaining:
        return 0
    unpaid = invoice.amount_remaining
    receivable = historical_receivable(invoice_id=invoice.pk)
    draft = _draft(
        brand_id=invoice.brand_id,
        customer_id=invoice.customer_id,
        journal=Journal.MISC,
        day=local_day(at, invoice.brand_id),
        label=_("Write-off of invoice %(number)s") % {"number": invoice.number},
        source=("invoice", invoice.pk, "invoice_uncollectible"),
        currency=invoice.currency,
        document_number=invoice.number,
        document_date=local_day(invoice.finalized_at, invoice.brand_id),
    )
    draft.rate = receivable.rate if receivable is not None else None
    vat = _unpaid_vat(invoice, unpaid) if write_off_vat_relief(brand_id=invoice.brand_id) else {}
    draft.add(AccountKey(Role.BAD_DEBTS), unpaid - sum(vat.values()), side="debit")
    _add_vat(draft, vat, side="debit", label=_("VAT %(rate)s%% on an irrecoverable debt"))
    _add_receivable(draft, receivable, unpaid, side="credit")
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
        raise LedgerError(
            f"Balance movements of kind {entry.kind} are posted with their document."
        ) from None  # untranslated: internal invariant of the ledger
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
