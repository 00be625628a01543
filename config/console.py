"""The console's toolkit: money and date display, links, error text, service calls, styled and
read-only admin bases, tool forms. Every app's admin builds on it; it imports no app.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from babel.numbers import format_currency, get_decimal_symbol
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext_lazy
from django_countries import countries
from unfold import widgets as unfold_widgets
from unfold.admin import ModelAdmin as UnfoldModelAdmin
from unfold.admin import StackedInline as UnfoldStackedInline
from unfold.admin import TabularInline as UnfoldTabularInline
from unfold.contrib.filters.admin import DropdownFilter
from unfold.contrib.filters.admin.mixins import DropdownMixin, ValueMixin
from unfold.contrib.import_export.forms import ImportForm
from unfold.decorators import display
from unfold.templatetags import unfold_list  # type: ignore[import-untyped]

from config.console_export import ExportFieldsForm
from config.console_pagination import EstimatedCountPaginator
from config.db_routers import use_replica
from config.errors import DomainError
from config.formatting import babel_locale
from config.formatting import format_money as format_money  # re-exported: the console toolkit's money display
from config.money import AmountError, CurrencyError, Money, currency_exponent, parse_major

logger = logging.getLogger(__name__)


ADMIN_MEDIA = forms.Media(css={"all": ("tarif/admin/admin.css",)})


def format_minor_decimal(value: Decimal | None, currency: str | None) -> str:
    """A unit amount in (possibly fractional) minor units: 0.5 EUR cents -> "0,005 €"."""
    if value is None or not currency:
        return "—"
    try:
        exponent = currency_exponent(currency)
    except CurrencyError:
        return f"{value} {currency}"
    major = Decimal(value).scaleb(-exponent)
    rounded = major.quantize(Decimal(1).scaleb(-exponent))
    if major == rounded:
        return format_currency(rounded, currency, locale=babel_locale())
    return format_currency(major.normalize(), currency, locale=babel_locale(), decimal_quantization=False)


class MajorAmountField(forms.CharField):
    """An amount typed in major units as the reader writes it: "1 234,56" in French, "1,234.56"
    in English, "12.5" in both (config.money.parse_major). The form turns the text into
    minor units with `major_to_money` once it knows the currency (`Money.from_major`, the
    one constructor of typed amounts), so every console form reads amounts the same way.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 40)
        kwargs.setdefault("widget", forms.TextInput(attrs={"class": "vTextField", "inputmode": "decimal"}))
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, Decimal):  # an initial value: in the reader's own writing
            return format(value, "f").replace(".", get_decimal_symbol(babel_locale()))
        return value

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        if text:
            parse_major(text, locale=babel_locale())  # "not an amount" next to the field at once
        return text


def major_to_money(
    form: forms.BaseForm,
    name: str,
    currency: str,
    *,
    minimum: int | None = 0,
    maximum: int | None = None,
) -> Money | None:
    """A form's typed amount (`MajorAmountField`) as Money in `currency`, or None.

    An empty field is zero. A refusal (more decimals than the currency has, out of
    bounds) becomes the field's error, and None comes back.
    """
    text = form.cleaned_data.get(name) or "0"
    try:
        return Money.from_major(text, currency, locale=babel_locale(), minimum=minimum, maximum=maximum)
    except (AmountError, CurrencyError) as error:
        form.add_error(name if name in form.fields else None, error_text(error))
        return None


def format_period(start: datetime | None, end: datetime | None) -> str:
    if not start or not end:
        return "—"
    first, last = (date_format(timezone.localtime(moment), "DATE_FORMAT") for moment in (start, end))
    return f"{first} → {last}"


def pretty_json(value: Any) -> str:
    return format_html("<pre class='tarif-json'>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, default=str))


def admin_link(obj: Any, label: Any = None) -> str:
    if obj is None:
        return "—"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label if label is not None else obj)


def error_text(error: Exception) -> str:
    if isinstance(error, DomainError):
        return error.message_text()
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error)


def call_service(
    form: forms.Form, operation: Any, *, errors: tuple[type[Exception], ...], atomic: bool = True
) -> Any | None:
    """Run a console form's service call; a refused request becomes a form error.

    Returns the service's result, or None when it refused. `atomic` gives the call its
    own transaction, which services running in their caller's transaction need (their
    refusal would otherwise spoil the request's); services that open a durable
    transaction themselves are called with atomic=False.
    """
    try:
        if not atomic:
            return operation()
        with transaction.atomic():
            return operation()
    except errors as error:
        form.add_error(None, error_text(error))
        return None


class StyledMixin:
    """Loads Tarif's admin stylesheet (progress bars, chart, money tables) with the admin's media."""

    @property
    def media(self) -> forms.Media:
        return super().media + ADMIN_MEDIA


