"""The operator console for invoices, credit notes, brands, tax and the customer balance.

An issued document is frozen: a finalized invoice's change page is read-only and
cannot be deleted; corrections are credit notes, issued from the invoice's page.
Every status change goes through an invoices service; the admin shows its errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_compact_currency
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import DecimalValidator
from django.db import models, transaction
from django.db.models import Max, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _
from import_export.admin import ExportMixin, ImportExportModelAdmin

from billing.admin import (
    ImportExportPermissions,
    OtpField,
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    StyledAdmin,
    admin_link,
    babel_locale,
    error_text,
    format_minor_decimal,
    format_money,
    format_period,
    pretty_json,
)
from billing.models import Subscription
from config import clock
from config.errors import DomainError
from config.money import CurrencyError, Money, currency_exponent
from invoices.errors import InvoiceError
from invoices.models import (
    BalanceTransaction,
    Brand,
    CreditNote,
    CreditNoteLine,
    Invoice,
    InvoiceCustomField,
    InvoiceLine,
    InvoiceLineColumn,
    NumberSequence,
    TaxRate,
)
from invoices.resources import CreditNoteResource, InvoiceResource, TaxRateResource
from invoices.selectors import invoice_credited
from invoices.states import CREDITABLE_STATUSES

SERVICE_ERRORS = (DomainError, InvoiceError, ValidationError)


def money_column(field: str, description: Any) -> Any:
    """A list/readonly column showing an integer minor-unit field as money in the row's currency."""

    @admin.display(description=description, ordering=field)
    def column(self: Any, obj: Any) -> str:
        return format_money(getattr(obj, field), obj.currency)

    column.__name__ = f"{field}_money"
    return column


# ---------------------------------------------------------------------------
# Invoices


class InvoiceLineInline(admin.TabularInline):
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


CHART_MONTHS = 12
CHART_BAR_WIDTH = 44
CHART_GAP = 14
CHART_PLOT_HEIGHT = 140
CHART_TOP = 18  # room for the value above the tallest bar
CHART_BOTTOM = 22  # room for the month labels


@dataclass(frozen=True, slots=True)
class ChartBar:
    month: datetime
    key: str  # "2026-03", the month in the chart's time zone
    label: str
    amount: int
    money: str
    compact: str
    x: int
    center: int
    y: int
    height: int
    label_y: int


@dataclass(frozen=True, slots=True)
class ChartSeries:
    currency: str
    bars: tuple[ChartBar, ...]
    total: str
    width: int
    height: int
    baseline: int
    bar_width: int = CHART_BAR_WIDTH


