from __future__ import annotations

from django.db.models import QuerySet, Sum

from invoices.models import BalanceTransaction, Brand, Invoice, TaxRate


class NoBrandConfigured(Exception):
    pass


def brand_for_customer(*, customer) -> Brand:
    """The customer's brand, else the default one."""
    if customer.brand_id is not None:
        return customer.brand
    brand = Brand.objects.filter(is_default=True).first()
    if brand is None:
        raise NoBrandConfigured("No brand is set for this customer and there is no default brand.")
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


def standard_tax_rates() -> dict[str, object]:
    """Country code -> standard rate (Decimal percent) of every active standard TaxRate."""
    return {
        str(country): percentage
        for country, percentage in TaxRate.objects.filter(is_standard=True, active=True).values_list(
            "country", "percentage"
        )
    }


def invoice_list_for_customer(*, customer_id: int, status: str | None = None) -> QuerySet[Invoice]:
    queryset = Invoice.objects.filter(customer_id=customer_id).exclude(status=Invoice.Status.DRAFT)
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-finalized_at", "-pk")
