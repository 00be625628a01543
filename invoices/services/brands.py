"""Brand writes that need more than a form: bank details are a sensitive operation.

Changing where customers send money (IBAN, BIC, the payment instructions printed on every
invoice) is what an account takeover would do first, so the service refuses it without a
second factor verified within TARIF_MFA_FRESH_MINUTES (config/mfa.py) and audits the change
with that verification. Every entry point (the console's brand form today) calls `brand_save`.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from config import mfa
from config.audit.services import audit_record
from config.types import ActingUser
from invoices.errors import FreshVerificationRequired
from invoices.models import Brand

# The payment instructions are kept per language (invoices/translation.py): each is a bank detail.
BANK_DETAIL_FIELDS = ("iban", "bic", "payment_instructions_fr", "payment_instructions_en")


def brand_bank_details_changed(*, brand: Brand) -> list[str]:
    """The bank-detail fields whose value differs from the stored brand (a new brand: the non-empty ones)."""
    stored = Brand.objects.filter(pk=brand.pk).values(*BANK_DETAIL_FIELDS).first() if brand.pk else None
    stored = stored or dict.fromkeys(BANK_DETAIL_FIELDS, "")
    return [name for name in BANK_DETAIL_FIELDS if (getattr(brand, name) or "") != (stored[name] or "")]


@transaction.atomic(savepoint=False)
def brand_save(*, brand: Brand, acting_user: ActingUser, otp_verified_at: datetime | None = None) -> Brand:
    """Save a brand; a change of its bank details needs a fresh second factor (`otp_verified_at`)."""
    changed = brand_bank_details_changed(brand=brand)
    if changed and not mfa.is_fresh(otp_verified_at):
        raise FreshVerificationRequired(
            _("Changing the bank details needs a fresh two-factor code (within the last %(minutes)d minutes).")
            % {"minutes": mfa.fresh_minutes()}
        )
    brand.save()
    if changed:
        assert otp_verified_at is not None  # is_fresh() above
        audit_record(
            actor=acting_user,
            action="brand.bank_details_changed",
            obj=brand,
            extra={"fields": changed, "second_factor_verified_at": otp_verified_at.isoformat()},
        )
    return brand
