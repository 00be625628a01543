"""Reads of e-reporting: which documents are e-reported, their totals by day, category and rate.

Scope (CGI art. 290): a document is **e-invoiced** (transmitted through the PA, not reported
here) when its buyer, as issued, is a French business identified by a SIREN or a French VAT
number; otherwise it is e-reported, as **international** (a business established abroad:
flow 10.1) or **B2C** (a consumer or a non-taxable body, French or not: flow 10.3).

Transaction totals come from each issued document's `tax_breakdown` (the amounts the
document prints), one set-based SQL statement on PostgreSQL (the benchmark: 100,000
invoices in a few seconds); credit notes net off with a minus sign on their own issue day.
The reconciliation reads the same documents' *header* columns (`total_excluding_tax`,
`tax_total`), an independent source, so a report that lost or doubled a group shows a
difference.

Payment data: succeeded payments (settlement day) on reportable invoices for services whose
VAT is due on receipt (the seller did not opt for VAT on debits, category not goods, at least
one taxed group: a reverse-charged or exempt-only invoice has no VAT to collect), split over
the invoice's tax groups pro rata (largest remainder, exact to the cent), every group kept so
the report adds up to the payments.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import connection, transaction

from config.types import JsonDict, JsonMapping
from invoices.ereporting.models import EReportingPeriod
from invoices.models import Brand

B2C, INTERNATIONAL, EINVOICED = "b2c", "international", "einvoiced"
REPORTED_SCOPES = (B2C, INTERNATIONAL)
# The reform's transaction categories (flow 10.3, TT-81).
GOODS_TAXED, SERVICES_TAXED, NOT_TAXED_IN_FRANCE = "TLB1", "TPS1", "TNT1"
TAXED_CATEGORIES = frozenset({"S"})
INVOICE_REPORTED_STATUSES = ("open", "paid", "uncollectible")


@dataclass(frozen=True, slots=True)
class TransactionTotal:
    scope: str
    day: date
    operation_category: str  # goods / services / mixed (the seller's, as issued)
    category_code: str  # TLB1 / TPS1 / TNT1
    vat_category: str  # EN 16931 UNCL5305: S, Z, E, AE, K, G, O
    rate: str  # "20", "5.5"
    currency: str
    taxable_amount: int
    tax_amount: int
    invoices: int
    credit_notes: int


@dataclass(frozen=True, slots=True)
class PaymentTotal:
    scope: str
    day: date
    vat_category: str
    rate: str
    currency: str
    amount: int  # collected, tax included
    payments: int


@dataclass(frozen=True, slots=True)
class DocumentTotals:
    """What the period's reportable documents add up to, from their header columns."""

    currency: str
    invoices: int
    invoices_excluding_tax: int
    invoices_tax: int
    credit_notes: int
    credit_notes_excluding_tax: int
    credit_notes_tax: int
    payments: int
    payments_amount: int

    @property
    def net_excluding_tax(self) -> int:
        return self.invoices_excluding_tax - self.credit_notes_excluding_tax

    @property
    def net_tax(self) -> int:
        return self.invoices_tax - self.credit_notes_tax


def category_code(*, operation_category: str, vat_category: str) -> str:
    """TT-81: taxed goods, taxed services (mixed counts as services, docs/ereporting.md), or not taxed."""
    if vat_category not in TAXED_CATEGORIES:
        return NOT_TAXED_IN_FRANCE
    return GOODS_TAXED if operation_category == "goods" else SERVICES_TAXED


def document_scope(snapshot: JsonMapping) -> str:
    """The Python twin of `_SCOPE_SQL` (non-PostgreSQL databases and tests)."""
    buyer = snapshot.get("buyer") or {}
    assert isinstance(buyer, dict)
    is_business = buyer.get("is_business", True) is not False
    country = str(buyer.get("country") or "")
    identified = bool(buyer.get("siren")) or str(buyer.get("vat_number") or "").upper().startswith("FR")
    if is_business and country == "FR" and identified:
        return EINVOICED
    if is_business and country != "FR":
        return INTERNATIONAL
    return B2C


