"""Console: quotes (draft with an inline item editor, totals, finalize, PDF, send, revise, cancel).

Every write goes through the quote services: the add/change form and its item inline are
checked by the billing engine in the inline formset's clean (a dry run that rolls back),
then saved by `quote_create` / `quote_update`; the detail actions confirm, then call
`quote_finalize` / `quote_send` / `quote_revise` / `quote_cancel`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from unfold.decorators import action
from unfold.enums import ActionVariant

from billing.quotes.models import Quote, QuoteLine
from billing.quotes.rendering import quote_pdf, quote_pdf_filename
from billing.quotes.selectors import quote_public_url
from billing.quotes.services import (
    QuoteLineInput,
    quote_cancel,
    quote_compute,
    quote_create,
    quote_finalize,
    quote_lines_check,
    quote_preview_snapshot,
    quote_revise,
    quote_send,
    quote_update,
    quote_validity_days,
)
from config.console import StyledAdmin, TabularInline, admin_link, error_text, status_badge
from config.errors import DomainError
from config.formatting import format_money
from config.modes import scope_to_mode
from config.write_path import copy_saved

ACTION_TEMPLATE = "admin/invoices/invoice/action_page.html"
EDITABLE_FIELDS = (
    "valid_until",
    "collection_method",
    "days_until_due",
    "trial_days",
    "coupon",
    "header",
    "terms",
    "footer",
)


def _line_inputs(formset: BaseInlineFormSet) -> list[QuoteLineInput]:
    inputs = []
    for form in formset.forms:
        data = getattr(form, "cleaned_data", None) or {}
        if not data or data.get("DELETE"):
            continue
        inputs.append(
            QuoteLineInput(
                price=data.get("price"),
                quantity=data.get("quantity") or 1,
                description=data.get("description") or "",
                unit_amount=data.get("unit_amount"),
            )
        )
    return inputs


class QuoteLineFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        quote = self.instance
        if getattr(quote, "customer_id", None) is None:
            return  # the quote form reports the missing customer
        if quote.status != Quote.Status.DRAFT:
            return
        quote.currency = quote.customer.currency
        lines = _line_inputs(self)
        quote._tarif_lines = lines  # type: ignore[attr-defined]  # saved by the service in save_model
        try:
            # A dry run of the billing engine: refused items, currency, coupon... as form errors.
            with transaction.atomic():
                quote_lines_check(customer=quote.customer, lines=lines)
                quote_compute(quote=quote, lines=lines)
        except DomainError as error:
            raise ValidationError(error_text(error)) from error


class QuoteLineInline(TabularInline):
    model = QuoteLine
    formset = QuoteLineFormSet
    fields = ("position", "price", "quantity", "description", "unit_amount")
    autocomplete_fields = ("price",)
    extra = 1
    verbose_name = _("item")
    verbose_name_plural = _("items (a catalog price, or a description with a one-off unit amount in cents)")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_add_permission(request, obj) and (obj is None or obj.status == Quote.Status.DRAFT)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and (obj is None or obj.status == Quote.Status.DRAFT)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or obj.status == Quote.Status.DRAFT)


@admin.register(Quote)
class QuoteAdmin(StyledAdmin):
    list_display = ("display_number", "customer_link", "status_display", "total_display", "valid_until", "created_at")
    list_filter = ("status", "collection_method")
    search_fields = ("number", "customer__legal_name", "customer__email")
    autocomplete_fields = ("customer", "coupon")
    inlines = [QuoteLineInline]
    actions_detail = ["finalize_action", "send_action", "pdf_action", "revise_action", "cancel_action"]
    readonly_fields = (
        "status_display",
        "number",
        "revision",
        "revises",
        "totals_display",
        "public_link",
        "accepted_display",
        "subscription",
        "invoice",
        "finalized_at",
        "sent_at",
    )

    def get_queryset(self, request: HttpRequest) -> Any:
        return scope_to_mode(super().get_queryset(request).select_related("customer", "brand"))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("customer", *EDITABLE_FIELDS)
        return (
            "customer",
            "status_display",
            "number",
            "revision",
            "revises",
            "totals_display",
            *EDITABLE_FIELDS,
            "public_link",
            "finalized_at",
            "sent_at",
            "accepted_display",
            "subscription",
            "invoice",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ()
        if obj.status != Quote.Status.DRAFT:
            return ("customer", *EDITABLE_FIELDS, *self.readonly_fields)
        return ("customer", *self.readonly_fields)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {
            "valid_until": timezone.now() + timedelta(days=quote_validity_days()),
            **super().get_changeform_initial_data(request),
        }

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # cancel instead: an issued quote keeps its number

    # -- displays -----------------------------------------------------------------------------

    @admin.display(description=_("number"), ordering="number")
    def display_number(self, quote: Quote) -> str:
        return str(quote)

    @admin.display(description=_("customer"), ordering="customer__legal_name")
    def customer_link(self, quote: Quote) -> str:
        return admin_link(quote.customer)

    status_display = status_badge(
        "status",
        _("status"),
        {"draft": "info", "open": "warning", "accepted": "success", "canceled": "danger", "expired": "danger"},
    )

    @admin.display(description=_("total"), ordering="total")
    def total_display(self, quote: Quote) -> str:
        return format_money(quote.total, quote.currency)

    @admin.display(description=_("totals"))
    def totals_display(self, quote: Quote) -> str:
        return format_html(
            "{}: {} · {}: −{} · {}: {} · <strong>{}: {}</strong> · {}: {}",
            gettext("Subtotal"),
            format_money(quote.subtotal, quote.currency),
            gettext("Discounts"),
            format_money(quote.discount_total, quote.currency),
            gettext("Tax"),
            format_money(quote.tax_total, quote.currency),
            gettext("First invoice"),
            format_money(quote.total, quote.currency),
            gettext("Then per period"),
            format_money(quote.recurring_total, quote.currency),
        )

    @admin.display(description=_("acceptance link"))
    def public_link(self, quote: Quote) -> str:
        if quote.status == Quote.Status.DRAFT:
            return gettext("Given when the quote is finalized.")
        url = quote_public_url(quote)
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a>', url, gettext("Open the customer's page")
        )

    @admin.display(description=_("accepted"))
    def accepted_display(self, quote: Quote) -> str:
        if quote.accepted_at is None:
            return "—"
        return gettext("by %(name)s on %(date)s (IP %(ip)s)") % {
            "name": quote.accepted_name,
            "date": quote.accepted_at.strftime("%Y-%m-%d %H:%M UTC"),
            "ip": quote.accepted_ip or "?",
        }

    # -- saving through the services ------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Quote, form: Any, change: bool) -> None:
        # The items come from the inline formset, checked and handed over by its clean().
        lines = getattr(obj, "_tarif_lines", None)
        values = {name: form.cleaned_data.get(name) for name in EDITABLE_FIELDS if name in form.cleaned_data}
        if not change:
            saved = quote_create(
                customer=form.cleaned_data["customer"],
                lines=lines or [],
                valid_until=values.get("valid_until"),
                collection_method=values.get("collection_method") or Quote.CollectionMethod.SEND_INVOICE,
                days_until_due=values.get("days_until_due"),
                trial_days=values.get("trial_days") or 0,
                coupon=values.get("coupon"),
                header=values.get("header") or "",
                footer=values.get("footer") or "",
                terms=values.get("terms") or "",
                acting_user=request.user,
            )
            copy_saved(obj, saved)
            return
        stored = Quote.objects.get(pk=obj.pk)
        if stored.status != Quote.Status.DRAFT:
            return  # an issued quote is read-only here (every field is)
        quote_update(
            quote=stored,
            lines=lines,
            valid_until=values.get("valid_until"),
            collection_method=values.get("collection_method"),
            days_until_due=values.get("days_until_due"),
            trial_days=values.get("trial_days"),
            coupon=values.get("coupon"),
            header=values.get("header", ""),
            footer=values.get("footer", ""),
            terms=values.get("terms", ""),
            acting_user=request.user,
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Nothing more to save: save_model gave the items to the service (no formset writes rows)."""
        for formset in formsets:
            # What the admin's history message reads after a formset's save().
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    # -- detail actions -------------------------------------------------------------------

    def _quote(self, request: HttpRequest, object_id: str) -> Quote:
        quote = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_view_permission(request, quote):
            raise PermissionDenied
        return quote

    def _back(self, quote: Quote) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:quotes_quote_change", args=[quote.pk]))

    def _confirm(
        self,
        request: HttpRequest,
        *,
        object_id: str,
        title: str,
        consequences: list[str],
        submit_label: str,
        operation: Any,
        success: Any,
        allowed: tuple[str, ...],
    ) -> HttpResponse:
        quote = self._quote(request, object_id)
        if not self.has_change_permission(request, quote):
            raise PermissionDenied
        if quote.status not in allowed:
            self.message_user(
                request,
                gettext("Quote %(number)s is %(status)s: this action does not apply.")
                % {"number": quote, "status": quote.get_status_display()},
                messages.WARNING,
            )
            return self._back(quote)
        form = forms.Form(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                with transaction.atomic():
                    result = operation(quote)
            except DomainError as error:
                form.add_error(None, error_text(error))
            else:
                self.message_user(request, success(result), messages.SUCCESS)
                return self._back(result if isinstance(result, Quote) else quote)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "facts": [
                (gettext("Quote"), str(quote)),
                (gettext("Customer"), str(quote.customer)),
                (gettext("First invoice"), format_money(quote.total, quote.currency)),
            ],
            "consequences": consequences,
            "form": form,
            "submit_label": submit_label,
            "submit_variant": "primary",
            "cancel_url": reverse("admin:quotes_quote_change", args=[quote.pk]),
        }
        return TemplateResponse(request, ACTION_TEMPLATE, context)

    @action(
        description=_("Finalize"),
        url_path="finalize",
        permissions=["change"],
        icon="verified",
        variant=ActionVariant.PRIMARY,
    )
    def finalize_action(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._confirm(
            request,
            object_id=object_id,
            title=gettext("Finalize the quote"),
            consequences=[
                gettext(
                    "The totals are computed again now, then frozen; "
                    "the quote takes the next number of its brand's series."
                ),
                gettext("If it revises another quote, that one is replaced and can no longer be accepted."),
            ],
            submit_label=gettext("Finalize"),
            operation=lambda quote: quote_finalize(quote=quote, acting_user=request.user),
            success=lambda quote: gettext("Quote %(number)s issued.") % {"number": quote.number},
            allowed=(Quote.Status.DRAFT,),
        )

    @action(description=_("Send by email"), url_path="send", permissions=["change"], icon="mail")
    def send_action(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def operation(quote: Quote) -> Any:
            if quote.status == Quote.Status.DRAFT:
                quote = quote_finalize(quote=quote, acting_user=request.user)
            return quote_send(quote=quote, acting_user=request.user)

        return self._confirm(
            request,
            object_id=object_id,
            title=gettext("Send the quote by email"),
            consequences=[
                gettext("A draft is finalized first."),
                gettext("The customer receives the PDF and a link to accept the quote online."),
            ],
            submit_label=gettext("Send"),
            operation=operation,
            success=lambda log: gettext("The quote is on its way to %(email)s.") % {"email": log.recipient},
            allowed=(Quote.Status.DRAFT, Quote.Status.OPEN),
        )

    @action(description=_("PDF"), url_path="pdf", permissions=["view"], icon="download")
    def pdf_action(self, request: HttpRequest, object_id: str) -> HttpResponse:
        quote = self._quote(request, object_id)
        response = HttpResponse(
            quote_pdf(quote, snapshot=quote_preview_snapshot(quote=quote)), content_type="application/pdf"
        )
        response["Content-Disposition"] = f'attachment; filename="{quote_pdf_filename(quote)}"'
        return response

    @action(description=_("Revise"), url_path="revise", permissions=["change"], icon="edit_note")
    def revise_action(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._confirm(
            request,
            object_id=object_id,
            title=gettext("Revise the quote"),
            consequences=[
                gettext(
                    "A new draft copies this quote; finalizing it replaces this one, "
                    "which can then no longer be accepted."
                ),
            ],
            submit_label=gettext("Create the revision"),
            operation=lambda quote: quote_revise(quote=quote, acting_user=request.user),
            success=lambda quote: gettext("Revision %(revision)s created as a draft.") % {"revision": quote.revision},
            allowed=(Quote.Status.OPEN, Quote.Status.EXPIRED),
        )

    @action(
        description=_("Cancel the quote"),
        url_path="cancel",
        permissions=["change"],
        icon="block",
        variant=ActionVariant.DANGER,
    )
    def cancel_action(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._confirm(
            request,
            object_id=object_id,
            title=gettext("Cancel the quote"),
            consequences=[gettext("The customer can no longer accept it; it keeps its number.")],
            submit_label=gettext("Cancel the quote"),
            operation=lambda quote: quote_cancel(quote=quote, acting_user=request.user),
            success=lambda quote: gettext("Quote %(number)s canceled.") % {"number": quote},
            allowed=(Quote.Status.DRAFT, Quote.Status.OPEN, Quote.Status.EXPIRED),
        )
