"""Console screens for bank reconciliation: statements (import through django-import-export),
their lines, the unmatched lines and the manual match / ignore forms.

Thin: the import runs the import-export resource (billing/bank_import.py), every match
goes through billing/services/reconciliation.py. Finance (add/change on the bank models)
imports and matches; read-only staff see everything and change nothing.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportMixin
from unfold.contrib.filters.admin import RangeDateFilter, RangeDateTimeFilter, RelatedDropdownFilter
from unfold.contrib.import_export.forms import ImportForm as ConsoleImportForm

from billing.admin.payments import _linked
from billing.bank_import import BankStatementCSV, BankStatementLineResource, Camt053
from billing.bank_statements import StatementFormatError
from billing.models import BankStatement, BankStatementLine
from billing.services.payments import PaymentsError
from billing.services.reconciliation import (
    ReconciliationError,
    bank_line_credit_customer,
    bank_line_ignore,
    bank_line_match,
    bank_line_match_invoice,
    bank_line_reopen,
    bank_statement_reconcile,
)
from config.console import (
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    StyledAdmin,
    autocomplete,
    call_service,
    format_money,
    render_tool_form,
    status_badge,
    truncated,
)
from customers.models import Customer
from invoices.errors import InvoiceError
from invoices.models import Invoice
from invoices.states import PAYABLE_STATUSES

Status = BankStatementLine.Status
MATCHED_STATUSES = (Status.MATCHED, Status.PARTIALLY_MATCHED, Status.MANUALLY_MATCHED)
LINE_VARIANTS = {
    Status.MATCHED: "success",
    Status.MANUALLY_MATCHED: "success",
    Status.PARTIALLY_MATCHED: "info",
    Status.UNMATCHED: "warning",
}


def suggested_invoices(line: BankStatementLine, *, limit: int = 10) -> list[Invoice]:
    """Open invoices this line may pay: the line's customer's, or else those due exactly its amount."""
    invoices = Invoice.objects.filter(
        status__in=PAYABLE_STATUSES, amount_remaining__gt=0, currency=line.currency
    ).select_related("customer")
    if line.customer_id:
        invoices = invoices.filter(customer_id=line.customer_id)
    else:
        invoices = invoices.filter(amount_remaining=line.amount)
    return list(invoices.order_by("due_at", "pk")[:limit])


def match_url(line: BankStatementLine, invoice: Invoice | None = None) -> str:
    url = reverse("admin:billing_bankstatementline_match", args=[line.pk])
    return f"{url}?invoice_number={invoice.number}" if invoice is not None else url


def statement_lines_url(line: BankStatementLine) -> str:
    """The lines of `line`'s statement: where a match or an ignore shows its result among the rest."""
    return f"{reverse('admin:billing_bankstatementline_changelist')}?statement__id__exact={line.statement_id}"


def preview_rows(result: Any) -> list[dict[str, Any]]:
    """The import preview, one row per line of the file: formatted money, what matching would do,
    the fingerprint cut short (its whole value in the tooltip). Read from the dry run's lines."""
    labels = {"new": gettext("New"), "skip": gettext("Already imported"), "update": gettext("Update")}
    rows = []
    for row in result.valid_rows():
        line = row.instance
        if line is None:
            continue
        status = Status(line.status) if line.status in Status.values else None
        rows.append(
            {
                "import_type": row.import_type,
                "import_label": labels.get(row.import_type, row.import_type),
                "import_variant": "success" if row.import_type == "new" else "warning",
                "sequence": line.sequence,
                "booking_date": date_format(line.booking_date, "SHORT_DATE_FORMAT") if line.booking_date else "—",
                "amount": format_money(line.amount, line.currency),
                "debtor": line.debtor_name or "—",
                "remittance": line.remittance_info,
                "status": status.label if status else line.status,
                "status_variant": LINE_VARIANTS.get(status, "") if status else "",
                "reason": line.status_reason,
                "fingerprint": truncated(line.entry_reference or line.fingerprint, 14),
            }
        )
    return rows


def can_match(request: HttpRequest) -> bool:
    return request.user.has_perm("billing.change_bankstatementline")


