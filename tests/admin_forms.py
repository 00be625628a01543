"""Post a console change form back as a browser would: every field as the page shows it."""

from __future__ import annotations

from typing import Any

from django import forms


def _field_data(form: forms.BaseForm, data: dict[str, Any]) -> None:
    for name, field in form.fields.items():
        bound = form[name]
        value = bound.value()  # already prepared for the widget
        key = form.add_prefix(name)
        if field.show_hidden_initial:  # fields with a callable default post their initial value too
            data[form.add_initial_prefix(name)] = value
        if isinstance(field.widget, forms.CheckboxInput):
            if value:
                data[key] = "on"
        elif isinstance(field.widget, forms.SelectMultiple):
            data[key] = [getattr(item, "pk", item) for item in (value or [])]
        elif value is None:
            data[key] = ""
        else:
            data[key] = value


def change_form_data(response: Any, **changes: Any) -> dict[str, Any]:
    """The POST data of the change page in `response`, with `changes` applied to the main form."""
    data: dict[str, Any] = {}
    _field_data(response.context["adminform"].form, data)
    for inline in response.context.get("inline_admin_formsets", []):
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
        for form in formset.forms:
            _field_data(form, data)
    data.update(changes)
    return data
