"""Hostile input on every form of the operator console: never a 5xx (issue 13).

Every URL of every ModelAdmin (add, change, changelist actions, custom pages such as
"run billing", "advance clock", imports...) is fetched once as a superuser; every form the
page shows (the admin form, custom forms, the action form, inline formsets' management
forms) is then posted back with each field drawn from hostile values: huge and odd text,
injection strings, overflowing and malformed numbers, real ids of the world below, wrong
choices, hostile files. The test is transactional: each POST commits or rolls back on its
own, as a request does in production. Bounded: `TARIF_HOSTILE_EXAMPLES` posts per form (default 2).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from django import forms
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import NoReverseMatch, reverse
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.ops.test_hostile_input import AMOUNTS, HOSTILE

pytestmark = pytest.mark.django_db

EXAMPLES_PER_FORM = int(os.environ.get("TARIF_HOSTILE_EXAMPLES", "2"))
NUMBERS = [*AMOUNTS, "9223372036854775807", "-9223372036854775808", "18446744073709551616", "1e100000", "1.5"]
SKIPPED_SUFFIXES = ("_delete", "_history", "_autocomplete", "_export", "_process_import")
COUNT_FILE = os.environ.get("TARIF_HOSTILE_COUNT_FILE")


def console_pages() -> list[tuple[str, str, Any]]:
    """(url name, model label, admin) of every page of every registered ModelAdmin."""
    site = admin.site  # the OTP-protected TarifAdminSite (config/apps.py default_site)
    pages = []
    for model, model_admin in site._registry.items():
        for pattern in model_admin.get_urls():
            name = getattr(pattern, "name", None)
            if not name or name.endswith(SKIPPED_SUFFIXES):
                continue
            pages.append((name, model._meta.label_lower, model_admin))
    return sorted(pages, key=lambda page: page[0])


def _url(name: str, model: type, needs_id: bool) -> str | None:
    if needs_id:
        obj = model._default_manager.order_by("pk").first()
        if obj is None:
            return None
        try:
            return reverse(f"admin:{name}", kwargs={"object_id": obj.pk})
        except NoReverseMatch:
            try:
                return reverse(f"admin:{name}", args=[obj.pk])
            except NoReverseMatch:
                return None  # a page of a part of the object (an invoice's line): the object's own pages cover it
    try:
        return reverse(f"admin:{name}")
    except NoReverseMatch:
        return None


def _forms_in(context: Any) -> list[Any]:
    from django.contrib.admin.helpers import AdminForm, InlineAdminFormSet

    found: list[Any] = []
    if context is None:
        return found
    if hasattr(context, "flatten"):  # a RequestContext (a TemplateResponse rendered by hand)
        context = context.flatten()
    for key in context.keys():
        value = context[key]
        if isinstance(value, AdminForm):
            value = value.form
        if isinstance(value, forms.BaseForm | forms.BaseFormSet):
            found.append(value)
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, InlineAdminFormSet):
                    found.append(item.formset)
    unique = []
    for form in found:
        if all(form is not other for other in unique):
            unique.append(form)
    return unique


def _field_strategy(field: forms.Field) -> st.SearchStrategy:
    text = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=200), st.sampled_from(NUMBERS))
    if isinstance(field, forms.BooleanField):
        return st.sampled_from(["on", "", "false", "yes"])
    if isinstance(field, forms.FileField):
        payloads = [b"", b"\x00\xff" * 100, b"a;b;c\n1;2;3\n", HOSTILE[0].encode(), b"%PDF-1.4 garbage"]
        return st.sampled_from(payloads).map(lambda body: SimpleUploadedFile("hostile.csv", body, "text/csv"))
    if isinstance(field, forms.ModelMultipleChoiceField):
        real = [str(pk) for pk in field.queryset.values_list("pk", flat=True)[:3]]
        return st.lists(st.sampled_from([*real, "abc", "-1", "99999999999"]), max_size=3)
    if isinstance(field, forms.ModelChoiceField):
        real = [str(pk) for pk in field.queryset.values_list("pk", flat=True)[:3]]
        return st.one_of(st.sampled_from([*real, "", "abc", "-1", "99999999999999999999"]), text)
    if isinstance(field, forms.MultipleChoiceField):
        values = [str(value) for value, _label in field.choices if value not in ("", None)][:10]
        return st.lists(st.sampled_from([*values, "nope"]), max_size=3)
    if isinstance(field, forms.ChoiceField):
        values = [str(value) for value, _label in field.choices if not isinstance(_label, list | tuple)][:20]
        return st.one_of(st.sampled_from([*values, "nope"]) if values else text, text)
    if isinstance(field, forms.IntegerField | forms.DecimalField | forms.FloatField):
        return st.one_of(st.sampled_from(NUMBERS), st.integers(-(2**70), 2**70).map(str))
    return text


def _post_data(draw: Any, form: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if isinstance(form, forms.BaseFormSet):
        prefix = form.prefix
        data[f"{prefix}-TOTAL_FORMS"] = draw(st.sampled_from(["0", "1", "1000000", "-1", "x"]))
        data[f"{prefix}-INITIAL_FORMS"] = "0"
        data[f"{prefix}-MIN_NUM_FORMS"] = "0"
        data[f"{prefix}-MAX_NUM_FORMS"] = "1000"
        template = form.empty_form
        for name, field in template.fields.items():
            if isinstance(field, forms.MultiValueField):
                continue
            data[f"{prefix}-0-{name}"] = draw(_field_strategy(field))
        return data
    for name, field in form.fields.items():
        key = form.add_prefix(name)
        if isinstance(field, forms.MultiValueField):
            for index in range(len(field.fields)):
                data[f"{key}_{index}"] = draw(st.one_of(st.sampled_from(HOSTILE), st.sampled_from(NUMBERS)))
            continue
        if draw(st.integers(0, 9)) == 0:
            continue  # sometimes leave a field out
        data[key] = draw(_field_strategy(field))
    return data


def _record(count: int, what: str) -> None:
    if COUNT_FILE:
        with open(COUNT_FILE, "a") as out:
            out.write(f"console {what} {count}\n")


PAGES = console_pages()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # each request commits on its own, as in production
def test_hostile_posts_to_every_console_form_never_fail(console, fuzz_console_world):
    """One signed-in console and one world for all pages (a login per page cost minutes)."""
    console.raise_request_exception = False  # a view's exception is a 500 response to record, not an abort
    failures: list[str] = []
    opened = 0
    for name, _label, model_admin in PAGES:
        url = _url(name, model_admin.model, "object_id" in _pattern_params(model_admin, name))
        if url is None:
            continue  # no object of that kind in the world (e.g. a dj-stripe mirror)
        opened += 1
        failures += _hostile_posts(console, url)
    assert opened > 50, opened
    assert not failures, "\n".join(failures[:20])


def _hostile_posts(console: Any, url: str) -> list[str]:
    page = console.get(url)
    if page.status_code >= 500:
        return [f"GET {url}: {page.status_code}"]
    page_forms = _forms_in(page.context) if page.status_code == 200 else []
    if not page_forms:
        page_forms = [forms.Form()]  # a page without a form still gets hostile POSTs
    failures: list[str] = []
    sent: list[int] = []

    @settings(
        max_examples=EXAMPLES_PER_FORM,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(data=st.data())
    def post(data):
        body: dict[str, Any] = {}
        for form in page_forms:
            body.update(_post_data(data.draw, form))
        response = console.post(url, body)
        sent.append(response.status_code)
        if response.status_code >= 500:
            failures.append(f"POST {url} {sorted(body)}: {response.status_code}")

    post()
    _record(len(sent), url)
    return failures


def _pattern_params(model_admin: Any, name: str) -> set[str]:
    for pattern in model_admin.get_urls():
        if getattr(pattern, "name", None) == name:
            return set(pattern.pattern.regex.groupindex)
    return set()


@pytest.fixture
def fuzz_console_world(customer_factory, price_factory, brand_factory, tax_rate, settings):
    """One object of each kind the console's pages open (customer, price, subscription, invoice...)."""
    from billing.services.invoice_items import invoice_item_create
    from billing.services.payments import payment_record_manual
    from billing.services.subscriptions import ItemSpec, subscription_create
    from billing.services.test_clocks import test_clock_create

    settings.TARIF_RENDER_DOCUMENTS = False  # PDFs are not what this test is about
    brand_factory(is_default=True)
    customer = customer_factory()
    price = price_factory(unit_amount=2900)
    subscription = subscription_create(customer=customer, items=[ItemSpec(price=price, quantity=2)])
    invoice = subscription.invoices.order_by("pk").first()
    invoice_item_create(customer=customer, description="Extra", amount=500)
    try:
        payment_record_manual(invoice=invoice, amount=1000, method="bank_transfer", reference="HOSTILE")
    except Exception:  # noqa: BLE001 -- the world is best effort: a page without its object is skipped
        pass
    test_clock_create(name="hostile", frozen_time=subscription.current_period_start)
    return customer


