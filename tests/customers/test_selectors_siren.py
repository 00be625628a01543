import pytest

from customers.models import Customer
from customers.selectors import customer_siren


@pytest.mark.parametrize(
    ("siren", "tax_id", "expected"),
    [
        ("732829320", "", "732829320"),
        ("", "FR44732829320", "732829320"),
        ("", "fr 44 732829320", "732829320"),
        ("", "BE0403170701", ""),
        ("", "", ""),
        ("552100554", "FR44732829320", "552100554"),
    ],
)
def test_customer_siren_comes_from_the_field_else_from_a_french_vat_number(
    siren: str, tax_id: str, expected: str
) -> None:
    assert customer_siren(customer=Customer(siren=siren, tax_id=tax_id)) == expected
