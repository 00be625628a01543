"""Tax codes and tax rates over the integrator API (issue 16, items 11 and 13): read-only.

Tax codes and rates are global reference data, shared by live and test mode (like a
country's VAT rates): a key of either mode reads the same lists.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import serializers

from config.api.serializers import ObjectField, PublicIdField
from config.api.views import ReadOnlyApiViewSet
from invoices.models import TaxCode, TaxRate
from invoices.selectors import tax_code_list


class TaxCodeRateSerializer(serializers.Serializer):
    country = serializers.CharField(help_text="ISO 3166 country code.")
    percentage = serializers.CharField(help_text='Percent, e.g. "5.500".')


class TaxCodeSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    object = ObjectField("tax_code")
    rates = serializers.SerializerMethodField()

    class Meta:
        model = TaxCode
        fields = (
            "id",
            "object",
            "code",
            "name",
            "description",
            "category",
            "exemption_reason_code",
            "exemption_reason",
            "active",
            "rates",
        )
        read_only_fields = fields

    @extend_schema_field(TaxCodeRateSerializer(many=True))
    def get_rates(self, code: TaxCode) -> list[dict[str, Any]]:
        """The code's rate per country; a country not listed uses its standard rate (see docs/billing.md)."""
        return [
            {"country": str(rate.country), "percentage": f"{rate.percentage:.3f}"}
            for rate in sorted(code.rates.all(), key=lambda rate: str(rate.country))
        ]


class TaxRateSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    object = ObjectField("tax_rate")
    country = serializers.CharField(source="country.code", read_only=True)

    class Meta:
        model = TaxRate
        fields = ("id", "object", "country", "name", "percentage", "is_standard", "active")
        read_only_fields = fields


_NOT_FOUND = OpenApiResponse(description="No such object (problem+json).")
_UNAUTHORIZED = OpenApiResponse(description="Missing or invalid API key (problem+json).")
_TAX_CODE_EXAMPLE = OpenApiExample(
    "A reduced-rate code",
    value={
        "id": "txcd_3",
        "object": "tax_code",
        "code": "reduced",
        "name": "Reduced rate",
        "description": "",
        "category": "reduced",
        "exemption_reason_code": "",
        "exemption_reason": "",
        "active": True,
        "rates": [{"country": "DE", "percentage": "7.000"}, {"country": "FR", "percentage": "5.500"}],
    },
    response_only=True,
)
_TAX_RATE_EXAMPLE = OpenApiExample(
    "France's standard rate",
    value={
        "id": "txr_1",
        "object": "tax_rate",
        "country": "FR",
        "name": "TVA",
        "percentage": "20.000",
        "is_standard": True,
        "active": True,
    },
    response_only=True,
)


@extend_schema_view(
    list=extend_schema(
        summary="List tax codes",
        description="Every tax code with its rate per country. Global data: the same for live and test keys.",
        responses={200: TaxCodeSerializer(many=True), 401: _UNAUTHORIZED},
        examples=[_TAX_CODE_EXAMPLE],
    ),
    retrieve=extend_schema(
        summary="Retrieve a tax code",
        description="One tax code (`txcd_…`) with its rate per country.",
        responses={200: TaxCodeSerializer, 401: _UNAUTHORIZED, 404: _NOT_FOUND},
        examples=[_TAX_CODE_EXAMPLE],
    ),
)
class TaxCodeViewSet(ReadOnlyApiViewSet):
    serializer_class = TaxCodeSerializer
    filterset_fields = ("active", "category")

    def get_queryset(self) -> Any:
        return tax_code_list()


@extend_schema_view(
    list=extend_schema(
        summary="List tax rates",
        description="The VAT rates by country (standard and others). Global data: the same for live and test keys.",
        responses={200: TaxRateSerializer(many=True), 401: _UNAUTHORIZED},
        examples=[_TAX_RATE_EXAMPLE],
    ),
    retrieve=extend_schema(
        summary="Retrieve a tax rate",
        description="One tax rate (`txr_…`).",
        responses={200: TaxRateSerializer, 401: _UNAUTHORIZED, 404: _NOT_FOUND},
        examples=[_TAX_RATE_EXAMPLE],
    ),
)
class TaxRateViewSet(ReadOnlyApiViewSet):
    serializer_class = TaxRateSerializer
    filterset_fields = ("active", "is_standard", "country")

    def get_queryset(self) -> Any:
        return TaxRate.objects.order_by("country", "-is_standard", "percentage", "pk")


ROUTES = [
    ("tax_codes", TaxCodeViewSet, "tax_code"),
    ("tax_rates", TaxRateViewSet, "tax_rate"),
]
