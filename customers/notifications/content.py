"""What each notification says. Builders run inside the customer's language (services._send)."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import datetime
from typing import Any

from allauth.account.forms import default_token_generator
from allauth.account.utils import user_pk_to_url_str
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse
from django.utils import translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from billing.models import DunningCase, InvoiceItem, Payment, PaymentMethod, Subscription, SubscriptionChange
from billing.quotes.models import Quote
from billing.quotes.rendering import quote_document, quote_pdf, quote_pdf_filename
from billing.quotes.selectors import quote_public_url
from billing.services.payments import default_payment_method
from customers.models import NotificationKind, NotificationLog
from customers.notifications.base import Content, NotificationGone, portal_url
from customers.notifications.wording import decline_reason
from invoices.models import Invoice
from invoices.rendering.formatting import long_date, money
from invoices.services.emails import invoice_email_send
from invoices.services.pdf import invoice_pdf_current

Kind = NotificationKind


def _language() -> str:
    return (translation.get_language() or "fr")[:2]


def _money(amount: int, currency: str) -> str:
    return money(int(amount), currency, _language())


def _date(value: datetime | str | None, customer: Any) -> str:
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is None:
        return ""

    return long_date(value.astimezone(zoneinfo.ZoneInfo(customer.timezone)).date(), _language())


def _plan_names(subscription: Any) -> str:
    return ", ".join(
        f"{item.price.product.name} × {item.quantity}" if item.quantity != 1 else item.price.product.name
        for item in subscription.items.select_related("price__product").order_by("pk")
    )


def _subscription(log: NotificationLog) -> Any:
    subscription = Subscription.objects.filter(pk=log.data.get("subscription"), customer=log.customer).first()
    if subscription is None:
        raise NotificationGone("The subscription no longer exists.")
    return subscription


def _payment(log: NotificationLog) -> Any:
    payment = Payment.objects.select_related("invoice", "payment_method").filter(pk=log.data.get("payment")).first()
    if payment is None:
        raise NotificationGone("The payment no longer exists.")
    return payment


def invoice_email(log: NotificationLog) -> EmailMultiAlternatives:
    invoice = Invoice.objects.filter(pk=log.data.get("invoice"), customer=log.customer).first()
    if invoice is None or invoice.status == Invoice.Status.DRAFT:
        raise NotificationGone("The invoice is not issued.")
    return invoice_email_send(invoice=invoice, to=[log.recipient])


def upcoming_renewal(log: NotificationLog) -> Content:
    customer, subscription = log.customer, _subscription(log)
    date = _date(log.data.get("renews_at"), customer)
    amount = _money(log.data.get("amount", 0), log.data.get("currency", customer.currency))

    method = default_payment_method(customer=customer)
    paragraphs = [
        _("Your subscription (%(plan)s) renews on %(date)s for %(amount)s.")
        % {"plan": _plan_names(subscription), "date": date, "amount": amount}
    ]
    if method is not None and method.chargeable:
        paragraphs.append(_("We will charge it to %(method)s.") % {"method": method})
    paragraphs.append(_("Nothing to do if this suits you; you can change or cancel it in your billing portal."))
    return Content(
        subject=_("Your subscription renews on %(date)s") % {"date": date},
        paragraphs=paragraphs,
        rows=[(_("Renewal date"), date), (_("Amount"), amount)],
        action=(_("Manage my subscription"), portal_url("portal:home")),
    )


def payment_receipt(log: NotificationLog) -> Content:
    payment = _payment(log)
    amount = _money(payment.amount, payment.currency)
    number = payment.invoice.number or ""
    return Content(
        subject=_("Receipt: %(amount)s received") % {"amount": amount},
        paragraphs=[_("Thank you: we received your payment of %(amount)s.") % {"amount": amount}],
        rows=[
            (_("Invoice"), number),
            (_("Amount paid"), amount),
            (_("Date"), _date(payment.settled_at or payment.attempted_at, log.customer)),
            (_("Paid with"), str(payment.payment_method) if payment.payment_method else payment.get_method_display()),
        ],
        action=(_("View the invoice"), portal_url("portal:invoice", payment.invoice_id)),
    )


def receipt_attachment(log: NotificationLog) -> tuple[str, bytes, str]:
    """The paid invoice's PDF (its current copy: Paid or Partly paid, with this payment)."""
    invoice = _payment(log).invoice
    return f"{invoice.number}.pdf", invoice_pdf_current(invoice=invoice), "application/pdf"