# -- the console 500s this fuzz found, pinned ------------------------------------------------------


def test_an_empty_or_null_json_field_in_a_console_form_is_not_a_500(console):
    base = {"name": "Nuage", "description": "", "unit_label": "", "active": "on"}
    for metadata in ("", "null", '{"a": "\\u0000"}'):
        with transaction.atomic():
            response = console.post(reverse("admin:billing_product_add"), {**base, "metadata": metadata})
            assert response.status_code in (200, 302), (metadata, response.status_code)


def test_an_unreadable_id_in_an_autocomplete_field_is_a_form_error_not_a_500(console):
    body = {"customer": "'; DROP TABLE customers_customer; --", "description": "x", "amount": "1", "quantity": "1"}

    response = console.post(reverse("admin:billing_invoiceitem_add"), body)

    assert response.status_code == 200  # the form again, with its errors


def test_the_dj_stripe_mirror_is_read_only_in_the_console(console):
    response = console.get("/admin/djstripe/refund/add/")

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("price", "quantity"), [("pro\x00monthly", "1"), ("²", "1"), ("1", "99999999999999999999999"), ("1", "²")]
)
def test_hostile_item_values_in_the_subscription_form_are_form_errors_not_a_500(console, customer, price, quantity):
    body = {
        "customer": customer.pk,
        "collection_method": "charge_automatically",
        "items-TOTAL_FORMS": "1",
        "items-INITIAL_FORMS": "0",
        "items-0-price": price,
        "items-0-quantity": quantity,
    }

    with transaction.atomic():
        response = console.post(reverse("admin:billing_subscription_add"), body)

    assert response.status_code == 200  # the form again, with its error
