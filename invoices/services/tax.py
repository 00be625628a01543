"""Which VAT applies to a customer of a brand: `invoices.vat.decide_vat` fed from the database."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from customers.models import Customer
from invoices.models import Brand
from invoices.selectors import standard_tax_rates
from invoices.vat import VatDecision, VatError, decide_vat


class MissingTaxRate(VatError):
    pass


def tax_decision_for(*, brand: Brand, customer: Customer, rates: Mapping[str, Decimal] | None = None) -> VatDecision:
    """The VAT decision for invoices from `brand` to `customer`.

    `rates` (country -> standard percentage) may be passed in to avoid a query per
    customer when many invoices are built at once.
    """
    rates = standard_tax_rates() if rates is None else rates

    def standard_rate(country: str) -> Decimal:
        try:
            return Decimal(rates[country])
        except KeyError as error:
            raise MissingTaxRate(
                f"No standard VAT rate is configured for {country}: add one under Invoices › Tax rates."
            ) from error

    buyer_vat_number = customer.tax_id if customer.is_business and customer.tax_id else None
    return decide_vat(
        seller_country=str(brand.country),
        buyer_country=str(customer.country),
        buyer_vat_number=buyer_vat_number,
        standard_rate=standard_rate,
    )
