"""The console's export form (django-import-export under unfold): the operator ticks the
columns to export, all ticked by default, each labelled with the model field's name in the
operator's language ("Raison sociale", not import-export's "Legal Name"); a "select all"
box drives them from a static script (static/tarif/admin/export.js: the CSP blocks the
inline one import-export ships)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.utils.text import capfirst
from unfold.contrib.import_export.forms import SelectableFieldsExportForm
from unfold.widgets import UnfoldBooleanWidget


class ExportFieldsForm(SelectableFieldsExportForm):
    def __init__(self, formats: Any, resources: Any, **kwargs: Any) -> None:
        super().__init__(formats, resources, **kwargs)
        # Rendered by templates/admin/import_export/export.html; its value is never read.
        toggle = UnfoldBooleanWidget(attrs={"data-export-select-all": "", "id": "id_export_select_all"})
        self.select_all = toggle.render("export_select_all", True)

    def _get_field_label(self, resource: Any, field_name: str) -> str:
        # A column that is no model field (a display column) names itself in `column_labels`.
        label = getattr(resource, "column_labels", {}).get(field_name)
        if label:
            return str(label)
        field = resource.fields.get(field_name)
        attribute = (getattr(field, "attribute", None) or field_name).split("__")[0]
        try:
            return str(capfirst(resource._meta.model._meta.get_field(attribute).verbose_name))
        except (FieldDoesNotExist, AttributeError):
            return str(super()._get_field_label(resource, field_name))