_SCOPE_SQL = """
CASE
    WHEN coalesce((d.snap->'buyer'->>'is_business')::boolean, true)
         AND d.snap->'buyer'->>'country' = 'FR'
         AND (coalesce(d.snap->'buyer'->>'siren', '') <> ''
              OR upper(coalesce(d.snap->'buyer'->>'vat_number', '')) LIKE 'FR%%') THEN 'einvoiced'
    WHEN coalesce((d.snap->'buyer'->>'is_business')::boolean, true)
         AND coalesce(d.snap->'buyer'->>'country', '') <> 'FR' THEN 'international'
    ELSE 'b2c'
END
"""

_DOCUMENTS_SQL = """
SELECT i.issued_snapshot AS snap, i.tax_breakdown AS breakdown, i.currency, 1 AS sign,
       i.total_excluding_tax AS excluding_tax, i.tax_total AS tax
FROM invoices_invoice i JOIN customers_customer c ON c.id = i.customer_id
WHERE i.brand_id = %(brand)s AND c.livemode = %(livemode)s AND i.status IN ('open', 'paid', 'uncollectible')
  AND i.finalized_at >= %(since)s AND i.finalized_at < %(until)s
UNION ALL
SELECT n.issued_snapshot, n.tax_breakdown, n.currency, -1, n.subtotal, n.tax_total
FROM invoices_creditnote n JOIN customers_customer c ON c.id = n.customer_id
WHERE n.brand_id = %(brand)s AND c.livemode = %(livemode)s AND n.status = 'issued'
  AND n.issued_at >= %(since)s AND n.issued_at < %(until)s
"""

_TRANSACTIONS_SQL = f"""
WITH d AS ({_DOCUMENTS_SQL}), scoped AS (SELECT d.*, {_SCOPE_SQL} AS scope FROM d)
SELECT d.scope, (d.snap->>'issue_date')::date AS day,
       coalesce(d.snap->'seller'->>'operation_category', 'services') AS operation_category,
       g->>'category' AS vat_category, g->>'rate' AS rate, d.currency,
       sum(d.sign * (g->>'taxable_amount')::bigint) AS taxable_amount,
       sum(d.sign * (g->>'tax_amount')::bigint) AS tax_amount,
       count(*) FILTER (WHERE d.sign = 1) AS invoices,
       count(*) FILTER (WHERE d.sign = -1) AS credit_notes
FROM scoped d CROSS JOIN LATERAL jsonb_array_elements(d.breakdown) AS g
WHERE d.scope <> 'einvoiced'
GROUP BY 1, 2, 3, 4, 5, 6
ORDER BY 2, 1, 3, 4, 5, 6
"""

_DOCUMENT_TOTALS_SQL = f"""
WITH d AS ({_DOCUMENTS_SQL}), scoped AS (SELECT d.*, {_SCOPE_SQL} AS scope FROM d)
SELECT d.currency,
       count(*) FILTER (WHERE d.sign = 1), coalesce(sum(d.excluding_tax) FILTER (WHERE d.sign = 1), 0),
       coalesce(sum(d.tax) FILTER (WHERE d.sign = 1), 0),
       count(*) FILTER (WHERE d.sign = -1), coalesce(sum(d.excluding_tax) FILTER (WHERE d.sign = -1), 0),
       coalesce(sum(d.tax) FILTER (WHERE d.sign = -1), 0)
FROM scoped d WHERE d.scope <> 'einvoiced'
GROUP BY d.currency ORDER BY d.currency
"""


def period_bounds_utc(*, brand: Brand, start: date, end: date) -> tuple[datetime, datetime]:
    """[since, until) of the period's days in the brand's time zone."""
    zone = ZoneInfo(brand.timezone)
    return (
        datetime.combine(start, time.min, tzinfo=zone),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone),
    )


def _params(*, brand: Brand, livemode: bool, start: date, end: date) -> JsonDict:
    since, until = period_bounds_utc(brand=brand, start=start, end=end)
    return {"brand": brand.pk, "livemode": livemode, "since": since, "until": until}


