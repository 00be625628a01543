"""The brand admin's live preview: a sample invoice from the UNSAVED form values."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError

from config.types import JsonDict
from invoices.rendering.context import DocumentData, sample_document
from invoices.rendering.logos import logo_media_type


def _inline_rows(data: Mapping[str, Any], prefix: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of an inline formset as posted (deleted and empty rows left out), in form order."""
    try:
        total = min(int(data.get(f"{prefix}-TOTAL_FORMS", 0)), 100)
    except (TypeError, ValueError):
        return []
    rows = []
    for index in range(total):
        if data.get(f"{prefix}-{index}-DELETE"):
            continue
        row = {name: (data.get(f"{prefix}-{index}-{name}") or "").strip() for name in fields}
        # Filled: a value (custom fields, columns' key) and a label in at least one language.
        if all(value for name, value in row.items() if not name.startswith("label_")) and (
            row.get("label_fr") or row.get("label_en")
        ):
            try:
                position = int(data.get(f"{prefix}-{index}-position") or 0)
            except ValueError:
                position = 0
            rows.append((position, index, row))
    return [row for _, _, row in sorted(rows, key=lambda item: (item[0], item[1]))]


def _labels(row: Mapping[str, str]) -> dict[str, str]:
    return {"fr": row["label_fr"], "en": row["label_en"]}


def preview_document(
    *, brand: Any, data: Mapping[str, Any], files: Mapping[str, Any], language: str | None
) -> tuple[DocumentData, str]:
    """The sample document of `brand` (form.instance with the posted values) and a logo
    error message ("" when the upload, if any, is fine)."""
    logo_uri = None
    logo_error = ""
    upload = files.get("logo")
    if upload is not None:
        data_bytes = upload.read()
        try:
            media_type = logo_media_type(data_bytes)
        except ValidationError as error:
            logo_error = " ".join(error.messages)
        else:
            logo_uri = f"data:{media_type};base64,{base64.b64encode(data_bytes).decode()}"
    elif data.get("logo-clear"):
        brand.logo = None
    custom_fields: list[JsonDict] = [
        {"label": row["label_fr"] or row["label_en"], "labels": _labels(row), "value": row["value"]}
        for row in _inline_rows(data, "custom_fields", ("label_fr", "label_en", "value"))
    ]
    line_columns: list[JsonDict] = [
        {"key": row["metadata_key"], "label": row["label_fr"] or row["label_en"], "labels": _labels(row)}
        for row in _inline_rows(data, "line_columns", ("metadata_key", "label_fr", "label_en"))
    ]
    document = sample_document(
        brand=brand,
        language=language if language in ("fr", "en") else None,
        custom_fields=custom_fields,
        line_columns=line_columns,
        logo_data_uri=logo_uri,
    )
    return document, logo_error
