from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from config import views
from config.ops.operations import operations_view
from config.ops.views import metrics

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico on pages that name no icon (downloads, error pages).
    path("favicon.ico", views.favicon, name="favicon"),
    path("readyz", views.readyz, name="readyz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("metrics", metrics, name="metrics"),
    path("admin/operations/", admin.site.admin_view(operations_view), name="operations"),
    path("admin/accounting/", include("invoices.ledger.console_urls")),
    path("admin/", admin.site.urls),
    path("api/v1/reports/", include("reports.api_urls")),
    path("api/", include("config.api.urls")),
    path("accounts/", include("allauth.urls")),
    path("portal/", include("customers.urls", namespace="portal")),
    path("payments/", include("billing.payments.urls", namespace="payments")),
    path("feedback/", include("feedback.urls", namespace="feedback")),
    path("quotes/", include("billing.quotes.urls", namespace="quotes")),
    path("sandbox/", include("billing.payments.sandbox_urls", namespace="sandbox")),
    path("checkout/", include("billing.checkout.urls", namespace="checkout")),
    path("einvoicing/", include("invoices.einvoicing.urls", namespace="einvoicing")),
    path("", include("billing.storefront.urls", namespace="storefront")),
    path("", RedirectView.as_view(pattern_name="portal:home", permanent=False)),
]

# Unknown URLs under /api/ answer in problem+json like the rest of the API.
handler400 = "config.api.exceptions.handler400"
handler404 = "config.api.exceptions.handler404"
