"""Stripe and dj-stripe (docs/payments.md, "Stripe"). Everything comes from the environment.

With no STRIPE_SECRET_KEY the embedded sandbox gateway serves card, wallet and SEPA
methods; with one, the Stripe gateway does (TARIF_PAYMENT_GATEWAY overrides either way).
"""

from django.core.exceptions import ImproperlyConfigured

from config.env import env

STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
# Test-mode data (sandbox API keys, test clocks) is charged with this key only (sk_test_…);
# without it, test-mode payments go to the built-in sandbox gateway (docs/payments.md).
STRIPE_TEST_SECRET_KEY = env.str("STRIPE_TEST_SECRET_KEY", default="")
if STRIPE_TEST_SECRET_KEY and not STRIPE_TEST_SECRET_KEY.startswith(("sk_test_", "rk_test_")):
    raise ImproperlyConfigured("STRIPE_TEST_SECRET_KEY must be a Stripe test key (sk_test_…).")
STRIPE_PUBLIC_KEY = STRIPE_PUBLISHABLE_KEY  # dj-stripe's name for it
# The signing secret of the webhook endpoint registered at Stripe (whsec_...).
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# How old (seconds) a signed webhook may be before it is refused as a replay.
STRIPE_WEBHOOK_TOLERANCE = env.int("STRIPE_WEBHOOK_TOLERANCE", default=300)
STRIPE_LIVE_MODE = STRIPE_SECRET_KEY.startswith("sk_live_")
# Another API server (localstripe in development). Only defined when set: dj-stripe
# warns (djstripe.W002) whenever the setting exists outside DEBUG.
if env.str("STRIPE_API_HOST", default=""):
    STRIPE_API_HOST = env.str("STRIPE_API_HOST")
# What the portal may add on Stripe Checkout's hosted page (setup mode): "card" and/or
# "sepa_debit". Without "sepa_debit" the portal's SEPA page is not offered with Stripe.
STRIPE_CHECKOUT_SETUP_TYPES = env.list("STRIPE_CHECKOUT_SETUP_TYPES", default=["card", "sepa_debit"])
if not set(STRIPE_CHECKOUT_SETUP_TYPES) <= {"card", "sepa_debit"}:
    raise ImproperlyConfigured("STRIPE_CHECKOUT_SETUP_TYPES takes card and/or sepa_debit.")

DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
# One Stripe customer per Tarif customer: dj-stripe's Customer.subscriber points at it.
DJSTRIPE_SUBSCRIBER_MODEL = "customers.Customer"
DJSTRIPE_SUBSCRIBER_CUSTOMER_KEY = "tarif_customer"
# Tarif verifies webhooks itself (billing/payments/webhooks.py) and routes them into
# payment_webhook_handle; dj-stripe's own endpoint is not mounted.
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"

# `manage.py import_from_stripe` (docs/migrating-from-stripe.md): the country given to an
# imported customer whose Stripe record has neither an address nor a VAT number.
TARIF_STRIPE_IMPORT_DEFAULT_COUNTRY = env.str("TARIF_STRIPE_IMPORT_DEFAULT_COUNTRY", default="FR")