def _month_start(moment: datetime, tz: ZoneInfo) -> datetime:
    local = moment.astimezone(tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _add_months(month: datetime, count: int) -> datetime:
    index = month.year * 12 + month.month - 1 + count
    return month.replace(year=index // 12, month=index % 12 + 1)


def invoice_month_totals(queryset: QuerySet[Invoice], *, now: datetime) -> list[ChartSeries]:
    """Invoiced totals per month (finalized, not void) of `queryset` over 12 months, one
    series per currency, largest first; two queries."""
    tz = ZoneInfo(settings.TARIF_DEFAULT_TIMEZONE)
    issued = queryset.exclude(status__in=[Invoice.Status.DRAFT, Invoice.Status.VOID]).filter(finalized_at__isnull=False)
    # The chart ends with the current month, so a quiet recent month shows as a gap; a list
    # filtered to an older time (e.g. by the date hierarchy) ends with its latest invoice.
    end_month = _month_start(now, tz)
    first_month = _add_months(end_month, -(CHART_MONTHS - 1))
    latest = issued.order_by().aggregate(latest=Max("finalized_at"))["latest"]
    if latest is not None and latest < first_month:
        end_month = _month_start(latest, tz)
        first_month = _add_months(end_month, -(CHART_MONTHS - 1))
    rows = (
        issued.filter(finalized_at__gte=first_month, finalized_at__lt=_add_months(end_month, 1))
        .annotate(month=TruncMonth("finalized_at", tzinfo=tz))
        .order_by()
        .values("currency", "month")
        .annotate(amount=Sum("total"))
    )
    by_currency: dict[str, dict[tuple[int, int], int]] = {}
    for row in rows:
        month = row["month"].astimezone(tz)
        by_currency.setdefault(row["currency"], {})[(month.year, month.month)] = int(row["amount"] or 0)
    months = [_add_months(first_month, offset) for offset in range(CHART_MONTHS)]
    locale = babel_locale()
    series = []
    for currency in sorted(by_currency, key=lambda code: -sum(by_currency[code].values())):
        amounts = [by_currency[currency].get((month.year, month.month), 0) for month in months]
        tallest = max(max(amounts), 1)
        bars = []
        for index, (month, amount) in enumerate(zip(months, amounts, strict=True)):
            height = round(CHART_PLOT_HEIGHT * max(amount, 0) / tallest)
            y = CHART_TOP + CHART_PLOT_HEIGHT - height
            bars.append(
                ChartBar(
                    month=month,
                    key=f"{month.year:04d}-{month.month:02d}",
                    label=format_date(month.date(), "MMM yy", locale=locale),
                    amount=amount,
                    money=format_money(amount, currency),
                    compact=_compact_money(amount, currency, locale) if amount else "",
                    x=index * (CHART_BAR_WIDTH + CHART_GAP) + CHART_GAP // 2,
                    center=index * (CHART_BAR_WIDTH + CHART_GAP) + CHART_GAP // 2 + CHART_BAR_WIDTH // 2,
                    y=y,
                    height=height,
                    label_y=y - 4,
                )
            )
        series.append(
            ChartSeries(
                currency=currency,
                bars=tuple(bars),
                total=format_money(sum(amounts), currency),
                width=CHART_MONTHS * (CHART_BAR_WIDTH + CHART_GAP),
                height=CHART_TOP + CHART_PLOT_HEIGHT + CHART_BOTTOM,
                baseline=CHART_TOP + CHART_PLOT_HEIGHT,
            )
        )
    return series


def _compact_money(amount: int, currency: str, locale: Any) -> str:
    try:
        return format_compact_currency(Money(amount, currency).decimal, currency, locale=locale, fraction_digits=1)
    except (CurrencyError, ValueError):
        return str(amount)


class VoidForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=200,
        help_text=_("Kept with the voided invoice and shown in its history."),
        widget=forms.TextInput(attrs={"size": 60}),
    )


class CreditNoteForm(forms.Form):
    """A credit note for part or all of an invoice, and where its amount goes."""

    amount = forms.DecimalField(label=_("Amount to credit (tax included)"), min_value=Decimal("0.01"), localize=True)
    reduce_amount_due = forms.DecimalField(
        label=_("Reduce the amount due by"),
        min_value=Decimal(0),
        localize=True,
        initial=Decimal(0),
        help_text=_("Lowers what the customer still owes on this invoice."),
    )
    credit_to_balance = forms.DecimalField(
        label=_("Credit the customer balance with"),
        min_value=Decimal(0),
        localize=True,
        initial=Decimal(0),
        help_text=_("Used automatically on the customer's next invoices."),
    )
    refund = forms.DecimalField(
        label=_("Refund"),
        min_value=Decimal(0),
        localize=True,
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
        exponent = currency_exponent(invoice.currency)
        for name in ("amount", *self.ALLOCATION):
            field = self.fields[name]
            # Amounts are in the invoice's currency: no more decimals than its minor unit.
            field.validators.append(DecimalValidator(max_digits=None, decimal_places=exponent))
            field.widget.attrs.update({"class": "vTextField", "inputmode": "decimal"})
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
        value = self.cleaned_data.get(name) or Decimal(0)
        return int(value.scaleb(currency_exponent(self.invoice.currency)))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            amount = self.minor("amount")
            allocation = {name: self.minor(name) for name in self.ALLOCATION}
        except (InvalidOperation, ValueError) as error:
            raise ValidationError(str(error)) from error
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


def creditable_amount(invoice: Invoice) -> int:
    """What is left to credit on an invoice: its total minus its issued credit notes."""
    return max(invoice.total - invoice_credited(invoice_id=invoice.pk).total, 0)


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
        return format_money(invoice.total - creditable_amount(invoice), invoice.currency)

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
        from invoices.services.emails import invoice_email_send

        issued = list(queryset.exclude(status=Invoice.Status.DRAFT))
        for invoice in issued:
            invoice_email_send(invoice=invoice)
        self.message_user(
            request,
            ngettext_lazy("%(count)d invoice emailed.", "%(count)d invoices emailed.", len(issued))
            % {"count": len(issued)},
            messages.SUCCESS if issued else messages.WARNING,
        )

    def can_issue_credit_note(self, request: HttpRequest, invoice: Invoice) -> bool:
        return (
            invoice.status in CREDITABLE_STATUSES
            and request.user.has_perm("invoices.add_creditnote")
            and creditable_amount(invoice) > 0
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
        from billing.services.refunds import invoice_refundable_amount

        credited = invoice_credited(invoice_id=invoice.pk)
        creditable = max(invoice.total - credited.total, 0)
        # The refunds service's one rule (refunds in flight included), as on the payment's refund form.
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
        from billing.admin import call_service, otp_reverify
        from billing.models import Refund
        from billing.services.refunds import RefundError, refund_request_for_invoice

        if not request.user.has_perm("billing.add_refund"):
            raise PermissionDenied
        verified_at = otp_reverify(request, form.cleaned_data["otp_token"])
        if form.cleaned_data["otp_token"] and verified_at is None:
            form.add_error("otp_token", gettext("Invalid or already used code. Wait for the next code."))
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
        from invoices.services.credit_notes import credit_note_create

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

    def _run_each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Invoice],
        operation: Any,
        *,
        done: Any,
    ) -> None:
        """Apply `operation` to each invoice; `done` is an ngettext_lazy message keyed on count."""
        count = 0
        for invoice in queryset.select_related("customer").order_by("pk"):
            label = str(invoice)
            try:
                # One transaction per invoice: a refusal rolls back that invoice only.
                with transaction.atomic():
                    operation(invoice)
            except SERVICE_ERRORS as error:
                self.message_user(request, f"{label}: {error_text(error)}", messages.ERROR)
            else:
                count += 1
        if count:
            self.message_user(request, done % {"count": count}, messages.SUCCESS)

    @admin.action(description=_("Finalize selected draft invoices (assigns numbers)"), permissions=["change"])
    def finalize(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        from invoices.services.finalize import invoice_finalize

        self._run_each(
            request,
            queryset,
            lambda invoice: invoice_finalize(invoice=invoice, acting_user=request.user),
            done=ngettext_lazy("%(count)d invoice finalized.", "%(count)d invoices finalized.", "count"),
        )

    @admin.action(description=_("Void selected invoices…"), permissions=["void"])
    def void(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> HttpResponse | None:
        from invoices.services.lifecycle import invoice_void

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
    def mark_uncollectible(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        from invoices.services.lifecycle import invoice_mark_uncollectible

        self._run_each(
            request,
            queryset,
            lambda invoice: invoice_mark_uncollectible(
                invoice=invoice, at=clock.now(customer=invoice.customer), acting_user=request.user
            ),
            done=ngettext_lazy(
                "%(count)d invoice marked uncollectible.", "%(count)d invoices marked uncollectible.", "count"
            ),
        )


# ---------------------------------------------------------------------------
# Credit notes


class CreditNoteLineInline(ReadOnlyInline):
    model = CreditNoteLine
    fields = ("description", "quantity", "amount_money", "tax", "invoice_line")
    readonly_fields = fields
    show_change_link = False

    @admin.display(description=_("amount excluding tax"))
    def amount_money(self, line: CreditNoteLine) -> str:
        return format_money(line.amount, line.credit_note.currency)

    @admin.display(description=_("tax"))
    def tax(self, line: CreditNoteLine) -> str:
        return f"{format_money(line.tax_amount, line.credit_note.currency)} ({line.tax_rate.normalize():f} %)"


@admin.register(CreditNote)
class CreditNoteAdmin(ImportExportPermissions, ReadOnlyAdminMixin, ExportMixin, StyledAdmin):
    resource_classes = [CreditNoteResource]
    list_display = ("number", "invoice", "customer", "status", "reason", "total_money", "allocation", "issued_at")
    list_filter = ("status", "reason", "currency", "brand")
    search_fields = ("number", "invoice__number", "customer__legal_name", "customer__email")
    list_select_related = ("invoice", "customer")
    date_hierarchy = "issued_at"
    inlines = [CreditNoteLineInline]
    actions = ["download_pdf"]
    fieldsets = (
        (
            None,
            {"fields": ("number", "status", "invoice_link", "customer_link", "brand", "reason", "memo", "pdf_link")},
        ),
        (
            _("Amounts"),
            {
                "fields": (
                    "subtotal_money",
                    "tax_total_money",
                    "total_money",
                    "reduced_amount_due_money",
                    "credited_to_balance_money",
                    "refunded_money",
                )
            },
        ),
        (_("Issue"), {"fields": ("issued_at", "acting_user", "content_hash")}),
    )
    readonly_fields = (
        "number",
        "status",
        "invoice_link",
        "customer_link",
        "brand",
        "reason",
        "memo",
        "subtotal_money",
        "tax_total_money",
        "total_money",
        "reduced_amount_due_money",
        "credited_to_balance_money",
        "refunded_money",
        "issued_at",
        "acting_user",
        "content_hash",
        "pdf_link",
    )

    subtotal_money = money_column("subtotal", _("subtotal"))
    tax_total_money = money_column("tax_total", _("tax"))
    total_money = money_column("total", _("total"))
    reduced_amount_due_money = money_column("reduced_amount_due", _("reduces amount due by"))
    credited_to_balance_money = money_column("credited_to_balance", _("credited to customer balance"))
    refunded_money = money_column("refunded", _("to refund"))

    @admin.display(description=_("allocation"))
    def allocation(self, note: CreditNote) -> str:
        parts = []
        for amount, label in (
            (note.reduced_amount_due, gettext("amount due")),
            (note.credited_to_balance, gettext("balance")),
            (note.refunded, gettext("refund")),
        ):
            if amount:
                parts.append(f"{label} {format_money(amount, note.currency)}")
        return ", ".join(parts) or "—"

    @admin.display(description=_("invoice"))
    def invoice_link(self, note: CreditNote) -> str:
        return admin_link(note.invoice)

    @admin.display(description=_("customer"))
    def customer_link(self, note: CreditNote) -> str:
        return admin_link(note.customer)

    @admin.display(description=_("PDF"))
    def pdf_link(self, note: CreditNote) -> str:
        url = reverse("admin:invoices_creditnote_pdf", args=[note.pk])
        return format_html('<a href="{}">{}</a>', url, gettext("Download PDF (Factur-X)"))

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="invoices_creditnote_pdf",
            ),
            *super().get_urls(),
        ]

    def pdf_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        credit_note = get_object_or_404(CreditNote, pk=object_id)
        if not self.has_view_permission(request, credit_note):
            raise PermissionDenied
        return stored_pdf_response(credit_note=credit_note)

    @admin.action(description=_("Download PDF (Factur-X)"), permissions=["view"])
    def download_pdf(self, request: HttpRequest, queryset: QuerySet[CreditNote]) -> HttpResponse | None:
        return documents_download(self, request, list(queryset))


# ---------------------------------------------------------------------------
# Brands, numbering, tax, balance


class BrandCustomFieldInline(admin.TabularInline):
    model = InvoiceCustomField
    fk_name = "brand"
    fields = ("label", "value", "position")
    extra = 0
    verbose_name = _("custom field printed on every invoice")
    verbose_name_plural = _("custom fields printed on every invoice")


class LineColumnInline(admin.TabularInline):
    model = InvoiceLineColumn
    fields = ("label", "metadata_key", "position")
    extra = 0


@admin.register(Brand)
class BrandAdmin(admin.ModelAdmin):
    list_display = ("name", "legal_name", "country", "layout", "invoice_number_format", "is_default")
    list_filter = ("is_default", "layout", "country")
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
        (_("Payment"), {"fields": ("payment_instructions", "iban", "bic", "late_payment_rate")}),
        (_("Numbering"), {"fields": ("invoice_number_format", "credit_note_number_format", "created_at")}),
    )

    class Media:
        js = ("tarif/invoices/brand_preview.js",)
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
        from invoices.rendering.html import document_html
        from invoices.rendering.preview import preview_document

        if request.method != "POST":
            return HttpResponse(status=405, headers={"Allow": "POST"})
        obj = get_object_or_404(Brand, pk=object_id) if object_id else None
        if not (self.has_change_permission(request, obj) if obj else self.has_add_permission(request)):
            raise PermissionDenied
        form = self.get_form(request, obj, change=obj is not None)(request.POST, request.FILES, instance=obj)
        form.is_valid()  # fills form.instance with every valid value; errors show on save
        language = request.POST.get("_preview_language")
        document, logo_error = preview_document(
            brand=form.instance, data=request.POST, files=request.FILES, language=language
        )
        document.extra["preview_error"] = logo_error
        if request.POST.get("_preview_format") == "pdf":
            from invoices.rendering.html import document_pdf

            response = HttpResponse(document_pdf(document, pdf_a=False), content_type="application/pdf")
            response["Content-Disposition"] = 'inline; filename="preview.pdf"'
            response["Cache-Control"] = "no-store"
            return response
        html = document_html(document, for_pdf=False)
        response = HttpResponse(html, content_type="text/html; charset=utf-8")
        response["Cache-Control"] = "no-store"
        return response


@admin.register(InvoiceCustomField)
class InvoiceCustomFieldAdmin(admin.ModelAdmin):
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
        form.base_fields["customer"].required = True  # brand-level fields live on the brand
        return form


def stored_pdf_response(*, invoice: Invoice | None = None, credit_note: CreditNote | None = None) -> HttpResponse:
    """The stored PDF (rendered and stored now if the task has not run yet), as a download."""
    from invoices.services.pdf import credit_note_document_store, invoice_document_store

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
    import io
    import zipfile

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


@admin.register(NumberSequence)
class NumberSequenceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("brand", "kind", "scope", "last_value")
    list_filter = ("kind", "brand")
    search_fields = ("scope", "brand__name")
    list_select_related = ("brand",)


@admin.register(TaxRate)
class TaxRateAdmin(ImportExportPermissions, ImportExportModelAdmin):
    resource_classes = [TaxRateResource]
    list_display = ("country", "name", "percentage", "is_standard", "active")
    list_filter = ("active", "is_standard", "country")
    search_fields = ("name", "country")


@admin.register(BalanceTransaction)
class BalanceTransactionAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("created_at", "customer", "kind", "amount_money", "invoice", "credit_note", "description")
    list_filter = ("kind", "currency")
    search_fields = ("customer__legal_name", "customer__email", "description", "invoice__number")
    list_select_related = ("customer", "invoice", "credit_note")
    date_hierarchy = "created_at"

    amount_money = money_column("amount", _("amount"))
