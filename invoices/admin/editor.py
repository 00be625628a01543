"""The invoice editor and the invoice page's actions (InvoiceAdmin mixes this in).

- New draft for a customer (`add_view`, `?customer=<pk>` pre-fills), then lines added,
  changed and removed on the draft's page with live totals (htmx posts the line form to a
  read-only preview), then **Finalize** with a confirmation stating the number it will take.
- From an issued invoice: record a payment, email it, void it, write it off (fresh two-factor
  code), issue a credit note by line (live preview and the split explained in words), PDF.

Every page is a confirmation that states the consequence; every write is a service call.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from unfold.decorators import action
from unfold.enums import ActionVariant

from billing.models import Refund
from billing.services.payments import payment_record_manual
from billing.services.refunds import RefundError, invoice_refundable_amount, refund_request_for_invoice
from config import clock, mfa
from config.admin_site import console_livemode
from config.console import admin_link, error_text, format_money, major_to_money
from config.errors import DomainError
from config.modes import scope_to_mode
from config.money import Money
from customers.models import Customer, NotificationLog
from customers.notifications.services import invoice_email_queue, notification_deliver_now, notification_retryable
from invoices.admin.forms import (
    CreditNoteLinesForm,
    DraftCreateForm,
    DraftLineForm,
    RecordPaymentForm,
    VoidForm,
    WriteOffForm,
)
from invoices.errors import InvoiceError
from invoices.models import CreditNote, Invoice, InvoiceLine
from invoices.selectors import invoice_credited
from invoices.services.credit_notes import (
    CreditLineInput,
    CreditNotePreview,
    credit_amount_for_quantity,
    credit_note_create,
    credit_note_preview,
    invoice_credit_room,
    invoice_line_creditable,
)
from invoices.services.draft_editor import (
    DraftTotals,
    draft_totals,
    invoice_draft_create,
    invoice_draft_line_add,
    invoice_draft_line_remove,
    invoice_draft_line_update,
    invoice_draft_preview,
    invoice_finalize_preview,
)
from invoices.services.finalize import invoice_finalize
from invoices.services.lifecycle import invoice_mark_uncollectible, invoice_void
from invoices.states import CREDITABLE_STATUSES, PAYABLE_STATUSES

SERVICE_ERRORS = (DomainError, InvoiceError, ValidationError)
Status = Invoice.Status
ACTION_TEMPLATE = "admin/invoices/invoice/action_page.html"


def day_text(moment: datetime | None) -> str:
    return date_format(timezone.localtime(moment), "DATE_FORMAT") if moment else "—"


@dataclass(frozen=True, slots=True)
class TaxRow:
    label: str
    taxable: str
    tax: str


def totals_context(totals: DraftTotals) -> dict[str, Any]:
    """A draft's totals as the totals panel shows them (money formatted, VAT by rate)."""
    currency = totals.currency
    return {
        "subtotal": format_money(totals.subtotal, currency),
        "discounts": format_money(totals.discount_total, currency),
        "has_discounts": bool(totals.discount_total),
        "tax_rows": [
            TaxRow(
                label=gettext("VAT %(rate)s %%%(included)s")
                % {
                    "rate": f"{group.rate.normalize():f}",
                    "included": gettext(" (included)") if group.inclusive else "",
                },
                taxable=format_money(group.taxable_amount, currency),
                tax=format_money(group.tax_amount, currency),
            )
            for group in totals.tax_breakdown
        ],
        "total": format_money(totals.total, currency),
        "balance_applied": format_money(totals.balance_applied, currency) if totals.balance_applied else "",
        "amount_due": format_money(totals.amount_due, currency),
    }


def _invoice_pk(obj: Any) -> Any:
    return obj.pk if isinstance(obj, Invoice) else obj


