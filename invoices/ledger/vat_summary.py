"""VAT summary of a period (issue 19 item 5): the ledger's revenue and VAT lines by regime and
rate, the boxes of the French return n° 3310-CA3, and a cross-check against the documents.

Read-only (a selector). Sources and rules (docs/accounting-exports.md, "VAT summary"):
- base = revenue lines carrying a VAT category (credit minus debit, so credit notes net);
  VAT = lines on the brand's VAT-collected accounts (role `vat_collected`), same sign;
- amounts in the functional currency (EUR for a French return);
- VAT is taken when the document is issued (the "débits" basis, the rule for goods and the
  option services sellers take); a seller on the cash basis needs the payments instead;
- regimes: `domestic` (category S, customer in the brand's country or Monaco), `oss`
  (S, customer in another member state: declared through the One-Stop Shop, box E3 for
  the record), `reverse_charge` (AE: EU business customer, box E2), `intra_eu_goods`
  (K, box F2), `export` (G goods, box E1; O services outside the EU, box E2), `exempt` (E, box E2),
  `zero_rated` (Z, box E2).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import cast
from zoneinfo import ZoneInfo

from django.db.models import Q, Sum
from django.utils.translation import gettext_lazy as _

from invoices.ledger.models import AccountMapping, JournalLine, Role
from invoices.models import Brand, CreditNoteLine, InvoiceLine

DOMESTIC_TERRITORY = {"FR": {"FR", "MC"}}

REGIME_LABELS = {
    "domestic": _("Domestic sales"),
    "oss": _("EU consumers (One-Stop Shop)"),
    "reverse_charge": _("EU businesses, reverse charge (services)"),
    "intra_eu_goods": _("Intra-EU supplies of goods"),
    "export": _("Exports and sales outside the EU"),
    "exempt": _("Exempt sales"),
    "zero_rated": _("Zero-rated sales"),
}

# Lines of the "TVA brute" section of form 3310-CA3 by rate (metropolitan France).
CA3_RATE_LINES = {Decimal("20"): "08", Decimal("10"): "9B", Decimal("5.5"): "09"}
CA3_BOX_LABELS = {
    "A1": _("Sales and services (taxable, excluding tax)"),
    "E1": _("Exports outside the EU"),
    "E2": _("Other non-taxable operations"),
    "E3": _("Distance sales taxable in another member state (B2C)"),
    "F2": _("Intra-EU supplies to a taxable person"),
    "08": _("Standard rate 20 %"),
    "9B": _("Reduced rate 10 %"),
    "09": _("Reduced rate 5.5 %"),
    "14": _("Operations taxable at another rate (annex 3310-A)"),
    "16": _("Total gross VAT due"),
    "28": _("Net VAT due (before deductible VAT)"),
}


@dataclass(frozen=True)
class VatRow:
    regime: str
    category: str
    rate: Decimal
    base: int
    vat: int

    @property
    def regime_label(self) -> str:
        return str(REGIME_LABELS[self.regime])


@dataclass(frozen=True)
class Ca3Box:
    box: str
    base: int | None
    vat: int | None

    @property
    def label(self) -> str:
        return str(CA3_BOX_LABELS[self.box])


@dataclass(frozen=True)
class VatDifference:
    category: str
    rate: Decimal
    ledger_base: int
    documents_base: int
    ledger_vat: int
    documents_vat: int


@dataclass(frozen=True)
class VatSummary:
    start: date
    end: date
    currency: str
    rows: tuple[VatRow, ...]
    boxes: tuple[Ca3Box, ...]
    differences: tuple[VatDifference, ...]

    @property
    def total_vat(self) -> int:
        return sum(row.vat for row in self.rows if row.regime == "domestic")


def _regime(*, category: str, customer_country: str, seller_country: str, account_code: str) -> str:
    if category == "S":
        territory = DOMESTIC_TERRITORY.get(seller_country, {seller_country})
        return "domestic" if not customer_country or customer_country in territory else "oss"
    if category == "AE":
        return "reverse_charge"
    if category == "K":
        return "intra_eu_goods"
    if category in {"G", "O"}:
        return "export"
    if category == "Z":
        return "zero_rated"
    return "exempt"


def _vat_accounts(brand: Brand) -> dict[int, Decimal | None]:
    """The brand's VAT-collected accounts and the rate each is mapped for (None: any rate)."""
    accounts: dict[int, Decimal | None] = {}
    for account_id, match, value in AccountMapping.objects.filter(brand=brand, role=Role.VAT_COLLECTED).values_list(
        "account_id", "match", "value"
    ):
        rate = Decimal(value).normalize() if match == AccountMapping.Match.VAT_RATE and value else None
        if accounts.get(account_id) is None:
            accounts[account_id] = rate
    return accounts


def _period_lines(
    *, brand: Brand, livemode: bool, start: date, end: date, vat_accounts: Iterable[int]
) -> Iterable[dict[str, object]]:
    """Revenue lines (they carry a VAT category) and VAT lines (on a VAT account) of the period."""
    return (
        JournalLine.objects.filter(entry__brand=brand, entry__livemode=livemode, entry__date__range=(start, end))
        .filter(Q(tax_category__gt="") | Q(account_id__in=list(vat_accounts)))
        .values(
            "account_id", "account__code", "tax_category", "tax_rate", "entry__customer__country", "entry__currency"
        )
        .annotate(
            functional_debit_sum=Sum("functional_debit"),
            functional_credit_sum=Sum("functional_credit"),
            document_debit_sum=Sum("debit"),
            document_credit_sum=Sum("credit"),
        )
    )