def payment_failed(log: NotificationLog) -> Content:
    payment = _payment(log)
    amount = _money(payment.amount, payment.currency)
    return Content(
        subject=_("Your payment of %(amount)s did not go through") % {"amount": amount},
        paragraphs=[
            _("We could not charge %(amount)s for invoice %(number)s: %(reason)s")
            % {"amount": amount, "number": payment.invoice.number, "reason": decline_reason(payment)},
            _("Please check your payment method or add another one; we will retry the payment at once."),
        ],
        rows=[(_("Invoice"), payment.invoice.number or ""), (_("Amount due"), amount)],
        action=(_("Update my payment method"), portal_url("portal:payment_methods")),
    )


def dunning_step(log: NotificationLog) -> Content:
    case = DunningCase.objects.select_related("invoice").filter(pk=log.data.get("case")).first()
    if case is None:
        raise NotificationGone("The dunning case no longer exists.")
    invoice = case.invoice
    amount = _money(invoice.amount_remaining, invoice.currency)
    step = log.data.get("step")
    if step == "exhausted":
        subject = _("Final notice: invoice %(number)s is unpaid") % {"number": invoice.number}
        paragraphs = [
            _("We tried several times to collect %(amount)s for invoice %(number)s without success.")
            % {"amount": amount, "number": invoice.number},
            _("Your subscription has been suspended or canceled. Pay the invoice to restore it."),
        ]
        action = (_("Pay now"), portal_url("portal:invoice", invoice.pk))
    elif step == "reminder":
        subject = _("Reminder: invoice %(number)s is overdue") % {"number": invoice.number}
        paragraphs = [
            _("Invoice %(number)s of %(amount)s was due on %(date)s and is still unpaid.")
            % {"number": invoice.number, "amount": amount, "date": _date(invoice.due_at, log.customer)}
        ]
        action = (_("Pay now"), portal_url("portal:invoice", invoice.pk))
    else:
        subject = _("Payment retry failed for invoice %(number)s") % {"number": invoice.number}
        paragraphs = [
            _("Retry %(attempt)d to collect %(amount)s failed: %(reason)s")
            % {"attempt": log.data.get("retry", 1), "amount": amount, "reason": decline_reason(_payment(log))}
        ]
        if case.next_retry_at:
            paragraphs.append(
                _("We will try again on %(date)s. Update your payment method to pay sooner.")
                % {"date": _date(case.next_retry_at, log.customer)}
            )
        action = (_("Update my payment method"), portal_url("portal:payment_methods"))
    return Content(subject=subject, paragraphs=paragraphs, rows=[(_("Amount due"), amount)], action=action)


def card_expiring(log: NotificationLog) -> Content:
    method = PaymentMethod.objects.filter(pk=log.data.get("payment_method"), active=True).first()
    if method is None:
        raise NotificationGone("The card was removed.")
    expiry = f"{method.exp_month:02d}/{method.exp_year}"
    return Content(
        subject=_("Your card ending in %(last4)s expires soon") % {"last4": method.last4},
        paragraphs=[
            _("The card %(card)s we charge for your subscription expires at the end of %(expiry)s.")
            % {"card": method, "expiry": expiry},
            _("Add a new card before then so your service is not interrupted."),
        ],
        action=(_("Update my card"), portal_url("portal:payment_methods")),
    )


def trial_ending(log: NotificationLog) -> Content:
    customer, subscription = log.customer, _subscription(log)
    date = _date(log.data.get("trial_end"), customer)
    amount = _money(log.data.get("amount", 0), log.data.get("currency", customer.currency))
    return Content(
        subject=_("Your trial ends on %(date)s") % {"date": date},
        paragraphs=[
            _("Your trial of %(plan)s ends on %(date)s. Your first invoice will be %(amount)s.")
            % {"plan": _plan_names(subscription), "date": date, "amount": amount},
            _("Make sure a payment method is on file, or cancel before that date if you do not wish to continue."),
        ],
        action=(_("Manage my subscription"), portal_url("portal:home")),
    )


def plan_changed(log: NotificationLog) -> Content:
    change = SubscriptionChange.objects.select_related("subscription").filter(pk=log.data.get("change")).first()
    if change is None:
        raise NotificationGone("The change no longer exists.")
    subscription = change.subscription
    currency = subscription.currency
    items = InvoiceItem.objects.filter(
        subscription=subscription, proration=True, metadata__change_at=change.effective_at.isoformat()
    ).order_by("pk")
    lines = [(item.description, _money(item.amount, currency)) for item in items]
    paragraphs = [_("Your subscription is now: %(plan)s.") % {"plan": _plan_names(subscription)}]
    if lines:
        paragraphs.append(
            _("For the rest of the current period, the change comes to %(amount)s (before tax):")
            % {"amount": _money(change.proration_amount, currency)}
        )
    return Content(
        subject=_("Your plan has changed"),
        paragraphs=paragraphs,
        lines=lines,
        action=(_("See my subscription"), portal_url("portal:home")),
    )


