"""Portal views: thin over the billing and invoices services, scoped by `portal_view`."""

from __future__ import annotations

import io
import json
from typing import Any

import django_filters
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_otp.plugins.otp_email.models import EmailDevice
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing.entitlements.selectors import customer_entitlements
from billing.models import InvoiceItem, PaymentMethod, Subscription, SubscriptionChange
from billing.payments.gateway import CardDeclined, GatewayError
from billing.services.changes import subscription_change as change_service
from billing.services.changes import subscription_preview_change
from billing.services.dunning import dunning_collect_invoice
from billing.services.payments import (
    PaymentsError,
    bank_transfer_reference,
    default_payment_method,
    payment_method_attach,
    payment_method_detach,
    payment_method_hosted_setup_options,
    payment_method_set_default,
    payment_method_setup_complete,
    payment_method_setup_start,
)
from billing.services.subscriptions import (
    ItemSpec,
    SubscriptionError,
    subscription_cancel_undo,
    subscription_preview_create,
)
from billing.services.usage_thresholds import subscription_current_usage
from billing.wallets.selectors import credit_grants_for_customer, wallet_history_for_customer, wallet_summaries
from config import clock, mfa
from config.events.log import event_record
from config.mfa import base32_secret, issue_recovery_codes, qr_svg, second_factor_login
from customers.models import OPTIONAL_NOTIFICATIONS, Customer, NotificationPreference
from customers.notifications.services import step_up_code_send
from customers.notifications.wording import card_decline_reason, decline_reason
from customers.portal.access import (
    IMPERSONATION_SESSION_KEY,
    activate_customer_language,
    portal_customer,
    portal_view,
    safe_next,
    step_up_fresh,
    step_up_mark,
    totp_enrolled,
)
from customers.portal.cancellation import CancellationSurveyForm, cancellation_form, portal_subscription_cancel
from customers.portal.export import customer_data_export
from customers.portal.forms import (
    BillingDetailsForm,
    CodeForm,
    NewMethodForm,
    NotificationPreferencesForm,
    PlanChangeForm,
    SepaMandateForm,
)
from customers.portal.plans import plan_cards
from customers.portal.selectors import (
    portal_offered_prices,
    portal_overview,
    portal_prices,
    portal_subscriptions,
    price_label,
)
from customers.portal.subscribe import customer_has_live_subscription, portal_subscription_start
from customers.services import customer_update
from feedback.services import SurveyAnswerError
from invoices.models import CreditNote, Invoice
from invoices.rendering.facturx import credit_note_cii_xml, invoice_cii_xml
from invoices.rendering.logos import LOGO_EXTENSIONS, LOGO_MAX_BYTES, logo_media_type
from invoices.services.pdf import (
    credit_note_document_store,
    invoice_paid_since_issue,
    invoice_pdf_current,
)

# -- overview ---------------------------------------------------------------------------------


@portal_view
def home(request: HttpRequest, customer: Customer) -> HttpResponse:
    context: dict[str, Any] = {"overview": portal_overview(customer=customer)}
    if not _has_live_subscription(customer):
        # No subscription running: offer the plans, as the pricing table does.
        prices = portal_offered_prices(currency=customer.currency, livemode=customer.livemode)
        context["start_cards"] = plan_cards(prices=prices)
    return render(request, "portal/home.html", context)


# An SVG opened on its own is a document that could run script: the browser gets it as an
# attachment under a policy that forbids everything (an <img> still shows it).
SVG_LOGO_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


@portal_view
def brand_logo(request: HttpRequest, customer: Customer) -> HttpResponse:
    """The brand's logo: type from its bytes (never the uploaded name), a fixed file name."""
    brand = request.portal.brand
    if brand is None or not brand.logo:
        raise Http404
    with brand.logo.open("rb") as file:
        data = file.read(LOGO_MAX_BYTES + 1)
    try:
        media_type = logo_media_type(data)
    except ValidationError as error:  # stored before the upload checks existed, or tampered with
        raise Http404 from error
    extension = LOGO_EXTENSIONS[media_type]
    response = HttpResponse(data, content_type=media_type)
    response["X-Content-Type-Options"] = "nosniff"
    if media_type == "image/svg+xml":
        response["Content-Disposition"] = f'attachment; filename="logo.{extension}"'
        response["Content-Security-Policy"] = SVG_LOGO_POLICY
    else:
        response["Content-Disposition"] = f'inline; filename="logo.{extension}"'
    return response


# -- prepaid credits (issue 16, wallets) ---------------------------------------------------------


