"""Queue and deliver customer notifications: each once, branded, in the customer's language."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from email.mime.image import MIMEImage
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from config.ops.handoffs import Kind as HandoffKind
from config.ops.handoffs import handoff_enqueue_on_commit, handoffs_complete, handoffs_record
from config.types import ActingUser, JsonDict
from customers.locks import notification_log_qs_for_update
from customers.models import OPTIONAL_NOTIFICATIONS, Customer, NotificationKind, NotificationLog, NotificationPreference
from customers.notifications import content
from customers.notifications.base import Content, NotificationGone, portal_url
from invoices.selectors import NoBrandConfigured, brand_for_customer

if TYPE_CHECKING:
    from invoices.models import Invoice

logger = logging.getLogger(__name__)

Kind = NotificationKind
LOGO_CID = "brand-logo"
MAX_ATTEMPTS = 5
CLAIM_STALE_AFTER = timedelta(minutes=10)


def notification_enabled(*, customer: Customer, kind: str) -> bool:
    if kind not in OPTIONAL_NOTIFICATIONS:
        return True
    preference = NotificationPreference.objects.filter(customer=customer, kind=kind).first()
    return preference is None or preference.enabled


def notification_queue(
    *,
    customer: Customer,
    kind: str,
    dedupe_key: str,
    data: JsonDict | None = None,
    event_id: int | None = None,
    recipient: str = "",
) -> NotificationLog | None:
    """Record the notification once and deliver it after commit; None when it exists already.
    `recipient`: another address than the customer's billing email (a portal invitation's)."""
    enabled = notification_enabled(customer=customer, kind=kind)
    try:
        with transaction.atomic():
            log = NotificationLog.objects.create(
                customer=customer,
                kind=kind,
                dedupe_key=dedupe_key[:120],
                data=data or {},
                event_id=event_id,
                status=NotificationLog.Status.PENDING if enabled else NotificationLog.Status.SKIPPED,
                recipient=recipient or customer.invoice_recipient,
                language=customer.preferred_language,
            )
    except IntegrityError:
        return None
    if enabled:
        # Durable: the hand-off row commits with the log; a crash before the enqueue is swept.
        handoff_enqueue_on_commit(kind=HandoffKind.NOTIFICATION, object_ids=[log.pk])
    return log


def notification_deliver(*, log_id: int) -> NotificationLog:
    """Send a queued notification (a no-op once sent). Raises on a transport error so the
    task retries; after MAX_ATTEMPTS the row stays `failed`.

    Claim → commit → send → record: the row is claimed (`sending`) under its lock and that
    commits before the SMTP call, so no lock is held while the mail server answers; the
    outcome is recorded in a second transaction. A worker that dies mid-send leaves a claim
    that is taken again once older than CLAIM_STALE_AFTER (the hand-off sweeper re-enqueues it).
    """
    now = timezone.now()
    with transaction.atomic():
        log = notification_log_qs_for_update().select_related("customer__brand").get(pk=log_id)
        claimable = (NotificationLog.Status.PENDING, NotificationLog.Status.FAILED)
        stale_claim = (
            log.status == NotificationLog.Status.SENDING
            and log.claimed_at is not None
            and log.claimed_at <= now - CLAIM_STALE_AFTER
        )
        if log.status not in claimable and not stale_claim:
            return log
        log.status, log.claimed_at = NotificationLog.Status.SENDING, now
        log.attempts += 1
        log.save(update_fields=["status", "claimed_at", "attempts"])
    failure: Exception | None = None
    try:
        message = _send(log)
    except NotificationGone as gone:
        log.status, log.error = NotificationLog.Status.SKIPPED, str(gone)[:300]
    except Exception as error:  # SMTP down, template error...: recorded, then retried by the task
        failure = error
        log.status, log.error = NotificationLog.Status.FAILED, f"{type(error).__name__}: {error}"[:300]
    else:
        log.status, log.error, log.sent_at = NotificationLog.Status.SENT, "", timezone.now()
        log.subject, log.recipient = message.subject[:300], ", ".join(message.to)[:254]
    with transaction.atomic():
        log.save(update_fields=["status", "error", "sent_at", "subject", "recipient"])
    if failure is not None and log.attempts < MAX_ATTEMPTS:
        raise failure
    return log


def notification_deliver_now(*, log_id: int) -> NotificationLog:
    """Deliver a queued notification in the caller's request (the console's "email invoice"),
    never raising for a transport error: the row then says `failed` and its hand-off stays
    pending, so the sweeper tries again; a final outcome closes the hand-off."""
    try:
        log = notification_deliver(log_id=log_id)
    except Exception:
        logger.warning("notification %s not sent; left for the sweeper", log_id, exc_info=True)
        return NotificationLog.objects.get(pk=log_id)
    if log.status != NotificationLog.Status.SENDING:
        handoffs_complete(kind=HandoffKind.NOTIFICATION, object_ids=[log_id])
    return log


def notification_retryable(log: NotificationLog) -> bool:
    return log.status == NotificationLog.Status.FAILED and log.attempts < MAX_ATTEMPTS


def invoice_email_queue(*, invoice: Invoice, acting_user: ActingUser = None) -> NotificationLog:
    """Record "email this issued invoice" (the console's action) as a queued notification.

    Its own transaction, committed on return: the caller then sends it with
    `notification_deliver` outside any transaction, and the hand-off row makes a failed or
    interrupted send retryable by the sweeper. Each request is a new row (staff may resend).
    """
    snapshot = invoice.issued_snapshot or {}
    recipient = (snapshot.get("buyer") or {}).get("email") or invoice.customer.invoice_recipient
    with transaction.atomic(durable=True):
        log = NotificationLog.objects.create(
            customer=invoice.customer,
            kind=Kind.INVOICE_SENT,
            dedupe_key=f"invoice:{invoice.pk}:{uuid.uuid4().hex}",
            data={"invoice": invoice.pk, "by": getattr(acting_user, "pk", None)},
            status=NotificationLog.Status.PENDING,
            recipient=recipient,
            language=invoice.customer.preferred_language,
        )
        handoffs_record(kind=HandoffKind.NOTIFICATION, object_ids=[log.pk])
    return log


# -- rendering ---------------------------------------------------------------------------------------


def _brand(customer: Customer) -> Any:
    try:
        return brand_for_customer(customer=customer)
    except NoBrandConfigured:
        return None


def _logo(brand: Any) -> MIMEImage | None:
    """The brand's raster logo as an inline part (cid:), which mail clients show."""
    if brand is None or not brand.logo:
        return None
    name = brand.logo.name.lower()
    subtype = "png" if name.endswith(".png") else "jpeg" if name.endswith((".jpg", ".jpeg")) else None
    if subtype is None:
        return None
    with brand.logo.open("rb") as handle:
        image = MIMEImage(handle.read(), _subtype=subtype)
    image.add_header("Content-ID", f"<{LOGO_CID}>")
    image.add_header("Content-Disposition", "inline", filename=f"logo.{subtype}")
    return image


def branded_message(*, customer: Customer, content: Content, to: list[str]) -> EmailMultiAlternatives:
    """An HTML + text email in the customer's brand (name, colours, logo)."""
    brand = _brand(customer)
    logo = _logo(brand)
    brand_name = brand.name if brand is not None else "Tarif"
    context = {
        "content": content,
        "brand_name": brand_name,
        "primary": brand.primary_colour if brand is not None else "#2851a3",
        "accent": brand.accent_colour if brand is not None else "#f0a202",
        "logo_src": f"cid:{LOGO_CID}" if logo else "",
        "customer": customer,
        "preferences_url": portal_url("portal:details"),
    }
    text = render_to_string("customers/email/notification.txt", context)
    html = render_to_string("customers/email/notification.html", context)
    message = EmailMultiAlternatives(subject=f"{content.subject} – {brand_name}", body=text, to=to)
    message.attach_alternative(html, "text/html")
    if logo:
        message.mixed_subtype = "related"
        message.attach(logo)
    return message


def _send(log: NotificationLog) -> EmailMultiAlternatives:
    customer = log.customer
    with translation.override(customer.preferred_language):
        if log.kind in (Kind.INVOICE_FINALIZED, Kind.INVOICE_SENT):
            # The invoice email of invoices/services/emails.py: branded, with the stored PDF.
            return content.invoice_email(log)
        message = branded_message(customer=customer, content=content.BUILDERS[log.kind](log), to=[log.recipient])
        for attachment in content.ATTACHMENTS.get(log.kind, lambda _log: [])(log):
            message.attach(*attachment)
        message.send()
        return message


def step_up_code_send(*, customer: Customer, email: str, code: str) -> None:
    """The one-time code that confirms a sensitive portal action (customers without TOTP)."""
    minutes = max(1, settings.OTP_EMAIL_TOKEN_VALIDITY // 60)
    with translation.override(customer.preferred_language):
        body = Content(
            subject=_("Your verification code"),
            paragraphs=[
                _("Enter this code in the billing portal to confirm it is you: %(code)s") % {"code": code},
                _("It is valid for %(minutes)d minutes. If you did not ask for it, ignore this email.")
                % {"minutes": minutes},
            ],
        )
        branded_message(customer=customer, content=body, to=[email]).send()
