"""Console: features and the features each product grants (writes through the services)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from billing.entitlements.models import Feature, ProductFeature
from billing.entitlements.services import (
    feature_create,
    feature_frozen_fields,
    feature_update,
    product_feature_attach,
    product_feature_detach,
    product_feature_update,
)
from config.console import ReadOnlyInline, StyledAdmin
from config.modes import current_livemode
from config.write_path import ServiceAdminMixin


class GrantInline(ReadOnlyInline):
    model = ProductFeature
    fields = ("product", "quantity", "per_unit")
    readonly_fields = fields
    verbose_name_plural = _("products granting it")


@admin.register(Feature)
class FeatureAdmin(ServiceAdminMixin, StyledAdmin):
    list_display = ("name", "lookup_key", "kind", "unit_label", "product_count", "active")
    list_filter = ("kind", "active")
    search_fields = ("name", "lookup_key")
    fields = ("lookup_key", "name", "kind", "unit_label", "active", "metadata", "created_at")
    readonly_fields = ("created_at",)
    inlines = [GrantInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Feature]:
        return super().get_queryset(request).annotate(product_total=Count("product_grants"))

    @admin.display(description=_("products"), ordering="product_total")
    def product_count(self, feature: Feature) -> int:
        return feature.product_total

    def service_frozen_fields(self, obj: Any) -> tuple[str, ...]:
        return feature_frozen_fields(feature=obj)

    def service_create(self, request: HttpRequest, *, data: dict) -> Feature:
        return feature_create(data=data, livemode=current_livemode())

    def service_update(self, request: HttpRequest, *, obj: Any, changes: dict) -> Feature:
        return feature_update(feature=obj, changes=changes)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # archive instead: integrators' code may still check its lookup key


@admin.register(ProductFeature)
class ProductFeatureAdmin(ServiceAdminMixin, StyledAdmin):
    list_display = ("product", "feature", "quantity", "per_unit", "created_at")
    list_filter = ("feature",)
    search_fields = ("product__name", "feature__name", "feature__lookup_key")
    fields = ("product", "feature", "quantity", "per_unit")
    autocomplete_fields = ("product", "feature")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("product", "feature") if obj is not None else ()

    def service_create(self, request: HttpRequest, *, data: dict) -> ProductFeature:
        return product_feature_attach(
            product=data["product"],
            feature=data["feature"],
            quantity=data.get("quantity"),
            per_unit=data.get("per_unit", False),
            acting_user=request.user,
        )

    def service_update(self, request: HttpRequest, *, obj: Any, changes: dict) -> ProductFeature:
        return product_feature_update(
            grant=obj,
            quantity=changes.get("quantity", obj.quantity),
            per_unit=changes.get("per_unit", obj.per_unit),
            acting_user=request.user,
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        product_feature_detach(grant=obj, acting_user=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ProductFeature]) -> None:
        for grant in queryset.select_related("product", "feature"):
            product_feature_detach(grant=grant, acting_user=request.user)
