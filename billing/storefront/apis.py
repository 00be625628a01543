"""Payment links (create, list, retrieve, update) and pricing tables (read-only) over the API.

Their ids are the random public ids of their URLs (`plink_…`, `prctbl_…`); the calling key's
mode scopes them like every object: another mode's id is a 404.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.response import Response

from billing.storefront.models import PaymentLink, PricingTable
from billing.storefront.selectors import payment_links_with_usage
from billing.storefront.serializers import (
    PaymentLinkCreateSerializer,
    PaymentLinkSerializer,
    PaymentLinkUpdateSerializer,
    PricingTableSerializer,
)
from billing.storefront.services import LinkItemSpec, payment_link_create, payment_link_update
from config.api.authentication import acting_user
from config.api.views import ApiViewSet, request_livemode
from invoices.models import Brand

LINK_EXAMPLE = OpenApiExample(
    "A monthly plan with 1 to 50 seats",
    value={
        "id": "plink_Qx3Yt7d0KcN2W9bVg1mRz5aS",
        "object": "payment_link",
        "url": "https://billing.example.com/buy/plink_Qx3Yt7d0KcN2W9bVg1mRz5aS/",
        "active": True,
        "name": "Team plan, spring campaign",
        "brand": "brand_1",
        "mode": "subscription",
        "line_items": [
            {"price": "price_12", "quantity": 5, "adjustable_quantity": {"enabled": True, "minimum": 1, "maximum": 50}}
        ],
        "trial_period_days": 14,
        "allow_promotion_codes": True,
        "after_completion_url": "",
        "usage_count": 3,
        "livemode": True,
        "created_at": "2026-12-01T09:00:00Z",
    },
    response_only=True,
)


class RandomIdLookupMixin:
    """`/payment_links/plink_…`: the random public id, in the key's mode (else 404)."""

    def get_object(self) -> Any:
        queryset = self.filter_queryset(self.get_queryset())  # type: ignore[attr-defined]
        obj = queryset.filter(public_id=self.kwargs["pk"]).first()
        if obj is None:
            raise Http404
        return obj


TABLE_EXAMPLE = OpenApiExample(
    "Two plans, the second highlighted",
    value={
        "id": "prctbl_Lm4Rw8Zt2Hq6Vb0Xc3Nd7Kp1",
        "object": "pricing_table",
        "url": "https://billing.example.com/pricing/prctbl_Lm4Rw8Zt2Hq6Vb0Xc3Nd7Kp1/",
        "embed_script": "https://billing.example.com/pricing/prctbl_Lm4Rw8Zt2Hq6Vb0Xc3Nd7Kp1/embed.js",
        "active": True,
        "name": "Public plans",
        "brand": "brand_1",
        "entries": [
            {
                "product": "prod_1",
                "monthly_price": "price_1",
                "yearly_price": None,
                "features": ["Email support"],
                "highlighted": False,
            },
            {
                "product": "prod_2",
                "monthly_price": "price_2",
                "yearly_price": "price_3",
                "features": [],
                "highlighted": True,
            },
        ],
        "button_label": "",
        "trial_period_days": 14,
        "allow_promotion_codes": True,
        "success_url": "",
        "cancel_url": "",
        "livemode": True,
        "created_at": "2026-12-01T09:00:00Z",
    },
    response_only=True,
)


