"""Which VAT applies to a customer of a brand: `invoices.vat.decide_vat` fed from the database.

Per invoice line (issue 16, item 11): the line's tax code is its price's, else its
product's, else the brand's default, else none (the standard rate); `TaxTable` reads what
that needs once per preview or per billing-run chunk (no query per line).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config.errors import DomainConflict
from customers.models import Customer
from invoices.models import Brand
from invoices.selectors import standard_tax_rates, tax_code_specs, tax_codes_of_prices
from invoices.services.documents import document_language
from invoices.types import DraftInvoice
from invoices.vat import TaxCodeSpec, VatDecision, VatError, decide_vat


class MissingTaxRate(VatError):
    pass


class TaxCategoriesIncompatible(DomainConflict):
    """EN 16931 BR-O-11: an invoice with a line outside the scope of VAT has no other category."""

    code = "tax_categories_incompatible"
    default_message = _(
        "A line outside the scope of VAT cannot share an invoice with taxed or exempt lines "
        "(EN 16931 BR-O-11): invoice it separately."
    )


class TaxTable:
    """Standard rates by country, the tax codes of prices, and (read on first need) the tax
    codes with their rates: what deciding the VAT of many lines needs, read once."""

    def __init__(
        self,
        *,
        rates: Mapping[str, Decimal],
        price_codes: Mapping[int, int | None],
        codes: Mapping[int, TaxCodeSpec] | None = None,
    ) -> None:
        self.rates = rates
        self.price_codes = price_codes
        self._codes = codes

    @classmethod
    def load(cls, *, price_ids: Iterable[int | None], rates: Mapping[str, Decimal] | None = None) -> TaxTable:
        """At most two queries (rates unless given, prices' codes if any); the codes come later,
        only if a line or brand names one."""
        return cls(
            rates=standard_tax_rates() if rates is None else rates,
            price_codes=tax_codes_of_prices(price_ids=[pk for pk in price_ids if pk is not None]),
        )

    def code_for(self, *, price_id: int | None, brand: Brand) -> TaxCodeSpec | None:
        code_id = self.price_codes.get(price_id) if price_id is not None else None
        if code_id is None:
            code_id = brand.default_tax_code_id
        if code_id is None:
            return None
        if self._codes is None:
            self._codes = tax_code_specs()
        return self._codes[code_id]


def tax_decision_for(
    *,
    brand: Brand,
    customer: Customer,
    rates: Mapping[str, Decimal] | None = None,
    tax_code: TaxCodeSpec | None = None,
) -> VatDecision:
    """The VAT decision for invoices from `brand` to `customer` (for lines of `tax_code`).

    `rates` (country -> standard percentage) may be passed in to avoid a query per
    customer when many invoices are built at once.
    """
    rates = standard_tax_rates() if rates is None else rates

    def standard_rate(country: str) -> Decimal:
        try:
            return Decimal(rates[country])
        except KeyError as error:
            raise MissingTaxRate(
                gettext("No standard VAT rate is configured for %(country)s: add one under Invoices › Tax rates.")
                % {"country": country}
            ) from error

    buyer_vat_number = customer.tax_id if customer.is_business and customer.tax_id else None
    if tax_code is not None:
        # The exemption reason printed (and carried as BT-120) in the customer's document language.
        tax_code = tax_code.in_language(document_language(customer.preferred_language))
    return decide_vat(
        seller_country=str(brand.country),
        buyer_country=str(customer.country),
        buyer_vat_number=buyer_vat_number,
        standard_rate=standard_rate,
        tax_code=tax_code,
    )


def line_tax_decisions(
    *,
    brand: Brand,
    customer: Customer,
    draft: DraftInvoice,
    base: VatDecision,
    table: TaxTable,
    cache: dict[tuple[object, ...], VatDecision] | None = None,
) -> list[VatDecision]:
    """The VAT decision of each line of `draft` (in order). `base`: the decision without a
    code (the standard rate), shared by lines without one. `cache`: decisions by (brand,
    buyer, code), shared across the invoices of a run. Raises TaxCategoriesIncompatible."""
    cache = {} if cache is None else cache
    buyer_key = (
        brand.pk,
        str(customer.country),
        customer.tax_id if customer.is_business else "",
        customer.preferred_language,  # the exemption reason's language
    )
    decisions: list[VatDecision] = []
    for line in draft.lines:
        code = table.code_for(price_id=line.price_id, brand=brand)
        if code is None:
            decisions.append(base)
            continue
        key = (*buyer_key, code.code)
        decision = cache.get(key)
        if decision is None:
            decision = cache[key] = tax_decision_for(brand=brand, customer=customer, rates=table.rates, tax_code=code)
        decisions.append(decision)
    check_tax_categories(categories=[decision.category for decision in decisions])
    return decisions


def check_tax_categories(*, categories: Sequence[str]) -> None:
    """EN 16931 BR-O-11/12: category O never shares an invoice with another category."""
    found = set(categories)
    if "O" in found and len(found) > 1:
        raise TaxCategoriesIncompatible()
