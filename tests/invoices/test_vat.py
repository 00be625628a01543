from decimal import Decimal

import pytest

from invoices.vat import (
    EU_MEMBER_STATES,
    EXPORT_OUTSIDE_EU,
    LEGAL_MENTIONS,
    REVERSE_CHARGE,
    VatDecision,
    VatError,
    VatNumberError,
    decide_vat,
    validate_vat_number,
    vat_country,
)

STANDARD_RATES = {"FR": Decimal("20"), "DE": Decimal("19"), "BE": Decimal("21"), "GR": Decimal("24")}


def standard_rate(country: str) -> Decimal:
    return STANDARD_RATES[country]


def decide(buyer_country: str, buyer_vat_number: str | None = None, seller_country: str = "FR") -> VatDecision:
    return decide_vat(
        seller_country=seller_country,
        buyer_country=buyer_country,
        buyer_vat_number=buyer_vat_number,
        standard_rate=standard_rate,
    )


def test_eu_member_states_are_the_27():
    assert len(EU_MEMBER_STATES) == 27
    assert {"FR", "DE", "GR", "HR"} <= EU_MEMBER_STATES
    assert not {"GB", "EL", "XI", "CH", "NO"} & EU_MEMBER_STATES


@pytest.mark.parametrize(
    ("number", "compact"),
    [
        ("FR40303265045", "FR40303265045"),
        ("fr 40 303 265 045", "FR40303265045"),
        ("DE 136.695.976", "DE136695976"),
        ("BE0403019261", "BE0403019261"),
        ("ATU57194903", "ATU57194903"),
        ("EL094259216", "EL094259216"),
        ("GR094259216", "EL094259216"),
        ("XI980780684", "XI980780684"),
    ],
)
def test_valid_vat_numbers_are_returned_compact(number, compact):
    assert validate_vat_number(number) == compact


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("FR40303265046", "check digits"),
        ("DE136695977", "check digits"),
        ("BE0403019262", "check digits"),
        ("FR", "format"),
        ("US123456789", "prefix of an EU member state"),
        ("GB980780684", "prefix of an EU member state"),
        ("123456789", "prefix of an EU member state"),
        ("   ", "empty"),
        ("EU372000041", "One-Stop Shop"),
    ],
)
def test_invalid_vat_numbers_are_refused_with_a_clear_message(number, message):
    with pytest.raises(VatNumberError, match=message):
        validate_vat_number(number)


@pytest.mark.parametrize(
    ("number", "country"),
    [("FR40303265045", "FR"), ("DE136695976", "DE"), ("EL094259216", "GR"), ("XI980780684", "GB")],
)
def test_vat_country_is_the_iso_country(number, country):
    assert vat_country(number) == country


def test_domestic_consumer_pays_the_sellers_rate():
    decision = decide("FR")
    assert (decision.category, decision.rate, decision.mention_key) == ("S", Decimal("20"), None)
    assert "domestic" in decision.reason


def test_domestic_business_still_pays_the_sellers_rate():
    # given a French business buyer with a valid French VAT number / then French VAT, no reverse charge
    decision = decide("FR", "FR40303265045")
    assert (decision.category, decision.rate, decision.mention_key) == ("S", Decimal("20"), None)


def test_business_in_another_member_state_is_reverse_charged():
    # given a German buyer with a valid German VAT number
    decision = decide("DE", "DE136695976")

    # then no VAT, category AE, with the reverse-charge mention
    assert (decision.category, decision.rate, decision.mention_key) == ("AE", Decimal("0"), REVERSE_CHARGE)
    assert "DE136695976" in decision.reason


def test_greek_business_is_reverse_charged_with_its_el_number():
    decision = decide("GR", "EL094259216")
    assert (decision.category, decision.mention_key) == ("AE", REVERSE_CHARGE)


def test_vat_number_of_another_country_does_not_give_reverse_charge():
    # given a buyer in Belgium quoting a German VAT number
    decision = decide("BE", "DE136695976")

    # then it is a consumer sale at the Belgian rate, and the reason says why
    assert (decision.category, decision.rate, decision.mention_key) == ("S", Decimal("21"), None)
    assert "from DE, not from the buyer's country BE" in decision.reason


def test_invalid_vat_number_falls_back_to_consumer_treatment():
    decision = decide("DE", "DE136695977")
    assert (decision.category, decision.rate) == ("S", Decimal("19"))
    assert "check digits" in decision.reason


def test_consumer_in_another_member_state_pays_their_countrys_rate_through_oss():
    decision = decide("DE")
    assert (decision.category, decision.rate, decision.mention_key) == ("S", Decimal("19"), None)
    assert "OSS" in decision.reason


@pytest.mark.parametrize(
    ("buyer_country", "buyer_vat_number"),
    [("US", None), ("CH", "CHE-123.456.788 MWST"), ("GB", "GB980780684"), ("GB", "XI980780684")],
)
def test_buyer_outside_the_eu_is_outside_the_scope_of_eu_vat(buyer_country, buyer_vat_number):
    # given a buyer outside the EU, Northern Ireland included for services
    decision = decide(buyer_country, buyer_vat_number)

    # then no VAT: category O with the "not applicable" mention
    assert (decision.category, decision.rate, decision.mention_key) == ("O", Decimal("0"), EXPORT_OUTSIDE_EU)


def test_monaco_is_part_of_the_french_vat_territory():
    decision = decide("MC")
    assert (decision.category, decision.rate) == ("S", Decimal("20"))


def test_country_codes_are_case_insensitive():
    assert decide("de", "de136695976", seller_country="fr").category == "AE"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(seller_country="US", buyer_country="FR"), "sellers established in the EU"),
        (dict(seller_country="FR", buyer_country="EL"), "use 'GR'"),
        (dict(seller_country="FR", buyer_country="XI"), "use 'GB'"),
        (dict(seller_country="FRA", buyer_country="DE"), "two-letter"),
    ],
)
def test_bad_country_codes_are_refused(kwargs, message):
    with pytest.raises(VatError, match=message):
        decide_vat(buyer_vat_number=None, standard_rate=standard_rate, **kwargs)


def test_a_float_standard_rate_is_refused():
    with pytest.raises(TypeError):
        decide_vat(seller_country="FR", buyer_country="FR", buyer_vat_number=None, standard_rate=lambda _: 20.0)


def test_every_mention_key_has_french_and_english_text():
    assert set(LEGAL_MENTIONS) == {REVERSE_CHARGE, EXPORT_OUTSIDE_EU}
    for texts in LEGAL_MENTIONS.values():
        assert set(texts) == {"fr", "en"} and all(texts.values())
    assert LEGAL_MENTIONS[REVERSE_CHARGE]["fr"].startswith("Autoliquidation")
    assert "article 196 de la directive 2006/112/CE" in LEGAL_MENTIONS[REVERSE_CHARGE]["fr"]
    assert LEGAL_MENTIONS[EXPORT_OUTSIDE_EU]["fr"] == "TVA non applicable, article 259-1 du CGI"