def subscription_canceled(log: NotificationLog) -> Content:
    customer, subscription = log.customer, _subscription(log)
    if log.data.get("at_period_end"):
        date = _date(subscription.current_period_end, customer)
        subject = _("Your subscription ends on %(date)s") % {"date": date}
        paragraphs = [
            _("As you asked, your subscription (%(plan)s) will end on %(date)s; it stays active until then.")
            % {"plan": _plan_names(subscription), "date": date}
        ]
    else:
        subject = _("Your subscription is canceled")
        paragraphs = [
            _("Your subscription (%(plan)s) ended on %(date)s.")
            % {"plan": _plan_names(subscription), "date": _date(subscription.ended_at, customer)}
        ]
    paragraphs.append(_("We are sorry to see you go. Your invoices stay available in your billing portal."))
    return Content(
        subject=subject, paragraphs=paragraphs, action=(_("Open my billing portal"), portal_url("portal:home"))
    )


def subscription_paused(log: NotificationLog) -> Content:
    customer, subscription = log.customer, _subscription(log)
    paragraphs = [
        _("Your subscription (%(plan)s) is paused: nothing is billed meanwhile.") % {"plan": _plan_names(subscription)}
    ]
    if subscription.resumes_at:
        paragraphs.append(_("It resumes on %(date)s.") % {"date": _date(subscription.resumes_at, customer)})
    return Content(
        subject=_("Your subscription is paused"),
        paragraphs=paragraphs,
        action=(_("Open my billing portal"), portal_url("portal:home")),
    )


def _quote(log: NotificationLog) -> Quote:
    quote = (
        Quote.objects.select_related("customer", "brand")
        .filter(pk=log.data.get("quote"), customer=log.customer)
        .first()
    )
    if quote is None or quote.status != Quote.Status.OPEN:
        raise NotificationGone("The quote is no longer open.")
    return quote


def quote_sent(log: NotificationLog) -> Content:
    """A quote sent by staff (issue 17 item 4): the PDF attached and the link to accept it online."""
    quote = _quote(log)
    document = quote_document(quote)
    return Content(
        subject=_("Quote %(number)s") % {"number": quote.number},
        paragraphs=[
            _("Please find attached our quote %(number)s for %(amount)s, valid until %(date)s.")
            % {"number": quote.number, "amount": document.amount_due, "date": document.extra["valid_until"]},
            _("You can review and accept it online with the link below."),
        ],
        action=(_("Review and accept the quote"), quote_public_url(quote)),
    )


def quote_sent_attachments(log: NotificationLog) -> list[tuple[str, bytes, str]]:
    quote = _quote(log)
    return [(quote_pdf_filename(quote), quote_pdf(quote), "application/pdf")]


def portal_invitation(log: NotificationLog) -> Content:
    """A portal login's set-password link (customers.services.customer_invite_portal_user).

    The link is made when the email is sent, not when it was queued: the log keeps no secret,
    and a retried send carries a token that is still valid."""
    user = get_user_model().objects.filter(pk=log.data.get("user")).first()
    if user is None:
        raise NotificationGone("the invited login no longer exists")
    path = reverse(
        "account_reset_password_from_key",
        kwargs={"uidb36": user_pk_to_url_str(user), "key": default_token_generator.make_token(user)},
    )
    url = str(log.data.get("base_url") or settings.TARIF_BASE_URL).rstrip("/") + path
    name = log.customer.legal_name
    return Content(
        subject=_("Your billing portal access for %(name)s") % {"name": name},
        paragraphs=[
            _("You now have access to the billing portal of %(name)s: invoices, payment methods and subscriptions.")
            % {"name": name},
            _("If you did not expect this email, you can ignore it."),
        ],
        action=(_("Choose your password"), url),
    )


BUILDERS: dict[str, Callable[[NotificationLog], Content]] = {
    Kind.UPCOMING_RENEWAL: upcoming_renewal,
    Kind.PAYMENT_RECEIPT: payment_receipt,
    Kind.PAYMENT_FAILED: payment_failed,
    Kind.DUNNING_STEP: dunning_step,
    Kind.CARD_EXPIRING: card_expiring,
    Kind.TRIAL_ENDING: trial_ending,
    Kind.PLAN_CHANGED: plan_changed,
    Kind.SUBSCRIPTION_CANCELED: subscription_canceled,
    Kind.SUBSCRIPTION_PAUSED: subscription_paused,
    Kind.QUOTE_SENT: quote_sent,
    Kind.PORTAL_INVITATION: portal_invitation,
}
# Files attached to a notification, by kind: (filename, content, MIME type).
ATTACHMENTS: dict[str, Callable[[NotificationLog], list[tuple[str, bytes, str]]]] = {
    Kind.QUOTE_SENT: quote_sent_attachments,
    # The receipt carries the invoice as it now stands: "Paid", with date and method.
    Kind.PAYMENT_RECEIPT: lambda log: [receipt_attachment(log)],
}