def _documents_python(*, brand: Brand, livemode: bool, start: date, end: date) -> Iterator[tuple]:
    """(snapshot, breakdown, currency, sign, excluding_tax, tax) of the period's documents (non-PostgreSQL)."""
    from invoices.models import CreditNote, Invoice  # deferred: only the portable path needs the ORM rows

    since, until = period_bounds_utc(brand=brand, start=start, end=end)
    invoices = Invoice.objects.filter(
        brand=brand,
        customer__livemode=livemode,
        status__in=INVOICE_REPORTED_STATUSES,
        finalized_at__gte=since,
        finalized_at__lt=until,
    ).values_list("issued_snapshot", "tax_breakdown", "currency", "total_excluding_tax", "tax_total")
    for snapshot, breakdown, currency, excluding_tax, tax in invoices:
        yield snapshot, breakdown, currency, 1, excluding_tax, tax
    notes = CreditNote.objects.filter(
        brand=brand, customer__livemode=livemode, status="issued", issued_at__gte=since, issued_at__lt=until
    ).values_list("issued_snapshot", "tax_breakdown", "currency", "subtotal", "tax_total")
    for snapshot, breakdown, currency, excluding_tax, tax in notes:
        yield snapshot, breakdown, currency, -1, excluding_tax, tax


def ereporting_transaction_totals(*, brand: Brand, livemode: bool, start: date, end: date) -> list[TransactionTotal]:
    """The period's reportable sales by scope, day, category, VAT category and rate, credit notes netted."""
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            # The JSON expressions make the planner overestimate the rows a hundredfold, and JIT
            # compilation then costs seconds (measured: 4.3 s of 4.6 s at 100,000 invoices).
            cursor.execute("SET LOCAL jit = off")
            cursor.execute(_TRANSACTIONS_SQL, _params(brand=brand, livemode=livemode, start=start, end=end))
            rows = cursor.fetchall()
        return [
            TransactionTotal(
                scope=scope,
                day=day,
                operation_category=operation,
                category_code=category_code(operation_category=operation, vat_category=vat_category),
                vat_category=vat_category,
                rate=rate,
                currency=currency,
                taxable_amount=int(taxable),
                tax_amount=int(tax),
                invoices=invoices,
                credit_notes=credit_notes,
            )
            for scope, day, operation, vat_category, rate, currency, taxable, tax, invoices, credit_notes in rows
        ]
    groups: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for snapshot, breakdown, currency, sign, _excluding, _tax in _documents_python(
        brand=brand, livemode=livemode, start=start, end=end
    ):
        scope = document_scope(snapshot)
        if scope == EINVOICED:
            continue
        day = date.fromisoformat(snapshot["issue_date"])
        operation = (snapshot.get("seller") or {}).get("operation_category") or "services"
        for group in breakdown:
            totals = groups[(scope, day, operation, group["category"], group["rate"], currency)]
            totals[0] += sign * int(group["taxable_amount"])
            totals[1] += sign * int(group["tax_amount"])
            totals[2 if sign == 1 else 3] += 1
    return [
        TransactionTotal(
            scope=scope,
            day=day,
            operation_category=operation,
            category_code=category_code(operation_category=operation, vat_category=vat_category),
            vat_category=vat_category,
            rate=rate,
            currency=currency,
            taxable_amount=taxable,
            tax_amount=tax,
            invoices=invoices,
            credit_notes=credit_notes,
        )
        for (scope, day, operation, vat_category, rate, currency), (taxable, tax, invoices, credit_notes) in sorted(
            groups.items(), key=lambda item: (item[0][1], *item[0][:1], *item[0][2:])
        )
    ]


def allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """`amount` split pro rata to `weights`, exact to the unit (largest remainder, ties to the first)."""
    total = sum(weights)
    if total == 0:
        return [amount] + [0] * (len(weights) - 1) if weights else []
    shares = [amount * weight // total for weight in weights]
    remainders = sorted(range(len(weights)), key=lambda index: (-(amount * weights[index] % total), index))
    for index in remainders[: amount - sum(shares)]:
        shares[index] += 1
    return shares


def _payment_rows(*, brand: Brand, livemode: bool, start: date, end: date) -> Iterable[tuple]:
    from billing.models import Payment  # deferred: billing imports invoices; reading payments here only

    since, until = period_bounds_utc(brand=brand, start=start, end=end)
    return (
        Payment.objects.filter(
            invoice__brand=brand,
            customer__livemode=livemode,
            status=Payment.Status.SUCCEEDED,
            settled_at__gte=since,
            settled_at__lt=until,
        )
        .order_by("settled_at", "pk")
        .values_list("amount", "currency", "settled_at", "invoice__issued_snapshot", "invoice__tax_breakdown")
    )


def payment_is_reported(snapshot: JsonMapping, breakdown: Sequence[JsonMapping]) -> bool:
    """VAT due on receipt: taxed services (or mixed) sold by a seller without the VAT-on-debits option."""
    seller = snapshot.get("seller") or {}
    assert isinstance(seller, dict)
    return (
        document_scope(snapshot) != EINVOICED
        and any(group.get("category") in TAXED_CATEGORIES for group in breakdown)
        and not seller.get("vat_on_debits", False)
        and (seller.get("operation_category") or "services") != "goods"
    )


def ereporting_payment_totals(*, brand: Brand, livemode: bool, start: date, end: date) -> list[PaymentTotal]:
    """The period's collected amounts on reportable service invoices, by scope, day and rate."""
    zone = ZoneInfo(brand.timezone)
    groups: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for amount, currency, settled_at, snapshot, breakdown in _payment_rows(
        brand=brand, livemode=livemode, start=start, end=end
    ):
        if not payment_is_reported(snapshot, breakdown):
            continue
        weights = [
            int(group["taxable_amount"]) + (0 if group.get("inclusive") else int(group["tax_amount"]))
            for group in breakdown
        ]
        day = settled_at.astimezone(zone).date()
        for group, share in zip(breakdown, allocate(amount, weights), strict=True):
            if share == 0:
                continue
            totals = groups[(document_scope(snapshot), day, group["category"], group["rate"], currency)]
            totals[0] += share
            totals[1] += 1
    return [
        PaymentTotal(scope=scope, day=day, vat_category=category, rate=rate, currency=currency, amount=a, payments=n)
        for (scope, day, category, rate, currency), (a, n) in sorted(groups.items(), key=lambda item: item[0][1:])
    ]


def ereporting_document_totals(*, brand: Brand, livemode: bool, start: date, end: date) -> list[DocumentTotals]:
    """Per currency, what the period's reportable invoices, credit notes and payments add up to."""
    documents: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")  # see ereporting_transaction_totals
            cursor.execute(_DOCUMENT_TOTALS_SQL, _params(brand=brand, livemode=livemode, start=start, end=end))
            for currency, *values in cursor.fetchall():
                documents[currency] = [int(value) for value in values]
    else:
        for snapshot, _breakdown, currency, sign, excluding_tax, tax in _documents_python(
            brand=brand, livemode=livemode, start=start, end=end
        ):
            if document_scope(snapshot) == EINVOICED:
                continue
            offset = 0 if sign == 1 else 3
            documents[currency][offset] += 1
            documents[currency][offset + 1] += excluding_tax
            documents[currency][offset + 2] += tax
    payments: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for amount, currency, _settled, snapshot, breakdown in _payment_rows(
        brand=brand, livemode=livemode, start=start, end=end
    ):
        if payment_is_reported(snapshot, breakdown):
            payments[currency][0] += 1
            payments[currency][1] += amount
    return [
        DocumentTotals(
            currency,
            *documents.get(currency, [0] * 6),
            *payments.get(currency, [0, 0]),
        )
        for currency in sorted(set(documents) | set(payments))
    ]


def ereporting_periods_for_brand(*, brand: Brand, livemode: bool) -> Iterable[EReportingPeriod]:
    return EReportingPeriod.objects.filter(brand=brand, livemode=livemode).order_by("-start", "kind", "-version")


def ereporting_latest_version(*, brand: Brand, livemode: bool, kind: str, start: date) -> EReportingPeriod | None:
    return (
        EReportingPeriod.objects.filter(brand=brand, livemode=livemode, kind=kind, start=start)
        .order_by("-version")
        .first()
    )
