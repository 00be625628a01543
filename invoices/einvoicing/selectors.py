"""Reads of e-invoicing: accounts, routing decisions, timelines, directory cache, attention lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from customers.models import Customer
from customers.selectors import customer_siren
from invoices.einvoicing.models import DirectoryEntry, LifecycleStatus, PlatformAccount, Transmission
from invoices.selectors import NoBrandConfigured, brand_for_customer


def platform_account_for(*, brand_id: int, livemode: bool) -> PlatformAccount | None:
    """The brand's active PA account in this mode (None: the brand does not e-invoice)."""
    return PlatformAccount.objects.filter(brand_id=brand_id, livemode=livemode, active=True).first()


def customer_is_einvoiced(*, customer: Customer) -> bool:
    """A French business with a SIREN: its invoices go through the PA (B2C and abroad: e-reporting)."""
    return str(customer.country) == "FR" and bool(customer.is_business) and bool(customer_siren(customer=customer))


def transmission_for_invoice(*, invoice_id: int) -> Transmission | None:
    return Transmission.objects.filter(invoice_id=invoice_id).select_related("account").first()


def transmission_for_credit_note(*, credit_note_id: int) -> Transmission | None:
    return Transmission.objects.filter(credit_note_id=credit_note_id).select_related("account").first()


def transmission_timeline(*, transmission: Transmission) -> QuerySet[LifecycleStatus]:
    return transmission.statuses.order_by("occurred_at", "pk")


def transmissions_needing_attention(*, livemode: bool) -> QuerySet[Transmission]:
    return (
        Transmission.objects.filter(needs_attention=True, customer__livemode=livemode)
        .select_related("customer", "invoice", "credit_note")
        .order_by("-updated_at")
    )


def directory_entry_cached(*, siren: str, siret: str = "", livemode: bool, at: datetime) -> DirectoryEntry | None:
    """The directory answer still trusted at `at` (None: ask the PA)."""
    return DirectoryEntry.objects.filter(livemode=livemode, siren=siren, siret=siret, expires_at__gt=at).first()


@dataclass(frozen=True)
class CustomerEinvoicing:
    """What the customer hub shows about e-invoicing."""

    applies: bool  # a French business with a SIREN
    siren: str
    platform_configured: bool
    entry: DirectoryEntry | None  # the last directory answer, fresh or not
    warning: str  # "" when the customer can be e-invoiced


def customer_einvoicing(*, customer: Customer) -> CustomerEinvoicing:
    siren = customer_siren(customer=customer)
    applies = customer_is_einvoiced(customer=customer)
    account = None
    if applies:
        try:
            brand_id: int | None = brand_for_customer(customer=customer).pk
        except NoBrandConfigured:
            brand_id = None
        account = platform_account_for(brand_id=brand_id, livemode=customer.livemode) if brand_id else None
    entry = (
        DirectoryEntry.objects.filter(livemode=customer.livemode, siren=siren).order_by("-fetched_at").first()
        if siren
        else None
    )
    warning = ""
    if applies and account is None:
        warning = _(
            "This French business customer must receive e-invoices through an approved platform, "
            "but the brand has no active platform account: its invoices are not transmitted."
        )
    elif applies and entry is not None and not entry.found:
        warning = _(
            "No e-invoicing address was found in the directory for SIREN %(siren)s: its invoices "
            "cannot be transmitted until the customer registers with a platform (they are never sent by email only)."
        ) % {"siren": siren}
    return CustomerEinvoicing(
        applies=applies, siren=siren, platform_configured=account is not None, entry=entry, warning=warning
    )
