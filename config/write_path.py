"""One write path (STYLE rule 16): the console's forms and spreadsheet imports call the services.

`ServiceAdminMixin` and `ServiceResourceMixin` replace the admin's `save_model` and
import-export's `save_instance` (which call `Model.save()`) with the service an
admin or resource names in `service_create` / `service_update`: the API's services,
so their rules (frozen terms, events, validation) hold however a row is written.

- A form asks the service's own check (`service_validate`) in `clean()`, so a
  refusal is a form error next to the field, before anything is written.
- `save_model` then calls the service, which checks again under its transaction;
  if it still refuses (someone changed the row meanwhile), the page says so and
  nothing is saved.
- An import row is refused the same way: the service's message is the row's error.

tests/config/test_write_path_guard.py walks every console page and import to make
sure none bypasses this.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from import_export import widgets

from config.locking import lock_order_exempt


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


def _add_service_error(form: forms.BaseForm, error: ValidationError) -> None:
    """Put a service's refusal on the form: next to its field when the form shows it."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        target = field if field in form.fields else None
        form.add_error(target, errors)


def copy_saved(target: models.Model, saved: models.Model) -> None:
    """Make the admin's or importer's object the row the service wrote (pk, defaults, timestamps)."""
    for field in saved._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False
    target._state.db = saved._state.db


class ServiceAdminMixin:
    """A ModelAdmin whose add and change forms save through services.

    Subclasses define `service_create(request, *, data)` and
    `service_update(request, *, obj, changes)` (obj: the row as stored), and may define
    `service_validate(*, obj, changes)` to turn refusals into form errors early.
    Many-to-many form fields are passed to the service in `data` / `changes` too.
    """

    def service_create(self, request: HttpRequest, *, data: dict[str, Any]) -> models.Model:
        raise NotImplementedError

    def service_update(self, request: HttpRequest, *, obj: models.Model, changes: dict[str, Any]) -> models.Model:
        raise NotImplementedError

    def service_validate(self, *, obj: models.Model | None, changes: dict[str, Any]) -> None:
        """Raise the ValidationError the service would raise for these changes (None: a new row)."""

    def service_frozen_fields(self, obj: models.Model) -> tuple[str, ...]:
        """Fields the service refuses to change on `obj` now; the page shows them read-only."""
        return ()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        if obj is None:
            return readonly
        frozen = self.service_frozen_fields(obj)
        if request.method == "POST":
            # A page opened before the row froze still posts these fields: keep them in the
            # form so the service refuses a change with a form error instead of the form
            # dropping it silently. Fields the page showed read-only are not posted.
            frozen = tuple(name for name in frozen if name not in request.POST)
        return readonly + tuple(name for name in frozen if name not in readonly)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change=change, **kwargs)
        model_admin = self

        class ServiceForm(form_class):
            def clean(self) -> dict[str, Any]:
                cleaned = super().clean()
                if self.errors:
                    return cleaned
                stored = self.instance if self.instance.pk else None
                changes = {name: cleaned[name] for name in self.changed_data if name in cleaned}
                if stored is None:
                    changes = {name: cleaned[name] for name in self.fields if name in cleaned}
                try:
                    model_admin.service_validate(obj=stored, changes=changes)
                except ValidationError as error:
                    _add_service_error(self, error)
                return cleaned

        ServiceForm.__name__ = form_class.__name__
        return ServiceForm

    def save_model(self, request: HttpRequest, obj: models.Model, form: Any, change: bool) -> None:
        cleaned = form.cleaned_data
        if change:
            stored = type(obj)._default_manager.get(pk=obj.pk)
            changes = {name: cleaned[name] for name in form.changed_data if name in cleaned}
            if not changes:
                return  # nothing to write, and no event to record
            saved = self.service_update(request, obj=stored, changes=changes)
        else:
            saved = self.service_create(request, data={name: cleaned[name] for name in form.fields if name in cleaned})
        copy_saved(obj, saved)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Many-to-many fields went to the service with the rest of the form; only inlines remain.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as error:
            # The service refused after the form's check passed (the row changed meanwhile):
            # the admin's transaction rolled back; say why and show the page again.
            self.message_user(request, _error_text(error), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class ServiceResourceMixin:
    """An import-export ModelResource whose rows are written by services.

    Subclasses define `service_create(*, data, user)` and `service_update(*, obj, changes,
    user)`; `data` / `changes` hold the imported columns (model attributes, many-to-many
    as lists). A refusal becomes the row's error; the service decides what is frozen.
    """

    def service_create(self, *, data: dict[str, Any], user: Any) -> models.Model:
        raise NotImplementedError

    def service_update(self, *, obj: models.Model, changes: dict[str, Any], user: Any) -> models.Model:
        raise NotImplementedError

    def _service_columns(self, instance: models.Model, row: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field in self.get_import_fields():
            if not field.attribute or field.column_name not in row or field.attribute == "id":
                continue
            if isinstance(field.widget, widgets.ManyToManyWidget):
                values[field.attribute] = list(field.clean(row))
            else:
                values[field.attribute] = getattr(instance, field.attribute)
        return values

    @staticmethod
    def _differs(stored: Any, value: Any) -> bool:
        if isinstance(value, list) and hasattr(stored, "all"):
            return sorted(obj.pk for obj in stored.all()) != sorted(obj.pk for obj in value)
        return stored != value

    def save_instance(self, instance: models.Model, is_create: bool, row: Any, **kwargs: Any) -> None:
        if self._is_dry_run(kwargs) and not self._is_using_transactions(kwargs):
            return  # a preview that cannot be rolled back writes nothing (import-export's own rule)
        user = kwargs.get("user")
        values = self._service_columns(instance, row)
        try:
            # A savepoint: a refusal (or a database trigger's) leaves the import's transaction usable.
            # Known exception to the lock order (docs/billing.md): every row of a file is written
            # in the import's one transaction, so a row's locks come after the previous row's.
            with transaction.atomic(), lock_order_exempt("a spreadsheet import writes every row in one transaction"):
                if is_create:
                    saved = self.service_create(data=values, user=user)
                else:
                    stored = type(instance)._default_manager.get(pk=instance.pk)
                    changes = {
                        name: value for name, value in values.items() if self._differs(getattr(stored, name), value)
                    }
                    if not changes:
                        return
                    saved = self.service_update(obj=stored, changes=changes, user=user)
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                raise ValidationError(error.error_dict) from error
            raise ValidationError({"__all__": error.messages}) from error
        copy_saved(instance, saved)

    def save_m2m(self, instance: models.Model, row: Any, **kwargs: Any) -> None:
        """Many-to-many columns went to the service with the row."""
