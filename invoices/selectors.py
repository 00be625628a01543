from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.utils.translation import gettext

from billing.models import Price
from config.errors import DomainConflict
from customers.models import Customer
from invoices.models import BalanceTransaction, Brand, CreditNote, CreditNoteLine, Invoice, TaxCode, TaxRate
from invoices.services.documents import credit_note_content_hash, invoice_content_hash
from invoices.vat import TaxCodeSpec


@dataclass(frozen=True, slots=True)
class CreditedAmounts:
    total: int  # sum of the issued credit notes' totals (tax included)
    refunded: int  # of which to be refunded
    by_line: Mapping[int, int] = field(default_factory=dict)  # invoice line id -> net amount credited


class NoBrandConfigured(DomainConflict):
    code = "no_brand_configured"


def brand_for_customer(*, customer: Customer) -> Brand:
    """The customer's brand, else the default one."""
    if customer.brand is not None:  # no query when brand_id is None
        return customer.brand
    brand = Brand.objects.filter(is_default=True).first()
    if brand is None:
        raise NoBrandConfigured(gettext("No brand is set for this customer and there is no default brand."))
    return brand


def customer_balance(*, customer_id: int, currency: str) -> int:
    """Credit the customer holds in `currency` (positive), from the balance ledger."""
    total = BalanceTransaction.objects.filter(customer_id=customer_id, currency=currency).aggregate(
        total=Sum("amount")
    )["total"]
    return int(total or 0)


def customer_balances(*, customer_ids: list[int], currency: str) -> dict[int, int]:
    """Balances of many customers in one query (billing run)."""
    rows = (
        BalanceTransaction.objects.filter(customer_id__in=customer_ids, currency=currency)
        .values("customer_id")
        .annotate(total=Sum("amount"))
    )
    return {row["customer_id"]: int(row["total"]) for row in rows if row["total"]}


def standard_tax_rates() -> dict[str, Decimal]:
    """Country code -> standard rate (Decimal percent) of every active standard TaxRate."""
    return {
        str(country): percentage
        for country, percentage in TaxRate.objects.filter(is_standard=True, active=True).values_list(
            "country", "percentage"
        )
    }


def tax_code_specs() -> dict[int, TaxCodeSpec]:
    """Every tax code (by pk) with its rates by country: two queries, read once per run."""
    return {
        code.pk: TaxCodeSpec(
            code=code.code,
            category=code.category,
            rates={str(rate.country): rate.percentage for rate in code.rates.all()},
            exemption_reason_code=code.exemption_reason_code,
            exemption_reason=code.exemption_reason,
            exemption_reasons={
                language: getattr(code, f"exemption_reason_{language}", "") or "" for language in ("fr", "en")
            },
        )
        for code in TaxCode.objects.prefetch_related("rates")
    }


def tax_codes_of_prices(*, price_ids: Iterable[int]) -> dict[int, int | None]:
    """Price pk -> the pk of its tax code (the price's, else its product's; None: neither
    names one). One query, none when there are no prices."""
    wanted = {int(pk) for pk in price_ids}
    if not wanted:
        return {}
    rows = Price.objects.filter(pk__in=wanted).values_list("pk", "tax_code_id", "product__tax_code_id")
    return {pk: own if own is not None else product_code for pk, own, product_code in rows}


def tax_code_list() -> QuerySet[TaxCode]:
    return TaxCode.objects.prefetch_related("rates").order_by("code")


def invoice_list_for_customer(*, customer_id: int, status: str | None = None) -> QuerySet[Invoice]:
    queryset = Invoice.objects.filter(customer_id=customer_id).exclude(status=Invoice.Status.DRAFT)
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-finalized_at", "-pk")


def customer_balances_by_currency(*, customer_ids: Iterable[int]) -> dict[tuple[int, str], int]:
    """(customer id, currency) -> balance of many customers in every currency, one query."""
    rows = (
        BalanceTransaction.objects.filter(customer_id__any_of=list(customer_ids))
        .values("customer_id", "currency")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    return {(row["customer_id"], row["currency"]): int(row["total"]) for row in rows if row["total"]}


def customer_balance_ledger(*, customer_id: int, currency: str | None = None) -> QuerySet[BalanceTransaction]:
    """The customer's balance transactions, oldest first (positive = credit received)."""
    queryset = BalanceTransaction.objects.filter(customer_id=customer_id)
    if currency:
        queryset = queryset.filter(currency=currency)
    return queryset.select_related("invoice", "credit_note").order_by("created_at", "pk")


def renewal_exists(*, subscription_id: int, period_start: datetime) -> bool:
    """Whether a live (not void) renewal invoice already bills this subscription-period."""
    return (
        Invoice.objects.filter(
            subscription_id=subscription_id,
            period_start=period_start,
            billing_reason=Invoice.BillingReason.SUBSCRIPTION_CYCLE,
        )
        .exclude(status=Invoice.Status.VOID)
        .exists()
    )


def invoice_credited(*, invoice_id: int) -> CreditedAmounts:
    """What the issued credit notes of an invoice took so far."""
    sums = CreditNote.objects.filter(invoice_id=invoice_id, status=CreditNote.Status.ISSUED).aggregate(
        total=Sum("total"), refunded=Sum("refunded")
    )
    lines = CreditNoteLine.objects.filter(
        credit_note__invoice_id=invoice_id,
        credit_note__status=CreditNote.Status.ISSUED,
        invoice_line__isnull=False,
    )
    by_line = {
        row["invoice_line_id"]: int(row["amount"])
        for row in lines.values("invoice_line_id").annotate(amount=Sum("amount")).order_by()
    }
    return CreditedAmounts(total=int(sums["total"] or 0), refunded=int(sums["refunded"] or 0), by_line=by_line)


def invoice_content_hash_matches(*, invoice: Invoice) -> bool:
    """Whether a finalized invoice still hashes to the `content_hash` stored at issue."""
    return bool(invoice.content_hash) and invoice.content_hash == invoice_content_hash(
        invoice=invoice, lines=invoice.lines.order_by("position", "pk")
    )


def credit_note_content_hash_matches(*, credit_note: CreditNote) -> bool:
    return bool(credit_note.content_hash) and credit_note.content_hash == credit_note_content_hash(
        credit_note=credit_note, lines=credit_note.lines.order_by("pk")
    )
