"""The hosted checkout page: details form, live total (htmx), card on the gateway's page, return.

Public pages (no sign-in): the session's unguessable id is the capability. Each page is in the
session's brand and mode (a test-mode session says so in a banner and only ever uses the test
gateway), rate limited per client IP (TARIF_RATELIMIT_CHECKOUT_*), CSRF-protected, and the
details form carries a honeypot field and a time trap (TARIF_CHECKOUT_MIN_FILL_SECONDS).
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

from django import forms
from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.forms.utils import flatatt
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods
from django_countries import countries
from django_ratelimit.decorators import ratelimit
from stdnum import iban as iban_number
from stdnum.exceptions import ValidationError as NumberError

from billing.checkout.errors import CheckoutError, CheckoutPaymentDeclined, CheckoutSessionClosed
from billing.checkout.models import CheckoutSession
from billing.checkout.services import (
    CheckoutPreview,
    SepaMandate,
    bank_transfer_days_until_due,
    checkout_buyer,
    checkout_session_complete,
    checkout_session_details_submit,
    checkout_session_preview,
    offered_payment_method_types,
    sepa_mandate_on_page,
    success_redirect_url,
)
from billing.services.payments import payment_method_hosted_setup_options
from config.errors import DomainError
from customers.models import Customer
from invoices.rendering.logos import LOGO_EXTENSIONS, LOGO_MAX_BYTES, logo_media_type
from invoices.vat import LEGAL_MENTIONS

logger = logging.getLogger(__name__)

SVG_LOGO_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
TRAP_SALT = "checkout.form-shown"


def _rate(name: str) -> Any:
    # Read at request time so tests (and operators) can lower the limits with settings.
    return lambda group, request: getattr(settings, name)


def _too_many(request: HttpRequest) -> HttpResponse:
    response = render(request, "checkout/limited.html", {}, status=429)
    response["Retry-After"] = "60"
    return response


def _session_or_404(public_id: str) -> CheckoutSession:
    """The session with this id, whatever the mode (the id itself says it: cs_live_/cs_test_)."""
    if not public_id.startswith(("cs_live_", "cs_test_")) or len(public_id) > 64:
        raise Http404
    session = (
        CheckoutSession.objects.select_related("brand", "customer", "coupon")
        .prefetch_related("line_items__price__product")
        .filter(public_id=public_id)
        .first()
    )
    # The id's mode prefix and the row's mode agree, or the id is not one we issued.
    if session is None or session.public_id.startswith("cs_live_") != session.livemode:
        raise Http404
    return session


@functools.cache
def _country_choices(language: str) -> tuple[tuple[str, str], ...]:
    """Countries sorted by their name in `language` (django-countries sorts on every iteration)."""
    with translation.override(language):
        return tuple((code, str(name)) for code, name in countries)


@functools.cache
def _country_options_html(language: str) -> str:
    """The <option>s of every country, escaped once per language (then reused by every page)."""
    return "".join(
        format_html('<option value="{}">{}</option>', code, label) for code, label in _country_choices(language)
    )


class CountrySelect(forms.Select):
    """The country list (~250 options) written directly: Django's per-option widget templates
    made this one field cost most of the page's render time (bench/checkout.py)."""

    def render(self, name: str, value: Any, attrs: dict | None = None, renderer: Any = None) -> str:
        final = self.build_attrs(self.attrs, attrs)
        final["name"] = name
        chosen = "" if value is None else str(value)
        options = _country_options_html(_page_language())
        if chosen in countries:  # a known code only: never text from the request in the markup
            options = options.replace(f'value="{chosen}">', f'value="{chosen}" selected>', 1)
        empty = format_html('<option value=""{}>{}</option>', "" if chosen else " selected", _("Choose your country"))
        return mark_safe(f"<select{flatatt(final)}>{empty}{options}</select>")  # noqa: S308 (escaped above)


