"""The filters every report takes (period, brand, currency, plan, country) and the month calendar."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from django_countries import countries

from config import clock
from config.modes import default_livemode
from invoices.models import Brand

MAX_MONTHS = 120


@dataclass(frozen=True, slots=True)
class ReportFilters:
    """What a report looks at. `start` and `end` are months (day 1), both included."""

    start: date
    end: date
    brand: int | None = None
    currency: str | None = None
    plan: int | None = None  # a Price id: the plans customers subscribe to
    country: str | None = None
    customer: int | None = None  # the customer timeline needs one
    min_changes: int = 1  # plan-change history: customers with at least this many changes
    # Live data only, unless the viewer is in test mode (a sandbox key, the console's "Test data").
    livemode: bool = field(default_factory=default_livemode)

    @property
    def month_count(self) -> int:
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month + 1

    def with_months(self, *, start: date, end: date) -> ReportFilters:
        return replace(self, start=start, end=end)


def report_timezone() -> ZoneInfo:
    return ZoneInfo(settings.TARIF_REPORTS_TIMEZONE)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def month_start(month: date) -> datetime:
    """The first instant of `month` in the reporting time zone (an aware datetime)."""
    return datetime(month.year, month.month, 1, tzinfo=report_timezone())


def months_between(start: date, end: date) -> list[date]:
    count = (end.year - start.year) * 12 + end.month - start.month + 1
    return [add_months(date(start.year, start.month, 1), offset) for offset in range(max(count, 0))]


def default_filters() -> ReportFilters:
    """The last twelve months, this month included."""
    today = clock.system_now().astimezone(report_timezone()).date()
    end = date(today.year, today.month, 1)
    return ReportFilters(start=add_months(end, -11), end=end)


class ReportFilterForm(forms.Form):
    """Validates the query string of a dashboard, an export or an API call."""

    start = forms.DateField(label=_("From (month)"), required=False, help_text=_("YYYY-MM or YYYY-MM-DD"))
    end = forms.DateField(label=_("To (month)"), required=False)
    brand = forms.IntegerField(label=_("Brand"), required=False, min_value=1)
    currency = forms.RegexField(label=_("Currency"), regex=r"^[A-Za-z]{3}$", required=False)
    plan = forms.IntegerField(label=_("Plan (price id)"), required=False, min_value=1)
    # a callable: the names are read in the request's language, not the one active at import (issue 15)
    country = forms.ChoiceField(label=_("Country"), choices=lambda: [("", "—"), *countries], required=False)
    customer = forms.IntegerField(label=_("Customer id"), required=False, min_value=1)
    min_changes = forms.IntegerField(label=_("At least (changes)"), required=False, min_value=1, max_value=1000)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        month_formats = ["%Y-%m", "%Y-%m-%d"]
        self.fields["start"].input_formats = month_formats
        self.fields["end"].input_formats = month_formats

        self.fields["brand"].widget = forms.Select(
            choices=[("", "—"), *Brand.objects.order_by("name").values_list("pk", "name")]
        )

    def clean(self) -> dict:
        data = super().clean()
        defaults = default_filters()
        start = data.get("start") or defaults.start
        end = data.get("end") or (add_months(start, 11) if data.get("start") else defaults.end)
        start, end = date(start.year, start.month, 1), date(end.year, end.month, 1)
        if end < start:
            raise forms.ValidationError(_("The period ends before it starts."), code="period_reversed")
        if (end.year - start.year) * 12 + end.month - start.month + 1 > MAX_MONTHS:
            raise forms.ValidationError(
                _("A report covers at most %(months)d months.") % {"months": MAX_MONTHS}, code="period_too_long"
            )
        data["start"], data["end"] = start, end
        return data

    def filters(self) -> ReportFilters:
        data = self.cleaned_data
        return ReportFilters(
            start=data["start"],
            end=data["end"],
            brand=data.get("brand"),
            currency=(data.get("currency") or "").upper() or None,
            plan=data.get("plan"),
            country=data.get("country") or None,
            customer=data.get("customer"),
            min_changes=data.get("min_changes") or 1,
        )
