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

Amounts in another currency than the euro are reported in EUR too (the VAT is declared in
euros): each reported group (day, currency, category, rate) is converted once at the ledger's
exchange rate of its day (`invoices.ledger.fx`, ECB-style rates, the latest within a week);
a missing rate raises `EReportingExchangeRateMissing`: the period is not built (and needs
attention) rather than reported with a wrong total.

Payment data: succeeded payments (settlement day) on reportable invoices for services whose
VAT is due on receipt (the seller did not opt for VAT on debits, category not goods, at least
one taxed group: a reverse-charged or exempt-only invoice has no VAT to collect), split over
the invoice's tax groups pro rata (largest remainder, exact to the cent), every group kept so
the report adds up to the payments. Refunds executed in the period on such invoices are
reported negative on their own day, split over the groups the same way (docs/ereporting.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from config.types import JsonDict, JsonMapping
from invoices.ereporting.errors import EReportingExchangeRateMissing
from invoices.ereporting.models import EReportingPeriod
from invoices.ledger.errors import MissingExchangeRate
from invoices.ledger.fx import conversion_rate as ledger_conversion_rate
from invoices.ledger.fx import functional_amount_at
from invoices.models import Brand

B2C, INTERNATIONAL, EINVOICED = "b2c", "international", "einvoiced"
REPORTED_SCOPES = (B2C, INTERNATIONAL)
# The reform's transaction categories (flow 10.3, TT-81).
GOODS_TAXED, SERVICES_TAXED, NOT_TAXED_IN_FRANCE = "TLB1", "TPS1", "TNT1"
TAXED_CATEGORIES = frozenset({"S"})
INVOICE_REPORTED_STATUSES = ("open", "paid", "uncollectible")
REPORTING_CURRENCY = "EUR"  # VAT is declared in euros


@dataclass(frozen=True, slots=True)
class TransactionTotal:
    scope: str
    day: date
    operation_category: str  # goods / services / mixed (the seller's, as issued)
    category_code: str  # TLB1 / TPS1 / TNT1
    vat_category: str  # EN 16931 UNCL5305: S, Z, E, AE, K, G, O
    rate: str  # "20", "5.5"
    currency: str
    taxable_amount: int  # in `currency`
    tax_amount: int
    invoices: int
    credit_notes: int
    taxable_amount_eur: int  # the same in EUR at `exchange_rate` (equal when `currency` is EUR)
    tax_amount_eur: int
    exchange_rate: str  # EUR for one unit of `currency` on `day` ("1" for EUR)


@dataclass(frozen=True, slots=True)
class PaymentTotal:
    scope: str
    day: date
    vat_category: str
    rate: str
    currency: str
    amount: int  # collected, tax included, net of refunds
    payments: int
    refunds: int
    amount_eur: int  # the same in EUR at `exchange_rate`
    exchange_rate: str


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
    refunds: int = 0
    refunds_amount: int = 0

    @property
    def net_collected(self) -> int:
        return self.payments_amount - self.refunds_amount

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


class EurConverter:
    """EUR amounts of the period's groups at the ledger's rate of their day (one rate read per
    currency and day). A missing rate raises EReportingExchangeRateMissing, never a guess."""

    def __init__(self) -> None:
        self._rates: dict[tuple[str, date], Decimal] = {}

    def rate(self, *, currency: str, day: date) -> Decimal:
        if currency == REPORTING_CURRENCY:
            return Decimal(1)
        key = (currency, day)
        if key not in self._rates:
            try:
                self._rates[key] = ledger_conversion_rate(
                    currency=currency, functional_currency=REPORTING_CURRENCY, on=day
                )
            except MissingExchangeRate:
                raise EReportingExchangeRateMissing(
                    _(
                        "No %(currency)s/EUR exchange rate is known on or before %(day)s: import the rates "
                        "(Accounting › Exchange rates), then build the period again."
                    )
                    % {"currency": currency, "day": day.isoformat()}
                ) from None
        return self._rates[key]

    def eur(self, amount: int, *, currency: str, day: date) -> tuple[int, str]:
        rate = self.rate(currency=currency, day=day)
        return functional_amount_at(amount, rate, currency, REPORTING_CURRENCY), format(rate.normalize(), "f")


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


def _transaction_total(
    converter: EurConverter,
    scope: str,
    day: date,
    operation: str,
    vat_category: str,
    rate: str,
    currency: str,
    taxable: int,
    tax: int,
    invoices: int,
    credit_notes: int,
) -> TransactionTotal:
    taxable_eur, exchange_rate = converter.eur(taxable, currency=currency, day=day)
    tax_eur, _rate = converter.eur(tax, currency=currency, day=day)
    return TransactionTotal(
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
        taxable_amount_eur=taxable_eur,
        tax_amount_eur=tax_eur,
        exchange_rate=exchange_rate,
    )


def ereporting_transaction_totals(*, brand: Brand, livemode: bool, start: date, end: date) -> list[TransactionTotal]:
    """The period's reportable sales by scope, day, category, VAT category and rate, credit notes
    netted (negative on their own issue day), with their EUR amounts."""
    converter = EurConverter()
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            # The JSON expressions make the planner overestimate the rows a hundredfold, and JIT
            # compilation then costs seconds (measured: 4.3 s of 4.6 s at 100,000 invoices).
            cursor.execute("SET LOCAL jit = off")
            cursor.execute(_TRANSACTIONS_SQL, _params(brand=brand, livemode=livemode, start=start, end=end))
            rows = cursor.fetchall()
        return [
            _transaction_total(
                converter, scope, day, operation, vat_category, rate, currency, int(taxable), int(tax), n, notes
            )
            for scope, day, operation, vat_category, rate, currency, taxable, tax, n, notes in rows
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
        _transaction_total(converter, *key, *values)
        for key, values in sorted(groups.items(), key=lambda item: (item[0][1], *item[0][:1], *item[0][2:]))
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


def _payment_rows(*, brand: Brand, livemode: bool, start: date, end: date) -> list[tuple]:
    """(amount, currency, moment, snapshot, breakdown, sign) of the period's succeeded payments (+1,
    on their settlement) and executed refunds (-1, on their execution), oldest first."""
    from billing.models import Payment, Refund  # deferred: billing imports invoices; reading payments here only

    since, until = period_bounds_utc(brand=brand, start=start, end=end)
    payments = (
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
    refunds = (
        Refund.objects.filter(
            invoice__brand=brand,
            invoice__customer__livemode=livemode,
            status=Refund.Status.EXECUTED,
            executed_at__gte=since,
            executed_at__lt=until,
        )
        .order_by("executed_at", "pk")
        .values_list("amount", "currency", "executed_at", "invoice__issued_snapshot", "invoice__tax_breakdown")
    )
    rows: list[tuple] = [(*row, 1) for row in payments] + [(*row, -1) for row in refunds]
    rows.sort(key=lambda row: row[2])  # both filtered on a moment in the period: never None
    return rows


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
    """The period's collected amounts on reportable service invoices, by scope, day and rate, net
    of the refunds executed in the period (negative on their day), with their EUR amounts."""
    zone = ZoneInfo(brand.timezone)
    groups: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for amount, currency, moment, snapshot, breakdown, sign in _payment_rows(
        brand=brand, livemode=livemode, start=start, end=end
    ):
        if not payment_is_reported(snapshot, breakdown):
            continue
        weights = [
            int(group["taxable_amount"]) + (0 if group.get("inclusive") else int(group["tax_amount"]))
            for group in breakdown
        ]
        day = moment.astimezone(zone).date()
        for group, share in zip(breakdown, allocate(amount, weights), strict=True):
            if share == 0:
                continue
            totals = groups[(document_scope(snapshot), day, group["category"], group["rate"], currency)]
            totals[0] += sign * share
            totals[1 if sign == 1 else 2] += 1
    converter = EurConverter()
    result = []
    for (scope, day, category, rate, currency), (amount, payments, refunds) in sorted(
        groups.items(), key=lambda item: item[0][1:]
    ):
        amount_eur, exchange_rate = converter.eur(amount, currency=currency, day=day)
        result.append(
            PaymentTotal(
                scope=scope,
                day=day,
                vat_category=category,
                rate=rate,
                currency=currency,
                amount=amount,
                payments=payments,
                refunds=refunds,
                amount_eur=amount_eur,
                exchange_rate=exchange_rate,
            )
        )
    return result


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
    payments: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for amount, currency, _moment, snapshot, breakdown, sign in _payment_rows(
        brand=brand, livemode=livemode, start=start, end=end
    ):
        if payment_is_reported(snapshot, breakdown):
            offset = 0 if sign == 1 else 2
            payments[currency][offset] += 1
            payments[currency][offset + 1] += amount
    return [
        DocumentTotals(
            currency,
            *documents.get(currency, [0] * 6),
            *payments.get(currency, [0, 0, 0, 0]),
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


def ereporting_periods_needing_attention(*, livemode: bool) -> QuerySet[EReportingPeriod]:
    """Periods finance must look at: rejected by the PA, or not built (a missing exchange rate)."""
    return (
        EReportingPeriod.objects.filter(livemode=livemode)
        .filter(Q(state=EReportingPeriod.State.REJECTED) | (Q(state=EReportingPeriod.State.DRAFT) & ~Q(reason="")))
        .select_related("brand")
        .order_by("-start", "kind")
    )