class CheckoutDetailsForm(forms.Form):
    customer_type = forms.ChoiceField(
        label=gettext_lazy("You are buying as"),
        choices=[("business", gettext_lazy("A business")), ("person", gettext_lazy("An individual"))],
        widget=forms.RadioSelect,
        initial="business",
    )
    legal_name = forms.CharField(label=gettext_lazy("Name or company name"), max_length=200)
    email = forms.EmailField(label=gettext_lazy("Email"), max_length=254)
    country = forms.ChoiceField(label=gettext_lazy("Country"), widget=CountrySelect)
    tax_id = forms.CharField(
        label=gettext_lazy("VAT number (businesses in the EU)"),
        max_length=20,
        required=False,
        help_text=gettext_lazy(
            "For example FR40303265045. With a valid number from another EU country, "
            "no VAT is charged (reverse charge)."
        ),
    )
    address_line1 = forms.CharField(label=gettext_lazy("Address"), max_length=200, required=False)
    postal_code = forms.CharField(label=gettext_lazy("Postal code"), max_length=20, required=False)
    city = forms.CharField(label=gettext_lazy("City"), max_length=100, required=False)
    promotion_code = forms.CharField(label=gettext_lazy("Promotion code"), max_length=60, required=False)
    # Honeypot: hidden from people (CSS and aria-hidden), filled by form-filling robots.
    website = forms.CharField(label=gettext_lazy("Leave this field empty"), required=False)
    shown = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, session: CheckoutSession, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session = session
        self.offered = offered_payment_method_types(session)
        self.sepa_here = "sepa_debit" in self.offered and sepa_mandate_on_page(session)
        self._add_payment_fields()
        self.fields["country"].choices = [("", ""), *_country_choices(_page_language())]
        if not session.allow_promotion_codes:
            del self.fields["promotion_code"]
        if not session.tax_id_collection:
            del self.fields["tax_id"]
        if session.billing_address_collection == CheckoutSession.AddressCollection.REQUIRED:
            for name in ("address_line1", "postal_code", "city"):
                self.fields[name].required = True
        if session.customer_email:
            self.fields["email"].initial = session.customer_email
        for name, field in self.fields.items():
            attrs = field.widget.attrs
            if field.help_text:
                attrs["aria-describedby"] = f"id_{name}_help"
            if field.required:
                attrs["aria-required"] = "true"
        self.fields["website"].widget.attrs.update({"tabindex": "-1", "autocomplete": "off"})
        self.fields["legal_name"].widget.attrs["autocomplete"] = "organization"
        self.fields["email"].widget.attrs["autocomplete"] = "email"
        self.fields["country"].widget.attrs["autocomplete"] = "country"
        self.fields["address_line1"].widget.attrs["autocomplete"] = "address-line1"
        self.fields["postal_code"].widget.attrs["autocomplete"] = "postal-code"
        self.fields["city"].widget.attrs["autocomplete"] = "address-level2"

    def _add_payment_fields(self) -> None:
        """The payment method choice (when more than one is offered) and, when this page takes the
        SEPA mandate itself, its fields, placed before the promotion code."""
        labels = {
            "card": gettext_lazy("Card"),
            "sepa_debit": gettext_lazy("SEPA Direct Debit (euro bank account)"),
            "bank_transfer": _("Bank transfer: we send the invoice with our bank details, due in %(days)s days")
            % {"days": bank_transfer_days_until_due()},
        }
        added: dict[str, forms.Field] = {}
        if len(self.offered) > 1:
            added["payment_method_type"] = forms.ChoiceField(
                label=gettext_lazy("How would you like to pay?"),
                choices=[(kind, labels[kind]) for kind in self.offered],
                widget=forms.RadioSelect,
                initial=self.offered[0],
            )
        if self.sepa_here:
            added["account_holder"] = forms.CharField(
                label=gettext_lazy("Account holder"), max_length=140, required=False
            )
            added["iban"] = forms.CharField(
                label=gettext_lazy("IBAN"),
                max_length=42,
                required=False,
                help_text=gettext_lazy("The euro account to debit, for example FR76 3000 6000 0112 3456 7890 189."),
            )
            added["accept_mandate"] = forms.BooleanField(
                label=gettext_lazy(
                    "I authorise the creditor to send instructions to my bank to debit my account, and my bank to "
                    "debit it accordingly. I am entitled to a refund from my bank within 8 weeks of a debit."
                ),
                required=False,
            )
        self.fields.update(added)
        order = [name for name in self.fields if name not in added]
        at = order.index("promotion_code") if "promotion_code" in order else order.index("website")
        self.order_fields([*order[:at], *added, *order[at:]])
        if "iban" in self.fields:
            self.fields["iban"].widget.attrs["autocomplete"] = "off"
            self.fields["account_holder"].widget.attrs["autocomplete"] = "name"

    def chosen_payment_method_type(self) -> str:
        return str(self.cleaned_data.get("payment_method_type") or self.offered[0])

    def clean_iban(self) -> str:
        value = self.cleaned_data.get("iban", "")
        if not value.strip() or self.data.get("payment_method_type", self.offered[0]) != "sepa_debit":
            return value
        try:
            return str(iban_number.validate(value))
        except NumberError as error:
            raise forms.ValidationError(_("This is not a valid IBAN.")) from error

    def sepa_mandate(self) -> SepaMandate | None:
        if not self.sepa_here or self.chosen_payment_method_type() != "sepa_debit":
            return None
        data = self.cleaned_data
        return SepaMandate(
            account_holder=data.get("account_holder", ""),
            iban=data.get("iban", ""),
            accepted=bool(data.get("accept_mandate")),
        )

    def mark_errors(self) -> None:
        """Tie each field's error text to its input (aria-describedby, aria-invalid)."""
        for name in self.errors:
            if name not in self.fields:
                continue
            attrs = self.fields[name].widget.attrs
            described = [f"id_{name}_error"]
            if self.fields[name].help_text:
                described.append(f"id_{name}_help")
            attrs["aria-describedby"] = " ".join(described)
            attrs["aria-invalid"] = "true"

    def details(self) -> dict[str, Any]:
        data = self.cleaned_data
        details = {
            "is_business": data.get("customer_type") == "business",
            "legal_name": data.get("legal_name", ""),
            "email": data.get("email", ""),
            "country": data.get("country", ""),
            "tax_id": data.get("tax_id", "") or "",
            "address_line1": data.get("address_line1", ""),
            "postal_code": data.get("postal_code", ""),
            "city": data.get("city", ""),
            "preferred_language": _page_language(),
        }
        return details


