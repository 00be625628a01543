"""Issue 16, item 11: hand-worked tax-code cases, through the real services (draft, finalize).

Each case: the brand is French (seller FR); a buyer (country, business or not, VAT number);
lines as (product's tax code, price's tax code, amount in cents, tax inclusive?); the expected
VAT breakdown (category, rate, taxable, tax, VATEX code) and total. Tax is computed once per
group (category, rate) and rounded half away from zero (docs/billing.md "Rounding and totals").

Rates: French General Tax Code (CGI) articles 278 (20 %), 278-0 bis (5.5 %: books), 279 (10 %),
281 nonies / 298 septies (2.1 %: press); other member states: European Commission, "VAT rates
applied in the Member States of the European Union, situation at 1 January 2025".
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.types import DraftInvoice, DraftLine
from tests.factories import BrandFactory, CustomerFactory, PriceFactory, ProductFactory, TaxRateFactory
from tests.invoices.helpers import ISSUED_AT
from tests.tax_codes import seeded_tax_codes

pytestmark = pytest.mark.django_db

FR_CONSUMER = ("FR", False, None)
FR_BUSINESS = ("FR", True, "FR40303265045")
DE_BUSINESS = ("DE", True, "DE136695976")
DE_CONSUMER = ("DE", False, None)
DK_CONSUMER = ("DK", False, None)
US_CONSUMER = ("US", False, None)

CASES = [
    pytest.param(
        FR_CONSUMER,
        None,
        [("reduced", None, 1010, False), ("reduced", None, 1010, False), (None, None, 4999, False)],
        # Two books at 5.5 % (CGI 278-0 bis) and a service at 20 %: two S groups.
        # 5.5 %: (1010 + 1010) x 5.5 % = 111.1 -> 111 (per line it would be 55.55 -> 56, twice: 112)
        # 20 %: 4999 x 20 % = 999.8 -> 1000. Total 2020 + 4999 + 111 + 1000 = 8130.
        # Source: hand-worked (the per-group rule is EN 16931 BR-CO-17).
        [("S", "5.5", 2020, 111, ""), ("S", "20", 4999, 1000, "")],
        8130,
        None,
        id="fr-book-5.5-with-service-20",
    ),
    pytest.param(
        FR_CONSUMER,
        None,
        [("super-reduced", None, 899, False), (None, None, 1000, False)],
        # Press at 2.1 %: 899 x 2.1 % = 18.879 -> 19; service 1000 x 20 % = 200.
        # Total 899 + 19 + 1000 + 200 = 2118. Source: hand-worked (CGI 298 septies rate).
        [("S", "2.1", 899, 19, ""), ("S", "20", 1000, 200, "")],
        2118,
        None,
        id="fr-press-2.1",
    ),
    pytest.param(
        FR_BUSINESS,
        None,
        [("exempt-training", None, 150000, False), (None, None, 10000, False)],
        # Vocational training, exempt (directive art. 132(1)(i), VATEX-EU-132-1I): E 0 % on 150000;
        # the 20 % line: 10000 x 20 % = 2000. Total 150000 + 10000 + 2000 = 162000. Hand-worked.
        [("E", "0", 150000, 0, "VATEX-EU-132-1I"), ("S", "20", 10000, 2000, "")],
        162000,
        None,
        id="fr-exempt-training-with-vatex",
    ),
    pytest.param(
        DE_BUSINESS,
        None,
        [("reduced", None, 1010, False), (None, None, 4999, False)],
        # A DE business with a DE VAT number: reverse charge (directive art. 196) overrides the
        # reduced rate: one AE group, 0 %: 1010 + 4999 = 6009, tax 0. Total 6009. Hand-worked.
        [("AE", "0", 6009, 0, "")],
        6009,
        "reverse_charge",
        id="de-business-reverse-charge-over-reduced",
    ),
    pytest.param(
        DE_CONSUMER,
        None,
        [("reduced", None, 1010, False), (None, None, 4999, False)],
        # OSS: a DE consumer pays DE VAT. Reduced (DE 7 %): 1010 x 7 % = 70.7 -> 71;
        # standard (DE 19 %): 4999 x 19 % = 949.81 -> 950. Total 1010 + 71 + 4999 + 950 = 7030.
        # Source: hand-worked; DE rates from the EC table (1 January 2025).
        [("S", "7", 1010, 71, ""), ("S", "19", 4999, 950, "")],
        7030,
        None,
        id="de-consumer-oss-reduced-7",
    ),
    pytest.param(
        FR_CONSUMER,
        None,
        [("out-of-scope", None, 2500, False)],
        # Out of scope (e.g. a disbursement): O, no rate, VATEX-EU-O; 2500, tax 0. Total 2500. Hand-worked.
        [("O", "0", 2500, 0, "VATEX-EU-O")],
        2500,
        None,
        id="fr-out-of-scope",
    ),
    pytest.param(
        US_CONSUMER,
        None,
        [("reduced", None, 1010, False), ("exempt-training", None, 5000, False)],
        # Buyer outside the EU: place of supply outside the EU, every line O whatever its code
        # (EN 16931 BR-O-11 allows no other category next to O): 1010 + 5000 = 6010, tax 0,
        # mention "export outside the EU" (CGI 259-1). Total 6010. Hand-worked.
        [("O", "0", 6010, 0, "")],
        6010,
        "export_outside_eu",
        id="us-consumer-export-overrides-codes",
    ),
    pytest.param(
        DK_CONSUMER,
        None,
        [("reduced", None, 1000, False)],
        # Denmark has no reduced rate (EC table): the reduced code falls back to DK's standard
        # 25 %: 1000 x 25 % = 250. Total 1250. Hand-worked.
        [("S", "25", 1000, 250, "")],
        1250,
        None,
        id="dk-consumer-no-reduced-rate-standard-applies",
    ),
    pytest.param(
        FR_CONSUMER,
        None,
        [("reduced", None, 1055, True)],
        # A tax-inclusive book at 1055: tax = 1055 x 5.5 / 105.5 = 55 exactly, taxable 1000.
        # Total 1055 (inclusive tax is inside the amount). Hand-worked.
        [("S", "5.5", 1000, 55, "")],
        1055,
        None,
        id="fr-inclusive-book-5.5",
    ),
    pytest.param(
        FR_CONSUMER,
        "intermediate",
        [(None, None, 2000, False), ("reduced", "standard", 3000, False)],
        # The brand's default code (intermediate, FR 10 %) for a product without one:
        # 2000 x 10 % = 200; a price's code (standard) overrides its product's (reduced):
        # 3000 x 20 % = 600. Total 2000 + 200 + 3000 + 600 = 5800. Hand-worked (precedence
        # price > product > brand, like Lago's charge > plan > organization taxes).
        [("S", "10", 2000, 200, ""), ("S", "20", 3000, 600, "")],
        5800,
        None,
        id="brand-default-and-price-override",
    ),
]


@pytest.mark.parametrize(("buyer", "brand_default", "lines", "groups", "total", "mention"), CASES)
def test_tax_code_case(buyer, brand_default, lines, groups, total, mention):
    # given a French brand, standard rates for FR, DE and DK, the seeded codes and a buyer
    codes = seeded_tax_codes()
    for country, rate in (("FR", "20"), ("DE", "19"), ("DK", "25")):
        TaxRateFactory(country=country, percentage=Decimal(rate))
    brand = BrandFactory(default_tax_code=codes[brand_default] if brand_default else None)
    country, business, vat_number = buyer
    customer = CustomerFactory(brand=brand, country=country, is_business=business, tax_id=vat_number or "")
    draft_lines = []
    for index, (product_code, price_code, amount, inclusive) in enumerate(lines):
        product = ProductFactory(tax_code=codes[product_code] if product_code else None)
        price = PriceFactory(product=product, tax_code=codes[price_code] if price_code else None)
        draft_lines.append(
            DraftLine(
                kind="one_off",
                description=f"Line {index + 1}",
                amount=amount,
                price_id=price.pk,
                tax_inclusive=inclusive,
            )
        )
    draft = DraftInvoice(customer_id=customer.pk, currency="EUR", billing_reason="manual", lines=tuple(draft_lines))

    # when the invoice is drafted and issued
    invoice = invoice_finalize(invoice=invoice_create(draft=draft, at=ISSUED_AT, customer=customer), at=ISSUED_AT)

    # then its VAT breakdown groups by category and rate, with the exemption codes, and adds up
    assert [
        (row["category"], row["rate"], row["taxable_amount"], row["tax_amount"], row.get("exemption_reason_code", ""))
        for row in invoice.tax_breakdown
    ] == groups
    assert invoice.total == total
    assert invoice.issued_snapshot["vat_mention"] == mention