@portal_view
def credits(request: HttpRequest, customer: Customer) -> HttpResponse:
    """The customer's prepaid credits: balance per currency, grants with their expiry, history."""
    context = {
        "wallets": wallet_summaries(customer=customer),
        "grants": credit_grants_for_customer(customer=customer)[:50],
        "history": wallet_history_for_customer(customer=customer),
    }
    return render(request, "portal/credits.html", context)


# -- usage and features (issue 16: usage so far, thresholds, entitlements) -----------------------


@portal_view
def usage(request: HttpRequest, customer: Customer) -> HttpResponse:
    """What the customer used so far this period and what it costs (before discounts and tax), where
    its usage alerts stand, and the features its subscriptions include."""
    live = (Subscription.Status.ACTIVE, Subscription.Status.TRIALING, Subscription.Status.PAST_DUE)
    subscriptions = Subscription.objects.filter(customer=customer, status__in=live).select_related("customer")
    current = [subscription_current_usage(subscription=subscription) for subscription in subscriptions.order_by("pk")]
    context = {
        "usages": [entry for entry in current if entry.rows or entry.thresholds],
        "entitlements": customer_entitlements(customer_id=customer.pk),
    }
    return render(request, "portal/usage.html", context)


# -- invoices and credit notes ------------------------------------------------------------------


class InvoiceFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        label=_("Status"),
        choices=[(s.value, s.label) for s in Invoice.Status if s != Invoice.Status.DRAFT],
        empty_label=_("All"),
    )
    year = django_filters.NumberFilter(label=_("Year"), field_name="finalized_at", lookup_expr="year")

    class Meta:
        model = Invoice
        fields = ["status", "year"]


@portal_view
def invoice_list(request: HttpRequest, customer: Customer) -> HttpResponse:
    invoices = Invoice.objects.filter(customer=customer).exclude(status=Invoice.Status.DRAFT)
    invoice_filter = InvoiceFilter(request.GET or None, queryset=invoices.order_by("-finalized_at", "-pk"))
    document = request.GET.get("document", "")
    credit_notes = CreditNote.objects.filter(customer=customer).select_related("invoice").order_by("-pk")
    year = request.GET.get("year", "")
    if year.isdigit():
        credit_notes = credit_notes.filter(created_at__year=int(year))
    if request.GET.get("status"):
        credit_notes = credit_notes.none()
    context = {
        "filter": invoice_filter,
        "invoices": invoice_filter.qs if document != "credit_notes" else invoices.none(),
        "credit_notes": credit_notes if document != "invoices" else credit_notes.none(),
        "document": document,
    }
    return render(request, "portal/invoices.html", context)


def _invoice(customer: Customer, pk: int) -> Invoice:
    return get_object_or_404(Invoice.objects.exclude(status=Invoice.Status.DRAFT), pk=pk, customer=customer)


