"""The operator console for billing, one module per area; importing the package registers them.

catalog (products, meters, prices, coupons, promotion codes), subscriptions, items (usage
events, pending invoice items), runs (billing runs, test clocks),
payments (payment methods, payments, refunds, dunning), reconciliation (bank statements),
webhooks (endpoints, deliveries). The shared toolkit lives in `config.console`.
"""

from billing.admin import (  # noqa: F401
    catalog,
    items,
    payments,
    reconciliation,
    runs,
    stripe_import,
    subscriptions,
    webhooks,
)