class StyledAdmin(StyledMixin, UnfoldModelAdmin):
    """Every console page's base: django-unfold's ModelAdmin (widgets, filters, tabs, actions),
    its import/export forms, and Tarif's stylesheet. Admins mixing in django-import-export list
    this class before the import-export base so unfold's templates and forms win."""

    import_form_class = ImportForm

    def has_act_permission(self, request: HttpRequest) -> bool:
        """Bulk actions that move something on rows staff never edit by hand (retry a payment,
        re-run matching): those who may change the model, i.e. Finance, not Support or Read-only.
        `@admin.action(permissions=["act"])` (a ReadOnlyAdminMixin's change permission is False)."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    export_form_class = ExportFieldsForm  # columns to tick, a working "select all" (config/console_export.py)

    def get_data_for_export(self, request: HttpRequest, queryset: Any, **kwargs: Any) -> Any:
        """django-import-export's export of a list: read on the replica when the lag guard allows (issue 20)."""
        with use_replica():
            return super().get_data_for_export(request, queryset, **kwargs)  # type: ignore[misc]

    list_filter_submit = True
    warn_unsaved_form = True
    # Issue 20: no exact COUNT(*) of a large table per page view (config/console_pagination.py).
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    # Issue 20: 50 rows a page, not Django's 100. The SQL of a page is a few ms even at a million
    # subscriptions; rendering each row's cells through unfold is what a list view costs (about
    # 2 ms a row on this machine), so the page's time halves. Stripe's dashboard shows 25.
    list_per_page = 50


class TabularInline(UnfoldTabularInline):
    """A console inline (django-unfold's table layout)."""


class StackedInline(UnfoldStackedInline):
    """A console inline (django-unfold's stacked layout)."""


class ImportExportPermissions:
    """Imports write rows, so they need the add and change permissions; exports need view.

    django-import-export allows both to any staff user unless IMPORT_EXPORT_*_PERMISSION_CODE
    is set; a read-only role must not be able to import a catalog.
    """

    def has_import_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.add_{self.opts.model_name}") and request.user.has_perm(
            f"{self.opts.app_label}.change_{self.opts.model_name}"
        )

    def has_export_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)


class ReadOnlyAdminMixin:
    """Rows written only by services: the console shows them and never edits them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(UnfoldTabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def render_tool_form(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    title: str,
    form: forms.Form,
    submit_label: str,
    intro: str = "",
    objects: Any = (),
    hidden: Any = (),
) -> TemplateResponse:
    """A console page with one form (see templates/admin/billing/tool_form.html)."""
    style_widgets(form)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        "form": form,
        "submit_label": submit_label,
        "intro": intro,
        "objects": objects,
        "hidden": hidden,
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, "admin/billing/tool_form.html", context)


def autocomplete(form_field: forms.ModelChoiceField, model_field: Any, admin_site: admin.AdminSite) -> None:
    """Give a plain form's choice field the admin's search-as-you-type widget."""
    form_field.widget = AutocompleteSelect(model_field, admin_site)
    form_field.widget.choices = form_field.choices


class UtcDateTimeField(forms.DateTimeField):
    """A browser datetime picker; the value is read in the console's time zone."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S")


def run_each(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    objects: Iterable[Any],
    operation: Callable[[Any], object],
    *,
    errors: tuple[type[Exception], ...],
    done: Any,
    label: Callable[[Any], str] = str,
) -> int:
    """A bulk action: apply `operation` (a service call) to each object in a transaction of its
    own, so a refusal rolls back that object only; each refusal is shown with the object's
    label, then `done` (an ngettext_lazy message keyed on count) for the others. Returns the count."""
    count = 0
    for obj in objects:
        try:
            with transaction.atomic():
                operation(obj)
        except errors as error:
            model_admin.message_user(request, f"{label(obj)}: {error_text(error)}", messages.ERROR)
        else:
            count += 1
    if count:
        model_admin.message_user(request, done % {"count": count}, messages.SUCCESS)
    return count


# --- i18n & fit (engineer 7): filters that scale and read in the operator's language ---


