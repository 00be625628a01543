"""Every console admin with django-import-export uses the console's import and export forms.

Admins list import-export's mixins before StyledAdmin (mixins first in the MRO), and those
mixins carry their own form classes: without an explicit choice the bank import fell back to
import-export's plain form (unfold's file-input script then failed on it) and the invoice,
credit-note and survey exports lost the column picker's "select all".
"""

from __future__ import annotations

from django.contrib import admin
from unfold.contrib.import_export.forms import ImportForm

from config.console_export import ExportFieldsForm


def test_every_import_and_export_uses_the_consoles_forms():
    wrong = []
    for model, model_admin in admin.site._registry.items():
        if hasattr(model_admin, "import_form_class") and hasattr(model_admin, "get_import_formats"):
            if not issubclass(model_admin.import_form_class, ImportForm):
                wrong.append(f"{model.__name__}: import form {model_admin.import_form_class}")
        if hasattr(model_admin, "export_form_class") and hasattr(model_admin, "get_export_formats"):
            if model._meta.app_label in ("djstripe", "django_celery_beat"):
                continue
            if not issubclass(model_admin.export_form_class, ExportFieldsForm):
                wrong.append(f"{model.__name__}: export form {model_admin.export_form_class}")

    assert wrong == []


def test_the_check_sees_an_admin_that_keeps_import_exports_own_form():
    from import_export.admin import ExportMixin
    from import_export.forms import SelectableFieldsExportForm

    from config.console import StyledAdmin

    class Careless(ExportMixin, StyledAdmin):
        pass

    assert Careless.export_form_class is SelectableFieldsExportForm  # the trap the test above catches
    assert not issubclass(Careless.export_form_class, ExportFieldsForm)
