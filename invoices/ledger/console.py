"""The console's Accounting section (issue 19 item 6): journal browser with filters, entry
detail back to its document, trial balance, VAT summary, period status and close, exports
(streamed now, or prepared in the background with progress), and the reconciliation of the
ledger with invoices, payments and bank statements. Thin views over selectors and services;
every page follows the console's live/test switch and a brand chosen in the page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from functools import wraps
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config import clock, mfa
from config.admin_site import console_livemode
from config.errors import DomainError
from config.formatting import format_money
from config.types import ActingUser
from invoices.ledger import export_jobs, exports, reconciliation
from invoices.ledger.models import Account, AccountingPeriod, Journal, JournalEntry, LedgerExport
from invoices.ledger.services import (
    SETTINGS_PERMISSION,
    accounting_period_close_approve,
    accounting_period_close_request,
    chart_write_off_vat_relief,
    ledger_settings_read,
    ledger_settings_update,
)
from invoices.ledger.vat_summary import vat_summary
from invoices.models import Brand

VIEW_PERMISSION = "ledger.view_journalentry"
CLOSE_PERMISSION = "ledger.change_accountingperiod"
DOCUMENT_ADMIN = {
    "invoice": "admin:invoices_invoice_change",
    "credit_note": "admin:invoices_creditnote_change",
    "payment": "admin:billing_payment_change",
    "refund": "admin:billing_refund_change",
    "balance_transaction": "admin:invoices_balancetransaction_change",
}


def _require(request: HttpRequest, permission: str = VIEW_PERMISSION) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def _brand(request: HttpRequest) -> Brand:
    brands = Brand.objects.order_by("pk")
    raw = request.GET.get("brand") or request.POST.get("brand")
    if raw:
        try:
            return get_object_or_404(brands, pk=int(raw))
        except ValueError:
            raise Http404 from None
    brand = brands.first()
    if brand is None:
        raise NoBrandYet()
    return brand


class NoBrandYet(Exception):
    """No brand exists yet: the Accounting pages say so instead of a 404 (`with_brand`)."""


def with_brand(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """An Accounting page that explains itself when no brand exists yet (a fresh installation)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NoBrandYet:
            context = {**admin.site.each_context(request), "title": _("Accounting")}
            return render(request, "admin/ledger/no_brand.html", context)

    return wrapper


def _currency(brand: Brand) -> str:
    return getattr(getattr(brand, "ledger_settings", None), "functional_currency", "EUR")


