"""Plain words for what gateways say in codes."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _


def decline_reason(payment: Any) -> str:
    """Why a payment failed, as a customer understands it (in the active language)."""
    reasons = {
        "insufficient_funds": _("your bank says there are not enough funds on the account."),
        "generic_decline": _("your bank declined the payment without giving a reason."),
        "card_declined": _("your bank declined the payment without giving a reason."),
        "expired_card": _("the card has expired."),
        "incorrect_cvc": _("the security code (CVC) is wrong."),
        "authentication_required": _("your bank asks you to confirm the payment yourself."),
        "authentication_failed": _("the payment was not confirmed with your bank."),
        "no_payment_method": _("there is no payment method we can charge on your account."),
        "payment_method_not_found": _("the payment method on file can no longer be used."),
        "gateway_error": _("our payment provider could not be reached; we will try again."),
    }
    return reasons.get(getattr(payment, "decline_code", "") or "", _("the payment was declined."))


def card_decline_reason(declined: Any) -> str:
    """Why a card was refused when it was saved (verified with the gateway), in plain words."""
    reasons = {
        "insufficient_funds": _("your bank says there are not enough funds on the account."),
        "generic_decline": _("your bank declined the card without giving a reason."),
        "card_declined": _("your bank declined the card without giving a reason."),
        "do_not_honor": _("your bank declined the card without giving a reason."),
        "expired_card": _("the card has expired."),
        "incorrect_cvc": _("the security code (CVC) is wrong."),
        "lost_card": _("the card was reported lost."),
        "stolen_card": _("the card was reported stolen."),
        "payment_method_not_found": _("the card could not be found any more; enter it again."),
    }
    return reasons.get(getattr(declined, "decline_code", "") or "", _("your bank declined the card."))
