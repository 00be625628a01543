"""Payments, dunning and refunds (docs/payments.md)."""

from config.env import env
from config.settings.stripe import STRIPE_SECRET_KEY

# Which gateway serves card, wallet and SEPA methods: Stripe when its keys are set, else
# the embedded sandbox.
TARIF_PAYMENT_GATEWAY = env.str("TARIF_PAYMENT_GATEWAY", default="stripe" if STRIPE_SECRET_KEY else "sandbox")
# Retries after the first failed charge, in days counted from that failure.
TARIF_DUNNING_SCHEDULE_DAYS = [
    int(day) for day in env.list("TARIF_DUNNING_SCHEDULE_DAYS", default=["1", "3", "5", "7"])
]
# What happens when the last retry fails: "cancel" the subscription, mark it "unpaid",
# or mark the invoice "uncollectible" (the subscription goes back to active).
TARIF_DUNNING_FINAL_ACTION = env.str("TARIF_DUNNING_FINAL_ACTION", default="cancel")
# Refunds above this amount (minor units) need a second staff member's approval.
TARIF_REFUND_APPROVAL_THRESHOLD = env.int("TARIF_REFUND_APPROVAL_THRESHOLD", default=10000)
# How recent the requester's (and approver's) OTP re-verification must be: TARIF_MFA_FRESH_MINUTES (base.py).
# Charge automatically-collected invoices as soon as they are issued. Off while migrating
# from another billing system (invoices are issued, nobody is charged); dunning and manual
# retries still work.
TARIF_COLLECT_ON_ISSUE = env.bool("TARIF_COLLECT_ON_ISSUE", default=True)