def _page_language() -> str:
    language = (translation.get_language() or "fr")[:2]
    return language if language in ("fr", "en") else "en"


def _shown_token(session: CheckoutSession) -> str:
    return signing.dumps({"s": session.public_id, "t": int(time.time())}, salt=TRAP_SALT, compress=True)


def _filled_too_fast(session: CheckoutSession, token: str) -> bool:
    """The time trap: a form sent back sooner than TARIF_CHECKOUT_MIN_FILL_SECONDS after it was
    shown (or without a genuine token of this session's page) is a robot's."""
    minimum = int(getattr(settings, "TARIF_CHECKOUT_MIN_FILL_SECONDS", 2))
    try:
        shown = signing.loads(token, salt=TRAP_SALT)
    except signing.BadSignature:
        return True
    if not isinstance(shown, dict) or shown.get("s") != session.public_id or not isinstance(shown.get("t"), int):
        return True
    return time.time() - shown["t"] < minimum


def _provisional_buyer(session: CheckoutSession, data: dict[str, Any]) -> Customer:
    """The buyer as typed so far, for the live total: the seller's country until one is chosen;
    an invalid VAT number counts as none (the field shows why)."""
    details = {
        "is_business": data.get("customer_type", "business") == "business",
        "legal_name": data.get("legal_name") or "—",
        "email": data.get("email") or "buyer@example.com",
        "country": data.get("country") or session.brand.country,
        "tax_id": data.get("tax_id") or "",
        "preferred_language": _page_language(),
    }
    if str(details["country"]) not in countries:
        details["country"] = session.brand.country
    try:
        return checkout_buyer(session=session, details=details, for_preview=True)
    except ValidationError:
        details["tax_id"] = ""
        try:
            return checkout_buyer(session=session, details=details, for_preview=True)
        except ValidationError:
            details.update({"legal_name": "—", "email": "buyer@example.com"})
            return checkout_buyer(session=session, details=details, for_preview=True)


