"""The quote email: branded like every notification, the PDF attached, the acceptance link."""

from __future__ import annotations

from django.core.mail import EmailMultiAlternatives
from django.utils.translation import gettext as _

from billing.quotes.models import Quote
from billing.quotes.rendering import quote_document, quote_pdf, quote_pdf_filename
from billing.quotes.selectors import quote_public_url
from customers.models import NotificationLog
from customers.notifications.base import Content, NotificationGone
from customers.notifications.services import branded_message


def quote_email_send(log: NotificationLog) -> EmailMultiAlternatives:
    """Send the quote of a `quote_sent` notification (runs in the customer's language)."""
    quote = (
        Quote.objects.select_related("customer", "brand")
        .filter(pk=log.data.get("quote"), customer=log.customer)
        .first()
    )
    if quote is None or quote.status != Quote.Status.OPEN:
        raise NotificationGone("The quote is no longer open.")
    document = quote_document(quote)
    content = Content(
        subject=_("Quote %(number)s") % {"number": quote.number},
        paragraphs=[
            _("Please find attached our quote %(number)s for %(amount)s, valid until %(date)s.")
            % {"number": quote.number, "amount": document.amount_due, "date": document.extra["valid_until"]},
            _("You can review and accept it online with the link below."),
        ],
        action=(_("Review and accept the quote"), quote_public_url(quote)),
    )
    message = branded_message(customer=quote.customer, content=content, to=[log.recipient])
    message.attach(quote_pdf_filename(quote), quote_pdf(quote), "application/pdf")
    message.send()
    return message