def _month_bounds(today: date) -> tuple[date, date]:
    start = today.replace(day=1)
    return start, (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def _context(request: HttpRequest, *, title: str, brand: Brand, **extra: Any) -> dict[str, Any]:
    return {
        **admin.site.each_context(request),
        "title": title,
        "brand": brand,
        "brands": Brand.objects.order_by("pk"),
        "livemode": console_livemode(request),
        "accounting_tabs": _tabs(brand),
        **extra,
    }


def _tabs(brand: Brand) -> list[tuple[str, str, str]]:
    names = [
        ("journal", gettext_lazy("Journal"), "accounting_journal"),
        ("trial_balance", gettext_lazy("Trial balance"), "accounting_trial_balance"),
        ("vat", gettext_lazy("VAT summary"), "accounting_vat"),
        ("periods", gettext_lazy("Periods"), "accounting_periods"),
        ("reconciliation", gettext_lazy("Reconciliation"), "accounting_reconciliation"),
        ("exports", gettext_lazy("Exports"), "accounting_exports"),
        ("settings", gettext_lazy("Settings"), "accounting_settings"),
    ]
    return [(key, str(label), f"{reverse(url)}?brand={brand.pk}") for key, label, url in names]


class PeriodForm(forms.Form):
    start = forms.DateField(label=gettext_lazy("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=gettext_lazy("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise forms.ValidationError(_("The end date is before the start date."))
        return data


class JournalFilterForm(PeriodForm):
    journal = forms.ChoiceField(
        label=gettext_lazy("Journal"), required=False, choices=[("", gettext_lazy("All"))] + list(Journal.choices)
    )
    account = forms.CharField(label=gettext_lazy("Account (code starts with)"), required=False, max_length=20)
    customer = forms.IntegerField(label=gettext_lazy("Customer id"), required=False, min_value=1)
    document = forms.CharField(label=gettext_lazy("Document number"), required=False, max_length=50)


def _selection(request: HttpRequest, brand: Brand, data: dict[str, Any]) -> exports.LedgerFilter:
    return exports.LedgerFilter(
        brand=brand,
        livemode=console_livemode(request),
        start=data.get("start"),
        end=data.get("end"),
        journal=data.get("journal") or "",
        account_code=data.get("account") or "",
        customer_id=data.get("customer"),
        document=data.get("document") or "",
    )


def journal_view(request: HttpRequest) -> HttpResponse:
    _require(request)
    brand = _brand(request)
    form = JournalFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    selection = _selection(request, brand, data)
    entry_ids = exports.journal_lines(selection).values("entry_id")
    entries = (
        JournalEntry.objects.filter(pk__in=entry_ids)
        .select_related("customer")
        .prefetch_related("lines")
        .order_by("-date", "journal", "-number")
    )
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    rows = [
        {
            "entry": entry,
            "reference": entry.reference,
            "amount": format_money(sum(line.functional_debit for line in entry.lines.all()), entry.functional_currency),
            "url": reverse("accounting_entry", args=[entry.pk]),
        }
        for entry in page
    ]
    query = request.GET.copy()
    query.pop("page", None)
    return TemplateResponse(
        request,
        "admin/ledger/journal.html",
        _context(request, title=_("Journal"), brand=brand, form=form, rows=rows, page=page, query=query.urlencode()),
    )


def _document_url(entry: JournalEntry) -> str:
    name = DOCUMENT_ADMIN.get(entry.source_type)
    if not name:
        return ""
    try:
        return reverse(name, args=[entry.source_id])
    except NoReverseMatch:
        return ""


def entry_view(request: HttpRequest, entry_id: int) -> HttpResponse:
    _require(request)
    entry = get_object_or_404(
        JournalEntry.objects.filter(livemode=console_livemode(request)).select_related(
            "customer", "brand", "reversal_of"
        ),
        pk=entry_id,
    )
    lines = [
        {
            "line": line,
            "debit": format_money(line.debit, entry.currency) if line.debit else "",
            "credit": format_money(line.credit, entry.currency) if line.credit else "",
            "functional_debit": format_money(line.functional_debit, entry.functional_currency)
            if line.functional_debit
            else "",
            "functional_credit": format_money(line.functional_credit, entry.functional_currency)
            if line.functional_credit
            else "",
        }
        for line in entry.lines.select_related("account").order_by("position", "pk")
    ]
    return TemplateResponse(
        request,
        "admin/ledger/entry.html",
        _context(
            request,
            title=_("Entry %(reference)s") % {"reference": entry.reference},
            brand=entry.brand,
            entry=entry,
            lines=lines,
            document_url=_document_url(entry),
            foreign=entry.currency != entry.functional_currency,
            reversals=list(entry.reversals.all()),
        ),
    )


def _period_data(request: HttpRequest) -> tuple[PeriodForm, date, date]:
    start, end = _month_bounds(clock.system_now().date())
    form = PeriodForm(request.GET or None)
    if form.is_bound and form.is_valid():
        start = form.cleaned_data.get("start") or start
        end = form.cleaned_data.get("end") or end
    return form, start, end


def trial_balance_view(request: HttpRequest) -> HttpResponse:
    _require(request)
    brand = _brand(request)
    form, start, end = _period_data(request)
    currency = _currency(brand)
    rows = exports.trial_balance(
        exports.LedgerFilter(brand=brand, livemode=console_livemode(request), start=start, end=end)
    )
    debit = sum(row.debit for row in rows)
    credit = sum(row.credit for row in rows)
    return TemplateResponse(
        request,
        "admin/ledger/trial_balance.html",
        _context(
            request,
            title=_("Trial balance"),
            brand=brand,
            form=form,
            start=start,
            end=end,
            rows=[
                {
                    "row": row,
                    "debit": format_money(row.debit, currency),
                    "credit": format_money(row.credit, currency),
                    "balance_debit": format_money(row.balance, currency) if row.balance > 0 else "",
                    "balance_credit": format_money(-row.balance, currency) if row.balance < 0 else "",
                }
                for row in rows
            ],
            total_debit=format_money(debit, currency),
            total_credit=format_money(credit, currency),
            balanced=debit == credit,
        ),
    )


def vat_view(request: HttpRequest) -> HttpResponse:
    _require(request)
    brand = _brand(request)
    form, start, end = _period_data(request)
    summary = vat_summary(brand=brand, livemode=console_livemode(request), start=start, end=end)
    money = summary.currency
    return TemplateResponse(
        request,
        "admin/ledger/vat.html",
        _context(
            request,
            title=_("VAT summary"),
            brand=brand,
            form=form,
            summary=summary,
            rows=[
                (row, f"{row.rate.normalize():f} %", format_money(row.base, money), format_money(row.vat, money))
                for row in summary.rows
            ],
            boxes=[
                (
                    box,
                    "" if box.base is None else format_money(box.base, money),
                    "" if box.vat is None else format_money(box.vat, money),
                    # The return is filed in whole euros.
                    "" if box.base is None else f"{round(box.base / 100):d}",
                )
                for box in summary.boxes
            ],
            differences=[
                (
                    difference,
                    format_money(difference.ledger_base, money),
                    format_money(difference.documents_base, money),
                    format_money(difference.ledger_vat, money),
                    format_money(difference.documents_vat, money),
                )
                for difference in summary.differences
            ],
        ),
    )


class CloseForm(forms.Form):
    month = forms.DateField(widget=forms.HiddenInput)
    action = forms.ChoiceField(choices=[("request", "request"), ("approve", "approve")], widget=forms.HiddenInput)
    otp_token = forms.CharField(
        label=gettext_lazy("Authenticator code"),
        required=False,
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


def periods_view(request: HttpRequest) -> HttpResponse:
    _require(request)
    brand = _brand(request)
    livemode = console_livemode(request)
    error = ""
    if request.method == "POST":
        _require(request, CLOSE_PERMISSION)
        form = CloseForm(request.POST)
        if form.is_valid():
            verified_at, refused = mfa.step_up(request, form.cleaned_data["otp_token"])
            if refused is not None:
                error = mfa.refusal_message(refused)
            else:
                try:
                    if form.cleaned_data["action"] == "request":
                        accounting_period_close_request(
                            brand=brand,
                            livemode=livemode,
                            month=form.cleaned_data["month"],
                            requested_by=request.user,
                            otp_verified_at=verified_at,
                        )
                        messages.success(request, _("Close requested: another staff member approves it."))
                    else:
                        period = get_object_or_404(
                            AccountingPeriod, brand=brand, livemode=livemode, month=form.cleaned_data["month"]
                        )
                        accounting_period_close_approve(
                            period=period, approver=request.user, otp_verified_at=verified_at
                        )
                        messages.success(request, _("The period is closed."))
                    return redirect(f"{reverse('accounting_periods')}?brand={brand.pk}")
                except DomainError as refusal:
                    error = refusal.message_text()
        else:
            error = _("The request was incomplete; try again.")
    today = clock.system_now().date()
    existing = {p.month: p for p in AccountingPeriod.objects.filter(brand=brand, livemode=livemode)}
    months = []
    month = today.replace(day=1)
    for _index in range(12):
        month = (month - timedelta(days=1)).replace(day=1)
        months.append((month, existing.get(month)))
    return TemplateResponse(
        request,
        "admin/ledger/periods.html",
        _context(
            request,
            title=_("Accounting periods"),
            brand=brand,
            months=months,
            error=error,
            can_close=request.user.has_perm(CLOSE_PERMISSION),
            otp_label=CloseForm.base_fields["otp_token"].label,
        ),
    )


def reconciliation_view(request: HttpRequest) -> HttpResponse:
    _require(request)
    brand = _brand(request)
    form, start, end = _period_data(request)
    result = reconciliation.ledger_reconciliation(brand=brand, livemode=console_livemode(request), start=start, end=end)
    currency = result.currency
    rows = [
        {
            "row": row,
            "ledger": format_money(row.ledger, currency),
            "source": format_money(row.source, currency),
            "difference": format_money(row.difference, currency),
        }
        for row in result.rows
    ]
    bank = reconciliation.bank_reconciliation(brand=brand, livemode=console_livemode(request), start=start, end=end)
    return TemplateResponse(
        request,
        "admin/ledger/reconciliation.html",
        _context(
            request,
            title=_("Reconciliation"),
            brand=brand,
            form=form,
            rows=rows,
            start=start,
            end=end,
            bank=bank,
            bank_totals={
                "ledger": format_money(bank.ledger_receipts, bank.currency),
                "statement": format_money(bank.statement_receipts, bank.currency),
                "difference": format_money(bank.difference, bank.currency),
            },
            bank_differences=[_bank_difference_row(item) for item in bank.differences],
        ),
    )


def _admin_url(name: str, pk: int | None) -> str:
    if pk is None:
        return ""
    try:
        return reverse(name, args=[pk])
    except NoReverseMatch:
        return ""


def _bank_difference_row(item: reconciliation.BankDifference) -> dict[str, Any]:
    return {
        "item": item,
        "statement": format_money(item.statement_amount, item.currency) if item.statement_amount else "",
        "books": format_money(item.books_amount, item.currency) if item.books_amount else "",
        "difference": format_money(item.difference, item.currency),
        "line_url": _admin_url("admin:billing_bankstatementline_change", item.statement_line_id),
        "payment_url": _admin_url("admin:billing_payment_change", item.payment_id),
        "entry_url": _admin_url("accounting_entry", item.entry_id),
    }


class ExportForm(forms.Form):
    kind = forms.ChoiceField(label=gettext_lazy("Format"), choices=LedgerExport.Kind.choices)
    fiscal_year = forms.IntegerField(label=gettext_lazy("Fiscal year (FEC)"), required=False, min_value=2000)
    start = forms.DateField(label=gettext_lazy("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=gettext_lazy("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    account = forms.CharField(label=gettext_lazy("Account (general ledger)"), required=False, max_length=20)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("kind") == LedgerExport.Kind.FEC:
            if not data.get("fiscal_year"):
                self.add_error("fiscal_year", _("The FEC covers one fiscal year: choose it."))
        elif not (data.get("start") and data.get("end")):
            self.add_error("start", _("Choose the first and last day."))
        return data


def exports_view(request: HttpRequest) -> HttpResponse:
    _require(request)
    brand = _brand(request)
    livemode = console_livemode(request)
    form = ExportForm(request.POST or None, initial={"fiscal_year": clock.system_now().year - 1})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            export_jobs.ledger_export_request(
                brand=brand,
                livemode=livemode,
                kind=data["kind"],
                start=data.get("start") or date(data.get("fiscal_year") or 2000, 1, 1),
                end=data.get("end") or date(data.get("fiscal_year") or 2000, 12, 31),
                fiscal_year=data.get("fiscal_year"),
                account_code=data.get("account") or "",
                requested_by=cast(AbstractBaseUser, request.user),
            )
        except DomainError as refusal:
            form.add_error(None, refusal.message_text())
        else:
            messages.success(request, _("The export is being prepared; this page shows its progress."))
            return redirect(f"{reverse('accounting_exports')}?brand={brand.pk}")
    recent = LedgerExport.objects.filter(brand=brand, livemode=livemode)[:20]
    years = list(  # DISTINCT in the database: the year's entries are not read to list its years
        JournalEntry.objects.filter(brand=brand, livemode=livemode)
        .order_by("-fiscal_year")
        .values_list("fiscal_year", flat=True)
        .distinct()
    )
    return TemplateResponse(
        request,
        "admin/ledger/exports.html",
        _context(
            request,
            title=_("Accounting exports"),
            brand=brand,
            form=form,
            recent=recent,
            years=years,
            refresh=any(export.status in {"pending", "running"} for export in recent),
        ),
    )


def export_download_view(request: HttpRequest, export_id: int) -> HttpResponseBase:
    _require(request)
    export = get_object_or_404(
        LedgerExport.objects.filter(livemode=console_livemode(request), status=LedgerExport.Status.DONE), pk=export_id
    )
    return FileResponse(export.file.open("rb"), as_attachment=True, filename=export.filename)


def fec_download_view(request: HttpRequest) -> HttpResponseBase:
    """The FEC of a fiscal year streamed now (no file on disk; memory stays flat)."""
    _require(request)
    brand = _brand(request)
    try:
        fiscal_year = int(request.GET.get("fiscal_year", ""))
    except ValueError:
        raise Http404 from None
    separator = "|" if request.GET.get("separator") == "pipe" else "\t"
    name, chunks = exports.fec_export(
        brand=brand, livemode=console_livemode(request), fiscal_year=fiscal_year, separator=separator
    )
    response = StreamingHttpResponse(chunks, content_type="text/plain; charset=iso-8859-15")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def account_choices(brand: Brand) -> list[tuple[str, str]]:
    return [(account.code, f"{account.code} {account.name}") for account in Account.objects.filter(brand=brand)]


# -- settings ------------------------------------------------------------------------------------

RELIEF_CHOICES = {"default": None, "on": True, "off": False}


class LedgerSettingsForm(forms.Form):
    write_off_vat_relief = forms.ChoiceField(
        label=gettext_lazy("VAT on written-off invoices"),
        help_text=gettext_lazy(
            "Recovered: a write-off posts the VAT of the unpaid part back (debit 44571x, per rate) and only the "
            "net amount to bad debts (654). Not recovered: the whole amount goes to bad debts. Applies to "
            "write-offs from now on; entries already posted stay as they are."
        ),
    )

    def __init__(self, *args: Any, chart_default: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if chart_default:
            default_label = _("The chart's default (recovered)")
        else:
            default_label = _("The chart's default (not recovered)")
        field = cast(forms.ChoiceField, self.fields["write_off_vat_relief"])
        field.choices = [
            ("default", default_label),
            ("on", _("Recovered")),
            ("off", _("Not recovered")),
        ]
        # The help text, and the error once there is one, are read with the field (template ids).
        field_id = self["write_off_vat_relief"].auto_id
        described_by = f"{field_id}_help"
        if self.is_bound and self.errors.get("write_off_vat_relief"):
            described_by = f"{field_id}_error {described_by}"
        field.widget.attrs["aria-describedby"] = described_by


def _relief_choice(value: bool | None) -> str:
    return next(key for key, choice in RELIEF_CHOICES.items() if choice is value)


def settings_view(request: HttpRequest) -> HttpResponse:
    """A brand's ledger settings: today the write-off VAT relief (chart and currency are shown)."""
    _require(request)
    brand = _brand(request)
    ledger = ledger_settings_read(brand=brand)
    chart_default = chart_write_off_vat_relief(ledger=ledger)
    can_change = request.user.has_perm(SETTINGS_PERMISSION)
    data = None
    if request.method == "POST":
        _require(request, SETTINGS_PERMISSION)
        data = request.POST
    form = LedgerSettingsForm(
        data, initial={"write_off_vat_relief": _relief_choice(ledger.write_off_vat_relief)}, chart_default=chart_default
    )
    if data is not None and form.is_valid():
        try:
            ledger_settings_update(
                brand=brand,
                write_off_vat_relief=RELIEF_CHOICES[form.cleaned_data["write_off_vat_relief"]],
                acting_user=cast(ActingUser, request.user),
            )
        except DomainError as refusal:
            form.add_error(None, refusal.message_text())
        else:
            messages.success(request, _("The ledger settings are saved."))
            return redirect(f"{reverse('accounting_settings')}?brand={brand.pk}")
    effective = ledger.write_off_vat_relief if ledger.write_off_vat_relief is not None else chart_default
    return TemplateResponse(
        request,
        "admin/ledger/settings.html",
        _context(
            request,
            title=_("Ledger settings"),
            brand=brand,
            form=form,
            ledger=ledger,
            relief_now=effective,
            can_change=can_change,
        ),
    )