@extend_schema_view(
    list=extend_schema(
        summary="List payment links",
        description="Payment links of the key's mode, newest first, each with its count of completed purchases.",
        responses={200: PaymentLinkSerializer(many=True)},
        examples=[LINK_EXAMPLE],
    ),
    retrieve=extend_schema(
        summary="Retrieve a payment link",
        description="One link by its public id (`plink_…`), with its URL and completed purchases.",
        responses={200: PaymentLinkSerializer},
        examples=[LINK_EXAMPLE],
    ),
    create=extend_schema(
        summary="Create a payment link",
        description="A shareable URL to a checkout for fixed prices (all active, of the key's mode, in one currency). "
        "`mode=payment` sells one-time prices; `subscription` needs a recurring price. The prices cannot change "
        "afterwards: deactivate the link and create another.",
        request=PaymentLinkCreateSerializer,
        responses={201: PaymentLinkSerializer},
        examples=[
            OpenApiExample(
                "Create",
                value={
                    "name": "Team plan",
                    "line_items": [
                        {"price": "price_12", "quantity": 5, "adjustable_quantity": {"enabled": True, "maximum": 50}}
                    ],
                    "trial_period_days": 14,
                },
                request_only=True,
            ),
            LINK_EXAMPLE,
        ],
    ),
    partial_update=extend_schema(
        summary="Update a payment link",
        description="Name, trial, promotion codes, redirect, and `active` (false: the URL answers 410 Gone).",
        request=PaymentLinkUpdateSerializer,
        responses={200: PaymentLinkSerializer},
        examples=[OpenApiExample("Deactivate", value={"active": False}, request_only=True), LINK_EXAMPLE],
    ),
)
class PaymentLinkViewSet(RandomIdLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = PaymentLinkSerializer
    filterset_fields = ("active", "mode")
    http_method_names = ["get", "post", "patch", "head", "options"]
    lookup_value_regex = "plink_[A-Za-z0-9]+"

    def get_queryset(self) -> Any:
        return payment_links_with_usage(
            PaymentLink.objects.select_related("brand").prefetch_related("items__price").order_by("-created_at", "-pk")
        )

    def _reload(self, link: PaymentLink) -> PaymentLink:
        return self.get_queryset().get(pk=link.pk)

    def create(self, request: Any) -> Response:
        serializer = PaymentLinkCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        items = []
        for line in data["line_items"]:
            adjustable = line.get("adjustable_quantity") or {}
            enabled = adjustable.get("enabled", False)
            items.append(
                LinkItemSpec(
                    price=line["price"],
                    quantity=line["quantity"],
                    adjustable_minimum=adjustable.get("minimum", 1) if enabled else None,
                    adjustable_maximum=adjustable.get("maximum", 99) if enabled else None,
                )
            )
        link = payment_link_create(
            brand=data.get("brand") or Brand.objects.filter(is_default=True).first(),
            livemode=request_livemode(request),
            name=data["name"],
            mode=data["mode"],
            items=items,
            trial_period_days=data.get("trial_period_days"),
            allow_promotion_codes=data["allow_promotion_codes"],
            after_completion_url=data["after_completion_url"],
            acting_user=acting_user(request),
        )
        return Response(PaymentLinkSerializer(self._reload(link)).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Any, pk: str) -> Response:
        link = self.get_object()
        serializer = PaymentLinkUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        link = payment_link_update(link=link, changes=serializer.validated_data, acting_user=acting_user(request))
        return Response(PaymentLinkSerializer(self._reload(link)).data)


@extend_schema_view(
    list=extend_schema(
        summary="List pricing tables",
        description="Pricing tables of the key's mode (designed in the console), newest first.",
        responses={200: PricingTableSerializer(many=True)},
        examples=[TABLE_EXAMPLE],
    ),
    retrieve=extend_schema(
        summary="Retrieve a pricing table",
        description="One table by its public id, with its public page and embed script URLs.",
        responses={200: PricingTableSerializer},
        examples=[TABLE_EXAMPLE],
    ),
)
class PricingTableViewSet(RandomIdLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Read-only: tables are designed in the console."""

    serializer_class = PricingTableSerializer
    filterset_fields = ("active",)
    lookup_value_regex = "prctbl_[A-Za-z0-9]+"

    def get_queryset(self) -> Any:
        return (
            PricingTable.objects.select_related("brand")
            .prefetch_related("entries__product", "entries__monthly_price", "entries__yearly_price")
            .order_by("-created_at", "-pk")
        )


ROUTES = [
    ("payment_links", PaymentLinkViewSet, "payment-link"),
    ("pricing_tables", PricingTableViewSet, "pricing-table"),
]
