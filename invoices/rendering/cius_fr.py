"""French CIUS checks Tarif applies itself to a CII or UBL e-invoice (issue 18).

The FNFE-MPE publishes BR-FR Schematron rules for the reform (XP Z12-012 "Flux 2"); they
are not vendored yet (docs/einvoicing-formats.md), so these are the rules Tarif can verify
with certainty on what it emits:
- the seller's SIREN (BT-30, scheme 0002) is present and valid (9 digits, Luhn key);
- a buyer SIREN (BT-47), when present, is valid;
- the buyer's electronic address (BT-49) is present, with a scheme;
- the operation category (BT-23) is one of the billing frames B1/S1/M1 (B2/S2/M2 paid).
"""

from __future__ import annotations

from typing import Final

from lxml import etree
from stdnum.fr import siren as siren_number

_NS: Final = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
BUSINESS_PROCESSES: Final = frozenset({"B1", "S1", "M1", "B2", "S2", "M2"})
_PATHS: Final = {
    "cii": {
        "seller_siren": "//ram:SellerTradeParty/ram:SpecifiedLegalOrganization/ram:ID[@schemeID='0002']",
        "buyer_siren": "//ram:BuyerTradeParty/ram:SpecifiedLegalOrganization/ram:ID[@schemeID='0002']",
        "buyer_address": "//ram:BuyerTradeParty/ram:URIUniversalCommunication/ram:URIID[@schemeID]",
        "process": "//rsm:ExchangedDocumentContext/ram:BusinessProcessSpecifiedDocumentContextParameter/ram:ID",
    },
    "ubl": {
        "seller_siren": "//cac:AccountingSupplierParty//cac:PartyLegalEntity/cbc:CompanyID[@schemeID='0002']",
        "buyer_siren": "//cac:AccountingCustomerParty//cac:PartyLegalEntity/cbc:CompanyID[@schemeID='0002']",
        "buyer_address": "//cac:AccountingCustomerParty/cac:Party/cbc:EndpointID[@schemeID]",
        "process": "/*/cbc:ProfileID",
    },
}


def french_cius_problems(xml: bytes) -> list[str]:
    """What the document misses for the French CIUS ([] when it satisfies Tarif's checks)."""
    root = etree.fromstring(xml)
    syntax = "cii" if etree.QName(root).localname == "CrossIndustryInvoice" else "ubl"
    paths = _PATHS[syntax]

    def texts(key: str) -> list[str]:
        return [(element.text or "").strip() for element in root.xpath(paths[key], namespaces=_NS)]

    problems = []
    seller = texts("seller_siren")
    if not seller:
        problems.append("BT-30: the seller's SIREN (scheme 0002) is missing")
    problems += [f"BT-30: invalid seller SIREN {value!r}" for value in seller if not siren_number.is_valid(value)]
    problems += [
        f"BT-47: invalid buyer SIREN {value!r}" for value in texts("buyer_siren") if not siren_number.is_valid(value)
    ]
    if not any(texts("buyer_address")):
        problems.append("BT-49: the buyer's electronic address is missing")
    process = texts("process")
    if not process or process[0] not in BUSINESS_PROCESSES:
        problems.append(f"BT-23: operation category {process[:1]!r} is not one of {sorted(BUSINESS_PROCESSES)}")
    return problems
