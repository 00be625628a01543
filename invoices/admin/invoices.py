"""Console pages for invoices: list with chart, draft edits, finalize, void, credit notes, PDFs."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _
from import_export.admin import ExportMixin
from unfold.contrib.filters.admin import RangeDateFilter
from unfold.decorators import display
from unfold.utils import parse_date_str

from billing.models import Price, Subscription
from config import clock, mfa
from config.console import (
    ImportExportPermissions,
    ReadOnlyInline,
    StyledAdmin,
    TabularInline,
    admin_link,
    format_minor_decimal,
    format_money,
    format_period,
    pretty_json,
    run_each,
)
from config.console_export import ExportFieldsForm
from config.console_pagination import ESTIMATE_ABOVE
from config.errors import DomainError
from customers.models import NotificationLog
from customers.notifications.services import invoice_email_queue, notification_deliver_now, notification_retryable
from invoices.admin.charts import invoice_month_totals
from invoices.admin.editor import InvoiceEditorMixin
from invoices.admin.forms import VoidForm, WriteOffForm
from invoices.errors import InvoiceError
from invoices.models import (
    CreditNote,
    Invoice,
    InvoiceLine,
)
from invoices.resources import InvoiceResource
from invoices.selectors import invoice_credited
from invoices.services.lifecycle import invoice_mark_uncollectible, invoice_void
from invoices.services.pdf import credit_note_document_store, invoice_document_store

SERVICE_ERRORS = (DomainError, InvoiceError, ValidationError)


def money_column(field: str, description: Any) -> Any:
    """A list/readonly column showing an integer minor-unit field as money in the row's currency."""

    @admin.display(description=description, ordering=field)
    def column(self: Any, obj: Any) -> str:
        return format_money(getattr(obj, field), obj.currency)

    column.__name__ = f"{field}_money"
    return column


class InvoiceLineInline(TabularInline):
    """Lines are shown for every invoice; only a draft's lines could ever change."""

    model = InvoiceLine
    extra = 0
    fields = ("position", "kind", "description", "period", "qty", "unit", "amount_money", "tax", "discount")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        return False

    @admin.display(description=_("period"))
    def period(self, line: InvoiceLine) -> str:
        return format_period(line.period_start, line.period_end)

    @admin.display(description=_("quantity"))
    def qty(self, line: InvoiceLine) -> str:
        return f"{line.quantity.normalize():f}"

    @admin.display(description=_("unit price"))
    def unit(self, line: InvoiceLine) -> str:
        return format_minor_decimal(line.unit_amount, line.invoice.currency) if line.unit_amount is not None else "—"

    @admin.display(description=_("amount"))
    def amount_money(self, line: InvoiceLine) -> str:
        return format_money(line.amount, line.invoice.currency)

    @admin.display(description=_("tax"))
    def tax(self, line: InvoiceLine) -> str:
        return f"{format_money(line.tax_amount, line.invoice.currency)} ({line.tax_rate.normalize():f} %)"

    @admin.display(description=_("discount"))
    def discount(self, line: InvoiceLine) -> str:
        return format_money(line.discount_amount, line.invoice.currency) if line.discount_amount else "—"


class CreditNoteInline(ReadOnlyInline):
    model = CreditNote
    fk_name = "invoice"
    fields = ("number", "status", "reason", "total_money", "issued_at")
    readonly_fields = fields
    verbose_name_plural = _("credit notes")

    total_money = money_column("total", _("total"))


class CollectionMethodFilter(admin.SimpleListFilter):
    title = _("collection method")
    parameter_name = "collection_method"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return Subscription.CollectionMethod.choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
        return queryset.filter(collection_method=self.value()) if self.value() else queryset


def short_date(moment: datetime | None) -> str:
    return date_format(timezone.localtime(moment), "SHORT_DATE_FORMAT") if moment else "—"


