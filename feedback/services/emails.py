"""The invitation email, in the customer's brand (colours, logo, legal footer) and language,
HTML with a plain-text alternative, from templates/feedback/email/."""

from __future__ import annotations

from email.mime.image import MIMEImage

from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext

from customers.models import Customer
from feedback.models import Invitation
from invoices.models import Brand
from invoices.rendering.context import DEFAULT_BRANDING
from invoices.rendering.logos import LOGO_MAX_BYTES, logo_media_type
from invoices.selectors import NoBrandConfigured, brand_for_customer

LOGO_CID = "brand-logo"


def _brand(customer: Customer) -> Brand | None:
    try:
        return brand_for_customer(customer=customer)
    except NoBrandConfigured:
        return None


def _inline_logo(brand: Brand | None) -> MIMEImage | None:
    """Raster logos travel as an inline cid: part (mail clients block data: URIs and
    rarely draw SVG); without one the brand's name shows instead."""
    if brand is None or not brand.logo:
        return None
    try:
        with brand.logo.open("rb") as handle:
            data = handle.read(LOGO_MAX_BYTES + 1)
        media_type = logo_media_type(data)
    except Exception:  # noqa: BLE001 - a missing or no longer valid logo is simply not shown
        return None
    if media_type not in ("image/png", "image/jpeg"):
        return None
    image = MIMEImage(data, _subtype=media_type.split("/")[1])
    image.add_header("Content-ID", f"<{LOGO_CID}>")
    image.add_header("Content-Disposition", "inline", filename=f"logo.{media_type.split('/')[1]}")
    return image


def invitation_email_send(*, invitation: Invitation, customer: Customer, url: str) -> EmailMultiAlternatives:
    brand = _brand(customer)
    language = invitation.language or "fr"
    survey = invitation.survey
    with translation.override(language):
        sender = brand.name if brand else "Tarif"
        subject = f"{survey.title(language)} – {sender}"
        logo = _inline_logo(brand)
        context = {
            "language": language,
            "subject": subject,
            "survey_title": survey.title(language),
            "intro": survey.intro(language),
            "customer": customer,
            "url": url,
            "expires_at": invitation.expires_at,
            "brand": brand,
            "sender": sender,
            "logo_src": f"cid:{LOGO_CID}" if logo else "",
            "primary": brand.primary_colour if brand else DEFAULT_BRANDING["primary_colour"],
            "accent": brand.accent_colour if brand else DEFAULT_BRANDING["accent_colour"],
            "button": gettext("Answer the survey"),
        }
        text = render_to_string("feedback/email/invitation.txt", context)
        html = render_to_string("feedback/email/invitation.html", context)
    reply_to = [brand.email] if brand and brand.email else None
    message = EmailMultiAlternatives(subject=subject, body=text, to=[invitation.email], reply_to=reply_to)
    message.attach_alternative(html, "text/html")
    if logo:
        message.mixed_subtype = "related"
        message.attach(logo)
    message.send()
    return message
