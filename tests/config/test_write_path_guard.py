"""Guard for STYLE rule 16: no console page and no spreadsheet import writes around the services.

Walks every ModelAdmin on the operator console and every import-export resource the
console imports with. For each of Tarif's models that the console can add, change or
delete, the code that writes (save_model / delete_model / delete_queryset, a custom
add view, import-export's save_instance) must reach a service function (a module
named `services`), or the model must be on a short allow-list below with the reason
it has no business rule to bypass. A new admin that lets Django's default
`obj.save()` write a business row fails here.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

import pytest
from django.contrib import admin
from django.test import RequestFactory
from import_export import resources
from import_export.admin import ImportMixin

from config.write_path import ServiceAdminMixin, ServiceResourceMixin

pytestmark = pytest.mark.django_db

TARIF_PACKAGES = ("customers", "billing", "invoices", "reports", "feedback", "config")
# Services that do not live in a `services` module.
EXTRA_SERVICE_MODULES = ("config.api.keys",)

# Models the console may add or change without a service: configuration with no rule
# and no event to bypass. Each needs its reason; keep this list short.
WRITE_ALLOWED = {
    "feedback.Survey": "survey configuration (texts, trigger, throttling); answers are written by services",
    "feedback.Question": "survey configuration; answers are checked by survey_answers_validate",
    # The brand itself saves through invoices.services.brands.brand_save (bank details need a
    # fresh second factor); its inlines (printed custom fields, line columns) are configuration.
    "invoices.Brand": "seller identity and look; finalization copies it into each invoice's frozen snapshot",
    "invoices.InvoiceCustomField": "printed extra fields; finalization copies them into the frozen snapshot",
    "invoices.TaxRate": "reference rates; finalization copies the rate applied into each line",
    "invoices.TaxCode": "reference VAT treatment and its per-country rates (inline), like TaxRate; the database "
    "checks the exemption rules and finalization copies the code's rate and reason into each line",
    "invoices.Invoice": "a draft's memo and language only (DRAFT_EDITABLE); issued invoices are read-only here "
    "and frozen by the database; the state changes are actions calling invoices.services",
    "billing.Subscription": "metadata only: every other field is read-only, changes are actions calling services",
    "billing.WebhookDelivery": "every field is read-only; the resend action calls webhook_deliveries_resend",
    "ereporting.EReportingRegime": "a brand's VAT regime for e-reporting (configuration): it only decides the "
    "periods the builder makes next; built periods keep their own dates",
}
# Admins whose inline rows the parent's service writes: save_model hands the inline's items to the
# service and save_related saves no formset.
INLINE_SAVED_BY_PARENT_SERVICE = {
    "quotes.Quote": "the items inline is checked by the engine and saved by quote_create / quote_update",
}
# Models the console may delete without a service.
DELETE_ALLOWED = {
    **{label: WRITE_ALLOWED[label] for label in ("feedback.Survey", "feedback.Question", "invoices.Brand")},
    "invoices.InvoiceCustomField": WRITE_ALLOWED["invoices.InvoiceCustomField"],
    "invoices.TaxRate": "lines keep their own rate; a rate in use by drafts is re-read when they are rebuilt",
    "invoices.TaxCode": "the database refuses (PROTECT) once a product, price or brand uses it; "
    "lines keep their own rate",
    "invoices.Invoice": "drafts only (has_delete_permission); a finalized invoice cannot be deleted, "
    "by the console or the database",
    "billing.Product": "the database refuses (PROTECT) once a price uses it; an unused product has no history",
    "billing.Price": "the database refuses (PROTECT) once a subscription, invoice line or invoice item uses it",
    "billing.Meter": "the database refuses (PROTECT) once usage or a price uses it",
    "billing.PromotionCode": "the database refuses (PROTECT) once a subscription used it",
    "billing.TestClock": "test mode only; its customers go with it",
    "billing.WebhookEndpoint": "integration configuration; its deliveries go with it",
    "billing.WebhookDelivery": "an outbound delivery record; the event itself stays in the log",
    "ereporting.EReportingRegime": WRITE_ALLOWED["ereporting.EReportingRegime"],
}
# Import resources that write rows without a service, and why.
IMPORT_ALLOWED = {
    "BankStatementLineResource": "append-only bank lines (existing lines are skipped); each new line is "
    "matched by billing.services.reconciliation.bank_line_match in after_save_instance",
    "TaxRateResource": WRITE_ALLOWED["invoices.TaxRate"],
}


class _Superuser:
    is_active = is_staff = is_superuser = is_authenticated = True
    pk = id = None

    def has_perm(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def has_perms(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def has_module_perms(self, *args: Any) -> bool:
        return True


def _request():
    request = RequestFactory().get("/admin/")
    request.user = _Superuser()
    return request


def _is_service_module(name: str) -> bool:
    return "services" in name.split(".") or name in EXTRA_SERVICE_MODULES


def _code_objects(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def reaches_service(function: Any, owner: type, depth: int = 4) -> bool:
    """Whether `function` (a method of `owner`) calls a service, directly or through owner's methods."""
    function = inspect.unwrap(getattr(function, "__func__", function))
    code = getattr(function, "__code__", None)
    if code is None or depth < 0:
        return False
    for block in _code_objects(code):
        for name in block.co_names:
            if _is_service_module(name):  # a local `from x.services import ...`
                return True
            target = function.__globals__.get(name)
            if isinstance(target, types.ModuleType) and _is_service_module(target.__name__):
                return True
            if callable(target) and _is_service_module(getattr(target, "__module__", "") or ""):
                return True
            method = inspect.getattr_static(owner, name, None)
            if isinstance(method, types.FunctionType | staticmethod | classmethod) and method is not function:
                if reaches_service(getattr(method, "__func__", method), owner, depth - 1):
                    return True
    return False