class InvoiceEditorMixin:
    """Views of the invoice editor; mixed into InvoiceAdmin (an unfold ModelAdmin)."""

    # The everyday actions as buttons, the rarer ones in a menu: the header fits 1366 px.
    actions_detail = [
        "finalize_draft",
        "record_payment",
        "issue_credit_note",
        {
            "title": _("More"),
            "icon": "more_horiz",
            "items": ["send_by_email", "download_invoice_pdf", "void_invoice", "write_off"],
        },
    ]

    # -- lookups and permissions ----------------------------------------------------------

    def _invoice(self, request: HttpRequest, object_id: Any) -> Invoice:
        """The invoice in the console's mode (another mode's is "not found")."""
        invoice = (
            self.get_queryset(request)  # type: ignore[attr-defined]
            .select_related("customer", "brand")
            .filter(pk=_invoice_pk(object_id))
            .first()
        )
        if invoice is None:
            raise Http404(gettext("No such invoice in this mode."))
        return invoice

    def _status(self, request: HttpRequest, obj: Any) -> str | None:
        if obj is None:
            return None
        if isinstance(obj, Invoice):
            return obj.status
        try:
            return self._invoice(request, obj).status
        except (Http404, ValueError):
            return None

    def _may_change_invoices(self, request: HttpRequest) -> bool:
        return request.user.has_perm("invoices.change_invoice")

    def has_finalize_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        status = self._status(request, obj)
        return self._may_change_invoices(request) and status in (None, Status.DRAFT)

    def has_record_payment_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        status = self._status(request, obj)
        return request.user.has_perm("billing.add_payment") and (obj is None or status in PAYABLE_STATUSES)

    def has_credit_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        status = self._status(request, obj)
        return request.user.has_perm("invoices.add_creditnote") and (obj is None or status in CREDITABLE_STATUSES)

    def has_email_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        status = self._status(request, obj)
        return self._may_change_invoices(request) and (obj is None or (status is not None and status != Status.DRAFT))

    def has_pdf_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        status = self._status(request, obj)
        return request.user.has_perm("invoices.view_invoice") and (
            obj is None or (status is not None and status != Status.DRAFT)
        )

    def has_void_invoice_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        status = self._status(request, obj)
        return self._may_change_invoices(request) and (obj is None or status in (Status.OPEN, Status.UNCOLLECTIBLE))

    def has_write_off_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        status = self._status(request, obj)
        return self._may_change_invoices(request) and (obj is None or status == Status.OPEN)

    # -- pages ----------------------------------------------------------------------------

    def _page(
        self,
        request: HttpRequest,
        *,
        title: str,
        form: forms.Form,
        submit_label: str,
        invoice: Invoice | None = None,
        facts: list[tuple[str, Any]] | None = None,
        consequences: list[str] | None = None,
        submit_variant: str = "primary",
        cancel_url: str = "",
        template: str = ACTION_TEMPLATE,
        **extra: Any,
    ) -> TemplateResponse:
        opts = self.opts  # type: ignore[attr-defined]
        if not cancel_url:
            cancel_url = (
                reverse("admin:invoices_invoice_change", args=[invoice.pk])
                if invoice is not None
                else reverse("admin:invoices_invoice_changelist")
            )
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "opts": opts,
            "original": invoice,
            "title": title,
            "form": form,
            "facts": facts or [],
            "consequences": consequences or [],
            "submit_label": submit_label,
            "submit_variant": submit_variant,
            "cancel_url": cancel_url,
            "media": self.media + form.media,  # type: ignore[attr-defined]
            **extra,
        }
        return TemplateResponse(request, template, context)

    def _back(self, invoice: Invoice) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:invoices_invoice_change", args=[invoice.pk]))

    def _service(self, request: HttpRequest, form: forms.Form | None, operation: Any) -> Any:
        """Run a service in its own transaction; a refusal becomes the form's (or a message's) error."""
        try:
            with transaction.atomic():
                return operation()
        except SERVICE_ERRORS as error:
            if form is not None:
                form.add_error(None, error_text(error))
            else:
                self.message_user(request, error_text(error), messages.ERROR)  # type: ignore[attr-defined]
            return None

    def editor_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view  # type: ignore[attr-defined]
        return [
            path("<path:object_id>/draft/lines/add/", wrap(self.line_add_view), name="invoices_invoice_line_add"),
            path(
                "<path:object_id>/draft/lines/<int:line_id>/",
                wrap(self.line_edit_view),
                name="invoices_invoice_line_edit",
            ),
            path(
                "<path:object_id>/draft/lines/<int:line_id>/remove/",
                wrap(self.line_remove_view),
                name="invoices_invoice_line_remove",
            ),
            path("<path:object_id>/draft/preview/", wrap(self.draft_preview_view), name="invoices_invoice_preview"),
            path(
                "<path:object_id>/credit-note/preview/",
                wrap(self.credit_preview_view),
                name="invoices_invoice_credit_preview",
            ),
            path("<path:object_id>/credit-note/", wrap(self.credit_note_view), name="invoices_invoice_credit_note"),
        ]

    # -- new draft --------------------------------------------------------------------------

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        if not self.has_add_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        livemode = console_livemode(request)
        form = DraftCreateForm(
            request.POST or None,
            admin_site=self.admin_site,  # type: ignore[attr-defined]
            livemode=livemode,
        )
        if not form.is_bound:
            customer_id = request.GET.get("customer", "")
            if customer_id.isdigit() and (
                scope_to_mode(Customer.objects.filter(pk=customer_id), livemode=livemode).exists()
            ):
                form.initial["customer"] = int(customer_id)
                form.fields["customer"].widget.choices = form.fields["customer"].choices
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            invoice = self._service(
                request,
                form,
                lambda: invoice_draft_create(
                    customer=data["customer"],
                    collection_method=data["collection_method"],
                    days_until_due=data["days_until_due"],
                    memo=data["memo"],
                    acting_user=request.user,
                ),
            )
            if invoice is not None:
                self.message_user(  # type: ignore[attr-defined]
                    request,
                    gettext("Draft created for %(customer)s: add its lines, then finalize it.")
                    % {"customer": invoice.customer},
                    messages.SUCCESS,
                )
                return self._back(invoice)
        return self._page(
            request,
            title=gettext("New draft invoice"),
            form=form,
            submit_label=gettext("Create draft"),
            consequences=[
                gettext(
                    "A draft has no number and is not sent: add lines, check the totals, then finalize it. "
                    "It is in the customer's currency and language, from the customer's brand."
                )
            ],
        )

    # -- the draft's lines ------------------------------------------------------------------

    def _draft(self, request: HttpRequest, object_id: str) -> Invoice:
        invoice = self._invoice(request, object_id)
        if not self._may_change_invoices(request):
            raise PermissionDenied
        return invoice

    def draft_editor_context(self, request: HttpRequest, invoice: Invoice) -> dict[str, Any]:
        lines = list(invoice.lines.select_related("price").order_by("position", "pk"))
        may_edit = self._may_change_invoices(request)
        form = DraftLineForm(invoice=invoice) if may_edit else None
        return {
            "draft_editor": True,
            "draft_lines": [
                {
                    "line": line,
                    "quantity": f"{line.quantity.normalize():f}",
                    "unit": format_money(int(line.unit_amount), invoice.currency)
                    if line.unit_amount is not None and line.unit_amount == int(line.unit_amount)
                    else "—",
                    "amount": format_money(line.amount, invoice.currency),
                    "tax": f"{line.tax_rate.normalize():f} %" + (gettext(" incl.") if line.tax_inclusive else ""),
                    "edit_url": reverse("admin:invoices_invoice_line_edit", args=[invoice.pk, line.pk]),
                    "remove_url": reverse("admin:invoices_invoice_line_remove", args=[invoice.pk, line.pk]),
                }
                for line in lines
            ],
            "line_form": form,
            "line_add_url": reverse("admin:invoices_invoice_line_add", args=[invoice.pk]),
            "preview_url": reverse("admin:invoices_invoice_preview", args=[invoice.pk]),
            "totals": totals_context(draft_totals(invoice=invoice, lines=lines)),
            "finalize_url": reverse("admin:invoices_invoice_finalize_draft", args=[invoice.pk])
            if may_edit and lines
            else "",
            "may_edit_draft": may_edit,
        }

    def _line_service_call(
        self, request: HttpRequest, form: DraftLineForm, invoice: Invoice, line: InvoiceLine | None
    ) -> Any:
        arguments = form.service_arguments()
        if line is None:
            return self._service(
                request,
                form,
                lambda: invoice_draft_line_add(invoice=invoice, acting_user=request.user, **arguments),
            )
        return self._service(
            request,
            form,
            lambda: invoice_draft_line_update(line=line, acting_user=request.user, **arguments),
        )

    def line_add_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = self._draft(request, object_id)
        if request.method != "POST":
            return self._back(invoice)
        form = DraftLineForm(request.POST, invoice=invoice)
        if form.is_valid() and self._line_service_call(request, form, invoice, None) is not None:
            self.message_user(request, gettext("Line added."), messages.SUCCESS)  # type: ignore[attr-defined]
            return self._back(invoice)
        return self._line_page(request, invoice, form, None)

    def _line_page(
        self, request: HttpRequest, invoice: Invoice, form: DraftLineForm, line: InvoiceLine | None
    ) -> TemplateResponse:
        preview_url = reverse("admin:invoices_invoice_preview", args=[invoice.pk])
        if line is not None:
            preview_url += f"?replacing={line.pk}"
        lines = list(invoice.lines.order_by("position", "pk"))
        return self._page(
            request,
            invoice=invoice,
            title=gettext("Change a line of %(invoice)s") % {"invoice": invoice}
            if line is not None
            else gettext("Add a line to %(invoice)s") % {"invoice": invoice},
            form=form,
            submit_label=gettext("Save line") if line is not None else gettext("Add line"),
            preview_url=preview_url,
            totals=totals_context(draft_totals(invoice=invoice, lines=lines)),
            form_action=reverse("admin:invoices_invoice_line_edit", args=[invoice.pk, line.pk])
            if line is not None
            else reverse("admin:invoices_invoice_line_add", args=[invoice.pk]),
        )

    def line_edit_view(self, request: HttpRequest, object_id: str, line_id: int) -> HttpResponse:
        invoice = self._draft(request, object_id)
        line = invoice.lines.filter(pk=line_id).first()
        if line is None:
            raise Http404(gettext("No such line on this invoice."))
        if invoice.status != Status.DRAFT:
            self.message_user(  # type: ignore[attr-defined]
                request, gettext("This invoice is finalized: its lines cannot change."), messages.ERROR
            )
            return self._back(invoice)
        form = DraftLineForm(request.POST or None, invoice=invoice, initial=DraftLineForm.initial_for(line))
        if request.method == "POST" and form.is_valid():
            if self._line_service_call(request, form, invoice, line) is not None:
                self.message_user(request, gettext("Line saved."), messages.SUCCESS)  # type: ignore[attr-defined]
                return self._back(invoice)
        return self._line_page(request, invoice, form, line)

    def line_remove_view(self, request: HttpRequest, object_id: str, line_id: int) -> HttpResponse:
        invoice = self._draft(request, object_id)
        line = invoice.lines.filter(pk=line_id).first()
        if request.method == "POST" and line is not None:
            if self._service(request, None, lambda: invoice_draft_line_remove(line=line, acting_user=request.user)):
                self.message_user(  # type: ignore[attr-defined]
                    request, gettext("Line removed: %(line)s.") % {"line": line.description}, messages.SUCCESS
                )
        return self._back(invoice)

    def draft_preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The totals panel with the line being typed (htmx; read-only)."""
        invoice = self._draft(request, object_id)
        replacing = None
        replacing_id = request.GET.get("replacing", "")
        if replacing_id.isdigit():
            replacing = invoice.lines.filter(pk=int(replacing_id)).first()
        form = DraftLineForm(request.POST or None, invoice=invoice)
        lines = list(invoice.lines.order_by("position", "pk"))
        totals = draft_totals(invoice=invoice, lines=lines)
        problem = ""
        if form.is_bound and form.is_valid():
            try:
                totals = invoice_draft_preview(invoice=invoice, replacing=replacing, **form.service_arguments())
            except SERVICE_ERRORS as error:
                problem = error_text(error)
        elif form.is_bound:
            problem = " ".join(str(error) for errors in form.errors.values() for error in errors)
        return TemplateResponse(
            request,
            "admin/invoices/invoice/draft_totals.html",
            {"totals": totals_context(totals), "with_line": not problem and form.is_bound, "problem": problem},
        )

    # -- finalize ---------------------------------------------------------------------------

    @action(
        description=_("Finalize…"),
        url_path="finalize",
        permissions=["finalize"],
        icon="verified",
        variant=ActionVariant.PRIMARY,
    )
    def finalize_draft(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = self._invoice(request, object_id)
        if invoice.status != Status.DRAFT:
            self.message_user(  # type: ignore[attr-defined]
                request,
                gettext("Invoice %(number)s is already finalized.") % {"number": invoice},
                messages.WARNING,
            )
            return self._back(invoice)
        if not invoice.lines.exists():
            self.message_user(  # type: ignore[attr-defined]
                request, gettext("Add at least one line before finalizing the draft."), messages.ERROR
            )
            return self._back(invoice)
        form = forms.Form(request.POST or None)
        if request.method == "POST" and form.is_valid():
            issued = self._service(request, form, lambda: invoice_finalize(invoice=invoice, acting_user=request.user))
            if issued is not None:
                self.message_user(  # type: ignore[attr-defined]
                    request,
                    gettext("Invoice %(number)s issued for %(total)s.")
                    % {"number": issued.number, "total": format_money(issued.total, issued.currency)},
                    messages.SUCCESS,
                )
                return self._back(issued)
        preview = invoice_finalize_preview(invoice=invoice)
        currency = invoice.currency
        consequences = [
            gettext(
                "Finalizing issues the invoice: it takes the number %(number)s (the next of the brand's series; "
                "if another invoice is finalized first, this one takes the following number), is frozen for good "
                "(corrections are credit notes), and its PDF is rendered."
            )
            % {"number": preview.number},
        ]
        if invoice.collection_method == "charge_automatically" and preview.amount_due:
            consequences.append(
                gettext("%(amount)s is then charged to the customer's default payment method.")
                % {"amount": format_money(preview.amount_due, currency)}
            )
        elif preview.amount_due:
            consequences.append(
                gettext("The customer owes %(amount)s by %(due)s.")
                % {"amount": format_money(preview.amount_due, currency), "due": day_text(preview.due_at)}
            )
        else:
            consequences.append(gettext("Nothing is left to pay: the invoice is paid at once."))
        facts = [
            (gettext("Number it will take"), preview.number),
            (gettext("Customer"), invoice.customer),
            (gettext("Lines"), preview.line_count),
            (gettext("Total"), format_money(preview.total, currency)),
        ]
        if preview.balance_applied:
            facts.append((gettext("Paid from the customer balance"), format_money(preview.balance_applied, currency)))
        facts += [
            (gettext("Amount due"), format_money(preview.amount_due, currency)),
            (gettext("Due date"), day_text(preview.due_at)),
        ]
        return self._page(
            request,
            invoice=invoice,
            title=gettext("Finalize %(invoice)s") % {"invoice": invoice},
            form=form,
            facts=facts,
            consequences=consequences,
            submit_label=gettext("Finalize as %(number)s") % {"number": preview.number},
        )

    # -- record a payment -------------------------------------------------------------------

    @action(
        description=_("Record payment…"),
        url_path="record-payment",
        permissions=["record_payment"],
        icon="payments",
    )
    def record_payment(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = self._invoice(request, object_id)
        now = clock.now(customer=invoice.customer)
        today = timezone.localdate(now)
        form = RecordPaymentForm(request.POST or None, invoice=invoice, today=today)
        if not form.is_bound:
            form.initial.update(
                {
                    "amount": Money(invoice.amount_remaining, invoice.currency).decimal,
                    "received_on": today,
                    "token": uuid.uuid4().hex,
                }
            )
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            received = data["received_on"]
            at = now if received == today else timezone.make_aware(datetime.combine(received, time(12)))
            payment = self._service(
                request,
                form,
                lambda: payment_record_manual(
                    invoice=invoice,
                    amount=data["amount_minor"],
                    method=data["method"],
                    reference=data["reference"],
                    at=at,
                    acting_user=request.user,
                    idempotency_key=f"console:{invoice.pk}:{data['token']}",
                ),
            )
            if payment is not None:
                invoice.refresh_from_db()
                self.message_user(  # type: ignore[attr-defined]
                    request,
                    gettext("Payment of %(amount)s recorded; %(remaining)s remains due.")
                    % {
                        "amount": format_money(payment.amount, invoice.currency),
                        "remaining": format_money(invoice.amount_remaining, invoice.currency),
                    },
                    messages.SUCCESS,
                )
                return self._back(invoice)
        currency = invoice.currency
        return self._page(
            request,
            invoice=invoice,
            title=gettext("Record a payment for %(invoice)s") % {"invoice": invoice},
            form=form,
            facts=[
                (gettext("Customer"), invoice.customer),
                (gettext("Total"), format_money(invoice.total, currency)),
                (gettext("Paid"), format_money(invoice.amount_paid, currency)),
                (gettext("Still due"), format_money(invoice.amount_remaining, currency)),
            ],
            consequences=[
                gettext(
                    "Records money received outside a gateway (transfer, cheque, cash). It lowers what is due; "
                    "once nothing remains the invoice is paid. Nothing is charged."
                )
            ],
            submit_label=gettext("Record payment"),
        )

    # -- email --------------------------------------------------------------------------------

    @action(description=_("Send by email…"), url_path="send-email", permissions=["email"], icon="mail")
    def send_by_email(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = self._invoice(request, object_id)
        form = forms.Form(request.POST or None)
        recipient = invoice.customer.invoice_email or invoice.customer.email
        if request.method == "POST" and form.is_valid():
            log = invoice_email_queue(invoice=invoice, acting_user=request.user)
            log = notification_deliver_now(log_id=log.pk)
            if log.status == NotificationLog.Status.SENT:
                text, level = gettext("Invoice %(number)s emailed to %(to)s."), messages.SUCCESS
            elif log.status in (NotificationLog.Status.PENDING, NotificationLog.Status.SENDING) or (
                notification_retryable(log)
            ):
                text, level = gettext("Invoice %(number)s not sent yet: queued for another try."), messages.WARNING
            else:
                text, level = gettext("Invoice %(number)s could not be emailed."), messages.ERROR
            self.message_user(request, text % {"number": invoice, "to": recipient}, level)  # type: ignore[attr-defined]
            return self._back(invoice)
        return self._page(
            request,
            invoice=invoice,
            title=gettext("Email %(invoice)s") % {"invoice": invoice},
            form=form,
            facts=[
                (gettext("To"), recipient),
                (gettext("Customer"), invoice.customer),
                (gettext("Amount due"), format_money(invoice.amount_remaining, invoice.currency)),
            ],
            consequences=[
                gettext(
                    "Sends the invoice in the customer's language with the brand's design and the PDF (Factur-X) "
                    "attached. The email is logged on the customer's timeline."
                )
            ],
            submit_label=gettext("Send email"),
        )

    @action(description=_("PDF"), url_path="download-pdf", permissions=["pdf"], icon="download")
    def download_invoice_pdf(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = self._invoice(request, object_id)
        return HttpResponseRedirect(reverse("admin:invoices_invoice_pdf", args=[invoice.pk]))

    # -- void and write-off -------------------------------------------------------------------

    @action(
        description=_("Void…"),
        url_path="void",
        permissions=["void_invoice"],
        icon="block",
        variant=ActionVariant.DANGER,
    )
    def void_invoice(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = self._invoice(request, object_id)
        form = VoidForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            voided = self._service(
                request,
                form,
                lambda: invoice_void(
                    invoice=invoice,
                    at=clock.now(customer=invoice.customer),
                    acting_user=request.user,
                    reason=form.cleaned_data["reason"],
                ),
            )
            if voided is not None:
                self.message_user(  # type: ignore[attr-defined]
                    request, gettext("Invoice %(number)s voided.") % {"number": invoice}, messages.SUCCESS
                )
                return self._back(invoice)
        consequences = [
            gettext(
                "A voided invoice keeps its number and stays in the books with nothing due; it cannot be reopened. "
                "Pending items it consumed are not billed again."
            )
        ]
        if invoice.starting_balance_applied > 0:
            consequences.append(
                gettext("The %(amount)s of customer credit it used goes back to the customer balance.")
                % {"amount": format_money(invoice.starting_balance_applied, invoice.currency)}
            )
        return self._page(
            request,
            invoice=invoice,
            title=gettext("Void %(invoice)s") % {"invoice": invoice},
            form=form,
            facts=[
                (gettext("Customer"), invoice.customer),
                (gettext("Total"), format_money(invoice.total, invoice.currency)),
                (gettext("Still due"), format_money(invoice.amount_remaining, invoice.currency)),
            ],
            consequences=consequences,
            submit_label=gettext("Void invoice"),
            submit_variant="danger",
        )

    @action(
        description=_("Mark uncollectible…"),
        url_path="write-off",
        permissions=["write_off"],
        icon="money_off",
        variant=ActionVariant.DANGER,
    )
    def write_off(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = self._invoice(request, object_id)
        form = WriteOffForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            verified_at, refused = mfa.step_up(request, form.cleaned_data["otp_token"])
            if refused is not None and not refused.ok:
                form.add_error("otp_token", mfa.refusal_message(refused))
            elif not mfa.is_fresh(verified_at):
                form.add_error(
                    "otp_token",
                    gettext("Enter a new code from your authenticator app: a write-off needs a fresh two-factor code."),
                )
            else:
                done = self._service(
                    request,
                    form,
                    lambda: invoice_mark_uncollectible(
                        invoice=invoice,
                        at=clock.now(customer=invoice.customer),
                        acting_user=request.user,
                        otp_verified_at=verified_at,
                    ),
                )
                if done is not None:
                    self.message_user(  # type: ignore[attr-defined]
                        request,
                        gettext("Invoice %(number)s marked uncollectible.") % {"number": invoice},
                        messages.SUCCESS,
                    )
                    return self._back(invoice)
        return self._page(
            request,
            invoice=invoice,
            title=gettext("Write off %(invoice)s") % {"invoice": invoice},
            form=form,
            facts=[
                (gettext("Customer"), invoice.customer),
                (gettext("Written off"), format_money(invoice.amount_remaining, invoice.currency)),
            ],
            consequences=[
                gettext(
                    "Marks the invoice uncollectible: %(amount)s is written off as a loss and collection and dunning "
                    "stop. A later payment can still be recorded. This needs a fresh two-factor code."
                )
                % {"amount": format_money(invoice.amount_remaining, invoice.currency)},
            ],
            submit_label=gettext("Write off"),
            submit_variant="danger",
            fresh=mfa.session_is_fresh(request),
        )

    # -- credit notes -------------------------------------------------------------------------

    @action(description=_("Credit note…"), url_path="issue-credit-note", permissions=["credit"], icon="undo")
    def issue_credit_note(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = self._invoice(request, object_id)
        return HttpResponseRedirect(reverse("admin:invoices_invoice_credit_note", args=[invoice.pk]))

    def _credit_form(self, request: HttpRequest, invoice: Invoice) -> CreditNoteLinesForm:
        lines = list(invoice.lines.order_by("position", "pk"))
        return CreditNoteLinesForm(
            request.POST or None,
            invoice=invoice,
            lines=lines,
            creditable=invoice_credit_room(invoice=invoice).creditable,
            refundable=invoice_refundable_amount(invoice=invoice),
        )

    def _credit_amount(self, form: CreditNoteLinesForm) -> int | None:
        """The typed amount to credit (tax included), or None when lines are credited instead."""
        if not (form.cleaned_data.get("amount") or "").strip():
            return None
        money = major_to_money(form, "amount", form.invoice.currency, minimum=1)
        return money.amount if money is not None else None

    def _credit_inputs(self, form: CreditNoteLinesForm) -> list[CreditLineInput]:
        """Invoice lines and net amounts to credit from a valid form (errors added to the form)."""
        wanted = []
        credited = dict(invoice_credited(invoice_id=form.invoice.pk).by_line)
        for line in form.lines:
            money_name = f"amount_{line.pk}"
            quantity = form.quantity(line)
            amount = None
            if (form.cleaned_data.get(money_name) or "").strip():
                money = major_to_money(form, money_name, form.invoice.currency, minimum=1)
                amount = money.amount if money is not None else None
                if amount is None:
                    continue
            elif quantity is not None:
                try:
                    amount = credit_amount_for_quantity(line=line, quantity=quantity)
                except SERVICE_ERRORS as error:
                    form.add_error(f"qty_{line.pk}", error_text(error))
                    continue
            if amount is None:
                continue
            left = invoice_line_creditable(line=line, credited=credited.get(line.pk, 0))
            if amount > left:
                form.add_error(
                    money_name,
                    gettext("At most %(amount)s is left to credit on this line.")
                    % {"amount": format_money(left, form.invoice.currency)},
                )
                continue
            wanted.append(
                CreditLineInput(
                    invoice_line_id=line.pk,
                    amount=amount,
                    quantity=quantity if quantity is not None else Decimal(1),
                )
            )
        return wanted

    def _typed(self, form: CreditNoteLinesForm, line: InvoiceLine) -> bool:
        return any((form.cleaned_data.get(f"{kind}_{line.pk}") or "").strip() for kind in ("qty", "amount"))

    def _split(self, invoice: Invoice, total: int, destination: str) -> dict[str, int]:
        """Where a credit of `total` goes: the credit-notes service's default rule for "auto"."""
        if destination == "refund":
            return {"due": 0, "balance": 0, "refund": total}
        if destination == "balance":
            return {"due": 0, "balance": total, "refund": 0}
        due = min(total, invoice.amount_remaining)
        return {"due": due, "balance": total - due, "refund": 0}

    def _split_sentences(self, invoice: Invoice, split: dict[str, int]) -> list[str]:
        currency, customer = invoice.currency, invoice.customer
        sentences = []
        if split["due"]:
            sentences.append(
                gettext(
                    "%(amount)s reduces what %(customer)s still owes on %(invoice)s (from %(before)s to %(after)s)."
                )
                % {
                    "amount": format_money(split["due"], currency),
                    "customer": customer,
                    "invoice": invoice,
                    "before": format_money(invoice.amount_remaining, currency),
                    "after": format_money(invoice.amount_remaining - split["due"], currency),
                }
            )
        if split["balance"]:
            sentences.append(
                gettext(
                    "%(amount)s is credited to %(customer)s's balance and used automatically on their next invoices."
                )
                % {"amount": format_money(split["balance"], currency), "customer": customer}
            )
        if split["refund"]:
            sentences.append(
                gettext(
                    "%(amount)s is paid back to %(customer)s through the payment's gateway; the credit note (by "
                    "amount, over the invoice's VAT rates) is issued once the money is back. Above the approval "
                    "threshold another staff member must approve the refund."
                )
                % {"amount": format_money(split["refund"], currency), "customer": customer}
            )
        return sentences

    def _credit_preview(self, form: CreditNoteLinesForm) -> tuple[CreditNotePreview | None, list[CreditLineInput], str]:
        """The credit note the valid form describes, its inputs, or why it cannot be issued."""
        invoice = form.invoice
        wanted: list[CreditLineInput] = []
        if (form.cleaned_data.get("amount") or "").strip():
            amount = self._credit_amount(form)
            if any(self._typed(form, line) for line in form.lines):
                form.add_error("amount", gettext("Credit either lines or an amount, not both."))
        else:
            amount = None
            wanted = self._credit_inputs(form)
            if not wanted and not form.errors:
                return None, wanted, gettext("Enter a quantity or an amount on at least one line.")
        if form.errors:
            return None, wanted, " ".join(str(error) for errors in form.errors.values() for error in errors)
        creditable = invoice_credit_room(invoice=invoice).creditable
        too_much = gettext("This is more than is left to credit on the invoice: at most %(amount)s.") % {
            "amount": format_money(creditable, invoice.currency)
        }
        if amount is not None and amount > creditable:
            return None, wanted, too_much
        try:
            if amount is not None:
                preview = credit_note_preview(invoice=invoice, amount=amount)
            else:
                preview = credit_note_preview(invoice=invoice, lines=wanted)
        except SERVICE_ERRORS as error:
            return None, wanted, error_text(error)
        if preview.total > creditable:
            return None, wanted, too_much
        return preview, wanted, ""

    def _credit_preview_context(self, form: CreditNoteLinesForm) -> dict[str, Any]:
        invoice = form.invoice
        if not form.is_bound or not form.is_valid():
            problem = "" if not form.is_bound else " ".join(str(e) for errors in form.errors.values() for e in errors)
            return {"credit_problem": problem}
        preview, _wanted, problem = self._credit_preview(form)
        if preview is None:
            return {"credit_problem": problem}
        destination = form.cleaned_data["destination"]
        split = self._split(invoice, preview.total, destination)
        problems = []
        if split["refund"] > invoice_refundable_amount(invoice=invoice):
            problems.append(
                gettext("Only %(amount)s was paid and not refunded yet.")
                % {"amount": format_money(invoice_refundable_amount(invoice=invoice), invoice.currency)}
            )
        currency = invoice.currency
        return {
            "credit_lines": [
                {
                    "description": line.description,
                    "amount": format_money(line.amount, currency),
                    "tax": format_money(line.tax_amount, currency),
                    "rate": f"{line.tax_rate.normalize():f} %",
                }
                for line in preview.lines
            ],
            "credit_subtotal": format_money(preview.subtotal, currency),
            "credit_tax": format_money(preview.tax_total, currency),
            "credit_total": format_money(preview.total, currency),
            "credit_sentences": self._split_sentences(invoice, split),
            "credit_problem": " ".join(problems),
        }

    def credit_preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = self._invoice(request, object_id)
        if not self.has_credit_permission(request, invoice):
            raise PermissionDenied
        form = self._credit_form(request, invoice)
        return TemplateResponse(
            request, "admin/invoices/invoice/credit_preview.html", self._credit_preview_context(form)
        )

    def credit_note_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = self._invoice(request, object_id)
        if not request.user.has_perm("invoices.add_creditnote"):
            raise PermissionDenied
        if invoice.status not in CREDITABLE_STATUSES:
            self.message_user(  # type: ignore[attr-defined]
                request,
                gettext("Invoice %(number)s is %(status)s: credit notes are issued for open or paid invoices.")
                % {"number": invoice, "status": invoice.get_status_display()},
                messages.ERROR,
            )
            return self._back(invoice)
        form = self._credit_form(request, invoice)
        if request.method == "POST" and form.is_valid():
            preview, wanted, problem = self._credit_preview(form)
            if preview is None:
                if problem and not form.errors:
                    form.add_error(None, problem)
            else:
                done = self._credit_issue(request, invoice, form, preview, wanted)
                if done is not None:
                    return done
        room = invoice_credit_room(invoice=invoice)
        currency = invoice.currency
        lines = []
        credited = dict(invoice_credited(invoice_id=invoice.pk).by_line)
        for line, quantity_field, amount_field in form.line_rows():
            lines.append(
                {
                    "line": line,
                    "quantity": f"{line.quantity.normalize():f}",
                    "amount": format_money(line.amount, currency),
                    "tax": f"{line.tax_rate.normalize():f} %",
                    "left": format_money(
                        invoice_line_creditable(line=line, credited=credited.get(line.pk, 0)), currency
                    ),
                    "quantity_field": quantity_field,
                    "amount_field": amount_field,
                }
            )
        return self._page(
            request,
            invoice=invoice,
            title=gettext("Credit note for %(invoice)s") % {"invoice": invoice},
            form=form,
            template="admin/invoices/invoice/credit_note_form.html",
            facts=[
                (gettext("Customer"), invoice.customer),
                (gettext("Invoice total"), format_money(invoice.total, currency)),
                (gettext("Paid"), format_money(invoice.amount_paid, currency)),
                (gettext("Still due"), format_money(invoice.amount_remaining, currency)),
                (gettext("Left to credit"), format_money(room.creditable, currency)),
            ],
            consequences=[
                gettext(
                    "Enter a quantity to credit (or a net amount) on the lines to correct; the VAT is computed with "
                    "each line's rate. A credit note is numbered and frozen like an invoice."
                )
            ],
            submit_label=gettext("Issue credit note"),
            credit_lines_rows=lines,
            preview_url=reverse("admin:invoices_invoice_credit_preview", args=[invoice.pk]),
            **self._credit_preview_context(form),
        )

    def _credit_issue(
        self,
        request: HttpRequest,
        invoice: Invoice,
        form: CreditNoteLinesForm,
        preview: CreditNotePreview,
        wanted: list[CreditLineInput],
    ) -> HttpResponse | None:
        destination = form.cleaned_data["destination"]
        split = self._split(invoice, preview.total, destination)
        if destination == "refund":
            return self._credit_refund(request, invoice, form, preview.total)
        credit_note: CreditNote | None = self._service(
            request,
            form,
            lambda: credit_note_create(
                invoice=invoice,
                lines=wanted or None,
                amount=None if wanted else preview.total,
                reduce_amount_due=split["due"],
                credit_to_balance=split["balance"],
                reason=form.cleaned_data["reason"],
                memo=form.cleaned_data["memo"],
                acting_user=request.user,
            ),
        )
        if credit_note is None:
            return None
        self.message_user(  # type: ignore[attr-defined]
            request,
            format_html(
                "{} {}",
                gettext("Credit note %(number)s issued for %(amount)s.")
                % {"number": credit_note.number, "amount": format_money(credit_note.total, invoice.currency)},
                admin_link(credit_note, gettext("Open it.")),
            ),
            messages.SUCCESS,
        )
        return self._back(invoice)

    def _credit_refund(
        self, request: HttpRequest, invoice: Invoice, form: CreditNoteLinesForm, amount: int
    ) -> HttpResponse | None:
        """A refund goes through the refunds service (gateway, four-eyes, fresh code), as from the payment."""
        if not request.user.has_perm("billing.add_refund"):
            raise PermissionDenied
        verified_at, refused = mfa.step_up(request, form.cleaned_data["otp_token"])
        if refused is not None and not refused.ok:
            form.add_error(
                "otp_token",
                mfa.refusal_message(refused, gettext("Invalid or already used code. Wait for the next code.")),
            )
            return None
        try:
            refund = refund_request_for_invoice(
                invoice=invoice,
                amount=amount,
                reason=form.cleaned_data["reason"],
                memo=form.cleaned_data["memo"],
                requested_by=request.user,
                otp_verified_at=verified_at,
            )
        except (RefundError, InvoiceError) as error:
            form.add_error(None, error_text(error))
            return None
        if refund.status == Refund.Status.REQUESTED:
            text, level = gettext("Refund requested: another staff member must approve it."), messages.SUCCESS
        elif refund.status == Refund.Status.EXECUTED:
            text = gettext("Refunded; credit note %(number)s issued.") % {"number": refund.credit_note.number}
            level = messages.SUCCESS
        else:
            text = gettext("The gateway refused the refund: %(message)s") % {"message": refund.failure_text()}
            level = messages.ERROR
        self.message_user(request, text, level)  # type: ignore[attr-defined]
        return HttpResponseRedirect(reverse("admin:billing_refund_change", args=[refund.pk]))