def matched_bar(matched: int, unmatched: int, ignored: int) -> str:
    """A small server-rendered bar: matched (green), unmatched (orange), ignored (grey) amounts."""
    total = matched + unmatched + ignored
    if not total:
        return "—"
    width, x, parts = 120, 0.0, []
    for value, colour, label in (
        (matched, "#3a7d44", gettext("matched")),
        (unmatched, "#d9822b", gettext("unmatched")),
        (ignored, "#a0a0a0", gettext("ignored")),
    ):
        if value:
            size = width * value / total
            parts.append((f"{x:.1f}", f"{size:.1f}", colour, f"{label}: {round(100 * value / total)} %"))
            x += size
    rects = format_html_join(
        "",
        '<rect x="{}" y="0" width="{}" height="10" fill="{}"><title>{}</title></rect>',
        parts,
    )
    return format_html(
        '<svg class="tarif-bank-bar" width="{}" height="10" role="img" aria-label="{}">{}</svg>',
        width,
        gettext("Share of the amount matched"),
        rects,
    )


class BankStatementLineInline(ReadOnlyInline):
    model = BankStatementLine
    fields = ("sequence", "booking_date", "amount_label", "debtor_name", "remittance_info", "status", "status_reason")
    readonly_fields = fields
    verbose_name_plural = _("lines")
    ordering = ("sequence",)

    @admin.display(description=_("amount"))
    def amount_label(self, line: BankStatementLine) -> str:
        return format_money(line.amount, line.currency)


