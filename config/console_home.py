"""The console's home page (dashboard) and global search, as django-unfold asks for them.

The figures come from `reports.selectors.dashboard` (one mode, read-only, a handful of
aggregate queries); here they are cut to what the viewer may open, formatted
(`format_money`, the viewer's locale) and linked to the filtered lists behind them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from babel.numbers import format_decimal
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from unfold.dataclasses import SearchResult

from billing.models import Payment, Refund, Subscription
from config import clock
from config.admin_site import console_livemode
from config.console import babel_locale, format_money
from config.formatting import format_count
from config.modes import scope_to_mode
from config.money import currency_exponent
from config.types import JsonDict
from customers.models import Customer
from invoices.einvoicing.selectors import transmissions_needing_attention
from invoices.ereporting.selectors import ereporting_periods_needing_attention
from invoices.models import CreditNote, Invoice
from reports.home_figures import home_figures_current
from reports.selectors.dashboard import home_dashboard

REPORTS_PERMISSION = "reports.view_dashboards"
# The sections read from the stored whole-book counts (reports/home_figures.py), "as of" a minute ago.
BOOK_SECTIONS = frozenset({"subscriptions", "receivables", "next_billing_run"})

# Dashboard sections and the permission that opens the list each one links to.
SECTION_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "mrr": (REPORTS_PERMISSION,),
    "revenue_this_month": (REPORTS_PERMISSION, "invoices.view_invoice"),
    "receivables": (REPORTS_PERMISSION, "invoices.view_invoice"),
    "subscriptions": ("billing.view_subscription",),
    "failed_payments": ("billing.view_payment",),
    "dunning_active": ("billing.view_dunningcase",),
    "next_billing_run": ("billing.view_billingrun",),
    "refunds_awaiting_approval": ("billing.view_refund",),
    "unmatched_bank_lines": ("billing.view_bankstatementline",),
    "failed_webhooks": ("billing.view_webhookdelivery",),
    "billing_run_failures": ("billing.view_billingrun",),
    "einvoicing_attention": ("einvoicing.view_transmission",),
    "ereporting_attention": ("ereporting.view_ereportingperiod",),
}


def allowed_sections(request: HttpRequest) -> frozenset[str]:
    user = request.user
    return frozenset(name for name, perms in SECTION_PERMISSIONS.items() if all(user.has_perm(p) for p in perms))


def _list_url(name: str, **params: Any) -> str:
    url = reverse(f"admin:{name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def _change_url(obj: Model) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return date_format(timezone.localtime(value), "DATETIME_FORMAT")


def _as_of_time(value: datetime) -> str:
    """HH:MM for figures of today (local time), the date too when they are older."""
    local = timezone.localtime(value)
    same_day = local.date() == timezone.localtime(clock.system_now()).date()
    return date_format(local, "TIME_FORMAT" if same_day else "DATETIME_FORMAT")


def _day(value: date | datetime | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        value = timezone.localtime(value)
    return date_format(value, "DATE_FORMAT")


def _amounts(pairs: Iterable[tuple[int, str]]) -> str:
    return " · ".join(format_money(amount, currency) for amount, currency in pairs) or format_money(0, "EUR")


@dataclass(frozen=True)
class Kpi:
    key: str
    title: str
    value: str
    detail: str
    link: str
    tone: str = ""  # "", "danger", "warning", "success"


def _signed_money(amount: int, currency: str) -> str:
    text = format_money(abs(amount), currency)
    if amount > 0:
        return f"+{text}"
    if amount < 0:
        return f"−{text}"
    return text


def _mrr_chart(figure: Any) -> str:
    """Chart.js data for unfold's line chart (read from a data attribute, no inline script)."""
    divisor = 10 ** currency_exponent(figure.currency)
    return json.dumps(
        {
            "labels": [date_format(month, "YEAR_MONTH_FORMAT") for month, _amount in figure.months],
            "datasets": [
                {
                    "label": _("MRR (%(currency)s)") % {"currency": figure.currency},
                    # Whole major units: a chart's scale, never shown as an amount.
                    "data": [amount // divisor for _month, amount in figure.months],
                    "borderColor": "var(--color-primary-600)",
                    "backgroundColor": "var(--color-primary-600)",
                    "displayYAxis": True,
                    "suffixYAxis": figure.currency,
                    "fill": False,
                }
            ],
        }
    )


def _kpis(data: Any, sections: frozenset[str]) -> list[Kpi]:
    kpis: list[Kpi] = []
    if "mrr" in sections:
        main = data.mrr[0] if data.mrr else None
        if main is not None:
            change = main.change
            pct = ""
            if main.previous_mrr:
                ratio = Decimal(change * 100) / Decimal(main.previous_mrr)
                pct = f" ({format_decimal(ratio, format='+#,##0.0;-#,##0.0', locale=babel_locale())} %)"
            detail = _("%(change)s vs last month%(pct)s") % {
                "change": _signed_money(change, main.currency),
                "pct": pct,
            }
            others = [format_money(figure.mrr, figure.currency) for figure in data.mrr[1:]]
            if others:
                detail += " · " + " · ".join(others)
            kpis.append(
                Kpi(
                    "mrr",
                    _("MRR"),
                    format_money(main.mrr, main.currency),
                    detail,
                    reverse("admin:reports_dashboard_report", args=["mrr"]),
                    "success" if change > 0 else ("danger" if change < 0 else ""),
                )
            )
        else:
            kpis.append(
                Kpi(
                    "mrr",
                    _("MRR"),
                    format_money(0, "EUR"),
                    _("No recurring revenue yet"),
                    reverse("admin:reports_dashboard_report", args=["mrr"]),
                )
            )
    if "subscriptions" in sections:
        counts = data.subscriptions
        kpis.append(
            Kpi(
                "subscriptions",
                _("Active subscriptions"),
                format_count(counts.get("active", 0)),
                _("%(trialing)s trialing · %(past_due)s past due")
                % {
                    "trialing": format_count(counts.get("trialing", 0)),
                    "past_due": format_count(counts.get("past_due", 0)),
                },
                _list_url("billing_subscription", status__exact="active"),
            )
        )
    if "revenue_this_month" in sections:
        invoices = sum(row.count for row in data.revenue_this_month)
        kpis.append(
            Kpi(
                "revenue",
                _("Revenue this month"),
                _amounts((row.amount, row.currency) for row in data.revenue_this_month),
                ngettext(
                    "%(count)s invoice finalized since %(day)s, excl. tax",
                    "%(count)s invoices finalized since %(day)s, excl. tax",
                    invoices,
                )
                % {"count": format_count(invoices), "day": _day(data.month_start)},
                _list_url(
                    "invoices_invoice",
                    finalized_at__gte=data.month_start.isoformat(),
                    status__in="open,paid,uncollectible",
                ),
            )
        )
    if "receivables" in sections:
        open_count = sum(row.open_count for row in data.receivables)
        kpis.append(
            Kpi(
                "receivables",
                _("Open receivables"),
                _amounts((row.open_amount, row.currency) for row in data.receivables),
                ngettext("%(count)s open invoice", "%(count)s open invoices", open_count)
                % {"count": format_count(open_count)},
                _list_url("invoices_invoice", status__exact="open"),
            )
        )
        overdue_count = sum(row.overdue_count for row in data.receivables)
        kpis.append(
            Kpi(
                "overdue",
                _("Overdue"),
                _amounts((row.overdue_amount, row.currency) for row in data.receivables if row.overdue_count),
                ngettext("%(count)s invoice past its due date", "%(count)s invoices past their due date", overdue_count)
                % {"count": format_count(overdue_count)},
                _list_url("invoices_invoice", status__exact="open", due_at__date__lt=data.today.isoformat()),
                "danger" if overdue_count else "",
            )
        )
    if "failed_payments" in sections:
        kpis.append(
            Kpi(
                "failed_payments",
                _("Failed payments"),
                format_count(data.failed_payments),
                _("in the last 30 days"),
                _list_url(
                    "billing_payment",
                    status__exact="failed",
                    attempted_at__date__gte=timezone.localtime(data.failed_payments_since).date().isoformat(),
                ),
                "danger" if data.failed_payments else "",
            )
        )
    if "dunning_active" in sections:
        kpis.append(
            Kpi(
                "dunning",
                _("Dunning cases"),
                format_count(data.dunning_active),
                _("retrying: follow up with these customers"),
                _list_url("billing_dunningcase", status__exact="active"),
                "warning" if data.dunning_active else "",
            )
        )
    if "next_billing_run" in sections:
        run = data.next_billing_run
        if data.livemode:
            value = _when(run.at) if run.at else _("not scheduled")
        else:
            value = _("when a test clock advances")
        kpis.append(
            Kpi(
                "next_billing_run",
                _("Next billing run"),
                value,
                ngettext("%(count)s subscription due", "%(count)s subscriptions due", run.due)
                % {"count": format_count(run.due)},
                _list_url("billing_billingrun"),
            )
        )
    return kpis


def _attention(data: Any, sections: frozenset[str], livemode: bool | None = None) -> list[JsonDict]:
    """The "needs attention" lists: a title, the first rows (text, detail, link), the total."""
    lists: list[JsonDict] = []

    def add(key: str, title: str, attention: Any, rows: list[tuple[str, str, str]], more: str, empty: str) -> None:
        lists.append({"key": key, "title": title, "rows": rows, "total": attention.total, "more": more, "empty": empty})

    if "refunds_awaiting_approval" in sections:
        attention = data.refunds_awaiting_approval
        add(
            "refunds",
            _("Refunds awaiting approval"),
            attention,
            [
                (
                    f"{format_money(refund.amount, refund.currency)} · {refund.payment.customer.legal_name}",
                    _("requested by %(who)s, %(when)s")
                    % {"who": refund.requested_by or "—", "when": _day(refund.requested_at)},
                    _change_url(refund),
                )
                for refund in attention.rows
            ],
            _list_url("billing_refund", status__exact="requested"),
            _("No refund is waiting for a second approver."),
        )
    if "unmatched_bank_lines" in sections and data.unmatched_bank_lines is not None:
        attention = data.unmatched_bank_lines
        add(
            "bank_lines",
            _("Unmatched bank lines"),
            attention,
            [
                (
                    f"{format_money(line.amount, line.currency)} · {line.debtor_name or _('unknown payer')}",
                    f"{_day(line.booking_date)} · {(line.remittance_info or '')[:60]}",
                    _change_url(line),
                )
                for line in attention.rows
            ],
            _list_url("billing_bankstatementline", status__exact="unmatched"),
            _("Every imported bank line is matched or ignored."),
        )
    if "failed_webhooks" in sections:
        attention = data.failed_webhooks
        add(
            "webhooks",
            _("Failed webhook deliveries"),
            attention,
            [
                (
                    f"{delivery.event.type} → {delivery.endpoint.url}",
                    _("%(attempts)d attempts, last: %(error)s")
                    % {
                        "attempts": delivery.attempts,
                        "error": delivery.last_status_code or (delivery.last_error or "—")[:60],
                    },
                    _change_url(delivery),
                )
                for delivery in attention.rows
            ],
            _list_url("billing_webhookdelivery", status__exact="failed"),
            _("Every webhook was delivered or is still being retried."),
        )
    if "billing_run_failures" in sections:
        attention = data.billing_run_failures
        add(
            "billing_run_failures",
            _("Billing-run failures"),
            attention,
            [
                (
                    f"{failure.subscription.customer.legal_name} · {failure.code}",
                    f"{_when(failure.last_attempt_at)} · {failure.message[:80]}",
                    _change_url(failure.run),
                )
                for failure in attention.rows
            ],
            _list_url("billing_billingrun", failures__gt=0),
            _("Every due subscription was invoiced."),
        )
    if "einvoicing_attention" in sections and livemode is not None:
        attention = _einvoicing_attention(livemode)
        add(
            "einvoicing",
            _("E-invoices rejected, refused or not transmitted"),
            attention,
            [
                (
                    f"{(transmission.document.number or '—')} · {transmission.customer.legal_name}",
                    transmission.attention_reason[:100],
                    _change_url(transmission),
                )
                for transmission in attention.rows
            ],
            _list_url("einvoicing_transmission", needs_attention__exact=1),
            _("Every e-invoice was accepted by the platform and the buyer."),
        )
    if "ereporting_attention" in sections and livemode is not None:
        attention = _first_rows(ereporting_periods_needing_attention(livemode=livemode))
        add(
            "ereporting",
            _("E-reporting periods rejected or not built"),
            attention,
            [
                (
                    f"{period.brand.name} · {period.get_kind_display()} · {_day(period.start)}",
                    period.reason[:100] or period.get_state_display(),
                    _change_url(period),
                )
                for period in attention.rows
            ],
            _list_url("ereporting_ereportingperiod"),
            _("Every e-reporting period was built and accepted."),
        )
    return lists


@dataclass(frozen=True)
class _Attention:
    rows: list[Any]
    total: int


def _first_rows(queryset: Any, size: int = 5) -> _Attention:
    """The first rows and the total; the count query only when the first page is full."""
    rows = list(queryset[:size])
    return _Attention(rows=rows, total=queryset.count() if len(rows) == size else len(rows))


def _einvoicing_attention(livemode: bool) -> _Attention:
    """Transmissions the platform rejected, the buyer refused, or that could not be sent (issue 18)."""
    return _first_rows(transmissions_needing_attention(livemode=livemode))


def dashboard_context(request: HttpRequest, context: JsonDict) -> JsonDict:
    """The home page's figures, chart and "needs attention" lists, for the console's mode."""
    livemode = console_livemode(request)
    sections = allowed_sections(request)
    figures = home_figures_current(livemode=livemode) if sections & BOOK_SECTIONS else None
    data = home_dashboard(livemode=livemode, sections=sections, figures=figures)
    figures_as_of = ""
    if data.figures_as_of is not None:
        figures_as_of = _(
            "Subscriptions, receivables and the next run's count as of %(time)s (refreshed every minute)."
        ) % {"time": _as_of_time(data.figures_as_of)}
    as_of = ""
    if "mrr" in sections:
        status = data.mrr_status
        if status.built:
            as_of = _("MRR as of %(time)s (refreshed by the scheduler).") % {"time": _when(status.as_of())}
        else:
            as_of = _("MRR computed live: the MRR summary has not been built yet.")
    context.update(
        {
            "title": _("Home"),
            "dashboard": True,
            "dashboard_livemode": livemode,
            "dashboard_mode_text": _("Live data") if livemode else _("Test data"),
            "dashboard_kpis": _kpis(data, sections),
            "dashboard_mrr_charts": [
                {"currency": figure.currency, "data": _mrr_chart(figure)} for figure in data.mrr[:3]
            ]
            if "mrr" in sections
            else [],
            "dashboard_mrr_as_of": as_of,
            "dashboard_figures_as_of": figures_as_of,
            "dashboard_figures_at": data.figures_as_of,
            "dashboard_mrr_link": reverse("admin:reports_dashboard_report", args=["mrr"]) if "mrr" in sections else "",
            "dashboard_attention": _attention(data, sections, livemode),
        }
    )
    return context


# -- Global search ----------------------------------------------------------------------

# Public ids: `cus_42`, `sub_7`, `in_1031`, `pay_3`... (config/api/ids.py).
PUBLIC_ID = re.compile(r"^(cus|sub|in|pay|cn|re)_(\d{1,18})$")
# A VAT number as typed: a country prefix and 8 to 12 characters (spaces and dots allowed).
VAT_SHAPE = re.compile(r"^[A-Za-z]{2}[\s.\-]*[0-9A-Za-z][0-9A-Za-z\s.\-]{6,16}$")
SEARCH_LIMIT = 8
VAT_SCAN_LIMIT = 5000


def _can(request: HttpRequest, permission: str) -> bool:
    return bool(request.user.has_perm(permission))


def _scoped(request: HttpRequest, queryset: QuerySet) -> QuerySet:
    return scope_to_mode(queryset, livemode=console_livemode(request))


def _compact_vat(text: str) -> str:
    return re.sub(r"[\s.\-]", "", text).upper()


def _customers(request: HttpRequest, term: str) -> list[SearchResult]:
    queryset = _scoped(request, Customer.objects.all())
    matches: list[Any] = list(
        queryset.filter(Q(legal_name__icontains=term) | Q(email__icontains=term) | Q(siren=term.replace(" ", "")))
        .order_by("legal_name", "pk")
        .only("pk", "legal_name", "email", "country")[:SEARCH_LIMIT]
    )
    if VAT_SHAPE.match(term) and len(matches) < SEARCH_LIMIT:
        # VAT numbers are encrypted at rest (no index can find them): compare decrypted values
        # of the customers that have one, in this mode, bounded.
        wanted = _compact_vat(term)
        seen = {customer.pk for customer in matches}
        for customer in queryset.exclude(tax_id="").only("pk", "legal_name", "email", "country", "tax_id")[
            :VAT_SCAN_LIMIT
        ]:
            if customer.pk not in seen and _compact_vat(customer.tax_id or "") == wanted:
                matches.append(customer)
    return [
        SearchResult(
            title=customer.legal_name,
            description=_("Customer · %(email)s") % {"email": customer.email},
            link=_change_url(customer),
            icon="group",
        )
        for customer in matches[:SEARCH_LIMIT]
    ]


def _invoices(request: HttpRequest, term: str, pk: int | None) -> list[SearchResult]:
    condition = Q(number__icontains=term)
    if pk is not None:
        condition |= Q(pk=pk)
    rows = (
        _scoped(request, Invoice.objects.all())
        .filter(condition)
        .select_related("customer")
        .order_by("-pk")[:SEARCH_LIMIT]
    )
    return [
        SearchResult(
            title=str(invoice),
            description=_("Invoice · %(customer)s · %(total)s · %(status)s")
            % {
                "customer": invoice.customer.legal_name,
                "total": format_money(invoice.total, invoice.currency),
                "status": invoice.get_status_display(),
            },
            link=_change_url(invoice),
            icon="receipt_long",
        )
        for invoice in rows
    ]


def _by_pk(request: HttpRequest, model: type[Model], pk: int, describe: Callable[[Any], str], icon: str) -> list:
    obj = _scoped(request, model._default_manager.all()).filter(pk=pk).first()
    if obj is None:
        return []
    return [SearchResult(title=describe(obj), description="", link=_change_url(obj), icon=icon)]


def search_results(request: HttpRequest, search_term: str) -> list[SearchResult]:
    """Customers (name, email, SIREN, VAT number), invoices (number) and public ids
    (`cus_`, `sub_`, `in_`, `pay_`, `cn_`, `re_`), in the console's mode, for what the viewer
    may view."""
    term = search_term.strip()
    if len(term) < 2:
        return []
    results: list[SearchResult] = []
    public = PUBLIC_ID.match(term.lower())
    if public:
        prefix, pk = public[1], int(public[2])
        if prefix == "cus" and _can(request, "customers.view_customer"):
            results += _by_pk(request, Customer, pk, lambda c: _("Customer %(name)s") % {"name": c.legal_name}, "group")
        elif prefix == "sub" and _can(request, "billing.view_subscription"):
            results += _by_pk(
                request,
                Subscription,
                pk,
                lambda s: _("Subscription %(id)s · %(customer)s") % {"id": term, "customer": s.customer.legal_name},
                "autorenew",
            )
        elif prefix == "in" and _can(request, "invoices.view_invoice"):
            results += _invoices(request, term, pk)[:1]
        elif prefix == "pay" and _can(request, "billing.view_payment"):
            results += _by_pk(
                request,
                Payment,
                pk,
                lambda p: (
                    _("Payment %(id)s · %(amount)s · %(customer)s")
                    % {"id": term, "amount": format_money(p.amount, p.currency), "customer": p.customer.legal_name}
                ),
                "payments",
            )
        elif prefix == "cn" and _can(request, "invoices.view_creditnote"):
            results += _by_pk(request, CreditNote, pk, lambda n: _("Credit note %(n)s") % {"n": n}, "undo")
        elif prefix == "re" and _can(request, "billing.view_refund"):
            results += _by_pk(
                request,
                Refund,
                pk,
                lambda r: _("Refund %(id)s · %(amount)s") % {"id": term, "amount": format_money(r.amount, r.currency)},
                "currency_exchange",
            )
        return results
    if _can(request, "customers.view_customer"):
        results += _customers(request, term)
    if _can(request, "invoices.view_invoice"):
        results += _invoices(request, term, None)
    return results
