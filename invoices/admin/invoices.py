"""Console pages for invoices: list with chart, draft edits, finalize, void, credit notes, PDFs."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _
from import_export.admin import ExportMixin

from billing.limits import MAX_TOTAL
from billing.models import Refund, Subscription
from billing.services.refunds import RefundError, invoice_refundable_amount, refund_request_for_invoice
from config import clock, mfa
from config.console import (
    ImportExportPermissions,
    MajorAmountField,
    ReadOnlyInline,
    StyledAdmin,
    TabularInline,
    admin_link,
    call_service,
    error_text,
    format_minor_decimal,
    format_money,
    format_period,
    major_to_money,
    pretty_json,
    run_each,
)
from config.errors import DomainError
from config.mfa import OtpField
from config.money import Money
from customers.models import NotificationLog
from customers.notifications.services import invoice_email_queue, notification_deliver_now, notification_retryable
from invoices.admin.charts import invoice_month_totals
from invoices.errors import InvoiceError
from invoices.models import (
    CreditNote,
    Invoice,
    InvoiceLine,
)
from invoices.resources import InvoiceResource
from invoices.selectors import invoice_credited
from invoices.services.credit_notes import credit_note_create, invoice_credit_room
from invoices.services.finalize import invoice_finalize
from invoices.services.lifecycle import invoice_mark_uncollectible, invoice_void
from invoices.services.pdf import credit_note_document_store, invoice_document_store
from invoices.states import CREDITABLE_STATUSES

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


class VoidForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=200,
        help_text=_("Kept with the voided invoice and shown in its history."),
        widget=forms.TextInput(attrs={"size": 60}),
    )


class WriteOffForm(forms.Form):
    otp_token = OtpField(
        help_text=_(
            "A new code from your authenticator app: writing invoices off needs a fresh two-factor "
            "verification (not asked again for a few minutes after one)."
        )
    )


class CreditNoteForm(forms.Form):
    """A credit note for part or all of an invoice, and where its amount goes."""

    amount = MajorAmountField(label=_("Amount to credit (tax included)"))
    reduce_amount_due = MajorAmountField(
        label=_("Reduce the amount due by"),
        initial=Decimal(0),
        help_text=_("Lowers what the customer still owes on this invoice."),
    )
    credit_to_balance = MajorAmountField(
        label=_("Credit the customer balance with"),
        initial=Decimal(0),
        help_text=_("Used automatically on the customer's next invoices."),
    )
    refund = MajorAmountField(
        label=_("Refund"),
        initial=Decimal(0),
        help_text=_("Paid back to the customer."),
    )
    reason = forms.ChoiceField(label=_("Reason"), choices=CreditNote.Reason.choices, initial=CreditNote.Reason.OTHER)
    memo = forms.CharField(label=_("Memo"), required=False, widget=forms.Textarea(attrs={"rows": 3}))
    # A refund share is a refund: above the threshold it needs a fresh code (and a second person).
    otp_token = OtpField()

    ALLOCATION = ("reduce_amount_due", "credit_to_balance", "refund")

    def __init__(self, *args: Any, invoice: Invoice, creditable: int, refundable: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invoice = invoice
        self.creditable = creditable
        self.refundable = refundable
        self._minor: dict[str, int] = {}
        self.fields["amount"].help_text = gettext("At most %(amount)s (what is left to credit on this invoice).") % {
            "amount": format_money(creditable, invoice.currency)
        }
        self.fields["refund"].help_text = gettext(
            "Paid back to the customer (at most %(amount)s, what was paid and not refunded yet). A refund goes "
            "back through the payment's gateway and is credited on its own: the whole amount credited, nothing "
            "else; it issues its credit note once the money is paid back."
        ) % {"amount": format_money(refundable, invoice.currency)}
        self.fields["reduce_amount_due"].help_text = gettext(
            "Lowers what the customer still owes on this invoice (at most %(amount)s)."
        ) % {"amount": format_money(invoice.amount_remaining, invoice.currency)}

    def minor(self, name: str) -> int:
        """A cleaned amount in minor units of the invoice's currency."""
        return self._minor.get(name, 0)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        # Money.from_major, as every console form: no more decimals than the invoice's currency has.
        for name in ("amount", *self.ALLOCATION):
            money = major_to_money(
                self, name, self.invoice.currency, minimum=1 if name == "amount" else 0, maximum=MAX_TOTAL
            )
            if money is not None:
                self._minor[name] = money.amount
        if self.errors:
            return cleaned
        amount = self.minor("amount")
        allocation = {name: self.minor(name) for name in self.ALLOCATION}
        if amount > self.creditable:
            self.add_error(
                "amount",
                gettext("This is more than is left to credit on the invoice: at most %(amount)s.")
                % {"amount": format_money(self.creditable, self.invoice.currency)},
            )
        if allocation["reduce_amount_due"] > self.invoice.amount_remaining:
            self.add_error(
                "reduce_amount_due",
                gettext("The invoice only has %(amount)s left to pay.")
                % {"amount": format_money(self.invoice.amount_remaining, self.invoice.currency)},
            )
        if allocation["refund"] > self.refundable:
            self.add_error(
                "refund",
                gettext("Only %(amount)s was paid and not refunded yet.")
                % {"amount": format_money(self.refundable, self.invoice.currency)},
            )
        if allocation["refund"] and (
            allocation["refund"] != amount or any(allocation[name] for name in self.ALLOCATION[:2])
        ):
            self.add_error(
                "refund",
                gettext(
                    "A refund is credited on its own: set the amount credited to the refund and the other parts to "
                    "zero, then issue any other credit as another credit note."
                ),
            )
        allocated = sum(allocation.values())
        if allocated != amount:
            raise ValidationError(
                gettext(
                    "The allocation must add up to the amount credited: %(allocated)s allocated "
                    "(amount due %(due)s + balance %(balance)s + refund %(refund)s) for %(amount)s credited."
                )
                % {
                    "allocated": format_money(allocated, self.invoice.currency),
                    "due": format_money(allocation["reduce_amount_due"], self.invoice.currency),
                    "balance": format_money(allocation["credit_to_balance"], self.invoice.currency),
                    "refund": format_money(allocation["refund"], self.invoice.currency),
                    "amount": format_money(amount, self.invoice.currency),
                },
                code="allocation",
            )
        return cleaned


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
                "status",
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