@admin.register(BankStatement)
class BankStatementAdmin(ReadOnlyAdminMixin, ImportMixin, StyledAdmin):
    import_form_class = ConsoleImportForm  # unfold's (ImportMixin would otherwise win the MRO)
    resource_classes = [BankStatementLineResource]
    import_formats = [BankStatementCSV, Camt053]
    skip_admin_log = True  # the import records a domain event; a LogEntry per line would be noise
    change_list_template = "admin/billing/reconciliation/statement_change_list.html"
    import_template_name = "admin/billing/reconciliation/statement_import.html"
    list_display = (
        "statement_id",
        "account",
        "period",
        "source_format",
        "imported_at",
        "imported_by",
        "line_counts",
        "matched_label",
        "unmatched_label",
        "matched_chart",
    )
    list_filter = ("source_format", "account", ("imported_at", RangeDateTimeFilter))
    search_fields = ("statement_id", "account", "file_name")
    date_hierarchy = "imported_at"
    actions = ["match_again"]
    inlines = [BankStatementLineInline]
    fields = (
        "account",
        "statement_id",
        "period",
        "source_format",
        "file_name",
        "checksum_short",
        "imported_by",
        "imported_at",
        "line_counts",
        "matched_label",
        "unmatched_label",
        "ignored_label",
        "matched_chart",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[BankStatement]:
        def amount(*statuses: str) -> Sum:
            return Sum("lines__amount", filter=Q(lines__status__in=statuses), default=0)

        def count(*statuses: str) -> Count:
            return Count("lines", filter=Q(lines__status__in=statuses))

        return (
            super()
            .get_queryset(request)
            .select_related("imported_by")
            .annotate(
                matched_count=count(*MATCHED_STATUSES),
                unmatched_count=count(Status.UNMATCHED),
                ignored_count=count(Status.IGNORED),
                matched_amount=amount(*MATCHED_STATUSES),
                unmatched_amount=amount(Status.UNMATCHED),
                ignored_amount=amount(Status.IGNORED),
                first_currency=Min("lines__currency"),
                last_currency=Max("lines__currency"),
            )
        )

    def has_import_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.add_bankstatement") and request.user.has_perm(
            "billing.add_bankstatementline"
        )

    def import_action(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        response = super().import_action(request, **kwargs)
        result = getattr(response, "context_data", {}).get("result") if isinstance(response, TemplateResponse) else None
        if result is not None and not result.has_errors() and not result.has_validation_errors():
            response.context_data["bank_rows"] = preview_rows(result)
            response.context_data["bank_totals"] = {
                "new": result.totals.get("new", 0),
                "skip": result.totals.get("skip", 0),
            }
        return response

    def process_result(self, result: Any, request: HttpRequest) -> HttpResponse:
        """After the import, the imported lines with what matching did: the unmatched ones
        carry their suggested invoices and the match tools."""
        response = super().process_result(result, request)
        statements = sorted(
            {row.instance.statement_id for row in result.rows if row.instance is not None and row.instance.statement_id}
        )
        if len(statements) == 1:
            url = reverse("admin:billing_bankstatementline_changelist")
            return HttpResponseRedirect(f"{url}?statement__id__exact={statements[0]}")
        return response

    @admin.display(description=_("file checksum (SHA-256)"))
    def checksum_short(self, statement: BankStatement) -> str:
        return truncated(statement.file_checksum, 16)

    def add_data_read_fail_error_to_form(self, form: forms.Form, e: Exception) -> None:
        if isinstance(e, StatementFormatError):
            form.add_error("import_file", str(e))  # say exactly what is wrong, where
        else:
            super().add_data_read_fail_error_to_form(form, e)

    def _money(self, statement: BankStatement, amount: int) -> str:
        if statement.first_currency and statement.first_currency != statement.last_currency:
            return gettext("several currencies")
        return format_money(amount, statement.first_currency) if statement.first_currency else "—"

    @admin.display(description=_("period"))
    def period(self, statement: BankStatement) -> str:
        if not statement.period_start:
            return "—"
        first = date_format(statement.period_start, "SHORT_DATE_FORMAT")
        last = date_format(statement.period_end, "SHORT_DATE_FORMAT") if statement.period_end else "…"
        return f"{first} → {last}"

    @admin.display(description=_("lines (matched / unmatched / ignored)"))
    def line_counts(self, statement: BankStatement) -> str:
        url = reverse("admin:billing_bankstatementline_changelist")
        return format_html(
            '<a href="{}?statement__id__exact={}">{} / {} / {}</a>',
            url,
            statement.pk,
            statement.matched_count,
            statement.unmatched_count,
            statement.ignored_count,
        )

    @admin.display(description=_("matched"))
    def matched_label(self, statement: BankStatement) -> str:
        return self._money(statement, statement.matched_amount)

    @admin.display(description=_("unmatched"))
    def unmatched_label(self, statement: BankStatement) -> str:
        return self._money(statement, statement.unmatched_amount)

    @admin.display(description=_("ignored"))
    def ignored_label(self, statement: BankStatement) -> str:
        return self._money(statement, statement.ignored_amount)

    @admin.display(description=_("share matched"))
    def matched_chart(self, statement: BankStatement) -> str:
        return matched_bar(statement.matched_amount, statement.unmatched_amount, statement.ignored_amount)

    @admin.action(description=_("Match the unmatched lines again"), permissions=["act"])
    def match_again(self, request: HttpRequest, queryset: QuerySet[BankStatement]) -> None:
        if not can_match(request):
            raise PermissionDenied
        for statement in queryset.order_by("pk"):
            counts = bank_statement_reconcile(statement=statement, acting_user=request.user)
            self.message_user(
                request,
                gettext("%(statement)s: %(matched)s matched, %(unmatched)s unmatched.")
                % {
                    "statement": statement.statement_id,
                    "matched": sum(counts[status] for status in MATCHED_STATUSES),
                    "unmatched": counts[Status.UNMATCHED],
                },
                messages.SUCCESS,
            )


class LineMatchForm(forms.Form):
    invoice_number = forms.CharField(
        label=_("Open invoice number"),
        required=False,
        max_length=50,
        help_text=_("The line pays this invoice; any excess becomes the customer's credit."),
    )
    customer = forms.ModelChoiceField(
        label=_("or credit this customer's balance"), queryset=Customer.objects.all(), required=False
    )

    def __init__(self, *args: Any, line: BankStatementLine, admin_site: admin.AdminSite, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line = line
        autocomplete(self.fields["customer"], BankStatementLine._meta.get_field("customer"), admin_site)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        number = (data.get("invoice_number") or "").strip()
        if bool(number) == bool(data.get("customer")):
            raise ValidationError(_("Give either an open invoice number or a customer."))
        if number:
            invoice = Invoice.objects.filter(number=number).first()
            if invoice is None:
                raise ValidationError({"invoice_number": _("No invoice has this number.")})
            data["invoice"] = invoice
        return data


class LineIgnoreForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"), max_length=300, help_text=_("e.g. bank interest, a supplier's refund, a test transfer.")
    )


@admin.register(BankStatementLine)
class BankStatementLineAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = (
        "booking_date",
        "amount_label",
        "debtor_name",
        "remittance_short",
        "status_badge",
        "customer",
        "line_tools",
    )
    list_filter = (
        "status",
        "currency",
        "statement__account",
        ("statement", RelatedDropdownFilter),
        ("booking_date", RangeDateFilter),
    )
    status_badge = status_badge("status", _("status"), LINE_VARIANTS)
    search_fields = ("debtor_name", "remittance_info", "=entry_reference", "customer__legal_name")
    list_select_related = ("statement", "customer")
    date_hierarchy = "booking_date"
    actions = ["match_again", "reopen"]
    change_list_template = "admin/billing/reconciliation/line_change_list.html"
    fields = (
        "statement_link",
        "sequence",
        "booking_date",
        "value_date",
        "amount_label",
        "debtor_name",
        "remittance_info",
        "entry_reference",
        "fingerprint_short",
        "status",
        "status_reason",
        "customer",
        "payments_list",
        "credited_label",
        "matched_by",
        "matched_at",
        "line_tools",
    )
    readonly_fields = fields

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "unmatched/",
                self.admin_site.admin_view(self.unmatched_view),
                name="{}_{}_unmatched".format(*info),
            ),
            path(
                "<int:object_id>/match/",
                self.admin_site.admin_view(self.match_view),
                name="{}_{}_match".format(*info),
            ),
            path(
                "<int:object_id>/ignore/",
                self.admin_site.admin_view(self.ignore_view),
                name="{}_{}_ignore".format(*info),
            ),
            *super().get_urls(),
        ]

    @admin.display(description=_("statement"), ordering="statement")
    def statement_link(self, line: BankStatementLine) -> str:
        return _linked(line.statement, line.statement.statement_id)

    @admin.display(description=_("amount"), ordering="amount")
    def amount_label(self, line: BankStatementLine) -> str:
        return format_money(line.amount, line.currency)

    @admin.display(description=_("remittance information"))
    def remittance_short(self, line: BankStatementLine) -> str:
        text = line.remittance_info or "—"
        reason = line.status_reason if line.status == Status.UNMATCHED and line.status_reason else ""
        return format_html(
            '<span class="tarif-clamp" title="{}">{}</span>{}',
            text,
            text,
            format_html('<span class="block text-xs text-base-500">{}</span>', reason) if reason else "",
        )

    @admin.display(description=_("fingerprint"))
    def fingerprint_short(self, line: BankStatementLine) -> str:
        return truncated(line.fingerprint, 16)

    @admin.display(description=_("credited to balance"))
    def credited_label(self, line: BankStatementLine) -> str:
        return format_money(line.amount_credited, line.currency) if line.amount_credited else "—"

    @admin.display(description=_("payments"))
    def payments_list(self, line: BankStatementLine) -> str:
        payments = line.payments.select_related("invoice").order_by("pk")
        if not payments:
            return "—"
        return format_html_join(
            ", ",
            "{} ({})",
            (
                (_linked(payment, payment.invoice.number), format_money(payment.amount, payment.currency))
                for payment in payments
            ),
        )

    @admin.display(description=_("match"))
    def line_tools(self, line: BankStatementLine) -> str:
        if line.status != Status.UNMATCHED:
            return "—"
        suggestions = format_html_join(
            "",
            '<li><a href="{}" class="tarif-suggestion">{}</a></li>',
            (
                (
                    match_url(line, invoice),
                    gettext("Pay %(number)s (%(remaining)s due)")
                    % {"number": invoice.number, "remaining": format_money(invoice.amount_remaining, invoice.currency)},
                )
                for invoice in suggested_invoices(line, limit=2)
            ),
        )
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">{}</a>{}',
            match_url(line),
            gettext("Match…"),
            reverse("admin:billing_bankstatementline_ignore", args=[line.pk]),
            gettext("Ignore…"),
            format_html('<ul class="tarif-suggestions">{}</ul>', suggestions) if suggestions else "",
        )

    def unmatched_view(self, request: HttpRequest) -> HttpResponse:
        """The lines waiting for finance staff: the changelist, filtered."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        url = reverse("admin:billing_bankstatementline_changelist")
        return HttpResponseRedirect(f"{url}?status__exact={Status.UNMATCHED}")

    def _suggestions(self, line: BankStatementLine) -> list[str]:
        """Open invoices of the line's customer, or of the line's exact amount, as links that fill the form."""
        return [
            format_html(
                '<a href="{}">{}</a>',
                match_url(line, invoice),
                gettext("Suggestion: invoice %(number)s of %(customer)s, %(remaining)s due")
                % {
                    "number": invoice.number,
                    "customer": invoice.customer,
                    "remaining": format_money(invoice.amount_remaining, invoice.currency),
                },
            )
            for invoice in suggested_invoices(line)
        ]

    def _line_summary(self, line: BankStatementLine) -> list[str]:
        return [
            gettext("%(date)s, %(amount)s from %(debtor)s")
            % {
                "date": date_format(line.booking_date, "DATE_FORMAT"),
                "amount": format_money(line.amount, line.currency),
                "debtor": line.debtor_name or "?",
            },
            gettext("Text: %(text)s") % {"text": line.remittance_info or "—"},
            *([gettext("Why unmatched: %(reason)s") % {"reason": line.status_reason}] if line.status_reason else []),
        ]

    def match_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not can_match(request):
            raise PermissionDenied
        line = get_object_or_404(BankStatementLine, pk=object_id)
        form = LineMatchForm(
            request.POST if request.method == "POST" else None,
            line=line,
            admin_site=self.admin_site,
            initial={"invoice_number": request.GET.get("invoice_number", "")},
        )
        if request.method == "POST" and form.is_valid():
            invoice = form.cleaned_data.get("invoice")
            if invoice is not None:
                operation = lambda: bank_line_match_invoice(line=line, invoice=invoice, acting_user=request.user)  # noqa: E731
            else:
                customer = form.cleaned_data["customer"]
                operation = lambda: bank_line_credit_customer(line=line, customer=customer, acting_user=request.user)  # noqa: E731
            matched = call_service(form, operation, errors=(ReconciliationError, PaymentsError, InvoiceError))
            if matched is not None:
                self.message_user(
                    request,
                    gettext("Line matched: %(paid)s paid, %(credited)s credited to the balance.")
                    % {
                        "paid": format_money(matched.amount - matched.amount_credited, matched.currency),
                        "credited": format_money(matched.amount_credited, matched.currency),
                    },
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(statement_lines_url(line))
        return render_tool_form(
            self,
            request,
            title=gettext("Match a bank line"),
            form=form,
            submit_label=gettext("Match"),
            intro=gettext("Pick the open invoice this money pays, or the customer whose balance it credits."),
            objects=[*self._line_summary(line), *self._suggestions(line)],
        )

    def ignore_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not can_match(request):
            raise PermissionDenied
        line = get_object_or_404(BankStatementLine, pk=object_id)
        form = LineIgnoreForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            ignored = call_service(
                form,
                lambda: bank_line_ignore(line=line, reason=form.cleaned_data["reason"], acting_user=request.user),
                errors=(ReconciliationError,),
            )
            if ignored is not None:
                self.message_user(request, gettext("Line ignored."), messages.SUCCESS)
                return HttpResponseRedirect(statement_lines_url(line))
        return render_tool_form(
            self,
            request,
            title=gettext("Ignore a bank line"),
            form=form,
            submit_label=gettext("Ignore"),
            intro=gettext("The line is not a customer's payment. It stays on the statement, set aside."),
            objects=self._line_summary(line),
        )

    @admin.action(description=_("Match the selected lines again automatically"), permissions=["act"])
    def match_again(self, request: HttpRequest, queryset: QuerySet[BankStatementLine]) -> None:
        if not can_match(request):
            raise PermissionDenied
        matched = 0
        for line in queryset.filter(status=Status.UNMATCHED).order_by("pk"):
            matched += bank_line_match(line=line, acting_user=request.user).status in MATCHED_STATUSES
        self.message_user(
            request,
            ngettext("%(count)d line matched.", "%(count)d lines matched.", matched) % {"count": matched},
            messages.SUCCESS,
        )

    @admin.action(description=_("Put ignored lines back among the unmatched"), permissions=["act"])
    def reopen(self, request: HttpRequest, queryset: QuerySet[BankStatementLine]) -> None:
        if not can_match(request):
            raise PermissionDenied
        for line in queryset.filter(status=Status.IGNORED).order_by("pk"):
            bank_line_reopen(line=line, acting_user=request.user)