def _overrides(owner: type, name: str, base: type) -> bool:
    return getattr(owner, name) is not getattr(base, name)


def _tarif_admins():
    for model, model_admin in sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label):
        if model.__module__.split(".")[0] in TARIF_PACKAGES:
            yield model, model_admin


def _writes_through_service(model_admin: admin.ModelAdmin) -> bool:
    owner = type(model_admin)
    if isinstance(model_admin, ServiceAdminMixin):
        return reaches_service(owner.service_create, owner) and reaches_service(owner.service_update, owner)
    return _overrides(owner, "save_model", admin.ModelAdmin) and reaches_service(owner.save_model, owner)


def console_write_bypasses() -> list[str]:
    request = _request()
    found = []
    for model, model_admin in _tarif_admins():
        label, owner = model._meta.label, type(model_admin)
        can_add = model_admin.has_add_permission(request)
        can_change = model_admin.has_change_permission(request)
        if can_add and _overrides(owner, "add_view", admin.ModelAdmin) and not can_change:
            if not reaches_service(owner.add_view, owner):
                found.append(f"{label}: its add page does not call a service")
        elif (can_add or can_change) and label not in WRITE_ALLOWED and not _writes_through_service(model_admin):
            found.append(f"{label}: the console saves it with Model.save() (no service in save_model)")
        if model_admin.has_delete_permission(request) and label not in DELETE_ALLOWED:
            for method in ("delete_model", "delete_queryset"):
                if not (_overrides(owner, method, admin.ModelAdmin) and reaches_service(getattr(owner, method), owner)):
                    found.append(f"{label}: {method} deletes without a service")
        for inline in model_admin.get_inline_instances(request):
            writable = (
                inline.has_add_permission(request, None)
                or inline.has_change_permission(request)
                or inline.has_delete_permission(request)
            )
            saved_by_parent = label in INLINE_SAVED_BY_PARENT_SERVICE and _overrides(
                owner, "save_related", admin.ModelAdmin
            )
            if writable and label not in WRITE_ALLOWED and not saved_by_parent:
                found.append(f"{label}: the inline {type(inline).__name__} writes rows without a service")
    return found


def _import_resources():
    request = _request()
    for model, model_admin in _tarif_admins():
        if isinstance(model_admin, ImportMixin) and model_admin.has_import_permission(request):
            for resource_class in model_admin.get_import_resource_classes(request):
                yield model, resource_class


def import_bypasses() -> list[str]:
    found = []
    for model, resource_class in _import_resources():
        name = resource_class.__name__
        if name in IMPORT_ALLOWED:
            continue
        if issubclass(resource_class, ServiceResourceMixin):
            through = reaches_service(resource_class.service_create, resource_class) and reaches_service(
                resource_class.service_update, resource_class
            )
        else:
            through = _overrides(resource_class, "save_instance", resources.ModelResource) and reaches_service(
                resource_class.save_instance, resource_class
            )
        if not through:
            found.append(f"{model._meta.label}: {name} saves imported rows with Model.save()")
    return found


def test_every_console_page_of_a_business_model_writes_through_a_service():
    assert console_write_bypasses() == []


def test_every_spreadsheet_import_writes_through_a_service():
    assert list(_import_resources()), "the walk found no import at all: the guard would prove nothing"
    assert import_bypasses() == []


def test_the_allow_lists_name_only_models_the_console_really_shows():
    labels = {model._meta.label for model, _admin in _tarif_admins()}
    resource_names = {resource_class.__name__ for _model, resource_class in _import_resources()}

    assert set(WRITE_ALLOWED) <= labels and set(DELETE_ALLOWED) <= labels
    assert set(IMPORT_ALLOWED) <= resource_names


# -- negative controls: the guard catches what it claims to catch ---------------------------


def test_the_guard_catches_an_admin_that_saves_a_business_row_itself(monkeypatch):
    from billing.models import Price

    class BypassingPriceAdmin(admin.ModelAdmin):
        pass

    monkeypatch.setitem(admin.site._registry, Price, BypassingPriceAdmin(Price, admin.site))

    found = console_write_bypasses()

    assert "billing.Price: the console saves it with Model.save() (no service in save_model)" in found
    assert "billing.Price: delete_model deletes without a service" not in found  # Price deletes are allowed


def test_the_guard_catches_a_save_model_that_only_pretends(monkeypatch):
    from customers.models import Customer

    class PretendingCustomerAdmin(admin.ModelAdmin):
        def save_model(self, request: Any, obj: Any, form: Any, change: bool) -> None:
            obj.full_clean()
            obj.save()

    monkeypatch.setitem(admin.site._registry, Customer, PretendingCustomerAdmin(Customer, admin.site))

    found = console_write_bypasses()

    assert any(line.startswith("customers.Customer: the console saves it") for line in found)
    assert "customers.Customer: delete_model deletes without a service" in found


def test_the_guard_catches_an_import_that_saves_rows_itself(monkeypatch):
    from billing.admin.catalog import CouponAdmin
    from billing.models import Coupon

    class PlainCouponResource(resources.ModelResource):
        class Meta:
            model = Coupon

    monkeypatch.setattr(CouponAdmin, "resource_classes", [PlainCouponResource])

    assert "billing.Coupon: PlainCouponResource saves imported rows with Model.save()" in import_bypasses()
