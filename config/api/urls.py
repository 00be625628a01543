"""/api/v1/ (resources registered by each app's apis.py), /api/schema/ and /api/docs/."""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from billing import apis as billing_apis
from billing.checkout import apis as checkout_apis
from billing.entitlements import apis as entitlements_apis
from billing.quotes import apis as quotes_apis
from billing.storefront import apis as storefront_apis
from billing.wallets import apis as wallets_apis
from customers import apis as customers_apis
from feedback import apis as feedback_apis
from invoices import apis as invoices_apis
from invoices import tax_apis as invoices_tax_apis

router = SimpleRouter(trailing_slash=False)
for module in (
    customers_apis,
    billing_apis,
    invoices_apis,
    invoices_tax_apis,
    feedback_apis,
    entitlements_apis,
    wallets_apis,
    checkout_apis,
    storefront_apis,
    quotes_apis,
):
    for prefix, viewset, basename in module.ROUTES:
        router.register(prefix, viewset, basename=basename)

urlpatterns = [
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
