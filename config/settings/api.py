"""The integrator API (/api/v1/, docs/api.md). Every DRF view, the reports' included, gets
API-key authentication, scope permissions, per-key throttling and problem+json errors."""

from __future__ import annotations

from config.env import env

TARIF_API_RATE_LIMIT = env.str("TARIF_API_RATE_LIMIT", default="100/second")
# Dotted paths of callables run after each successful API write (see config/api/audit.py).
TARIF_API_WRITE_HOOKS = env.list("TARIF_API_WRITE_HOOKS", default=["config.audit.api.api_write_audited"])
# The API's language when the request sends no Accept-Language it supports (config/api/language.py);
# the console and the portal keep LANGUAGE_CODE.
TARIF_API_DEFAULT_LANGUAGE = env.str("TARIF_API_DEFAULT_LANGUAGE", default="en")

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "config.api.schema.ApiAutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["config.api.filters.ApiFilterBackend"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["config.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["config.api.permissions.HasApiKeyScope"],
    "DEFAULT_THROTTLE_CLASSES": ["config.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": TARIF_API_RATE_LIMIT},
    "DEFAULT_PAGINATION_CLASS": "config.api.pagination.ApiCursorPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "config.api.exceptions.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.api.parsers.BoundedJSONParser"],
    "UNAUTHENTICATED_USER": None,
    "DATETIME_FORMAT": "iso-8601",
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tarif API",
    "DESCRIPTION": (
        "Subscription billing for integrators. Authenticate with `Authorization: Bearer <API key>`; "
        "amounts are integers in minor units with an ISO 4217 currency; timestamps are ISO 8601 UTC; "
        "every error is RFC 9457 problem+json. See docs/api.md."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its UI are public documentation (no data); the UI's assets come from
    # drf-spectacular-sidecar through our static files, never from a CDN.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "LanguageEnum": "customers.models.Language",
        "InvoiceStatusEnum": "invoices.models.Invoice.Status",
        "CreditNoteStatusEnum": "invoices.models.CreditNote.Status",
        "SubscriptionStatusEnum": "billing.models.Subscription.Status",
        "PaymentStatusEnum": "billing.models.Payment.Status",
        "RefundStatusEnum": "billing.models.Refund.Status",
        "TestClockStatusEnum": "billing.models.TestClock.Status",
        "FeatureKindEnum": "billing.entitlements.models.Feature.Kind",
        "CreditGrantCategoryEnum": "billing.wallets.models.CreditGrant.Category",
        "ProrationBehaviorEnum": "billing.serializers.PRORATION_CHOICES",
        "PaymentLinkModeEnum": "billing.storefront.models.PaymentLink.Mode",
        "CheckoutSessionModeEnum": "billing.checkout.models.CheckoutSession.Mode",
        "CheckoutPaymentMethodTypeEnum": "billing.checkout.models.CheckoutSession.PaymentMethodType",
    },
}

# Outbound webhooks (billing/services/webhooks.py): seconds per delivery attempt.
TARIF_WEBHOOK_TIMEOUT_SECONDS = env.float("TARIF_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# Development only: lets webhook URLs point at loopback addresses (and only those over plain
# HTTP). Off by default; on in local and test settings; production forces it off.
TARIF_WEBHOOK_ALLOW_LOOPBACK = env.bool("TARIF_WEBHOOK_ALLOW_LOOPBACK", default=False)
