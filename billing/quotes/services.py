"""Quote services: draft, compute, finalize (number), send, revise, cancel, expire, accept.

Totals come from the engine that bills the quote: `subscription_preview_create` with the
quoted items, coupon, trial and terms, with the one-off lines created as pending invoice
items inside a savepoint that is rolled back (so the preview sweeps them exactly as the
acceptance will). No parallel calculation: what the quote shows is what the first invoice
carries, and the acceptance checks it (a quote whose first invoice would differ, e.g.
after a tax-rate change, is refused rather than accepted at another price).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import EllipsisType
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.limits import check_amount, check_quantity
from billing.models import Coupon, Price
from billing.quotes.errors import QuoteError, QuoteStateError
from billing.quotes.locks import quote_qs_for_update, quote_series_qs_for_update
from billing.quotes.models import Quote, QuoteLine, QuoteSeries
from billing.services.invoice_items import invoice_item_create
from billing.services.modes import modes_check
from billing.services.subscriptions import ItemSpec
from billing.services.subscriptions.create import CreatePreview, subscription_create, subscription_preview_create
from config import clock
from config.events.log import event_record
from config.types import ActingUser, JsonDict
from customers.models import Customer, NotificationKind, NotificationLog
from customers.notifications.services import notification_queue
from invoices.models import Brand, Invoice
from invoices.selectors import brand_for_customer
from invoices.services.documents import buyer_snapshot, seller_snapshot
from invoices.services.numbering import customer_numbered_as_test
from invoices.types import InvoicePreview

Status = Quote.Status

# The allowed transitions (STYLE §5); every service checks its move against this table.
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.DRAFT: frozenset({Status.OPEN, Status.CANCELED}),
    Status.OPEN: frozenset({Status.ACCEPTED, Status.CANCELED, Status.EXPIRED}),
    Status.ACCEPTED: frozenset(),
    Status.CANCELED: frozenset(),
    Status.EXPIRED: frozenset({Status.CANCELED}),
}

MAX_LINES = 50
MAX_TEXT = 5000


@dataclass(frozen=True, slots=True)
class QuoteLineInput:
    """A catalog price × quantity, or a one-off `description` at `unit_amount` (minor units) × quantity."""

    price: Price | None = None
    quantity: int = 1
    description: str = ""
    unit_amount: int | None = None


@dataclass(frozen=True, slots=True)
class QuoteComputation:
    """The first invoice the acceptance would issue now, and the recurring amount per cycle."""

    at: datetime
    first_invoice: InvoicePreview
    preview: CreatePreview
    recurring_total: int


# -- settings ---------------------------------------------------------------------------------


def quote_validity_days() -> int:
    return int(getattr(settings, "TARIF_QUOTE_VALIDITY_DAYS", 30))


def quote_number_format(brand: Brand) -> str:
    """TARIF_QUOTE_NUMBER_FORMATS[brand.slug], else "DEV-{year}-{seq:04d}" (devis) for a
    French-speaking brand and "Q-{year}-{seq:04d}" otherwise."""
    formats = getattr(settings, "TARIF_QUOTE_NUMBER_FORMATS", {}) or {}
    if brand.slug in formats:
        return formats[brand.slug]
    return "DEV-{year}-{seq:04d}" if brand.default_language == "fr" else "Q-{year}-{seq:04d}"


# -- helpers ----------------------------------------------------------------------------------


def _transition(quote: Quote, target: str) -> None:
    if target not in TRANSITIONS[quote.status]:
        raise QuoteStateError(
            _("A quote that is %(status)s cannot become %(target)s.")
            % {"status": quote.get_status_display(), "target": Status(target).label},
            code="invalid_transition",
        )
    quote.status = target


def _event(*, type: str, quote: Quote, at: datetime, acting_user: ActingUser = None, **data: Any) -> None:
    event_record(
        type=type,
        object_type="quote",
        object_id=quote.pk,
        customer_id=quote.customer_id,
        occurred_at=at,
        data={
            "number": quote.number,
            "status": quote.status,
            "revision": quote.revision,
            "currency": quote.currency,
            "total": quote.total,
            "recurring_total": quote.recurring_total,
            **data,
        },
        acting_user=acting_user,
    )


def _clean_text(value: str, *, field: str) -> str:
    value = (value or "").strip()
    if len(value) > MAX_TEXT:
        raise QuoteError(_("The %(field)s is limited to %(max)s characters.") % {"field": field, "max": MAX_TEXT})
    return value


def quote_lines_check(*, customer: Customer, lines: Sequence[QuoteLineInput]) -> None:
    if not lines:
        raise QuoteError(_("A quote needs at least one item."), code="no_items")
    if len(lines) > MAX_LINES:
        raise QuoteError(_("A quote has at most %(max)s items.") % {"max": MAX_LINES}, code="too_many_items")
    modes_check(livemode=customer.livemode, objects=[line.price for line in lines])
    if not any(line.price is not None and line.price.type == Price.Type.RECURRING for line in lines):
        raise QuoteError(
            _("A quote needs at least one recurring price: its acceptance starts a subscription."),
            code="no_recurring_price",
        )
    for line in lines:
        quantity = line.quantity
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise QuoteError(_("The quantity is a whole number of at least 1."), code="invalid_quantity")
        check_quantity(quantity, field="quantity")
        if (line.price is None) == (line.unit_amount is None):
            raise QuoteError(_("Each item is a price or a one-off amount, not both."), code="price_or_amount")
        if line.price is None:
            if isinstance(line.unit_amount, bool) or not isinstance(line.unit_amount, int) or line.unit_amount <= 0:
                raise QuoteError(_("A one-off amount is a positive whole number of minor units."), code="amount")
            check_amount(line.unit_amount * quantity, field="amount")
            if not line.description.strip():
                raise QuoteError(_("Describe each one-off item: the customer reads it."), code="description")


def _lines_write(*, quote: Quote, lines: Sequence[QuoteLineInput]) -> None:
    quote.lines.all().delete()
    QuoteLine.objects.bulk_create(
        [
            QuoteLine(
                quote=quote,
                position=position,
                price=line.price,
                quantity=line.quantity,
                description=line.description.strip()[:200],
                unit_amount=line.unit_amount,
            )
            for position, line in enumerate(lines)
        ]
    )


def quote_line_inputs(quote: Quote) -> list[QuoteLineInput]:
    return [
        QuoteLineInput(
            price=line.price, quantity=line.quantity, description=line.description, unit_amount=line.unit_amount
        )
        for line in quote.lines.select_related("price__product").order_by("position", "pk")
    ]


def _engine_kwargs(quote: Quote, lines: Sequence[QuoteLineInput], *, at: datetime, trial_days: int) -> dict[str, Any]:
    return {
        "customer": quote.customer,
        "items": [ItemSpec(price=line.price, quantity=line.quantity) for line in lines if line.price is not None],
        "at": at,
        "trial_days": trial_days,
        "coupon": quote.coupon,
        "collection_method": quote.collection_method,
        "days_until_due": quote.days_until_due
        if quote.collection_method == Quote.CollectionMethod.SEND_INVOICE
        else None,
    }


def _one_offs_create(*, quote: Quote, lines: Sequence[QuoteLineInput], at: datetime, acting_user: ActingUser) -> None:
    for line in lines:
        if line.price is None:
            assert line.unit_amount is not None
            invoice_item_create(
                customer=quote.customer,
                description=line.description,
                amount=line.unit_amount * line.quantity,
                quantity=line.quantity,
                currency=quote.currency,
                at=at,
                acting_user=acting_user,
            )


class _Rollback(Exception):
    pass


def quote_compute(
    *, quote: Quote, lines: Sequence[QuoteLineInput] | None = None, at: datetime | None = None
) -> QuoteComputation:
    """What accepting `quote` at `at` (default: now) would issue, computed by the billing engine.

    The one-off lines become pending invoice items inside a savepoint rolled back at the
    end, so the preview sweeps them as the acceptance does; nothing is kept.
    """
    lines = quote_line_inputs(quote) if lines is None else lines
    at = at or clock.now(customer=quote.customer)
    found: dict[str, Any] = {}
    try:
        with transaction.atomic():
            _one_offs_create(quote=quote, lines=lines, at=at, acting_user=None)
            preview = subscription_preview_create(**_engine_kwargs(quote, lines, at=at, trial_days=quote.trial_days))
            recurring = preview
            if quote.trial_days:
                # After the trial the first period costs what a start without trial costs now.
                recurring = subscription_preview_create(**_engine_kwargs(quote, lines, at=at, trial_days=0))
            found["preview"], found["recurring"] = preview, recurring
            raise _Rollback
    except _Rollback:
        pass
    preview, recurring = found["preview"], found["recurring"]
    recurring_total = sum(
        line.totals.total for line in recurring.first_invoice.lines if line.draft.kind == "subscription"
    )
    return QuoteComputation(
        at=at, first_invoice=preview.first_invoice, preview=preview, recurring_total=recurring_total
    )


def _totals_store(quote: Quote, computation: QuoteComputation) -> None:
    totals = computation.first_invoice.totals
    quote.subtotal = totals.subtotal
    quote.discount_total = totals.discount_total
    quote.tax_total = totals.tax_total
    quote.total = totals.total
    quote.recurring_total = computation.recurring_total


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def quote_snapshot(*, quote: Quote, computation: QuoteComputation, brand: Brand) -> JsonDict:
    """Everything the quote's document shows, frozen at finalization (issued means frozen)."""
    customer = quote.customer
    invoice = computation.first_invoice
    tz = ZoneInfo(brand.timezone)
    return {
        "seller": seller_snapshot(brand),
        "buyer": buyer_snapshot(customer),
        "language": customer.preferred_language,
        "issue_date": computation.at.astimezone(tz).date().isoformat(),
        "valid_until": quote.valid_until.astimezone(tz).date().isoformat(),
        "valid_until_at": _iso(quote.valid_until),
        "currency": quote.currency,
        "lines": [
            {
                "kind": line.draft.kind,
                "description": line.draft.description,
                "quantity": str(line.draft.quantity),
                "amount": line.totals.amount,
                "discount_amount": line.totals.discount_amount,
                "tax_amount": line.totals.tax_amount,
                "tax_rate": str(line.tax_rate),
                "tax_category": line.tax_category,
                "tax_inclusive": line.draft.tax_inclusive,
                "total": line.totals.total,
                "period_start": _iso(line.draft.period_start),
                "period_end": _iso(line.draft.period_end),
            }
            for line in invoice.lines
        ],
        "discounts": [
            {"label": label, "amount": amount}
            for label, amount in zip(invoice.discount_labels, invoice.totals.discount_amounts, strict=False)
        ],
        "tax_breakdown": [
            {
                "category": group.category,
                "rate": str(group.rate),
                "taxable_amount": group.taxable_amount,
                "tax_amount": group.tax_amount,
                "exemption_reason": group.exemption_reason,
            }
            for group in invoice.tax_breakdown
        ],
        "vat_mention_key": invoice.vat_mention_key,
        "totals": {
            "subtotal": invoice.totals.subtotal,
            "discount_total": invoice.totals.discount_total,
            "total_excluding_tax": invoice.totals.total_excluding_tax,
            "tax_total": invoice.totals.tax_total,
            "total": invoice.totals.total,
            "recurring_total": computation.recurring_total,
        },
        "trial_days": quote.trial_days,
        "trial_end": _iso(computation.preview.trial_end),
        "first_period_end": _iso(computation.preview.current_period_end),
        "collection_method": quote.collection_method,
        "days_until_due": quote.days_until_due,
        "coupon": {"id": quote.coupon_id, "name": quote.coupon.name} if quote.coupon is not None else None,
        "header": quote.header,
        "footer": quote.footer,
        "terms": quote.terms,
    }


