"""Console pages for invoicing settings: brands (identity, bank details, layout), custom fields,
number series, tax rates, and the customer balance ledger.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportModelAdmin
from modeltranslation.admin import TranslationAdmin
from unfold.contrib.filters.admin import RangeDateTimeFilter

from config import mfa
from config.console import (
    CountryFilter,
    ImportExportPermissions,
    ReadOnlyAdminMixin,
    StyledAdmin,
    TabularInline,
)
from config.mfa import OtpField
from invoices.admin.invoices import money_column
from invoices.models import (
    BalanceTransaction,
    Brand,
    InvoiceCustomField,
    InvoiceLineColumn,
    NumberSequence,
    TaxCode,
    TaxCodeRate,
    TaxRate,
)
from invoices.rendering.html import document_html, document_pdf
from invoices.rendering.preview import preview_document
from invoices.resources import TaxRateResource
from invoices.services.brands import BANK_DETAIL_FIELDS, brand_save


class BrandCustomFieldInline(TabularInline):
    model = InvoiceCustomField
    fk_name = "brand"
    # The label in each document language (an English invoice prints the English label).
    fields = ("label_fr", "label_en", "value", "position")
    extra = 0
    verbose_name = _("custom field printed on every invoice")
    verbose_name_plural = _("custom fields printed on every invoice")


class LineColumnInline(TabularInline):
    model = InvoiceLineColumn
    fields = ("label_fr", "label_en", "metadata_key", "position")
    extra = 0


class BrandForm(forms.ModelForm):
    """The brand form; a change of the bank details asks for a fresh two-factor code."""

    otp_token = OtpField(
        help_text=_(
            "Needed when the IBAN, BIC or payment instructions change: a new code from your authenticator app "
            "(not asked again for a few minutes after one)."
        )
    )

    request: HttpRequest | None = None
    verify_second_factor = True  # the live preview posts the same form: it must not spend a code
    otp_verified_at: datetime | None = None

    class Meta:
        model = Brand
        fields = BANK_DETAIL_FIELDS  # the admin builds the form from its fieldsets

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.verify_second_factor or self.request is None:
            return data
        if any(name in self.changed_data for name in BANK_DETAIL_FIELDS):
            verified_at, refused = mfa.step_up(self.request, data.get("otp_token"))
            if refused is not None and not refused.ok:
                self.add_error("otp_token", mfa.refusal_message(refused))
            elif not mfa.is_fresh(verified_at):
                self.add_error(
                    "otp_token",
                    gettext("Enter a new code from your authenticator app: bank details need a fresh two-factor code."),
                )
            else:
                self.otp_verified_at = verified_at
        return data


@admin.register(Brand)
class BrandAdmin(StyledAdmin, TranslationAdmin):
    """The brand; its printed texts (footer, payment instructions, late-payment mention) in
    French and English side by side, as language tabs (tarif/invoices/brand_languages.js)."""

    form = BrandForm
    list_display = ("name", "legal_name", "country", "layout", "invoice_number_format", "is_default")
    list_filter = ("is_default", "layout", CountryFilter)
    search_fields = ("name", "legal_name", "slug", "siren", "vat_number")
    prepopulated_fields = {"slug": ("name",)}
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = ("created_at",)
    inlines = [BrandCustomFieldInline, LineColumnInline]
    change_form_template = "admin/invoices/brand/change_form.html"
    fieldsets = (
        (None, {"fields": ("name", "slug", "is_default")}),
        (
            _("Legal identity"),
            {
                "fields": (
                    "legal_name",
                    "legal_form",
                    "siren",
                    "siret",
                    "vat_number",
                    "share_capital",
                    "rcs",
                    "vat_on_debits",
                    "default_tax_code",
                    "operation_category",
                )
            },
        ),
        (
            _("Address and contact"),
            {
                "fields": (
                    "address_line1",
                    "address_line2",
                    "postal_code",
                    "city",
                    "country",
                    "email",
                    "website",
                    "timezone",
                    "default_language",
                )
            },
        ),
        (_("Look"), {"fields": ("logo", "primary_colour", "accent_colour", "font", "layout", "footer_text")}),
        (_("Payment"), {"fields": ("payment_instructions", "iban", "bic", "otp_token", "late_payment_rate")}),
        (_("Numbering"), {"fields": ("invoice_number_format", "credit_note_number_format", "created_at")}),
    )

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def save_model(self, request: HttpRequest, obj: Brand, form: Any, change: bool) -> None:
        # The form checked the code (and shows its error); the service checks the proof again.
        brand_save(brand=obj, acting_user=request.user, otp_verified_at=form.otp_verified_at)

    class Media:
        js = ("tarif/invoices/brand_preview.js", "tarif/invoices/brand_languages.js")
        css = {"all": ("tarif/invoices/brand_preview.css",)}

    def get_urls(self) -> list[URLPattern]:
        return [
            path("preview/", self.admin_site.admin_view(self.preview_view), name="invoices_brand_preview_add"),
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="invoices_brand_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest, object_id: str | None = None) -> HttpResponse:
        """A sample invoice with the form's UNSAVED values: HTML for the pane, or a PDF."""
        if request.method != "POST":
            return HttpResponse(status=405, headers={"Allow": "POST"})
        obj = get_object_or_404(Brand, pk=object_id) if object_id else None
        if not (self.has_change_permission(request, obj) if obj else self.has_add_permission(request)):
            raise PermissionDenied
        form = self.get_form(request, obj, change=obj is not None)(request.POST, request.FILES, instance=obj)
        form.verify_second_factor = False
        form.is_valid()  # fills form.instance with every valid value; errors show on save
        language = request.POST.get("_preview_language")
        document, logo_error = preview_document(
            brand=form.instance, data=request.POST, files=request.FILES, language=language
        )
        document.extra["preview_error"] = logo_error
        if request.POST.get("_preview_format") == "pdf":
            response = HttpResponse(document_pdf(document, pdf_a=False), content_type="application/pdf")
            response["Content-Disposition"] = 'inline; filename="preview.pdf"'
            response["Cache-Control"] = "no-store"
            return response
        html = document_html(document, for_pdf=False)
        response = HttpResponse(html, content_type="text/html; charset=utf-8")
        response["Cache-Control"] = "no-store"
        return response


