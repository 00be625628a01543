"""Customer portal and customer notifications (docs/portal.md)."""

from celery.schedules import crontab

from config.env import env
from config.settings.celery import CELERY_BEAT_SCHEDULE

# Sensitive portal actions need a second factor verified within TARIF_MFA_FRESH_MINUTES (base.py).
# How the portal prorates a plan or quantity change: "always_invoice" (invoice and charge the
# difference at once), "create_prorations" (on the next invoice) or "none".
TARIF_PORTAL_PRORATION = env.str("TARIF_PORTAL_PRORATION", default="always_invoice")
# Cancellation from the portal when the product does not say (product metadata "portal_cancel"):
# "period_end" or "now".
TARIF_PORTAL_CANCEL_MODE = env.str("TARIF_PORTAL_CANCEL_MODE", default="period_end")

# Notifications: reminders this many days ahead (annual plans get the longer notice).
TARIF_NOTIFY_RENEWAL_DAYS = env.int("TARIF_NOTIFY_RENEWAL_DAYS", default=7)
TARIF_NOTIFY_RENEWAL_DAYS_ANNUAL = env.int("TARIF_NOTIFY_RENEWAL_DAYS_ANNUAL", default=30)
TARIF_NOTIFY_TRIAL_DAYS = env.int("TARIF_NOTIFY_TRIAL_DAYS", default=3)
# Days before the first day of a card's expiry month.
TARIF_NOTIFY_CARD_EXPIRY_DAYS = env.int("TARIF_NOTIFY_CARD_EXPIRY_DAYS", default=30)

# Step-up codes by email (customers without TOTP): django-otp's EmailDevice.
OTP_EMAIL_TOKEN_VALIDITY = env.int("OTP_EMAIL_TOKEN_VALIDITY", default=600)

CELERY_BEAT_SCHEDULE["notifications-consume-events"] = {
    "task": "customers.notifications_consume",
    "schedule": crontab(minute="*"),
}
CELERY_BEAT_SCHEDULE["notifications-daily-scan"] = {
    "task": "customers.notifications_scan",
    "schedule": crontab(hour=7, minute=0),
}