def quote_preview_snapshot(*, quote: Quote) -> JsonDict:
    """The issued snapshot, or for a draft the one finalizing it now would freeze (unnumbered)."""
    if quote.status != Status.DRAFT and quote.snapshot:
        return quote.snapshot
    snapshot = quote_snapshot(quote=quote, computation=quote_compute(quote=quote), brand=quote.brand)
    snapshot["number"] = ""
    return snapshot


def _content_hash(snapshot: dict[str, Any]) -> str:
    canonical = json.dumps(snapshot, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- draft ------------------------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def quote_create(
    *,
    customer: Customer,
    lines: Sequence[QuoteLineInput],
    valid_until: datetime | None = None,
    collection_method: str = Quote.CollectionMethod.SEND_INVOICE,
    days_until_due: int | None = None,
    trial_days: int = 0,
    coupon: Coupon | None = None,
    header: str = "",
    footer: str = "",
    terms: str = "",
    acting_user: ActingUser = None,
) -> Quote:
    """A draft quote for `customer`; its totals are computed by the billing engine (and refused
    as the subscription's creation would refuse them: currency, cycles, coupon...)."""
    if valid_until is not None and valid_until.utcoffset() is None:
        raise ValueError("valid_until must be timezone-aware")
    now = clock.now(customer=customer)
    quote = Quote(
        customer=customer,
        brand=brand_for_customer(customer=customer),
        currency=customer.currency,
        valid_until=valid_until or now + timedelta(days=quote_validity_days()),
    )
    _fields_apply(
        quote,
        collection_method=collection_method,
        days_until_due=days_until_due,
        trial_days=trial_days,
        coupon=coupon,
        header=header,
        footer=footer,
        terms=terms,
    )
    quote_lines_check(customer=customer, lines=lines)
    computation = quote_compute(quote=quote, lines=lines, at=now)
    _totals_store(quote, computation)
    quote.save()
    _lines_write(quote=quote, lines=lines)
    _event(type="quote.created", quote=quote, at=now, acting_user=acting_user)
    return quote


def _fields_apply(
    quote: Quote,
    *,
    collection_method: str,
    days_until_due: int | None,
    trial_days: int,
    coupon: Coupon | None,
    header: str,
    footer: str,
    terms: str,
) -> None:
    if collection_method not in Quote.CollectionMethod.values:
        raise QuoteError(_("Unknown collection method %(method)s.") % {"method": collection_method})
    if isinstance(trial_days, bool) or not isinstance(trial_days, int) or not 0 <= trial_days <= 730:
        raise QuoteError(_("A trial lasts from 0 to 730 days."), code="invalid_trial")
    if collection_method == Quote.CollectionMethod.SEND_INVOICE:
        days_until_due = 30 if days_until_due is None else days_until_due
        if not 0 <= days_until_due <= 365:
            raise QuoteError(_("Payment terms are 0 to 365 days."), code="terms")
    else:
        days_until_due = None
    if coupon is not None:
        modes_check(livemode=quote.customer.livemode, objects=[coupon])
    quote.collection_method = collection_method
    quote.days_until_due = days_until_due
    quote.trial_days = trial_days
    quote.coupon = coupon
    quote.header = _clean_text(header, field=_("header"))
    quote.footer = _clean_text(footer, field=_("footer"))
    quote.terms = _clean_text(terms, field=_("terms"))


def _locked(quote: Quote) -> Quote:
    return quote_qs_for_update().select_related("customer", "brand", "coupon").get(pk=quote.pk)


@transaction.atomic(savepoint=False)
def quote_update(
    *,
    quote: Quote,
    lines: Sequence[QuoteLineInput] | None = None,
    valid_until: datetime | None = None,
    collection_method: str | None = None,
    days_until_due: int | None = None,
    trial_days: int | None = None,
    coupon: Coupon | None | EllipsisType = ...,
    header: str | None = None,
    footer: str | None = None,
    terms: str | None = None,
    acting_user: ActingUser = None,
) -> Quote:
    """Change a draft (and recompute its totals). An issued quote is frozen: revise it instead."""
    quote = _locked(quote)
    if quote.status != Status.DRAFT:
        raise QuoteStateError(
            _("Quote %(number)s is issued and frozen: revise it to change it.") % {"number": quote.number},
            code="quote_frozen",
        )
    if valid_until is not None:
        if valid_until.utcoffset() is None:
            raise ValueError("valid_until must be timezone-aware")
        quote.valid_until = valid_until
    _fields_apply(
        quote,
        collection_method=collection_method if collection_method is not None else quote.collection_method,
        days_until_due=days_until_due if days_until_due is not None else quote.days_until_due,
        trial_days=trial_days if trial_days is not None else quote.trial_days,
        coupon=quote.coupon if isinstance(coupon, EllipsisType) else coupon,
        header=header if header is not None else quote.header,
        footer=footer if footer is not None else quote.footer,
        terms=terms if terms is not None else quote.terms,
    )
    if lines is not None:
        quote_lines_check(customer=quote.customer, lines=lines)
    computation = quote_compute(quote=quote, lines=lines)
    _totals_store(quote, computation)
    quote.save()
    if lines is not None:
        _lines_write(quote=quote, lines=lines)
    return quote


def quote_recompute(*, quote: Quote) -> Quote:
    """Recompute a draft's totals from its stored lines (the console's "preview totals")."""
    return quote_update(quote=quote)


# -- numbering --------------------------------------------------------------------------------


def _number_take(*, quote: Quote) -> tuple[str, datetime]:
    """The next number of the brand's quote series and the issue instant, read under the series lock."""
    brand, customer = quote.brand, quote.customer
    number_format = quote_number_format(brand)
    test_mode = customer_numbered_as_test(customer)
    moment = clock.now(customer=customer)
    local = moment.astimezone(ZoneInfo(brand.timezone))
    scope = f"{local.year:04d}" if "{year" in number_format else ""
    if test_mode:
        number_format, scope = "TEST-" + number_format, f"test:{scope}"
    series, _created = quote_series_qs_for_update().get_or_create(brand=brand, scope=scope)
    issued_at = clock.now(customer=customer)  # under the lock: number order is date order
    if not test_mode and series.last_issued_at is not None and issued_at < series.last_issued_at:
        issued_at = series.last_issued_at
    value = series.last_value + 1
    QuoteSeries.objects.filter(pk=series.pk).update(last_value=F("last_value") + 1, last_issued_at=issued_at)
    try:
        number = number_format.format(seq=value, year=local.year, month=local.month)
    except (KeyError, ValueError, IndexError) as error:
        raise QuoteError(
            _("The quote number format %(format)s is invalid; use e.g. DEV-{year}-{seq:04d}.")
            % {"format": number_format}
        ) from error
    return number, issued_at


def _revision_number(revised: Quote, revision: int) -> str:
    root = revised
    while root.revises is not None:
        root = root.revises
    return f"{root.number}-R{revision}"


# -- transitions ------------------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def quote_finalize(*, quote: Quote, acting_user: ActingUser = None) -> Quote:
    """Issue a draft: totals recomputed now, then frozen with a number of the brand's series
    (a revision takes its original's number with -R<n>) and the quote it revises superseded."""
    revised = None
    if quote.revises_id is not None:
        # Lock order: rows of one rank by primary key; the revised quote is the older row.
        revised = quote_qs_for_update().get(pk=quote.revises_id)
    quote = _locked(quote)
    if quote.status != Status.DRAFT:
        raise QuoteStateError(_("Only a draft quote can be finalized."), code="not_draft")
    now = clock.now(customer=quote.customer)
    if quote.valid_until <= now:
        raise QuoteError(_("The validity date has passed: choose a later one."), code="valid_until")
    if revised is not None and revised.status not in (Status.OPEN, Status.EXPIRED):
        raise QuoteStateError(
            _("Quote %(number)s is %(status)s: this revision can no longer replace it.")
            % {"number": revised.number, "status": revised.get_status_display()},
            code="revised_closed",
        )
    computation = quote_compute(quote=quote, at=now)
    _totals_store(quote, computation)
    if revised is not None:
        quote.number, quote.finalized_at = _revision_number(revised, quote.revision), now
    else:
        quote.number, quote.finalized_at = _number_take(quote=quote)
    computation = QuoteComputation(
        at=quote.finalized_at,
        first_invoice=computation.first_invoice,
        preview=computation.preview,
        recurring_total=computation.recurring_total,
    )
    quote.snapshot = quote_snapshot(quote=quote, computation=computation, brand=quote.brand)
    quote.snapshot["number"] = quote.number
    quote.content_hash = _content_hash(quote.snapshot)
    _transition(quote, Status.OPEN)
    quote.save()
    _event(type="quote.finalized", quote=quote, at=now, acting_user=acting_user)
    if revised is not None and revised.status == Status.OPEN:
        _transition(revised, Status.CANCELED)
        revised.canceled_at, revised.cancel_reason = now, Quote.CancelReason.SUPERSEDED
        revised.save(update_fields=["status", "canceled_at", "cancel_reason", "updated_at"])
        _event(type="quote.canceled", quote=revised, at=now, acting_user=acting_user, superseded_by=quote.pk)
    return quote


@transaction.atomic(savepoint=False)
def quote_cancel(*, quote: Quote, acting_user: ActingUser = None) -> Quote:
    quote = _locked(quote)
    now = clock.now(customer=quote.customer)
    _transition(quote, Status.CANCELED)
    quote.canceled_at, quote.cancel_reason = now, Quote.CancelReason.REQUESTED
    quote.save(update_fields=["status", "canceled_at", "cancel_reason", "updated_at"])
    _event(type="quote.canceled", quote=quote, at=now, acting_user=acting_user)
    return quote


@transaction.atomic(savepoint=False)
def quote_revise(*, quote: Quote, acting_user: ActingUser = None) -> Quote:
    """A new draft copying an open (or expired) quote; finalizing it supersedes the original."""
    quote = _locked(quote)
    if quote.status not in (Status.OPEN, Status.EXPIRED):
        raise QuoteStateError(_("Only an open or expired quote can be revised."), code="not_revisable")
    if quote.revisions.filter(status=Status.DRAFT).exists():
        raise QuoteStateError(_("A draft revision of this quote exists already."), code="revision_exists")
    now = clock.now(customer=quote.customer)
    revision = Quote(
        customer=quote.customer,
        brand=quote.brand,
        currency=quote.currency,
        revises=quote,
        revision=quote.revision + 1,
        valid_until=max(quote.valid_until, now + timedelta(days=quote_validity_days())),
        collection_method=quote.collection_method,
        days_until_due=quote.days_until_due,
        trial_days=quote.trial_days,
        coupon=quote.coupon,
        header=quote.header,
        footer=quote.footer,
        terms=quote.terms,
        subtotal=quote.subtotal,
        discount_total=quote.discount_total,
        tax_total=quote.tax_total,
        total=quote.total,
        recurring_total=quote.recurring_total,
    )
    revision.save()
    _lines_write(quote=revision, lines=quote_line_inputs(quote))
    _event(type="quote.created", quote=revision, at=now, acting_user=acting_user, revises=quote.pk)
    return revision


def quote_is_expired(*, quote: Quote, at: datetime | None = None) -> bool:
    at = at or clock.now(customer=quote.customer)
    return quote.status == Status.EXPIRED or (quote.status == Status.OPEN and quote.valid_until <= at)


@transaction.atomic(savepoint=False)
def quote_expire(*, quote: Quote) -> Quote:
    """Mark an open quote whose validity passed (by its customer's clock) as expired; else unchanged."""
    quote = _locked(quote)
    now = clock.now(customer=quote.customer)
    if quote.status != Status.OPEN or quote.valid_until > now:
        return quote
    _transition(quote, Status.EXPIRED)
    quote.expired_at = now
    quote.save(update_fields=["status", "expired_at", "updated_at"])
    _event(type="quote.expired", quote=quote, at=now)
    return quote


def quotes_expire_due() -> int:
    """The sweeper (Celery beat): expire every open quote past its validity, one transaction each."""
    now = timezone.now()
    candidates = Quote.objects.filter(status=Status.OPEN).filter(
        Q(valid_until__lte=now) | Q(customer__test_clock__isnull=False)
    )
    expired = 0
    for pk in candidates.values_list("pk", flat=True).order_by("pk").iterator():
        with transaction.atomic():
            if quote_expire(quote=Quote(pk=pk)).status == Status.EXPIRED:
                expired += 1
    return expired


def _acceptable_check(quote: Quote, *, at: datetime) -> None:
    if quote.status == Status.ACCEPTED:
        raise QuoteStateError(_("This quote has already been accepted."), code="quote_already_accepted")
    if quote.status == Status.CANCELED and quote.cancel_reason == Quote.CancelReason.SUPERSEDED:
        raise QuoteStateError(
            _("This quote was replaced by a revised version: use the link of the latest quote you received."),
            code="quote_superseded",
        )
    if quote.status == Status.CANCELED:
        raise QuoteStateError(_("This quote was withdrawn and can no longer be accepted."), code="quote_canceled")
    if quote_is_expired(quote=quote, at=at):
        raise QuoteStateError(_("This quote has expired and can no longer be accepted."), code="quote_expired")
    if quote.status != Status.OPEN:
        raise QuoteStateError(_("This quote is not open for acceptance."), code="quote_not_open")


@transaction.atomic(durable=True)
def quote_accept(
    *,
    quote: Quote,
    signer_name: str,
    ip_address: str | None = None,
    user_agent: str = "",
    acting_user: ActingUser = None,
) -> Quote:
    """Accept an open quote, once: the subscription with exactly the quoted items, quantities,
    coupon, trial and collection method, its first invoice (with the one-off items), at the
    acceptance instant of the billing clock; the signer's name, time, IP and user agent recorded.

    Under the quote's row lock, so a double submit or two tabs create one subscription: the
    second caller finds the quote accepted and is refused (`quote_already_accepted`).
    """
    signer_name = " ".join((signer_name or "").split())
    if not signer_name or len(signer_name) > 200:
        raise QuoteError(_("Type your full name to sign the quote."), code="signer_name")
    quote = _locked(quote)
    at = clock.now(customer=quote.customer)
    _acceptable_check(quote, at=at)
    lines = quote_line_inputs(quote)
    _one_offs_create(quote=quote, lines=lines, at=at, acting_user=acting_user)
    kwargs = _engine_kwargs(quote, lines, at=at, trial_days=quote.trial_days)
    subscription = subscription_create(
        **kwargs, metadata={"quote": quote.number, "quote_id": quote.pk}, acting_user=acting_user
    )
    invoice = (
        Invoice.objects.filter(subscription=subscription, billing_reason="subscription_create").order_by("pk").first()
    )
    quoted = quote.snapshot.get("totals", {})
    if invoice is None or (invoice.subtotal, invoice.discount_total, invoice.tax_total, invoice.total) != (
        quoted.get("subtotal"),
        quoted.get("discount_total"),
        quoted.get("tax_total"),
        quoted.get("total"),
    ):
        # Rolled back: a quote is accepted at its price or not at all (a tax rate or a
        # coupon changed since it was issued); staff revise it.
        raise QuoteStateError(
            _("This quote no longer matches our current prices or taxes; please contact us for a revised quote."),
            code="quote_outdated",
        )
    _transition(quote, Status.ACCEPTED)
    quote.accepted_at = at
    quote.accepted_name = signer_name
    quote.accepted_ip = ip_address or None
    quote.accepted_user_agent = (user_agent or "")[:300]
    quote.subscription = subscription
    quote.invoice = invoice
    quote.save()
    _event(
        type="quote.accepted",
        quote=quote,
        at=at,
        acting_user=acting_user,
        subscription=subscription.pk,
        invoice=invoice.pk,
        accepted_name=signer_name,
    )
    return quote


@transaction.atomic(savepoint=False)
def quote_send(*, quote: Quote, acting_user: ActingUser = None) -> NotificationLog:
    """Email an open quote (PDF attached, acceptance link) through the customer notifications:
    recorded durably with this transaction (a hand-off row), delivered after the commit."""
    quote = _locked(quote)
    now = clock.now(customer=quote.customer)
    if quote.status != Status.OPEN or quote_is_expired(quote=quote, at=now):
        raise QuoteStateError(_("Only an open quote within its validity can be sent."), code="not_sendable")
    log = notification_queue(
        customer=quote.customer,
        kind=NotificationKind.QUOTE_SENT,
        dedupe_key=f"quote:{quote.pk}:{uuid.uuid4().hex}",
        data={"quote": quote.pk, "by": getattr(acting_user, "pk", None)},
    )
    assert log is not None  # a fresh dedupe key never clashes
    quote.sent_at = now
    quote.save(update_fields=["sent_at", "updated_at"])
    return log