INVOICE_FIELDSETS = (
    (
        None,
        {
            "fields": (
                "number",
                "status_label",
                "customer_link",
                "brand",
                "subscription_link",
                "billing_reason",
                "collection",
                "currency",
                "language",
            )
        },
    ),
    (
        _("Amounts"),
        {
            "fields": (
                "subtotal_money",
                "discount_total_money",
                "tax_total_money",
                "total_money",
                "starting_balance_applied_money",
                "credits_applied_money",
                "amount_due_money",
                "amount_paid_money",
                "amount_remaining_money",
                "credited",
            )
        },
    ),
    (_("Dates"), {"fields": ("period", "due_at", "finalized_at", "paid_at", "voided_at", "created_at")}),
    (_("Details"), {"fields": ("memo", "tax_breakdown_table")}),
    (
        _("Issued details and custom fields"),
        {"fields": ("issued_snapshot_json", "custom_fields_json", "content_hash"), "classes": ("collapse",)},
    ),
    (
        _("Document"),
        {"fields": ("pdf_link",)},
    ),
)


# While a draft, the memo and the language may still be edited; everything else comes from services.
DRAFT_EDITABLE = ("memo", "language")


class OverdueFilter(admin.SimpleListFilter):
    title = _("overdue")
    parameter_name = "overdue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [("yes", _("overdue")), ("no", _("not overdue"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
        overdue = Q(status=Invoice.Status.OPEN, due_at__lt=clock.system_now(), amount_remaining__gt=0)
        if self.value() == "yes":
            return queryset.filter(overdue)
        if self.value() == "no":
            return queryset.exclude(overdue)
        return queryset


# Above this many invoices in the list (e.g. all of them), no monthly chart: see changelist_view.
CHART_MAX_ROWS = ESTIMATE_ABOVE


class CatalogCurrencyFilter(admin.SimpleListFilter):
    """Currency, offered from the catalog's prices (a small table) rather than a DISTINCT over
    every invoice (1.4 s at 100,000 subscriptions); keeps Django's `currency__exact` parameter.
    Every currency invoiced through a subscription or a one-off price is a price's currency;
    one only used by a manual draft can still be typed in the URL."""

    title = _("currency")
    parameter_name = "currency__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        currencies = Price.objects.order_by("currency").values_list("currency", flat=True).distinct()
        return [(code, code) for code in currencies]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
        return queryset.filter(currency=self.value()) if self.value() else queryset


class DayRangeFilter(RangeDateFilter):
    """From/to days on a datetime column, both days included (in the console's time zone)."""

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        filters = {}
        for suffix, lookup in (("_from", "gte"), ("_to", "lte")):
            value = self.used_parameters.get(f"{self.parameter_name}{suffix}")
            if isinstance(value, str) and value:
                try:
                    filters[f"{self.parameter_name}__date__{lookup}"] = parse_date_str(value)
                except (ValueError, ValidationError):
                    return None
        try:
            return queryset.filter(**filters)
        except (ValueError, ValidationError):
            return None


STATUS_COLOURS = {
    Invoice.Status.DRAFT: "info",
    Invoice.Status.OPEN: "warning",
    Invoice.Status.PAID: "success",
    Invoice.Status.VOID: "danger",
    Invoice.Status.UNCOLLECTIBLE: "danger",
}