@admin.register(Invoice)
class InvoiceAdmin(ImportExportPermissions, ExportMixin, StyledAdmin):
    resource_classes = [InvoiceResource]
    list_display = (
        "display_number",
        "customer",
        "status",
        "billing_reason",
        "total_money",
        "amount_remaining_money",
        "finalized",
        "due",
    )
    list_filter = ("status", "currency", "brand", "billing_reason", CollectionMethodFilter)
    search_fields = ("number", "customer__legal_name", "customer__email", "=id")
    list_select_related = ("customer", "brand")
    date_hierarchy = "finalized_at"
    inlines = [InvoiceLineInline, CreditNoteInline]
    fieldsets = INVOICE_FIELDSETS
    actions = ["finalize", "void", "mark_uncollectible", "download_pdf", "email_to_customer"]
    change_list_template = "admin/invoices/invoice/change_list.html"
    change_form_template = "admin/invoices/invoice/change_form.html"

    subtotal_money = money_column("subtotal", _("subtotal"))
    discount_total_money = money_column("discount_total", _("discounts"))
    tax_total_money = money_column("tax_total", _("tax"))
    total_money = money_column("total", _("total"))
    starting_balance_applied_money = money_column("starting_balance_applied", _("customer credit applied"))
    amount_due_money = money_column("amount_due", _("amount due"))
    amount_paid_money = money_column("amount_paid", _("amount paid"))
    amount_remaining_money = money_column("amount_remaining", _("amount remaining"))

    # -- permissions: an issued invoice is a legal document ------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # invoices are drafted by the billing services, never typed in

    def has_change_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        if obj is not None and obj.status != Invoice.Status.DRAFT:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        if obj is not None and obj.status != Invoice.Status.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # A bulk delete could sweep up finalized invoices; drafts are deleted one by one.
        actions.pop("delete_selected", None)
        return actions

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

    @admin.display(description=_("finalized"), ordering="finalized_at")
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

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            context["invoice_chart"] = invoice_month_totals(context["cl"].queryset, now=clock.system_now())
        return response

    # -- change page: credit note button -------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/credit-note/",
                self.admin_site.admin_view(self.credit_note_view),
                name="{}_{}_credit_note".format(*info),
            ),
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

    def can_issue_credit_note(self, request: HttpRequest, invoice: Invoice) -> bool:
        return (
            invoice.status in CREDITABLE_STATUSES
            and request.user.has_perm("invoices.add_creditnote")
            and invoice_credit_room(invoice=invoice).creditable > 0
        )

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
            context["can_issue_credit_note"] = self.can_issue_credit_note(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def credit_note_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = get_object_or_404(Invoice.objects.select_related("customer", "brand"), pk=object_id)
        if not self.has_view_permission(request, invoice) or not request.user.has_perm("invoices.add_creditnote"):
            raise PermissionDenied
        change_url = reverse("admin:invoices_invoice_change", args=[invoice.pk])
        if invoice.status not in CREDITABLE_STATUSES:
            self.message_user(
                request,
                gettext("Invoice %(number)s is %(status)s: credit notes are issued for open or paid invoices.")
                % {"number": invoice, "status": invoice.get_status_display()},
                messages.ERROR,
            )
            return HttpResponseRedirect(change_url)

        # The services' rules, not copies: what is left to credit (refunds in flight held) is
        # credit_note_create's, what is left to refund the refunds service's (as on the payment's form).
        creditable = invoice_credit_room(invoice=invoice).creditable
        refundable = invoice_refundable_amount(invoice=invoice)
        form = CreditNoteForm(request.POST or None, invoice=invoice, creditable=creditable, refundable=refundable)
        if not form.is_bound:
            form.initial.update(
                {
                    "amount": Money(creditable, invoice.currency).decimal,
                    "reduce_amount_due": Money(min(invoice.amount_remaining, creditable), invoice.currency).decimal,
                }
            )
        if request.method == "POST" and form.is_valid() and form.minor("refund"):
            refunded = self._refund_from_credit_note_form(request, invoice, form)
            if refunded is not None:
                return refunded
        elif request.method == "POST" and form.is_valid():
            credit_note = self._issue_credit_note(request, invoice, form)
            if credit_note is not None:
                self.message_user(
                    request,
                    format_html(
                        "{} {}",
                        gettext("Credit note %(number)s issued for %(amount)s.")
                        % {"number": credit_note.number, "amount": format_money(credit_note.total, invoice.currency)},
                        admin_link(credit_note, gettext("Open it.")),
                    ),
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": invoice,
            "title": gettext("Issue a credit note for %(invoice)s") % {"invoice": invoice},
            "form": form,
            "invoice_total": format_money(invoice.total, invoice.currency),
            "invoice_remaining": format_money(invoice.amount_remaining, invoice.currency),
            "invoice_paid": format_money(invoice.amount_paid, invoice.currency),
            "creditable": format_money(creditable, invoice.currency),
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/invoices/invoice/credit_note_form.html", context)

    def _refund_from_credit_note_form(
        self, request: HttpRequest, invoice: Invoice, form: CreditNoteForm
    ) -> HttpResponse | None:
        """The refund share goes through the refunds service, exactly as the payment's refund form."""
        if not request.user.has_perm("billing.add_refund"):
            raise PermissionDenied
        verified_at, refused = mfa.step_up(request, form.cleaned_data["otp_token"])
        if refused is not None and not refused.ok:
            form.add_error(
                "otp_token",
                mfa.refusal_message(refused, gettext("Invalid or already used code. Wait for the next code.")),
            )
            return None
        refund = call_service(
            form,
            lambda: refund_request_for_invoice(
                invoice=invoice,
                amount=form.minor("refund"),
                reason=form.cleaned_data["reason"],
                memo=form.cleaned_data["memo"],
                requested_by=request.user,
                otp_verified_at=verified_at,
            ),
            errors=(RefundError, InvoiceError),
            atomic=False,
        )
        if refund is None:
            return None
        if refund.status == Refund.Status.REQUESTED:
            text, level = gettext("Refund requested: another staff member must approve it."), messages.SUCCESS
        elif refund.status == Refund.Status.EXECUTED:
            text = gettext("Refunded; credit note %(number)s issued.") % {"number": refund.credit_note.number}
            level = messages.SUCCESS
        else:
            text = gettext("The gateway refused the refund: %(message)s") % {"message": refund.failure_message}
            level = messages.ERROR
        self.message_user(request, text, level)
        return HttpResponseRedirect(reverse("admin:billing_refund_change", args=[refund.pk]))

    def _issue_credit_note(self, request: HttpRequest, invoice: Invoice, form: CreditNoteForm) -> CreditNote | None:
        try:
            with transaction.atomic():
                return credit_note_create(
                    invoice=invoice,
                    amount=form.minor("amount"),
                    reduce_amount_due=form.minor("reduce_amount_due"),
                    credit_to_balance=form.minor("credit_to_balance"),
                    reason=form.cleaned_data["reason"],
                    memo=form.cleaned_data["memo"],
                    acting_user=request.user,
                )
        except SERVICE_ERRORS as error:
            form.add_error(None, error_text(error))
            return None

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

    @admin.action(description=_("Finalize selected draft invoices (assigns numbers)"), permissions=["change"])
    def finalize(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        self._run_each(
            request,
            queryset,
            lambda invoice: invoice_finalize(invoice=invoice, acting_user=request.user),
            done=ngettext_lazy("%(count)d invoice finalized.", "%(count)d invoices finalized.", "count"),
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
            "form": form,
            "invoices": queryset.select_related("customer").order_by("pk"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": "void",
            "media": self.media,
        }
        return TemplateResponse(request, "admin/invoices/invoice/void_confirmation.html", context)

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
            "form": form,
            "fresh": mfa.session_is_fresh(request),
            "invoices": queryset.select_related("customer").order_by("pk"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": "mark_uncollectible",
            "media": self.media,
        }
        return TemplateResponse(request, "admin/invoices/invoice/write_off_confirmation.html", context)


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
