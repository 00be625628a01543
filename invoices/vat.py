"""EU VAT treatment of a sale of digital services (SaaS) by a seller established in the EU.

Pure functions, no database, no network: a VAT number is checked for format and check
digits with python-stdnum, not against VIES (a VIES check, when wanted, belongs in a
service that records the consultation number).

Rules (``decide_vat``):

1. Buyer in the seller's country: the seller's standard rate (category S), also for a
   business buyer with a VAT number.
2. Business buyer in another member state, with a VAT number that is valid AND issued by
   that state: reverse charge (category AE, 0%, legal mention ``reverse_charge``;
   article 196 of Directive 2006/112/EC, the buyer accounts for the VAT). A number of
   another state (say a DE number for a buyer in FR), or a malformed one, does not
   qualify: the sale is then treated as B2C (rule 3), which over-collects rather than
   under-collects, and the reason says why.
3. Consumer in another member state: the buyer country's standard rate (category S),
   declared through the One-Stop Shop (OSS, article 58 of the directive).
4. Buyer outside the EU: the place of supply is outside the EU (article 44 for a
   business, article 59 for a consumer), so the sale is outside the scope of EU VAT:
   category O ("not subject to VAT"), 0%, legal mention ``export_outside_eu``.
   EN 16931 reserves G ("export outside the EU", VATEX-EU-G, article 146) for goods
   leaving the EU; services supplied outside the EU are O (VATEX-EU-O).

Tax codes (issue 16, item 11): a line may carry a ``TaxCodeSpec`` (its product's kind of
supply). Precedence, highest first:

a. Buyer outside the EU (rule 4): category O for every line, whatever its code: the supply
   is not subject to EU VAT, so no EU exemption or reduced rate can apply either (and
   EN 16931 BR-O-11 forbids mixing O with other categories on one invoice).
b. Exempt code: category E at 0%, with the code's exemption reason and VATEX code, also
   for a business buyer in another member state (an exempt supply is exempt there too:
   the exemptions of article 132 are harmonised).
c. Out-of-scope code: category O at 0% with the code's reason (VATEX-EU-O by default).
d. Reverse charge (rule 2) overrides reduced, zero and standard rates alike: AE at 0%.
e. Otherwise the code's rate in the country of taxation (the seller's for rule 1, the
   buyer's for OSS rule 3): standard codes use the country's standard rate; a reduced,
   intermediate or super-reduced code uses its rate for that country, or the country's
   standard rate when the code names none there (a member state without that reduced
   rate taxes the supply at its standard rate; the reason says so); a rate of 0 (a
   zero-rated code, or a reduced code at 0 in that country) is category Z.

Greece's VAT numbers use the prefix EL (a GR prefix is accepted and normalised to EL)
while its country code is GR. Northern Ireland's XI numbers only matter for goods: for
services a buyer in Northern Ireland is a UK (GB) buyer, outside the EU. Monaco (MC) is
part of the French VAT territory (article 7 of the directive) and is treated as FR.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Final

from stdnum import exceptions as stdnum_errors
from stdnum.eu import vat as eu_vat

from config.errors import DomainError
from config.errors import translate as _

# ISO 3166-1 alpha-2 codes of the 27 member states (Greece is GR here, EL only in VAT numbers).
EU_MEMBER_STATES: Final = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip

# Places with their own ISO code that belong to a member state's VAT territory.
_VAT_TERRITORY: Final = {"MC": "FR"}
# VAT-number prefixes that differ from the ISO country code.
_PREFIX_COUNTRY: Final = {"EL": "GR", "XI": "GB"}
# Prefixes stdnum accepts that identify a non-Union or import OSS registration, not a
# VAT number of a member state.
_OSS_PREFIXES: Final = frozenset({"EU", "IM"})

REVERSE_CHARGE: Final = "reverse_charge"
EXPORT_OUTSIDE_EU: Final = "export_outside_eu"

# Legal mentions printed on the invoice, by mention key and language. The French texts
# follow French invoicing practice (CGI = Code général des impôts); the English texts
# translate them for English-language invoices of the same seller.
LEGAL_MENTIONS: Final[dict[str, dict[str, str]]] = {
    REVERSE_CHARGE: {
        "fr": "Autoliquidation – TVA due par le preneur (article 283-2 du CGI ; "
        "article 196 de la directive 2006/112/CE)",
        "en": "Reverse charge – VAT to be accounted for by the customer (article 283-2 of the French "
        "General Tax Code; article 196 of Council Directive 2006/112/EC)",
    },
    EXPORT_OUTSIDE_EU: {
        "fr": "TVA non applicable, article 259-1 du CGI",
        "en": "VAT not applicable, article 259-1 of the French General Tax Code (place of supply outside the EU)",
    },
}


class VatNumberError(DomainError, ValueError):
    """A VAT number that is malformed, has wrong check digits, or is of an unknown country."""

    code = "invalid_vat_number"
    http_status = 400


class VatError(DomainError, ValueError):
    """A VAT decision that cannot be made: malformed country codes, a seller outside the EU."""

    code = "vat_refused"


@dataclass(frozen=True, slots=True)
class VatDecision:
    category: str  # UNCL5305 code: S, AE, O ...
    rate: Decimal  # percent
    mention_key: str | None  # key into LEGAL_MENTIONS, or None
    reason: str  # why, in plain English, for the admin and the audit log
    tax_code: str = ""  # the TaxCode that decided the rate ("" = none: the standard rate)
    exemption_reason_code: str = ""  # VATEX code of an exempt / out-of-scope code (BT-121)
    exemption_reason: str = ""  # its printed reason (BT-120)


# TaxCode.Category values (invoices/tax_models.py), repeated here: this module imports no Django.
STANDARD: Final = "standard"
RATED_CATEGORIES: Final = frozenset({"standard", "intermediate", "reduced", "super_reduced", "zero_rated"})
EXEMPT: Final = "exempt"
OUT_OF_SCOPE: Final = "out_of_scope"


@dataclass(frozen=True, slots=True)
class TaxCodeSpec:
    """A tax code as the decision needs it: its category, its rates by country, its reason."""

    code: str
    category: str  # TaxCode.Category value
    rates: Mapping[str, Decimal] = field(default_factory=dict)  # ISO country -> percent
    exemption_reason_code: str = ""
    exemption_reason: str = ""
    # The reason in each document language ("fr", "en"); `exemption_reason` when one is missing.
    exemption_reasons: Mapping[str, str] = field(default_factory=dict)

    def in_language(self, language: str) -> TaxCodeSpec:
        """This code with its exemption reason in `language` (else the one typed)."""
        reason = self.exemption_reasons.get(language) or self.exemption_reason
        return self if reason == self.exemption_reason else replace(self, exemption_reason=reason)

    def __post_init__(self) -> None:
        if self.category not in RATED_CATEGORIES | {EXEMPT, OUT_OF_SCOPE}:
            raise VatError(
                f"unknown tax code category {self.category!r}"
            )  # untranslated: programmer error (tax code table and rate callback in code)


def gettext_noop(message: str) -> str:
    """Marks a module-level message for makemessages; `_` translates it when it is raised."""
    return message


_STDNUM_MESSAGES: Final = {
    stdnum_errors.InvalidChecksum: gettext_noop("its check digits do not match"),
    stdnum_errors.InvalidFormat: gettext_noop("it does not have the format of its country"),
    stdnum_errors.InvalidLength: gettext_noop("it has the wrong number of characters for its country"),
    stdnum_errors.InvalidComponent: gettext_noop(
        "it does not start with the prefix of an EU member state (e.g. FR, DE, EL for Greece)"
    ),
}


def validate_vat_number(number: str) -> str:
    """The compact form of an EU VAT number (``FR40303265045``), or ``VatNumberError``.

    Checks the country prefix, the format and the check digits; not whether the number is
    currently registered (that is VIES). A Greek number is returned with the prefix EL.
    """
    if not isinstance(number, str):
        raise TypeError(f"a VAT number is a str, not {type(number).__name__}")
    shown = number.strip()
    if not shown:
        raise VatNumberError(_("the VAT number is empty"))
    try:
        compact = eu_vat.validate(number)
    except stdnum_errors.ValidationError as error:
        because = _(_STDNUM_MESSAGES.get(type(error), gettext_noop("it is not a valid VAT number")))
        raise VatNumberError(
            _("%(shown)r is not a valid EU VAT number: %(because)s") % {"shown": shown, "because": because}
        ) from error
    prefix = compact[:2]
    if prefix in _OSS_PREFIXES:
        raise VatNumberError(
            _("%(shown)r is a One-Stop Shop registration number, not the VAT number of a member state")
            % {"shown": shown}
        )
    if prefix == "GR":
        compact = "EL" + compact[2:]
    return compact


def vat_country(number: str) -> str:
    """ISO 3166 country that issued a valid VAT number: ``EL...`` -> ``GR``, ``XI...`` -> ``GB``."""
    prefix = validate_vat_number(number)[:2]
    return _PREFIX_COUNTRY.get(prefix, prefix)


def _country(code: str, *, field: str) -> str:
    if not isinstance(code, str):
        raise TypeError(f"{field} is an ISO 3166 country code, not {type(code).__name__}")
    upper = code.strip().upper()
    if len(upper) != 2 or not upper.isascii() or not upper.isalpha():
        raise VatError(
            _("%(field)s must be a two-letter ISO 3166 country code, got %(code)r") % {"field": field, "code": code}
        )
    if upper in _PREFIX_COUNTRY:
        raise VatError(
            _("%(field)s %(code)r is a VAT-number prefix, not a country code; use %(country)r")
            % {"field": field, "code": code, "country": _PREFIX_COUNTRY[upper]}
        )
    return _VAT_TERRITORY.get(upper, upper)


def _standard_rate(standard_rate: Callable[[str], Decimal], country: str) -> Decimal:
    rate = standard_rate(country)
    if isinstance(rate, bool) or not isinstance(rate, Decimal | int):
        raise TypeError(f"standard_rate({country!r}) must return a Decimal, not {type(rate).__name__}")
    rate = Decimal(rate)
    if not 0 < rate <= 100:
        raise VatError(
            f"standard_rate({country!r}) returned {rate}, not a percentage above 0"
        )  # untranslated: programmer error (tax code table and rate callback in code)
    return rate


def _code_rate(
    code: TaxCodeSpec | None, country: str, standard_rate: Callable[[str], Decimal], where: str
) -> tuple[str, Decimal, str]:
    """(category, rate, reason) of a taxed supply in `country` under `code` (rule e)."""
    if code is None or code.category == STANDARD:
        return "S", _standard_rate(standard_rate, country), f"{where}: {country} standard rate"
    if code.category == "zero_rated" and country not in code.rates:
        return "Z", Decimal(0), f"{where}: tax code {code.code} is zero-rated"
    rate = code.rates.get(country)
    if rate is None:
        return (
            "S",
            _standard_rate(standard_rate, country),
            f"{where}: tax code {code.code} names no {code.category.replace('_', '-')} rate for {country}, "
            f"so {country}'s standard rate applies",
        )
    rate = Decimal(rate)
    if not 0 <= rate <= 100:
        raise VatError(
            _("tax code %(code)s has a rate of %(rate)s%% for %(country)s, not a percentage")
            % {"code": code.code, "rate": rate, "country": country}
        )
    if rate == 0:
        return "Z", Decimal(0), f"{where}: tax code {code.code} is zero-rated in {country}"
    return "S", rate, f"{where}: {country} {code.category.replace('_', '-')} rate of tax code {code.code}"


def decide_vat(
    *,
    seller_country: str,
    buyer_country: str,
    buyer_vat_number: str | None,
    standard_rate: Callable[[str], Decimal],
    tax_code: TaxCodeSpec | None = None,
) -> VatDecision:
    """The VAT category, rate and legal mention of a sale of digital services (rules above).

    `tax_code`: the line's tax code (precedence in the module docstring); None is the
    standard rate, as before tax codes existed.
    """
    decision = _decide_place(
        seller_country=seller_country,
        buyer_country=buyer_country,
        buyer_vat_number=buyer_vat_number,
        standard_rate=standard_rate,
        tax_code=tax_code,
    )
    return decision if tax_code is None else replace(decision, tax_code=tax_code.code)


def _decide_place(
    *,
    seller_country: str,
    buyer_country: str,
    buyer_vat_number: str | None,
    standard_rate: Callable[[str], Decimal],
    tax_code: TaxCodeSpec | None,
) -> VatDecision:
    if buyer_vat_number is not None and not isinstance(buyer_vat_number, str):
        raise TypeError(f"buyer_vat_number is a str or None, not {type(buyer_vat_number).__name__}")
    seller = _country(seller_country, field="seller_country")
    buyer = _country(buyer_country, field="buyer_country")
    if seller not in EU_MEMBER_STATES:
        raise VatError(
            _("decide_vat covers sellers established in the EU, not in %(seller_country)r")
            % {"seller_country": seller_country}
        )

    if buyer != seller and buyer not in EU_MEMBER_STATES:
        who = "business" if buyer_vat_number and buyer_vat_number.strip() else "consumer"
        return VatDecision(
            category="O",
            rate=Decimal("0"),
            mention_key=EXPORT_OUTSIDE_EU,
            reason=f"{who} buyer in {buyer}, outside the EU: place of supply outside the EU, not subject to EU VAT",
        )

    if tax_code is not None and tax_code.category == EXEMPT:
        return VatDecision(
            category="E",
            rate=Decimal(0),
            mention_key=None,
            reason=f"tax code {tax_code.code} is exempt ({tax_code.exemption_reason_code or 'no VATEX code'})",
            exemption_reason_code=tax_code.exemption_reason_code,
            exemption_reason=tax_code.exemption_reason,
        )
    if tax_code is not None and tax_code.category == OUT_OF_SCOPE:
        return VatDecision(
            category="O",
            rate=Decimal(0),
            mention_key=None,
            reason=f"tax code {tax_code.code} is outside the scope of VAT",
            exemption_reason_code=tax_code.exemption_reason_code or "VATEX-EU-O",
            exemption_reason=tax_code.exemption_reason,
        )

    if buyer == seller:
        category, rate, why = _code_rate(tax_code, seller, standard_rate, f"domestic sale in {seller}")
        return VatDecision(
            category=category,
            rate=rate,
            mention_key=None,
            reason=f"{why} ({seller} VAT applies, also to business buyers)",
        )

    why_not_reverse_charge = "no VAT number"
    if buyer_vat_number is not None and buyer_vat_number.strip():
        try:
            compact = validate_vat_number(buyer_vat_number)
        except VatNumberError as error:
            why_not_reverse_charge = str(error)
        else:
            number_country = _PREFIX_COUNTRY.get(compact[:2], compact[:2])
            if number_country == buyer:
                return VatDecision(
                    category="AE",
                    rate=Decimal("0"),
                    mention_key=REVERSE_CHARGE,
                    reason=f"business buyer in {buyer} with VAT number {compact}: "
                    "reverse charge, the buyer accounts for the VAT",
                )
            why_not_reverse_charge = (
                f"VAT number {compact} is from {number_country}, not from the buyer's country {buyer}"
            )
    category, rate, why = _code_rate(tax_code, buyer, standard_rate, f"consumer sale to {buyer}")
    return VatDecision(
        category=category,
        rate=rate,
        mention_key=None,
        reason=f"{why} ({why_not_reverse_charge}): {buyer} VAT applies, declared through the OSS",
    )
