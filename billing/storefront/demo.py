"""Demo data for `manage.py seed_demo`: one pricing table and one payment link of the demo brand. Idempotent."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from billing.models import Price
from billing.storefront.models import PaymentLink, PricingTable
from billing.storefront.services import LinkItemSpec, TableEntrySpec, payment_link_create, pricing_table_create
from invoices.models import Brand

TABLE_NAME = "Nuage plans"
LINK_NAME = "Nuage Pro, 5 seats"


def storefront_demo_seed(*, brand: Brand, catalog: Sequence[Price]) -> None:
    prices = {price.lookup_key: price for price in catalog}
    starter, pro_monthly, pro_yearly = (prices.get(key) for key in ("starter-monthly", "pro-monthly", "pro-yearly"))
    if starter is None or pro_monthly is None:
        return
    with transaction.atomic():
        if not PricingTable.objects.filter(brand=brand, name=TABLE_NAME, livemode=True).exists():
            pricing_table_create(
                brand=brand,
                livemode=True,
                name=TABLE_NAME,
                entries=[
                    TableEntrySpec(
                        monthly_price=starter,
                        features=("Factures Factur-X", "Portail client", "Support par e-mail"),
                    ),
                    TableEntrySpec(
                        monthly_price=pro_monthly,
                        yearly_price=pro_yearly,
                        features=("Tout Starter", "Relances automatiques", "Support prioritaire"),
                        highlighted=True,
                    ),
                ],
                trial_period_days=14,
                allow_promotion_codes=True,
                embed_origins="http://localhost:8080",
            )
        if not PaymentLink.objects.filter(brand=brand, name=LINK_NAME, livemode=True).exists():
            payment_link_create(
                brand=brand,
                livemode=True,
                name=LINK_NAME,
                mode=PaymentLink.Mode.SUBSCRIPTION,
                items=[LinkItemSpec(price=pro_monthly, quantity=5, adjustable_minimum=1, adjustable_maximum=50)],
                allow_promotion_codes=True,
            )
