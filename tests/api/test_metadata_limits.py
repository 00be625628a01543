"""Metadata has Stripe's limits on every write of the API (config/metadata.py, MetadataField)."""

from __future__ import annotations

import importlib

import pytest
from django.urls import get_resolver
from rest_framework import serializers

from config.api.serializers import MetadataField
from customers.models import Customer
from tests.api.conftest import assert_problem

CUSTOMER = {"legal_name": "Hostile SAS", "email": "h@example.com", "country": "FR"}

BAD = {
    "51 keys": {f"k{index}": "v" for index in range(51)},
    "a 41-character key": {"k" * 41: "v"},
    "an empty key": {"": "v"},
    "a 501-character value": {"note": "v" * 501},
    "an object value": {"crm": {"id": 1}},
    "a list value": {"tags": ["a", "b"]},
    "a boolean value": {"vip": True},
    "a null value": {"vip": None},
    "not an object": ["a", "b"],
}


@pytest.mark.django_db
@pytest.mark.parametrize("metadata", list(BAD.values()), ids=list(BAD))
def test_metadata_over_the_limits_is_a_400_naming_the_field_and_creates_nothing(api, metadata):
    response = api.post("/api/v1/customers", {**CUSTOMER, "metadata": metadata}, format="json")

    problem = assert_problem(response, 400, "validation_error")
    assert problem["field"].startswith("metadata")
    assert not Customer.objects.exists()


@pytest.mark.django_db
def test_metadata_at_the_limits_is_kept_and_a_number_becomes_text(api):
    metadata = {f"{index:02d}" + "k" * 38: "v" * 500 for index in range(49)}
    metadata["count"] = 7

    response = api.post("/api/v1/customers", {**CUSTOMER, "metadata": metadata}, format="json")

    assert response.status_code == 201, response.content
    stored = Customer.objects.get().metadata
    assert len(stored) == 50 and stored["count"] == "7"
    assert all(len(key) <= 40 for key in stored) and max(len(value) for value in stored.values()) == 500


@pytest.mark.django_db
def test_a_patch_over_the_limits_leaves_the_customer_as_it_was(api, customer):
    customer.metadata = {"crm": "A-1"}
    customer.save(update_fields=["metadata"])

    response = api.patch(f"/api/v1/customers/cus_{customer.pk}", {"metadata": {"crm": {"id": 1}}}, format="json")

    assert_problem(response, 400, "validation_error")
    customer.refresh_from_db()
    assert customer.metadata == {"crm": "A-1"}


def writable_metadata_fields_that_are_not_limited(classes: list[type]) -> list[str]:
    """Serializer classes whose writable `metadata` is not a MetadataField (declared or a model field)."""
    found = []
    for cls in classes:
        declared = getattr(cls, "_declared_fields", {}).get("metadata")
        if declared is not None:
            if not declared.read_only and not isinstance(declared, MetadataField):
                found.append(f"{cls.__module__}.{cls.__qualname__}")
            continue
        meta = getattr(cls, "Meta", None)
        fields = getattr(meta, "fields", ())
        if getattr(meta, "model", None) is not None and fields != "__all__" and "metadata" in fields:
            if "metadata" not in getattr(meta, "read_only_fields", ()):
                found.append(f"{cls.__module__}.{cls.__qualname__}")
    return found


def every_serializer_class() -> list[type]:
    get_resolver().url_patterns  # noqa: B018 -- imports every view, and with them every serializer
    for module in ("config.api.serializers",):
        importlib.import_module(module)
    seen: list[type] = []
    pending = [serializers.BaseSerializer]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                pending.append(sub)
    return [
        cls
        for cls in seen
        if cls.__module__.split(".")[0] in {"billing", "customers", "invoices", "config", "reports", "feedback"}
    ]


def test_every_writable_metadata_of_the_api_is_limited():
    classes = every_serializer_class()
    assert any("metadata" in getattr(cls, "_declared_fields", {}) for cls in classes)  # the scan sees them

    assert writable_metadata_fields_that_are_not_limited(classes) == []


def test_the_scan_catches_an_unlimited_metadata_field():
    # negative control: a dict field, and a model serializer's writable JSON field
    class Loose(serializers.Serializer):
        metadata = serializers.DictField()

    class LooseModel(serializers.ModelSerializer):
        class Meta:
            model = Customer
            fields = ("legal_name", "metadata")

    class Shown(serializers.ModelSerializer):
        class Meta:
            model = Customer
            fields = ("legal_name", "metadata")
            read_only_fields = fields

    flagged = writable_metadata_fields_that_are_not_limited([Loose, LooseModel, Shown])
    assert [name.rsplit(".", 1)[-1] for name in flagged] == ["Loose", "LooseModel"]
