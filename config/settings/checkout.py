"""Checkout sessions (issue 17, docs/checkout.md)."""

from celery.schedules import crontab

from config.env import env
from config.settings.celery import CELERY_BEAT_SCHEDULE

# How long a checkout session stays usable after it was created (Stripe: 24 hours).
TARIF_CHECKOUT_SESSION_TTL_SECONDS = env.int("TARIF_CHECKOUT_SESSION_TTL_SECONDS", default=24 * 3600)
# A details form sent back sooner than this after the page was shown is a robot's (time trap).
TARIF_CHECKOUT_MIN_FILL_SECONDS = env.int("TARIF_CHECKOUT_MIN_FILL_SECONDS", default=2)
# django-ratelimit rates (per client IP) of the public checkout pages: the details form's
# POST and the card return, and the live total recomputed as the buyer types.
TARIF_RATELIMIT_CHECKOUT_SUBMIT = env.str("TARIF_RATELIMIT_CHECKOUT_SUBMIT", default="20/m")
TARIF_RATELIMIT_CHECKOUT_TOTAL = env.str("TARIF_RATELIMIT_CHECKOUT_TOTAL", default="120/m")
TARIF_RATELIMIT_CHECKOUT_PAGE = env.str("TARIF_RATELIMIT_CHECKOUT_PAGE", default="120/m")

CELERY_BEAT_SCHEDULE["checkout-expire-sessions"] = {
    "task": "checkout.expire_sessions",
    "schedule": crontab(minute="*/10"),
}
# What a checkout offers when its creator does not say (card, sepa_debit, bank_transfer), less
# what a session cannot take; bank transfer also needs the brand's IBAN (docs/checkout.md).
TARIF_CHECKOUT_PAYMENT_METHOD_TYPES = env.list("TARIF_CHECKOUT_PAYMENT_METHOD_TYPES", default=["card"])
TARIF_CHECKOUT_ALLOW_BANK_TRANSFER = env.bool("TARIF_CHECKOUT_ALLOW_BANK_TRANSFER", default=True)
TARIF_CHECKOUT_BANK_TRANSFER_DAYS_UNTIL_DUE = env.int("TARIF_CHECKOUT_BANK_TRANSFER_DAYS_UNTIL_DUE", default=30)