def _ca3_boxes(rows: Iterable[VatRow]) -> tuple[Ca3Box, ...]:
    base: dict[str, int] = defaultdict(int)
    vat: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.regime == "domestic":
            base["A1"] += row.base
            line = CA3_RATE_LINES.get(row.rate.normalize() if row.rate else Decimal(0), "14")
            base[line] += row.base
            vat[line] += row.vat
            vat["16"] += row.vat
        elif row.regime == "oss":
            base["E3"] += row.base
        elif row.regime == "intra_eu_goods":
            base["F2"] += row.base
        elif row.regime == "export" and row.category == "G":
            base["E1"] += row.base
        else:
            base["E2"] += row.base
    vat["28"] = max(vat["16"], 0)
    order = ["A1", "E1", "E2", "E3", "F2", "08", "9B", "09", "14", "16", "28"]
    return tuple(
        Ca3Box(box=box, base=base.get(box) if box not in {"16", "28"} else None, vat=vat.get(box))
        for box in order
        if box in base or box in vat
    )


def _document_totals(
    *, brand: Brand, livemode: bool, start: date, end: date, currency: str
) -> dict[tuple[str, Decimal], list[int]]:
    """Issued invoices minus issued credit notes of the period, in `currency` only."""
    zone = ZoneInfo(brand.timezone or "UTC")
    since = datetime.combine(start, time.min, tzinfo=zone)
    until = datetime.combine(end, time.max, tzinfo=zone)
    totals: dict[tuple[str, Decimal], list[int]] = defaultdict(lambda: [0, 0])
    invoice_lines = (
        InvoiceLine.objects.filter(
            invoice__brand=brand,
            invoice__customer__livemode=livemode,
            invoice__currency=currency,
            invoice__finalized_at__range=(since, until),
            invoice__number__gt="",
        )
        .values("tax_category", "tax_rate")
        .annotate(amount=Sum("amount"), discount=Sum("discount_amount"), tax=Sum("tax_amount"))
    )
    for row in invoice_lines:
        key = (row["tax_category"], Decimal(row["tax_rate"]).normalize())
        totals[key][0] += (row["amount"] or 0) - (row["discount"] or 0)
        totals[key][1] += row["tax"] or 0
    credit_lines = (
        CreditNoteLine.objects.filter(
            credit_note__invoice__brand=brand,
            credit_note__invoice__customer__livemode=livemode,
            credit_note__invoice__currency=currency,
            credit_note__issued_at__range=(since, until),
        )
        .values("tax_category", "tax_rate")
        .annotate(amount=Sum("amount"), tax=Sum("tax_amount"))
    )
    for row in credit_lines:
        key = (row["tax_category"], Decimal(row["tax_rate"]).normalize())
        totals[key][0] -= row["amount"] or 0
        totals[key][1] -= row["tax"] or 0
    return totals


def vat_summary(*, brand: Brand, livemode: bool, start: date, end: date) -> VatSummary:
    """The period's VAT by regime and rate, its CA3 boxes and any difference with the documents."""
    vat_accounts = _vat_accounts(brand)
    currency = getattr(getattr(brand, "ledger_settings", None), "functional_currency", "EUR")
    seller_country = str(brand.country or "FR")
    grouped: dict[tuple[str, str, Decimal], list[int]] = defaultdict(lambda: [0, 0])
    ledger_by_rate: dict[tuple[str, Decimal], list[int]] = defaultdict(lambda: [0, 0])
    for line in _period_lines(brand=brand, livemode=livemode, start=start, end=end, vat_accounts=vat_accounts):
        account_id = cast(int, line["account_id"])
        is_vat = account_id in vat_accounts
        # VAT lines may carry no category or rate: the account's mapping names the rate (S).
        category = str(line["tax_category"] or "S")
        line_rate = cast(Decimal | None, line["tax_rate"])
        known_rate = line_rate if line_rate is not None else vat_accounts.get(account_id)
        rate = Decimal(known_rate or 0).normalize()
        amount = cast(int, line["functional_credit_sum"] or 0) - cast(int, line["functional_debit_sum"] or 0)
        regime = _regime(
            category=category,
            customer_country=str(line["entry__customer__country"] or ""),
            seller_country=seller_country,
            account_code=str(line["account__code"]),
        )
        slot = 1 if is_vat else 0
        grouped[(regime, category, rate)][slot] += amount
        if line["entry__currency"] == currency:  # the documents' side is compared in their currency
            ledger_by_rate[(category, rate)][slot] += cast(int, line["document_credit_sum"] or 0) - cast(
                int, line["document_debit_sum"] or 0
            )
    rows = tuple(
        VatRow(regime=regime, category=category, rate=rate, base=amounts[0], vat=amounts[1])
        for (regime, category, rate), amounts in sorted(grouped.items(), key=lambda item: (item[0][0], -item[0][2]))
    )
    documents = _document_totals(brand=brand, livemode=livemode, start=start, end=end, currency=currency)
    differences = tuple(
        VatDifference(
            category=category,
            rate=rate,
            ledger_base=ledger_by_rate[(category, rate)][0],
            documents_base=documents[(category, rate)][0],
            ledger_vat=ledger_by_rate[(category, rate)][1],
            documents_vat=documents[(category, rate)][1],
        )
        for category, rate in sorted(set(ledger_by_rate) | set(documents))
        if ledger_by_rate[(category, rate)] != documents[(category, rate)]
    )
    return VatSummary(
        start=start, end=end, currency=currency, rows=rows, boxes=_ca3_boxes(rows), differences=differences
    )
