"""The parity tables run on the billing services' world: one brand, French VAT, customers in Paris."""

from tests.billing.services.conftest import (  # noqa: F401 - fixtures
    billing_brand,
    make_customer,
    make_metered_price,
    make_price,
)
