"""Quotes over the API: list, retrieve, PDF, create a draft and finalize it (thin over the services)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from billing.quotes.models import Quote
from billing.quotes.rendering import quote_pdf, quote_pdf_filename
from billing.quotes.serializers import QuoteCreateSerializer, QuoteSerializer
from billing.quotes.services import QuoteLineInput, quote_create, quote_finalize, quote_preview_snapshot
from config.api.authentication import acting_user
from config.api.views import ReadOnlyApiViewSet

PDF_RESPONSE = OpenApiResponse(response=OpenApiTypes.BINARY, description="application/pdf")
QUOTE_EXAMPLE = OpenApiExample(
    "An open quote",
    value={
        "id": "qt_12",
        "object": "quote",
        "number": "DEV-2026-0012",
        "status": "open",
        "customer": "cus_42",
        "currency": "EUR",
        "revision": 1,
        "revises": None,
        "lines": [
            {"price": "price_7", "quantity": 5, "description": "", "unit_amount": None},
            {"price": None, "quantity": 1, "description": "Onboarding workshop", "unit_amount": 45000},
        ],
        "coupon": "coupon_3",
        "trial_days": 0,
        "collection_method": "send_invoice",
        "days_until_due": 30,
        "valid_until": "2027-01-06T09:00:00Z",
        "header": "",
        "footer": "",
        "terms": "Net 30.",
        "subtotal": 59500,
        "discount_total": 5950,
        "tax_total": 10710,
        "total": 64260,
        "recurring_total": 15660,
        "finalized_at": "2026-12-07T09:00:00Z",
        "sent_at": "2026-12-07T09:01:00Z",
        "accepted_at": None,
        "accepted_name": "",
        "canceled_at": None,
        "cancel_reason": "",
        "expired_at": None,
        "subscription": None,
        "invoice": None,
        "livemode": True,
        "created_at": "2026-12-07T08:55:00Z",
    },
    response_only=True,
)


@extend_schema_view(
    list=extend_schema(
        summary="List quotes",
        description="Quotes of the key's mode, newest first; filter by `status` or `customer`.",
        examples=[QUOTE_EXAMPLE],
    ),
    retrieve=extend_schema(
        summary="Retrieve a quote",
        description="One quote by id: its items, frozen totals (from finalization) and acceptance.",
        examples=[QUOTE_EXAMPLE],
    ),
)
class QuoteViewSet(ReadOnlyApiViewSet):
    queryset = (
        Quote.objects.select_related("customer", "coupon")
        .prefetch_related("lines__price")
        .order_by("-created_at", "-pk")
    )
    serializer_class = QuoteSerializer
    filterset_fields = ("status", "customer")
    http_method_names = ["get", "post", "head", "options"]
    bodyless_actions = ("finalize",)

    @extend_schema(
        summary="Create a draft quote",
        description="Items (a price × quantity, or a one-off `description` + `unit_amount`), coupon, trial, "
        "collection method, validity and texts; the totals are computed by the billing engine.",
        request=QuoteCreateSerializer,
        responses={201: QuoteSerializer},
        examples=[
            OpenApiExample(
                "Five seats and a workshop",
                value={
                    "customer": "cus_42",
                    "lines": [
                        {"price": "price_7", "quantity": 5},
                        {"description": "Onboarding workshop", "unit_amount": 45000},
                    ],
                    "coupon": "coupon_3",
                    "terms": "Net 30.",
                },
                request_only=True,
            ),
            QUOTE_EXAMPLE,
        ],
    )
    def create(self, request: Any) -> Response:
        serializer = QuoteCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        quote = quote_create(
            customer=data["customer"],
            lines=[QuoteLineInput(**line) for line in data["lines"]],
            coupon=data.get("coupon"),
            trial_days=data["trial_days"],
            collection_method=data["collection_method"],
            days_until_due=data.get("days_until_due"),
            valid_until=data.get("valid_until"),
            header=data["header"],
            footer=data["footer"],
            terms=data["terms"],
            acting_user=acting_user(request),
        )
        return Response(QuoteSerializer(quote).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Finalize a draft quote",
        description="Recomputes the totals, freezes them and numbers the quote in its brand's quote series "
        "(`quote.finalized`); a revision replaces the quote it revises. Takes no body.",
        request=None,
        responses={200: QuoteSerializer},
        examples=[QUOTE_EXAMPLE],
    )
    @action(detail=True, methods=["post"])
    def finalize(self, request: Any, pk: str) -> Response:
        quote = quote_finalize(quote=self.get_object(), acting_user=acting_user(request))
        return Response(QuoteSerializer(quote).data)

    @extend_schema(
        responses={(200, "application/pdf"): PDF_RESPONSE},
        summary="The quote as a PDF",
        description="The quote in its brand's design (a draft is marked as such).",
    )
    @action(detail=True, methods=["get"])
    def pdf(self, request: Any, pk: str) -> HttpResponse:
        quote = self.get_object()
        response = HttpResponse(
            quote_pdf(quote, snapshot=quote_preview_snapshot(quote=quote)), content_type="application/pdf"
        )
        response["Content-Disposition"] = f'inline; filename="{quote_pdf_filename(quote)}"'
        return response


ROUTES = [("quotes", QuoteViewSet, "quote")]