@portal_view
def invoice_detail(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    invoice = _invoice(customer, pk)
    context = {
        "invoice": invoice,
        "lines": invoice.lines.order_by("position", "pk"),
        "payments": invoice.payments.filter(status="succeeded"),
        "credit_notes": invoice.credit_notes.all(),
        "payable": invoice.status == Invoice.Status.OPEN and invoice.amount_remaining > 0,
    }
    return render(request, "portal/invoice_detail.html", context)


def _pdf_response(document: Any, filename: str) -> FileResponse:
    if document is None:
        raise Http404
    return FileResponse(document.file.open("rb"), as_attachment=True, filename=filename, content_type="application/pdf")


@portal_view
def invoice_pdf(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    invoice = _invoice(customer, pk)
    # The invoice as it stands now: "Paid" with date and method once settled (docs/invoices.md).
    return FileResponse(
        io.BytesIO(invoice_pdf_current(invoice=invoice)),
        as_attachment=True,
        filename=f"{invoice.number}.pdf",
        content_type="application/pdf",
    )


@portal_view
def invoice_facturx(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    invoice = _invoice(customer, pk)
    xml = invoice_cii_xml(
        invoice=invoice,
        lines=list(invoice.lines.order_by("position", "pk")),
        paid=invoice_paid_since_issue(invoice),  # the same state as the PDF above
    )
    return _xml_response(xml, f"{invoice.number}-factur-x.xml")


def _xml_response(xml: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(xml, content_type="application/xml")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@portal_view
def credit_note_pdf(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    credit_note = get_object_or_404(CreditNote, pk=pk, customer=customer)
    return _pdf_response(credit_note_document_store(credit_note_id=credit_note.pk), f"{credit_note.number}.pdf")


@portal_view
def credit_note_facturx(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    credit_note = get_object_or_404(CreditNote, pk=pk, customer=customer)
    xml = credit_note_cii_xml(credit_note=credit_note, lines=list(credit_note.lines.order_by("pk")))
    return _xml_response(xml, f"{credit_note.number}-factur-x.xml")


@require_POST
@portal_view
def invoice_pay(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    invoice = _invoice(customer, pk)
    payment = dunning_collect_invoice(invoice=invoice, acting_user=request.user)
    if payment is None:
        messages.info(request, _("Nothing is left to pay on this invoice."))
    elif payment.status == "succeeded":
        messages.success(request, _("Thank you: the invoice is paid."))
    else:
        messages.error(request, _("The payment did not go through: %(reason)s") % {"reason": decline_reason(payment)})
    return HttpResponseRedirect(reverse("portal:invoice", args=[invoice.pk]))


# -- plan and quantity changes ----------------------------------------------------------------


def _subscription(customer: Customer, pk: int) -> Subscription:
    return get_object_or_404(portal_subscriptions(customer=customer), pk=pk)


def _change_form(request: HttpRequest, subscription: Subscription, data: Any) -> PlanChangeForm:
    item = subscription.items.select_related("price__product").order_by("pk").first()
    prices = portal_prices(subscription=subscription)
    form = PlanChangeForm(
        data,
        prices=prices,
        initial={"price": item.price if item else None, "quantity": item.quantity if item else 1},
    )
    form.fields["price"].label_from_instance = price_label
    return form


def _items_after(subscription: Subscription, form: PlanChangeForm) -> list[ItemSpec]:
    """The first licensed item becomes the chosen plan and quantity; other items stay."""
    items = list(subscription.items.select_related("price").order_by("pk"))
    chosen = ItemSpec(form.cleaned_data["price"], form.cleaned_data["quantity"])
    kept = [ItemSpec(item.price, item.quantity) for item in items[1:] if item.price_id != chosen.price.pk]
    return [chosen, *kept]


def _current_items(subscription: Subscription) -> list[Any]:
    return list(subscription.items.select_related("price__product").order_by("pk"))


def _same_as_now(subscription: Subscription, form: PlanChangeForm) -> bool:
    items = _current_items(subscription)
    return bool(items) and (
        items[0].price_id == form.cleaned_data["price"].pk and items[0].quantity == form.cleaned_data["quantity"]
    )


@portal_view
def subscription_change(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    """Plan cards, then a confirmation page with what the change charges now, the credit it uses
    and the next invoice (the change preview service, as the API's), then the change itself.

    One URL, two steps: a POST without `confirmed` shows the confirmation; the confirmation's
    own POST (with `confirmed=1`) changes the subscription."""
    subscription = _subscription(customer, pk)
    form = _change_form(request, subscription, request.POST or None)
    if request.method == "POST" and form.is_valid():
        if _same_as_now(subscription, form):
            form.add_error(None, _("This is already your plan and quantity: pick another plan or quantity."))
        elif request.POST.get("confirmed") == "1":
            try:
                with transaction.atomic():
                    change = change_service(
                        subscription=subscription,
                        items=_items_after(subscription, form),
                        proration=settings.TARIF_PORTAL_PRORATION,
                        acting_user=request.user,
                    )
            except SubscriptionError as error:
                form.add_error(None, error)
            else:
                return HttpResponseRedirect(reverse("portal:change_done", args=[subscription.pk, change.pk]))
        else:
            try:
                preview = subscription_preview_change(
                    subscription=subscription,
                    items=_items_after(subscription, form),
                    proration=settings.TARIF_PORTAL_PRORATION,
                )
            except SubscriptionError as error:
                form.add_error(None, error)
            else:
                return render(
                    request, "portal/change_confirm.html", _change_confirm_context(subscription, form, preview)
                )
    current = _current_items(subscription)
    cards = plan_cards(prices=form.fields["price"].queryset, current_price_ids=[item.price_id for item in current[:1]])
    return render(
        request,
        "portal/change.html",
        {
            "subscription": subscription,
            "form": form,
            "cards": cards,
            "selected": _selected_price(form, current),
            "proration_mode": settings.TARIF_PORTAL_PRORATION,
        },
    )


def _selected_price(form: Any, current: list[Any]) -> str:
    value = form["price"].value()
    if value not in (None, ""):
        return str(value)
    return str(current[0].price_id) if current else ""


def _change_confirm_context(subscription: Subscription, form: PlanChangeForm, preview: Any) -> dict[str, Any]:
    customer = subscription.customer
    price = form.cleaned_data["price"]
    immediate = preview.immediate_invoice
    return {
        "subscription": subscription,
        "form": form,
        "price": price,
        "card": plan_cards(prices=[price])[0],
        "quantity": form.cleaned_data["quantity"],
        "current": _current_items(subscription),
        "preview": preview,
        "currency": subscription.currency,
        "credit_lines": [line for line in preview.proration_lines if line.amount < 0],
        "charge_lines": [line for line in preview.proration_lines if line.amount >= 0],
        "balance_used": immediate.balance_applied if immediate and immediate.balance_applied > 0 else 0,
        "next_invoice_at": subscription.trial_end
        if subscription.status == "trialing"
        else subscription.current_period_end,
        "default_method": default_payment_method(customer=customer),
        "wallets": wallet_summaries(customer=customer),
    }


@portal_view
def subscription_change_preview(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    """The htmx partial: what the picked plan and quantity would cost, before confirming."""
    subscription = _subscription(customer, pk)
    form = _change_form(request, subscription, request.GET)
    preview, error = None, ""
    if form.is_valid():
        try:
            preview = subscription_preview_change(
                subscription=subscription,
                items=_items_after(subscription, form),
                proration=settings.TARIF_PORTAL_PRORATION,
            )
        except SubscriptionError as exc:
            error = " ".join(exc.messages)
    else:
        error = " ".join(str(message) for errors in form.errors.values() for message in errors)
    return render(
        request,
        "portal/partials/change_preview.html",
        {"preview": preview, "error": error, "currency": subscription.currency, "subscription": subscription},
    )


@portal_view
def subscription_change_done(request: HttpRequest, customer: Customer, pk: int, change_pk: int) -> HttpResponse:
    subscription = _subscription(customer, pk)
    change = get_object_or_404(SubscriptionChange, pk=change_pk, subscription=subscription)
    proration_items = InvoiceItem.objects.filter(
        subscription=subscription, proration=True, metadata__change_at=change.effective_at.isoformat()
    ).select_related("invoice")
    invoice = next((item.invoice for item in proration_items if item.invoice_id), None)
    context = {
        "subscription": subscription,
        "change": change,
        "items": subscription.items.select_related("price__product").order_by("pk"),
        "proration_items": proration_items,
        "invoice": invoice,
    }
    return render(request, "portal/change_done.html", context)


# -- cancellation -------------------------------------------------------------------------------


def cancel_mode(subscription: Subscription) -> tuple[bool, bool]:
    """(at period end, prorate) from the plan: product metadata "portal_cancel" ("now" or
    "period_end") and "portal_cancel_prorate", else TARIF_PORTAL_CANCEL_MODE."""
    item = subscription.items.select_related("price__product").order_by("pk").first()
    metadata = item.price.product.metadata if item else {}
    mode = metadata.get("portal_cancel") or settings.TARIF_PORTAL_CANCEL_MODE
    return mode != "now", bool(metadata.get("portal_cancel_prorate", False)) and mode == "now"


@portal_view(step_up=True)
def subscription_cancel(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    subscription = _subscription(customer, pk)
    at_period_end, prorate = cancel_mode(subscription)
    form = cancellation_form(customer, request.POST if request.method == "POST" else None)
    if subscription.cancel_at_period_end:
        messages.info(request, _("This subscription is already set to end with its period."))
        return HttpResponseRedirect(reverse("portal:home"))
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                portal_subscription_cancel(
                    subscription=subscription,
                    form=form,
                    at_period_end=at_period_end,
                    prorate=prorate,
                    acting_user=request.user,
                )
        except SurveyAnswerError as error:
            # The survey changed between the page and the click: show what no longer fits.
            for question_id, message in error.errors.items():
                form.add_error(f"q_{question_id}" if f"q_{question_id}" in form.fields else None, message)
        except (SubscriptionError, ValidationError) as error:
            form.add_error(None, error)
        else:
            if at_period_end:
                messages.success(request, _("Your subscription will end with the current period."))
            else:
                messages.success(request, _("Your subscription is canceled."))
            return HttpResponseRedirect(reverse("portal:home"))
    context = {"subscription": subscription, "form": form, "at_period_end": at_period_end, "prorate": prorate}
    if isinstance(form, CancellationSurveyForm):
        context.update(
            survey_form=form,
            survey_title=form.survey.title(form.language),
            survey_intro=form.survey.intro(form.language),
        )
    return render(request, "portal/cancel.html", context)


@require_POST
@portal_view
def subscription_renew(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    """Keep a subscription set to end with its period: undo the scheduled cancellation."""
    subscription = _subscription(customer, pk)
    try:
        with transaction.atomic():
            subscription_cancel_undo(subscription=subscription, acting_user=request.user)
    except SubscriptionError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, _("Your subscription continues: it renews as usual."))
    return HttpResponseRedirect(reverse("portal:home"))


def _has_live_subscription(customer: Customer) -> bool:
    return customer_has_live_subscription(customer=customer)


def _subscribe_form(customer: Customer, data: Any) -> PlanChangeForm:
    prices = portal_offered_prices(currency=customer.currency, livemode=customer.livemode)
    return PlanChangeForm(data, prices=prices, initial={"quantity": 1})


@portal_view(step_up=True)
def subscribe(request: HttpRequest, customer: Customer) -> HttpResponse:
    """Start a subscription when none is active: plan cards, a confirmation with the first invoice
    (the creation preview service, as the API's), then the subscription, charged to the default
    payment method. One URL, two steps, like the plan change."""
    if _has_live_subscription(customer):
        messages.info(request, _("You already have an active subscription: change its plan instead."))
        return HttpResponseRedirect(reverse("portal:home"))
    form = _subscribe_form(customer, request.POST or None)
    method = default_payment_method(customer=customer)
    if request.method == "POST" and form.is_valid():
        items = [ItemSpec(form.cleaned_data["price"], form.cleaned_data["quantity"])]
        if method is None:
            form.add_error(None, _("Add a payment method first: the subscription is charged to it."))
        elif request.POST.get("confirmed") == "1":
            try:
                with transaction.atomic():
                    subscription = portal_subscription_start(customer=customer, items=items, acting_user=request.user)
            except SubscriptionError as error:
                form.add_error(None, error)
            else:
                return HttpResponseRedirect(reverse("portal:subscription_started", args=[subscription.pk]))
        else:
            try:
                preview = subscription_preview_create(customer=customer, items=items)
            except SubscriptionError as error:
                form.add_error(None, error)
            else:
                price = form.cleaned_data["price"]
                context = {
                    "form": form,
                    "price": price,
                    "card": plan_cards(prices=[price])[0],
                    "quantity": form.cleaned_data["quantity"],
                    "preview": preview,
                    "invoice": preview.first_invoice,
                    "currency": preview.currency,
                    "default_method": method,
                    "balance_used": max(preview.first_invoice.balance_applied, 0),
                }
                return render(request, "portal/subscribe_confirm.html", context)
    context = {
        "form": form,
        "cards": plan_cards(prices=form.fields["price"].queryset),
        # Picked on the overview's cards (a GET), kept through the step-up.
        "selected": str(form["price"].value() or request.GET.get("price", "")),
        "default_method": method,
    }
    return render(request, "portal/subscribe.html", context)


@portal_view
def subscription_started(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    subscription = _subscription(customer, pk)
    invoice = subscription.invoices.exclude(status=Invoice.Status.DRAFT).order_by("pk").first()
    context = {
        "subscription": subscription,
        "items": subscription.items.select_related("price__product").order_by("pk"),
        "invoice": invoice,
    }
    return render(request, "portal/subscription_started.html", context)


# -- payment methods ------------------------------------------------------------------------------


@portal_view
def payment_methods(request: HttpRequest, customer: Customer) -> HttpResponse:
    methods = PaymentMethod.objects.filter(customer=customer, active=True).order_by("-is_default", "-pk")
    return render(request, "portal/payment_methods.html", {"methods": methods})


def _method(customer: Customer, pk: int) -> PaymentMethod:
    return get_object_or_404(PaymentMethod, pk=pk, customer=customer, active=True)


def _hosted_setup_page(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """A page whose form redirects to the gateway's hosted page (Stripe Checkout): Chrome checks
    that redirect against CSP form-action, so the gateway's origins are allowed on it."""
    origins = payment_method_hosted_setup_options().origins
    if origins:
        response._csp_update = {"form-action": list(origins)}  # type: ignore[attr-defined]
    return response


def _start_hosted_setup(request: HttpRequest, customer: Customer, payment_method_type: str) -> HttpResponse:
    back = request.build_absolute_uri(reverse("portal:payment_methods"))
    try:
        session = payment_method_setup_start(
            customer=customer,
            return_url=request.build_absolute_uri(reverse("portal:card_return")),
            cancel_url=back,
            payment_method_types=(payment_method_type,),
        )
    except GatewayError as error:
        messages.error(request, str(error))
        return HttpResponseRedirect(reverse("portal:payment_methods"))
    return _hosted_setup_page(request, HttpResponseRedirect(session.url))


MAKE_DEFAULT_SESSION_KEY = "portal_new_method_default"


@portal_view(step_up=True)
def payment_method_add_card(request: HttpRequest, customer: Customer) -> HttpResponse:
    """Step-up first, then off to the gateway's hosted page: no card field on our pages. The
    customer says here whether the new card becomes the default (unticked when one exists)."""
    has_default = default_payment_method(customer=customer) is not None
    form = NewMethodForm(request.POST if request.method == "POST" else None, initial={"make_default": not has_default})
    if request.method == "POST" and form.is_valid():
        request.session[MAKE_DEFAULT_SESSION_KEY] = bool(form.cleaned_data["make_default"]) or not has_default
        return _start_hosted_setup(request, customer, "card")
    return _hosted_setup_page(request, render(request, "portal/add_card.html", {"form": form}))


@portal_view
def payment_method_card_return(request: HttpRequest, customer: Customer) -> HttpResponse:
    """Where the hosted page sends the browser back, for a card or a SEPA mandate alike. The card
    is verified with the gateway first: a declining card is refused, in plain words, and not saved."""
    session_id = request.GET.get("session_id", "")
    make_default = bool(request.session.pop(MAKE_DEFAULT_SESSION_KEY, True))
    try:
        method = payment_method_setup_complete(
            customer=customer, session_id=session_id, make_default=make_default, acting_user=request.user
        )
    except CardDeclined as declined:
        messages.error(
            request,
            _("This card was not saved: %(reason)s Try another card.") % {"reason": card_decline_reason(declined)},
        )
        return HttpResponseRedirect(reverse("portal:payment_methods"))
    except GatewayError:
        raise Http404("No completed checkout session for this customer") from None
    if method.kind == PaymentMethod.Kind.SEPA_DEBIT:
        message = _("SEPA mandate %(reference)s signed; %(method)s is now your default payment method.") % {
            "reference": method.mandate_reference,
            "method": method,
        }
    elif method.is_default:
        message = _("Card %(card)s added; it is now your default payment method.") % {"card": method}
    else:
        message = _("Card %(card)s added; your default payment method is unchanged.") % {"card": method}
    messages.success(request, message)
    return HttpResponseRedirect(reverse("portal:payment_methods"))


@portal_view(step_up=True)
def payment_method_add_sepa(request: HttpRequest, customer: Customer) -> HttpResponse:
    """SEPA mandate: on the gateway's hosted page when it takes one (Stripe Checkout shows the
    mandate and collects the IBAN), else on our form (the sandbox)."""
    if PaymentMethod.Kind.SEPA_DEBIT in payment_method_hosted_setup_options().payment_method_types:
        if request.method == "POST":
            return _start_hosted_setup(request, customer, "sepa_debit")
        return _hosted_setup_page(request, render(request, "portal/add_sepa_hosted.html"))
    form = SepaMandateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            method = payment_method_attach(
                customer=customer, source={"iban": form.cleaned_data["iban"]}, acting_user=request.user
            )
        except GatewayError as error:
            form.add_error("iban", str(error))
        else:
            messages.success(
                request,
                _("SEPA mandate %(reference)s signed; %(method)s is now your default payment method.")
                % {"reference": method.mandate_reference, "method": method},
            )
            return HttpResponseRedirect(reverse("portal:payment_methods"))
    return render(request, "portal/add_sepa.html", {"form": form})


@portal_view
def bank_transfer(request: HttpRequest, customer: Customer) -> HttpResponse:
    brand = request.portal.brand
    context = {"reference": bank_transfer_reference(customer=customer), "iban": brand.iban if brand else ""}
    context["bic"] = brand.bic if brand else ""
    return render(request, "portal/bank_transfer.html", context)


@require_POST
@portal_view(step_up=True)
def bank_transfer_use(request: HttpRequest, customer: Customer) -> HttpResponse:
    payment_method_attach(customer=customer, source={"type": "bank_transfer"}, acting_user=request.user)
    messages.success(request, _("You will pay by bank transfer, quoting your reference."))
    return HttpResponseRedirect(reverse("portal:payment_methods"))


@require_POST
@portal_view
def payment_method_default(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    method = _method(customer, pk)
    try:
        payment_method_set_default(payment_method=method, acting_user=request.user)
    except PaymentsError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("%(method)s is now your default payment method.") % {"method": method})
    return HttpResponseRedirect(reverse("portal:payment_methods"))


@portal_view(step_up=True)
def payment_method_remove(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    method = _method(customer, pk)
    if request.method == "POST":
        payment_method_detach(payment_method=method, acting_user=request.user)
        messages.success(request, _("%(method)s was removed.") % {"method": method})
        return HttpResponseRedirect(reverse("portal:payment_methods"))
    return render(request, "portal/remove_method.html", {"method": method})


# -- billing details and notification preferences ------------------------------------------------------


@portal_view
def billing_details(request: HttpRequest, customer: Customer) -> HttpResponse:
    original = {"email": customer.email, "invoice_email": customer.invoice_email}
    form = BillingDetailsForm(request.POST or None, instance=customer)
    enabled = dict(NotificationPreference.objects.filter(customer=customer).values_list("kind", "enabled"))
    preferences = NotificationPreferencesForm(enabled=enabled)
    if request.method == "POST" and form.is_valid():
        emails_changed = any(form.cleaned_data[name] != value for name, value in original.items())
        if emails_changed and not step_up_fresh(request):
            messages.warning(request, _("Changing where we send your invoices needs a fresh verification."))
            return HttpResponseRedirect(f"{reverse('portal:verify')}?next={reverse('portal:details')}")
        # Through the customer service, like the API and the console: same rules, and a
        # `customer.updated` event so webhooks see the customer's own edits too.
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        if changes:
            try:
                customer_update(customer=Customer.objects.get(pk=customer.pk), data=changes, acting_user=request.user)
            except ValidationError as error:
                form.add_error(None, error)
                return render(request, "portal/details.html", {"form": form, "preferences": preferences})
        messages.success(request, _("Your billing details are saved."))
        return HttpResponseRedirect(reverse("portal:details"))
    return render(request, "portal/details.html", {"form": form, "preferences": preferences})


@require_POST
@portal_view
def notification_preferences(request: HttpRequest, customer: Customer) -> HttpResponse:
    form = NotificationPreferencesForm(request.POST, enabled={})
    if form.is_valid():
        with transaction.atomic():
            for kind in OPTIONAL_NOTIFICATIONS:
                NotificationPreference.objects.update_or_create(
                    customer=customer, kind=kind.value, defaults={"enabled": form.cleaned_data[kind.value]}
                )
        messages.success(request, _("Your notification preferences are saved."))
    return HttpResponseRedirect(reverse("portal:details"))


@portal_view(step_up=True)
def data_export(request: HttpRequest, customer: Customer) -> HttpResponse:
    if request.method != "POST":
        return render(request, "portal/export.html")
    data = customer_data_export(customer=customer)
    response = HttpResponse(json.dumps(data, indent=2, ensure_ascii=False), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="tarif-data-{customer.pk}.json"'
    return response


# -- second factor: login, step-up, enrolment ---------------------------------------------------------------


def _email_device(user: Any) -> EmailDevice:
    device, _created = EmailDevice.objects.get_or_create(
        user=user, name="portal-email", defaults={"confirmed": True, "email": user.email}
    )
    return device


def _send_email_code(request: HttpRequest, customer: Customer) -> bool:
    """Email a one-time code (django-otp's EmailDevice makes and checks it); False when throttled."""
    device = _email_device(request.user)
    allowed, _details = device.generate_is_allowed()
    if not allowed:
        return False
    device.generate_token(valid_secs=settings.OTP_EMAIL_TOKEN_VALIDITY)
    step_up_code_send(customer=customer, email=device.email or request.user.email, code=device.token)
    return True


@never_cache
@portal_view
def step_up_verify(request: HttpRequest, customer: Customer) -> HttpResponse:
    next_url = safe_next(request, reverse("portal:home"))
    uses_totp = totp_enrolled(request.user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and "resend" in request.POST and not uses_totp:
        if not _send_email_code(request, customer):
            messages.warning(request, _("A code was sent a moment ago; wait a minute before asking again."))
        form = CodeForm()
    elif request.method == "POST" and form.is_valid():
        token = form.cleaned_data["otp_token"]
        # TOTP users: their app or a recovery code; the others: the emailed code. One throttle rule.
        devices = None if uses_totp else [_email_device(request.user)]
        verification = mfa.verify_code(user=request.user, token=token, devices=devices)
        if verification.ok:
            step_up_mark(request)
            request.session.cycle_key()  # the session just gained rights: a new key for it
            return HttpResponseRedirect(next_url)
        form.add_error(
            "otp_token", mfa.refusal_message(verification, _("This code is not valid (or has expired). Try again."))
        )
    elif request.method == "GET" and not uses_totp:
        _send_email_code(request, customer)
    context = {"form": form, "next": next_url, "uses_totp": uses_totp, "minutes": mfa.fresh_minutes()}
    return render(request, "portal/verify.html", context)


@never_cache
def login_verify(request: HttpRequest) -> HttpResponse:
    """The second step of signing in for a portal user who enrolled TOTP."""
    if not request.user.is_authenticated:
        return HttpResponseRedirect(reverse("account_login"))
    customer, _impersonating = portal_customer(request)
    activate_customer_language(request, customer)
    next_url = safe_next(request, reverse("portal:home"))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        verification = mfa.verify_code(user=request.user, token=form.cleaned_data["otp_token"])
        if verification.device is not None:
            second_factor_login(request, verification.device)
            step_up_mark(request)
            return HttpResponseRedirect(next_url)
        form.add_error(
            "otp_token",
            mfa.refusal_message(verification, _("Invalid or already used code. Wait for the next code and try again.")),
        )
    return render(request, "portal/login_verify.html", {"form": form, "next": next_url, "customer": customer})


@portal_view
def security(request: HttpRequest, customer: Customer) -> HttpResponse:
    recovery = StaticDevice.objects.filter(user=request.user, name="recovery").first()
    context = {
        "enrolled": totp_enrolled(request.user),
        "recovery_left": recovery.token_set.count() if recovery else 0,
    }
    return render(request, "portal/security.html", context)


@never_cache
@portal_view(step_up=True)
def totp_enrol(request: HttpRequest, customer: Customer) -> HttpResponse:
    if totp_enrolled(request.user):
        return HttpResponseRedirect(reverse("portal:security"))
    device = mfa.totp_device_for_enrolment(request.user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        verification = mfa.confirm_device(user=request.user, device=device, token=form.cleaned_data["otp_token"])
        if verification.ok:
            codes = issue_recovery_codes(user=request.user)
            second_factor_login(request, device)
            return render(request, "portal/recovery_codes.html", {"codes": codes})
        form.add_error(
            "otp_token",
            mfa.refusal_message(verification, _("That code does not match. Check your device's clock and try again.")),
        )
    context = {
        "form": form,
        "qr_svg": mark_safe(qr_svg(device.config_url)),  # generated by qrcode from our own data
        "secret": base32_secret(device),
    }
    return render(request, "portal/totp_enrol.html", context)


@require_POST
@portal_view(step_up=True)
def totp_disable(request: HttpRequest, customer: Customer) -> HttpResponse:
    TOTPDevice.objects.filter(user=request.user).delete()
    StaticDevice.objects.filter(user=request.user, name="recovery").delete()
    messages.success(request, _("Two-factor authentication is off; sensitive actions will ask for an emailed code."))
    return HttpResponseRedirect(reverse("portal:security"))


@require_POST
@portal_view(step_up=True)
def recovery_codes_renew(request: HttpRequest, customer: Customer) -> HttpResponse:
    if not totp_enrolled(request.user):
        return HttpResponseRedirect(reverse("portal:security"))
    return render(request, "portal/recovery_codes.html", {"codes": issue_recovery_codes(user=request.user)})


# -- staff "view as customer" (read-only, audited) ----------------------------------------------------------


@require_POST
def impersonate_start(request: HttpRequest, customer_pk: int) -> HttpResponse:
    if not admin.site.has_permission(request) or not request.user.has_perm("customers.view_customer"):
        raise Http404
    customer = get_object_or_404(Customer, pk=customer_pk)
    with transaction.atomic():
        event_record(
            type="customer.portal_viewed_as",
            object_type="customer",
            object_id=customer.pk,
            customer_id=customer.pk,
            occurred_at=clock.now(customer=customer),
            data={"staff": request.user.get_username()},
            acting_user=request.user,
        )
    request.session[IMPERSONATION_SESSION_KEY] = customer.pk
    return HttpResponseRedirect(reverse("portal:home"))


@require_POST
def impersonate_stop(request: HttpRequest) -> HttpResponse:
    customer_pk = request.session.pop(IMPERSONATION_SESSION_KEY, None)
    if customer_pk is None:
        return HttpResponseRedirect(reverse("portal:home"))
    return HttpResponseRedirect(reverse("admin:customers_customer_change", args=[customer_pk]))