@admin.register(InvoiceCustomField)
class InvoiceCustomFieldAdmin(StyledAdmin):
    """Customer-level custom fields (brand-level ones are edited on the brand)."""

    list_display = ("label", "value", "customer", "brand")
    list_filter = ("label",)
    search_fields = ("label", "value", "customer__legal_name")
    autocomplete_fields = ("customer",)
    list_select_related = ("customer", "brand")
    fields = ("customer", "label", "value", "position")

    def get_queryset(self, request: HttpRequest) -> QuerySet[InvoiceCustomField]:
        return super().get_queryset(request).filter(customer__isnull=False)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if "customer" in form.base_fields:  # not for a viewer, whose form has no editable field
            form.base_fields["customer"].required = True  # brand-level fields live on the brand
        return form


@admin.register(NumberSequence)
class NumberSequenceAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("brand", "kind", "scope", "last_value")
    list_filter = ("kind", "brand")
    search_fields = ("scope", "brand__name")
    list_select_related = ("brand",)


@admin.register(TaxRate)
class TaxRateAdmin(ImportExportPermissions, StyledAdmin, ImportExportModelAdmin):
    resource_classes = [TaxRateResource]
    list_display = ("country", "name", "percentage", "is_standard", "active")
    list_filter = ("active", "is_standard", CountryFilter)
    search_fields = ("name", "country")


class TaxCodeRateInline(admin.TabularInline):
    model = TaxCodeRate
    extra = 0
    fields = ("country", "percentage")


@admin.register(TaxCode)
class TaxCodeAdmin(StyledAdmin, TranslationAdmin):
    """Reference data like tax rates (issue 16 item 11): the code's rate per country inline."""

    list_display = ("code", "name", "category", "exemption_reason_code", "rate_count", "active")
    list_filter = ("active", "category")
    search_fields = ("code", "name", "exemption_reason_code")
    readonly_fields = ("created_at",)
    inlines = [TaxCodeRateInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(rate_total=Count("rates"))

    @admin.display(description=_("rates"), ordering="rate_total")
    def rate_count(self, obj: TaxCode) -> int:
        return obj.rate_total  # type: ignore[attr-defined]


@admin.register(BalanceTransaction)
class BalanceTransactionAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("created_at", "customer", "kind", "amount_money", "invoice", "credit_note", "description")
    list_filter = ("kind", "currency", ("created_at", RangeDateTimeFilter))
    # Read-only: the amount shown as money, never the stored minor units.
    fields = ("customer", "kind", "amount_money", "description", "invoice", "credit_note", "created_at")
    readonly_fields = fields
    search_fields = ("customer__legal_name", "customer__email", "description", "invoice__number")
    list_select_related = ("customer", "invoice", "credit_note")
    date_hierarchy = "created_at"

    amount_money = money_column("amount", _("amount"))
