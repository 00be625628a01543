"""Entitlements (issue 16): features granted by products, kept per subscription, answered per customer.

A nested Django app (label `entitlements`) under billing: `Feature` and `ProductFeature` are catalog
data; `SubscriptionEntitlement` is a projection the subscription services keep current in the same
transaction as every change (`services.entitlements_refresh`, called from `subscription_event`), so
`GET /api/v1/customers/{id}/entitlements` is one indexed aggregate, never a re-derivation of plans.
"""