@admin.register(Invoice)
class InvoiceAdmin(InvoiceEditorMixin, ImportExportPermissions, ExportMixin, StyledAdmin):
    export_form_class = ExportFieldsForm  # the console's (ExportMixin would otherwise win the MRO)
    resource_classes = [InvoiceResource]
    list_display = (
        "display_number",
        "customer_name",
        "status_badge",
        "total_money",
        "amount_remaining_money",
        "finalized",
        "due",
    )
    list_filter = (
        "status",
        OverdueFilter,
        "brand",
        ("finalized_at", DayRangeFilter),
        ("due_at", DayRangeFilter),
        CatalogCurrencyFilter,
        "billing_reason",
        CollectionMethodFilter,
    )
    search_fields = ("number", "customer__legal_name", "customer__email", "=id")
    list_select_related = ("customer", "brand")
    # No date_hierarchy (issue 20): it reads the first and last dates and the DISTINCT years
    # of the whole list on every view (2 s of the 9 s at 100,000 subscriptions); the
    # finalized-at day range filter above selects dates.
    inlines = [InvoiceLineInline, CreditNoteInline]
    fieldsets = INVOICE_FIELDSETS
    actions = ["void", "mark_uncollectible", "download_pdf", "email_to_customer"]
    change_list_template = "admin/invoices/invoice/change_list.html"
    change_form_template = "admin/invoices/invoice/change_form.html"

    subtotal_money = money_column("subtotal", _("subtotal"))
    discount_total_money = money_column("discount_total", _("discounts"))
    tax_total_money = money_column("tax_total", _("tax"))
    total_money = money_column("total", _("total"))
    starting_balance_applied_money = money_column("starting_balance_applied", _("customer credit applied"))
    credits_applied_money = money_column("credits_applied", _("prepaid credits applied"))
    amount_due_money = money_column("amount_due", _("amount due"))
    amount_paid_money = money_column("amount_paid", _("amount paid"))
    amount_remaining_money = money_column("amount_remaining", _("amount remaining"))

    # -- permissions: an issued invoice is a legal document ------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        # "Add" is the draft editor's first step (invoice_draft_create), never a raw model form.
        return request.user.has_perm("invoices.add_invoice") and request.user.has_perm("invoices.change_invoice")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and self._status(request, obj) != Invoice.Status.DRAFT:
            return False
        return super().has_change_permission(request, obj if isinstance(obj, Invoice) else None)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and self._status(request, obj) != Invoice.Status.DRAFT:
            return False
        return super().has_delete_permission(request, obj if isinstance(obj, Invoice) else None)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # A bulk delete could sweep up finalized invoices; drafts are deleted one by one.
        actions.pop("delete_selected", None)
        return actions

    def get_fieldsets(self, request: HttpRequest, obj: Invoice | None = None) -> Any:
        if obj is not None and obj.status == Invoice.Status.DRAFT:
            # The editor above shows the lines and totals; below, only what the draft may still change.
            return (
                (
                    _("Draft details"),
                    {"fields": ("customer_link", "brand", "collection", "currency", "language", "memo")},
                ),
            )
        return INVOICE_FIELDSETS

    def get_inlines(self, request: HttpRequest, obj: Invoice | None = None) -> Any:
        if obj is not None and obj.status == Invoice.Status.DRAFT:
            return []
        return self.inlines

    def get_readonly_fields(self, request: HttpRequest, obj: Invoice | None = None) -> list[str]:
        names = [name for _title, options in INVOICE_FIELDSETS for name in options["fields"]]
        if obj is not None and obj.status == Invoice.Status.DRAFT:
            return [name for name in names if name not in DRAFT_EDITABLE]
        return names

    # -- display -------------------------------------------------------------

    @admin.display(description=_("PDF"))
    def pdf_link(self, invoice: Invoice) -> str:
        if invoice.status == Invoice.Status.DRAFT:
            return gettext("Rendered when the invoice is finalized.")
        url = reverse("admin:invoices_invoice_pdf", args=[invoice.pk])
        return format_html('<a href="{}">{}</a>', url, gettext("Download PDF (Factur-X)"))

    @admin.display(description=_("number"), ordering="number")
    def display_number(self, invoice: Invoice) -> str:
        return invoice.number or gettext("Draft #%(pk)s") % {"pk": invoice.pk}

    @admin.display(description=_("customer"))
    def customer_link(self, invoice: Invoice) -> str:
        return admin_link(invoice.customer)

    @admin.display(description=_("customer"), ordering="customer__legal_name")
    def customer_name(self, invoice: Invoice) -> str:
        name = invoice.customer.legal_name
        return format_html('<span class="tarif-truncate" title="{}">{}</span>', name, name)

    @display(description=_("status"), ordering="status", label=STATUS_COLOURS)
    def status_badge(self, invoice: Invoice) -> tuple[str, str]:
        return invoice.status, invoice.get_status_display()

    @admin.display(description=_("status"))
    def status_label(self, invoice: Invoice) -> str:
        return render_to_string(
            "unfold/helpers/label.html",
            {"type": STATUS_COLOURS.get(invoice.status), "text": invoice.get_status_display()},
        )

    @admin.display(description=_("issued"), ordering="finalized_at")
    def finalized(self, invoice: Invoice) -> str:
        return short_date(invoice.finalized_at)

    @admin.display(description=_("due"), ordering="due_at")
    def due(self, invoice: Invoice) -> str:
        return short_date(invoice.due_at)

    @admin.display(description=_("collection method"))
    def collection(self, invoice: Invoice) -> str:
        methods = dict(Subscription.CollectionMethod.choices)
        return methods.get(invoice.collection_method, invoice.collection_method)

    @admin.display(description=_("subscription"))
    def subscription_link(self, invoice: Invoice) -> str:
        return admin_link(invoice.subscription)

    @admin.display(description=_("credited"))
    def credited(self, invoice: Invoice) -> str:
        return format_money(invoice_credited(invoice_id=invoice.pk).total, invoice.currency)

    @admin.display(description=_("period"))
    def period(self, invoice: Invoice) -> str:
        return format_period(invoice.period_start, invoice.period_end)

    @admin.display(description=_("tax breakdown"))
    def tax_breakdown_table(self, invoice: Invoice) -> str:
        rows = invoice.tax_breakdown or []
        if not rows:
            return "—"
        body = format_html(
            "<tr><th>{}</th><th>{}</th><th class='tarif-num'>{}</th><th class='tarif-num'>{}</th></tr>",
            gettext("category"),
            gettext("rate"),
            gettext("taxable amount"),
            gettext("tax"),
        )
        for row in rows:
            body += format_html(
                "<tr><td>{}</td><td>{} %</td><td class='tarif-num'>{}</td><td class='tarif-num'>{}</td></tr>",
                row.get("category", ""),
                row.get("rate", ""),
                format_money(row.get("taxable_amount"), invoice.currency),
                format_money(row.get("tax_amount"), invoice.currency),
            )
        return format_html("<table class='tarif-table'>{}</table>", body)

    @admin.display(description=_("issued details"))
    def issued_snapshot_json(self, invoice: Invoice) -> str:
        return pretty_json(invoice.issued_snapshot) if invoice.issued_snapshot else "—"

    @admin.display(description=_("custom fields"))
    def custom_fields_json(self, invoice: Invoice) -> str:
        return pretty_json(invoice.custom_fields) if invoice.custom_fields else "—"

    # -- chart above the list -----------------------------------------------

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Invoice | None = None,
    ) -> HttpResponse:
        if obj is not None:
            currency = obj.currency
            context.update(
                {
                    "invoice_customer_link": admin_link(obj.customer),
                    "invoice_status_badge": self.status_label(obj),
                    "invoice_total": format_money(obj.total, currency),
                    "invoice_remaining": format_money(
                        obj.amount_due if obj.status == Invoice.Status.DRAFT else obj.amount_remaining, currency
                    ),
                    "invoice_issued": short_date(obj.finalized_at),
                    "invoice_due": short_date(obj.due_at),
                }
            )
            if obj.status == Invoice.Status.DRAFT:
                editor = self.draft_editor_context(request, obj)
                context.update(editor)
                if editor["line_form"] is not None:
                    context["media"] = context["media"] + editor["line_form"].media
        return super().render_change_form(request, context, add, change, form_url, obj)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            changelist = context["cl"]
            # The chart sums every invoice of the list over 12 months: seconds on millions of
            # rows (issue 20). Above CHART_MAX_ROWS (the paginator's count, estimated on large
            # lists: no extra query) the page says to filter it; the Billed report has the totals.
            if changelist.result_count > CHART_MAX_ROWS:
                context["invoice_chart"] = []
                context["invoice_chart_skipped"] = CHART_MAX_ROWS
            else:
                context["invoice_chart"] = invoice_month_totals(changelist.queryset, now=clock.system_now())
        return response

    # -- change page: credit note button -------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            *self.editor_urls(),
            path(
                "<path:object_id>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="{}_{}_pdf".format(*info),
            ),
            *super().get_urls(),
        ]

    def pdf_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = get_object_or_404(Invoice, pk=object_id)
        if not self.has_view_permission(request, invoice):
            raise PermissionDenied
        if invoice.status == Invoice.Status.DRAFT:
            self.message_user(request, gettext("A draft has no PDF until it is finalized."), messages.WARNING)
            return HttpResponseRedirect(reverse("admin:invoices_invoice_change", args=[invoice.pk]))
        return stored_pdf_response(invoice=invoice)

    @admin.action(description=_("Download PDF (Factur-X)"), permissions=["view"])
    def download_pdf(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> HttpResponse | None:
        return documents_download(self, request, list(queryset.exclude(status=Invoice.Status.DRAFT)))

    @admin.action(description=_("Email to the customer (branded, PDF attached)"), permissions=["change"])
    def email_to_customer(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        """Record → commit → send → record the outcome: each email is a queued notification
        (committed, with its hand-off row) before the mail server is called, with no
        transaction open; a failed send stays queued for the sweeper's retry."""
        issued = list(queryset.exclude(status=Invoice.Status.DRAFT).select_related("customer").order_by("pk"))
        outcomes: dict[str, list[str]] = {"sent": [], "queued": [], "failed": []}
        for invoice in issued:
            log = invoice_email_queue(invoice=invoice, acting_user=request.user)
            log = notification_deliver_now(log_id=log.pk)
            if log.status == NotificationLog.Status.SENT:
                outcomes["sent"].append(str(invoice))
            elif log.status in (NotificationLog.Status.PENDING, NotificationLog.Status.SENDING) or (
                notification_retryable(log)
            ):
                outcomes["queued"].append(str(invoice))
            else:
                outcomes["failed"].append(str(invoice))
        if not issued:
            self.message_user(request, gettext("No issued invoice selected: nothing emailed."), messages.WARNING)
        if outcomes["sent"]:
            count = len(outcomes["sent"])
            self.message_user(
                request,
                ngettext_lazy("%(count)d invoice emailed.", "%(count)d invoices emailed.", count) % {"count": count},
                messages.SUCCESS,
            )
        if outcomes["queued"]:
            self.message_user(
                request,
                gettext("Not sent yet, queued for another try: %(invoices)s.")
                % {"invoices": ", ".join(outcomes["queued"])},
                messages.WARNING,
            )
        if outcomes["failed"]:
            self.message_user(
                request,
                gettext("Could not be emailed: %(invoices)s.") % {"invoices": ", ".join(outcomes["failed"])},
                messages.ERROR,
            )

    # -- actions ---------------------------------------------------------------

    def _run_each(self, request: HttpRequest, queryset: QuerySet[Invoice], operation: Any, *, done: Any) -> None:
        """Apply `operation` to each invoice, one transaction each (config.console.run_each)."""
        run_each(
            self,
            request,
            queryset.select_related("customer").order_by("pk"),
            operation,
            errors=SERVICE_ERRORS,
            done=done,
        )

    @admin.action(description=_("Void selected invoices…"), permissions=["void"])
    def void(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> HttpResponse | None:
        form = VoidForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            self._run_each(
                request,
                queryset,
                lambda invoice: invoice_void(
                    invoice=invoice,
                    at=clock.now(customer=invoice.customer),
                    acting_user=request.user,
                    reason=form.cleaned_data["reason"],
                ),
                done=ngettext_lazy("%(count)d invoice voided.", "%(count)d invoices voided.", "count"),
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Void invoices"),
            "intro": gettext(
                "A voided invoice keeps its number and stays in the books with a zero balance; it cannot be "
                "reopened. Pending items it consumed are not billed again."
            ),
            "submit_label": gettext("Void"),
            "form": form,
            "invoices": queryset.select_related("customer").order_by("pk"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": "void",
            "media": self.media,
        }
        return TemplateResponse(request, "admin/invoices/invoice/bulk_confirmation.html", context)

    def has_void_permission(self, request: HttpRequest) -> bool:
        return super().has_change_permission(request)

    @admin.action(description=_("Mark selected invoices uncollectible"), permissions=["void"])
    def mark_uncollectible(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> HttpResponse | None:
        """A write-off: a confirmation page that asks for a fresh two-factor code (unless one
        was typed within TARIF_MFA_FRESH_MINUTES); the service checks the same proof."""
        form = WriteOffForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            verified_at, refused = mfa.step_up(request, form.cleaned_data["otp_token"])
            if refused is not None and not refused.ok:
                form.add_error("otp_token", mfa.refusal_message(refused))
            elif not mfa.is_fresh(verified_at):
                form.add_error(
                    "otp_token",
                    gettext("Enter a new code from your authenticator app: a write-off needs a fresh two-factor code."),
                )
            else:
                self._run_each(
                    request,
                    queryset,
                    lambda invoice: invoice_mark_uncollectible(
                        invoice=invoice,
                        at=clock.now(customer=invoice.customer),
                        acting_user=request.user,
                        otp_verified_at=verified_at,
                    ),
                    done=ngettext_lazy(
                        "%(count)d invoice marked uncollectible.", "%(count)d invoices marked uncollectible.", "count"
                    ),
                )
                return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Write invoices off"),
            "intro": gettext(
                "An uncollectible invoice stays in the books as written off; it can still be paid or voided later."
            ),
            "submit_label": gettext("Mark uncollectible"),
            "form": form,
            "fresh": mfa.session_is_fresh(request),
            "invoices": queryset.select_related("customer").order_by("pk"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": "mark_uncollectible",
            "media": self.media,
        }
        return TemplateResponse(request, "admin/invoices/invoice/bulk_confirmation.html", context)


def stored_pdf_response(*, invoice: Invoice | None = None, credit_note: CreditNote | None = None) -> HttpResponse:
    """The stored PDF (rendered and stored now if the task has not run yet), as a download."""
    if invoice is not None:
        document = invoice_document_store(invoice_id=invoice.pk)
        number = invoice.number
    else:
        document = credit_note_document_store(credit_note_id=credit_note.pk)
        number = credit_note.number
    with document.file.open("rb") as stored:
        response = HttpResponse(stored.read(), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{number}.pdf"'
    response["Content-Length"] = str(document.size)
    response["Cache-Control"] = "private, max-age=0"
    response["ETag"] = f'"{document.sha256}"'
    return response


def documents_download(model_admin: Any, request: HttpRequest, objects: list[Any]) -> HttpResponse | None:
    """One PDF as is; several in a ZIP archive."""
    if not objects:
        model_admin.message_user(request, gettext("Select issued documents: drafts have no PDF."), messages.WARNING)
        return None
    if len(objects) == 1:
        obj = objects[0]
        return stored_pdf_response(**({"invoice": obj} if isinstance(obj, Invoice) else {"credit_note": obj}))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for obj in objects:
            kind = {"invoice": obj} if isinstance(obj, Invoice) else {"credit_note": obj}
            archive.writestr(f"{obj.number}.pdf", stored_pdf_response(**kind).content)
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    response["Content-Disposition"] = 'attachment; filename="documents.zip"'
    return response