def _vat_error(session: CheckoutSession, data: dict[str, Any]) -> str:
    if not data.get("tax_id") or data.get("customer_type") == "person" or not data.get("country"):
        return ""
    try:
        checkout_buyer(
            session=session,
            details={
                "is_business": True,
                "legal_name": "—",
                "email": "buyer@example.com",
                "country": data["country"],
                "tax_id": data["tax_id"],
            },
            for_preview=True,
        )
    except ValidationError as error:
        return " ".join(error.message_dict.get("tax_id", []))
    return ""


def _summary_context(session: CheckoutSession, data: dict[str, Any]) -> dict[str, Any]:
    buyer = session.customer or _provisional_buyer(session, data)
    promotion_code = data.get("promotion_code", "") if session.allow_promotion_codes else ""
    preview: CheckoutPreview | None
    try:
        preview = checkout_session_preview(session=session, buyer=buyer, promotion_code=promotion_code)
    except DomainError as error:
        logger.info("checkout %s: preview refused: %s", session.public_id, error)
        preview = None
    mention = ""
    if preview is not None and preview.vat_mention_key:
        mention = LEGAL_MENTIONS[preview.vat_mention_key][_page_language()]
    return {
        "session": session,
        "preview": preview,
        "mention": mention,
        "country_chosen": bool(data.get("country")) or session.customer is not None,
        "country_name": countries.name(str(buyer.country)) or str(buyer.country),
        "promotion_code": promotion_code,
        "vat_error": _vat_error(session, data),
    }


def _page(request: HttpRequest, session: CheckoutSession, form: CheckoutDetailsForm, status: int = 200) -> HttpResponse:
    data = dict(form.data.items()) if form.is_bound else {"customer_type": "business"}
    if form.is_bound:
        form.mark_errors()
    context = {
        "session": session,
        "brand": session.brand,
        "form": form,
        "shown": _shown_token(session),
        "items": list(session.line_items.all()),
        **_summary_context(session, data),
    }
    response = render(request, "checkout/session.html", context, status=status)
    origins = payment_method_hosted_setup_options().origins
    if origins:  # the form redirects to the gateway's hosted page (Stripe Checkout): CSP form-action
        response._csp_update = {"form-action": list(origins)}  # type: ignore[attr-defined]
    return response


def _closed_page(request: HttpRequest, session: CheckoutSession) -> HttpResponse:
    if session.status == CheckoutSession.Status.COMPLETE:
        return HttpResponseRedirect(success_redirect_url(session))
    return render(request, "checkout/expired.html", {"session": session, "brand": session.brand}, status=410)