class CountryFilter(DropdownFilter):
    """A searchable country filter: only the countries in use, named and sorted in the operator's
    language (Django's default lists all 249 names, read once). Keeps Django's `country__exact`
    parameter so links and bookmarks still work. Subclass with another `field_name` if needed."""

    title = gettext_lazy("country")
    field_name = "country"
    parameter_name = "country__exact"

    def codes_in_use(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> Iterable[str]:
        """The distinct codes of the list's rows; a large table's admin overrides it with an indexed read."""
        return model_admin.get_queryset(request).order_by().values_list(self.field_name, flat=True).distinct()

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        codes = self.codes_in_use(request, model_admin)
        named = [(str(code), str(countries.name(str(code)) or code)) for code in codes if code]
        return sorted(named, key=lambda pair: _collation_key(pair[1]))

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        return queryset.filter(**{self.field_name: value}) if value else queryset


def _collation_key(text: str) -> str:
    """Sort "Équateur" with the E's, as a French reader expects, without the process locale."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()


# -- money (payments, refunds, bank reconciliation, catalog, developers, settings) -------------
# Status badges and truncated identifiers for the money pages' lists.

STATUS_VARIANTS = ("success", "info", "warning", "danger")


def status_badge(
    field: str, description: Any, variants: Mapping[str, str], *, ordering: str | None = None
) -> Callable[[Any, Any], tuple[str, str]]:
    """A list column showing a choice field as a coloured badge (unfold's `@display(label=...)`):
    `variants` maps a stored value to "success", "info", "warning" or "danger"; other values
    show as a grey badge. The badge reads the choice's translated label."""

    @display(description=description, ordering=ordering or field, label=variants)
    def column(model_admin: Any, obj: Any) -> tuple[str, str]:
        return getattr(obj, field), getattr(obj, f"get_{field}_display")()

    return column


def truncated(text: str | None, length: int = 12) -> str:
    """A long identifier (hash, gateway id, URL) cut to `length` characters, whole in its tooltip."""
    if not text:
        return "—"
    if len(text) <= length:
        return format_html('<span class="tarif-id">{}</span>', text)
    return format_html('<span class="tarif-id" title="{}">{}…</span>', text, text[:length])


def money_amount_field_help(currency: str) -> str:
    """The help under an amount typed in major units: the currency and how many decimals it takes."""
    try:
        digits = currency_exponent(currency)
    except CurrencyError:
        return ""
    if not digits:
        return translation.gettext("In %(currency)s, whole units (no decimals).") % {"currency": currency}
    return translation.ngettext(
        "In %(currency)s, up to %(digits)d decimal.", "In %(currency)s, up to %(digits)d decimals.", digits
    ) % {"currency": currency, "digits": digits}


# Widgets a plain form builds (TextInput, Select, Textarea...) render unstyled in unfold's pages;
# tool forms get unfold's input classes on them, whatever the form declared.
_UNFOLD_WIDGET_CLASSES: tuple[tuple[type[forms.Widget], list[str]], ...] = (
    (forms.CheckboxInput, unfold_widgets.CHECKBOX_CLASSES),
    (forms.Textarea, unfold_widgets.TEXTAREA_CLASSES),
    (forms.Select, [name for name in unfold_widgets.SELECT_CLASSES if name != "appearance-none"]),
    (forms.DateTimeInput, unfold_widgets.DATETIME_CLASSES),
    (forms.DateInput, unfold_widgets.DATETIME_CLASSES),
    (forms.widgets.Input, unfold_widgets.INPUT_CLASSES),
)


def style_widgets(form: forms.BaseForm) -> forms.BaseForm:
    """Give a plain form's widgets unfold's look (the admin's own autocomplete widgets keep theirs)."""
    for field in form.fields.values():
        widget = field.widget
        if isinstance(widget, AutocompleteSelect) or type(widget).__module__.startswith("unfold"):
            continue
        for widget_type, classes in _UNFOLD_WIDGET_CLASSES:
            if isinstance(widget, widget_type):
                present = widget.attrs.get("class", "")
                widget.attrs["class"] = " ".join([present, *classes]).strip()
                break
    return form


class AllValuesDropdownFilter(ValueMixin, DropdownMixin, admin.AllValuesFieldListFilter):
    """A text column's distinct values (event types, audit actions) in unfold's searchable dropdown,
    instead of a list of links that runs down the page."""

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() not in (None, ""):
            return super().queryset(request, queryset)
        return queryset

    def choices(self, changelist: Any) -> Iterable[dict[str, Any]]:
        values = [(str(value), str(value)) for value in self.lookup_choices if value not in (None, "")]
        yield {
            "form": self.form_class(
                label=translation.gettext(" By %(filter_title)s ") % {"filter_title": self.title},
                name=self.lookup_kwarg,
                choices=[self.all_option, *values],
                data={self.lookup_kwarg: self.value()},
                multiple=False,
            ),
        }


# --- issue 20: the column headers of a console list, computed once per page ---
# unfold's `items_for_result` recomputes every column header (sort links, query strings,
# translated labels) for each cell of each row, to label the cells on narrow screens: 909
# header computations for a page of 100 invoices, a quarter of the page's rendering time.
# The headers depend on the changelist only, so they are kept on it for the page.


def _result_headers_once_per_page(result_headers: Any) -> Any:
    def headers_of(changelist: Any) -> Any:
        headers = getattr(changelist, "_tarif_result_headers", None)
        if headers is None:
            headers = list(result_headers(changelist))
            changelist._tarif_result_headers = headers
        return iter(headers)

    return headers_of


unfold_list.result_headers = _result_headers_once_per_page(unfold_list.result_headers)