@never_cache
@ratelimit(key="ip", rate=_rate("TARIF_RATELIMIT_CHECKOUT_PAGE"), method="GET", block=False)
@ratelimit(key="ip", rate=_rate("TARIF_RATELIMIT_CHECKOUT_SUBMIT"), method="POST", block=False)
@require_http_methods(["GET", "POST"])
def session_page(request: HttpRequest, public_id: str) -> HttpResponse:
    session = _session_or_404(public_id)
    if getattr(request, "limited", False):
        return _too_many(request)
    if session.status != CheckoutSession.Status.OPEN:
        return _closed_page(request, session)
    if request.method != "POST":
        return _page(request, session, CheckoutDetailsForm(session=session))
    form = CheckoutDetailsForm(request.POST, session=session)
    if not form.is_valid():
        return _page(request, session, form, status=400)
    if form.cleaned_data.get("website"):
        logger.info("checkout %s: honeypot filled, refused", session.public_id)
        form.add_error(None, _("We could not accept this form. Please try again."))
        return _page(request, session, form, status=400)
    if _filled_too_fast(session, form.cleaned_data.get("shown", "")):
        form.add_error(None, _("Please take a moment to check your details, then confirm again."))
        return _page(request, session, form, status=400)
    return_url = request.build_absolute_uri(reverse("checkout:return", kwargs={"public_id": session.public_id}))
    try:
        redirect_to = checkout_session_details_submit(
            session=session,
            details=form.details(),
            promotion_code=form.cleaned_data.get("promotion_code", ""),
            return_url=return_url,
            payment_method_type=form.chosen_payment_method_type(),
            sepa=form.sepa_mandate(),
        )
    except ValidationError as error:
        for field, messages in error.message_dict.items():
            form.add_error(field if field in form.fields else None, messages)
        return _page(request, session, form, status=400)
    except CheckoutSessionClosed:
        session.refresh_from_db()
        return _closed_page(request, session)
    except CheckoutError as error:
        field = getattr(error, "field", None)
        form.add_error(field if field in form.fields else None, error.message_text())
        return _page(request, session, form, status=400)
    return HttpResponseRedirect(redirect_to)


@never_cache
@ratelimit(key="ip", rate=_rate("TARIF_RATELIMIT_CHECKOUT_TOTAL"), method="GET", block=False)
@require_GET
def session_total(request: HttpRequest, public_id: str) -> HttpResponse:
    """The order summary for what the buyer typed so far (htmx swaps it in as they type)."""
    session = _session_or_404(public_id)
    if getattr(request, "limited", False):
        return _too_many(request)
    if session.status != CheckoutSession.Status.OPEN:
        raise Http404
    return render(request, "checkout/partials/summary.html", _summary_context(session, request.GET.dict()))


@never_cache
@ratelimit(key="ip", rate=_rate("TARIF_RATELIMIT_CHECKOUT_SUBMIT"), method="GET", block=False)
@require_GET
def session_return(request: HttpRequest, public_id: str) -> HttpResponse:
    """Where the gateway's card page sends the browser back: complete (once), then the success URL."""
    session = _session_or_404(public_id)
    if getattr(request, "limited", False):
        return _too_many(request)
    if session.status == CheckoutSession.Status.COMPLETE:  # a reload, a second tab, a replayed link
        return HttpResponseRedirect(success_redirect_url(session))
    try:
        session = checkout_session_complete(session=session, gateway_session_id=request.GET.get("session_id", ""))
    except CheckoutPaymentDeclined:
        return HttpResponseRedirect(reverse("checkout:session", kwargs={"public_id": session.public_id}))
    except CheckoutSessionClosed:
        session.refresh_from_db()
        return _closed_page(request, session)
    except CheckoutError:
        raise Http404 from None
    return HttpResponseRedirect(success_redirect_url(session))


@require_GET
def session_logo(request: HttpRequest, public_id: str) -> HttpResponse:
    """The session's brand logo (type from its bytes, never the uploaded name)."""
    brand = _session_or_404(public_id).brand
    if not brand.logo:
        raise Http404
    with brand.logo.open("rb") as file:
        data = file.read(LOGO_MAX_BYTES + 1)
    try:
        media_type = logo_media_type(data)
    except ValidationError as error:
        raise Http404 from error
    response = HttpResponse(data, content_type=media_type)
    response["X-Content-Type-Options"] = "nosniff"
    extension = LOGO_EXTENSIONS[media_type]
    if media_type == "image/svg+xml":
        response["Content-Disposition"] = f'attachment; filename="logo.{extension}"'
        response["Content-Security-Policy"] = SVG_LOGO_POLICY
    else:
        response["Content-Disposition"] = f'inline; filename="logo.{extension}"'
    return response
