"""Invoices and credit notes over the integrator API: thin calls into invoices.services and billing.services."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

import django_filters
from django.http import HttpResponse
from django.utils.translation import gettext
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from billing.models import Refund, Subscription
from billing.services.dunning import dunning_collect_invoice
from billing.services.payments import payment_record_manual
from billing.services.refunds import RefundError, refund_request_for_invoice
from billing.services.upcoming import upcoming_invoice
from config import clock
from config.api.authentication import acting_user
from config.api.exceptions import ApiError
from config.api.filters import UtcDateTimeFilter, invalid_id_in_filter
from config.api.first_page import FirstPageQuery
from config.api.ids import InvalidPublicId, pk_from_public_id
from config.api.serializers import expand_select_related
from config.api.views import ApiViewSet, ReadOnlyApiViewSet, request_livemode
from config.modes import scope_to_mode
from customers.models import Customer
from invoices.models import Brand, CreditNote, Invoice
from invoices.rendering.facturx import invoice_cii_xml
from invoices.serializers import (
    INVOICE_SUMMARY_COLUMNS,
    BrandSerializer,
    CreditNoteCreateSerializer,
    CreditNoteSerializer,
    InvoicePayInputSerializer,
    InvoicePreviewSerializer,
    InvoiceSerializer,
    InvoiceSummarySerializer,
    InvoiceVoidInputSerializer,
    invoice_preview_response,
    invoice_summary_rows,
)
from invoices.services.credit_notes import CreditLineInput, credit_note_create, credit_note_refund_only
from invoices.services.finalize import invoice_finalize
from invoices.services.lifecycle import invoice_void
from invoices.services.pdf import DocumentNotIssued, invoice_pdf_current


def _by_public_id(model: Any, field: str):
    def method(queryset: Any, name: str, value: str) -> Any:
        try:
            return queryset.filter(**{f"{field}_id": pk_from_public_id(value, model=model)})
        except InvalidPublicId as error:
            raise invalid_id_in_filter(name, error) from None

    return method


class InvoiceFilter(django_filters.FilterSet):
    customer = django_filters.CharFilter(method=_by_public_id(Customer, "customer"))
    subscription = django_filters.CharFilter(method=_by_public_id(Subscription, "subscription"))
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Invoice
        fields = ("status", "currency", "number")


@functools.cache
def _invoice_summary_values() -> Any:
    """The list's rows as `.values()`, set up once per process and cloned by each request
    (`.all()`, never evaluated here): resolving the 27 columns cost each list request ~0.4 ms
    of CPU (issue 20). Filters, the mode scope and the cursor apply to the clone as before."""
    return Invoice.objects.order_by("-pk").values(*INVOICE_SUMMARY_COLUMNS)


# The unfiltered first page (the polled one) in SQL compiled once: config/api/first_page.py.
_INVOICE_FIRST_PAGE = FirstPageQuery(_invoice_summary_values, ordering=("-pk",))

PDF_RESPONSE = OpenApiResponse(response=OpenApiTypes.BINARY, description="application/pdf")


class InvoiceViewSet(ReadOnlyApiViewSet):
    serializer_class = InvoiceSerializer
    filterset_class = InvoiceFilter
    query_parameters = {"upcoming": ("subscription",)}
    bodyless_actions = ("finalize",)

    def get_serializer_class(self) -> Any:
        return InvoiceSummarySerializer if self.action == "list" else InvoiceSerializer

    def list(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        if request.query_params.get("expand"):
            return super().list(request, *args, **kwargs)
        page = self.paginator.paginate_first_page(  # type: ignore[union-attr]  # ApiCursorPagination
            request, lambda size: _INVOICE_FIRST_PAGE.rows(livemode=request_livemode(request), size=size), view=self
        )
        if page is None:
            page = self.paginate_queryset(self.filter_queryset(_invoice_summary_values().all()))
        return self.get_paginated_response(invoice_summary_rows(page))

    def get_queryset(self) -> Any:
        queryset = Invoice.objects.order_by("-pk")
        if self.action == "list":
            # The frozen seller/buyer snapshot is the heaviest column and no list shows it.
            queryset = queryset.defer("issued_snapshot", "custom_fields")
        else:
            queryset = queryset.prefetch_related("lines")
        return expand_select_related(queryset, self.request, {"customer": "customer", "subscription": "subscription"})

    def _out(self, invoice: Invoice) -> Response:
        fresh = self.get_queryset().get(pk=invoice.pk)
        return Response(InvoiceSerializer(fresh, context=self.get_serializer_context()).data)

    @extend_schema(request=None, responses={200: InvoiceSerializer}, summary="Finalize a draft (assigns its number)")
    @action(detail=True, methods=["post"])
    def finalize(self, request: Any, pk: str) -> Response:
        """Finalizes a draft invoice: assigns its number (gapless within its series), freezes its lines and
        amounts, and starts collection. Takes no parameters.
        """
        invoice = self.get_object()
        invoice_finalize(invoice=invoice, acting_user=acting_user(request))
        return self._out(invoice)

    @extend_schema(request=InvoiceVoidInputSerializer, responses={200: InvoiceSerializer}, summary="Void an invoice")
    @action(detail=True, methods=["post"])
    def void(self, request: Any, pk: str) -> Response:
        """Voids a finalized invoice that is not paid: it keeps its number and is no longer due; credit applied
        from the balance returns to the customer.
        """
        invoice = self.get_object()
        serializer = InvoiceVoidInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invoice_void(
            invoice=invoice,
            at=clock.now(customer=invoice.customer),
            reason=serializer.validated_data["reason"],
            acting_user=acting_user(request),
        )
        return self._out(invoice)

    @extend_schema(
        request=InvoicePayInputSerializer,
        responses={200: InvoiceSerializer},
        summary="Charge the default payment method, or record a payment received out of band",
    )
    @action(detail=True, methods=["post"])
    def pay(self, request: Any, pk: str) -> Response:
        """With `paid_out_of_band: false` (default), charges the customer's default payment method now; with
        `paid_out_of_band: true`, records money received outside a gateway (`amount`, `method`, `reference`).
        """
        invoice = self.get_object()
        serializer = InvoicePayInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data["paid_out_of_band"]:
            payment_record_manual(
                invoice=invoice,
                amount=data.get("amount", invoice.amount_remaining),
                method=data["method"],
                reference=data["reference"],
                acting_user=acting_user(request),
            )
        else:
            if invoice.status not in (Invoice.Status.OPEN, Invoice.Status.UNCOLLECTIBLE):
                raise ApiError(
                    gettext("Only an open invoice can be charged; this one is %(status)s.")
                    % {"status": invoice.status},
                    code="invalid_state",
                    status_code=409,
                )
            dunning_collect_invoice(invoice=invoice, acting_user=acting_user(request))
        return self._out(invoice)

    @extend_schema(responses={(200, "application/pdf"): PDF_RESPONSE}, summary="The invoice as a Factur-X PDF")
    @action(detail=True, methods=["get"])
    def pdf(self, request: Any, pk: str) -> HttpResponse:
        """The finalized invoice as a PDF/A-3 with its Factur-X (EN 16931) XML embedded; a draft is refused."""
        invoice = self.get_object()
        pdf = invoice_pdf_current(invoice=invoice)
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{invoice.number}.pdf"'
        return response

    @extend_schema(
        responses={
            (200, "application/xml"): OpenApiResponse(
                response=OpenApiTypes.STR, description="application/xml (CII, EN 16931)"
            )
        },
        summary="The invoice's Factur-X XML (UN/CEFACT CII)",
    )
    @action(detail=True, methods=["get"])
    def facturx(self, request: Any, pk: str) -> HttpResponse:
        """The finalized invoice's Factur-X XML (UN/CEFACT CII, EN 16931 profile); a draft is refused."""
        invoice = self.get_object()
        if invoice.status == Invoice.Status.DRAFT or not invoice.number:
            raise DocumentNotIssued(
                gettext("Draft invoice %(id)s has no Factur-X XML until it is finalized.") % {"id": invoice.pk}
            )
        xml = invoice_cii_xml(invoice=invoice, lines=list(invoice.lines.order_by("position", "pk")))
        return HttpResponse(xml, content_type="application/xml")

    @extend_schema(
        parameters=[OpenApiParameter("subscription", str, required=True, description="sub_…")],
        responses={200: InvoicePreviewSerializer},
        summary="The subscription's next invoice as it stands now (with the usage so far)",
    )
    @action(detail=False, methods=["get"])
    def upcoming(self, request: Any) -> Response:
        """The invoice the subscription's next renewal would issue if it happened now: recurring items, usage so
        far, pending invoice items, discounts, tax and balance. Nothing is saved.
        """
        raw = request.query_params.get("subscription")
        try:
            pk = pk_from_public_id(raw, model=Subscription)
        except InvalidPublicId as error:
            raise ApiError(
                gettext("subscription: %(error)s") % {"error": error},
                code="invalid_id",
                status_code=400,
                field="subscription",
            ) from None
        subscription = scope_to_mode(Subscription.objects.filter(pk=pk)).first()
        if subscription is None:
            raise ApiError(
                gettext("No such subscription: %(id)s.") % {"id": raw},
                code="resource_missing",
                status_code=404,
                field="subscription",
            )
        return Response(invoice_preview_response(upcoming_invoice(subscription=subscription)))


class CreditNoteFilter(django_filters.FilterSet):
    customer = django_filters.CharFilter(method=_by_public_id(Customer, "customer"))
    invoice = django_filters.CharFilter(method=_by_public_id(Invoice, "invoice"))

    class Meta:
        model = CreditNote
        fields = ("status", "reason")


class CreditNoteViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = CreditNoteSerializer
    filterset_class = CreditNoteFilter

    def get_queryset(self) -> Any:
        return expand_select_related(
            CreditNote.objects.order_by("-pk"), self.request, {"invoice": "invoice", "customer": "customer"}
        )

    @extend_schema(request=CreditNoteCreateSerializer, responses={201: CreditNoteSerializer})
    def create(self, request: Any) -> Response:
        serializer = CreditNoteCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        invoice = data["invoice"]
        lines = None
        if data.get("lines") is not None:
            lines = [
                CreditLineInput(
                    invoice_line_id=line["line"].pk, amount=line["amount"], quantity=line.get("quantity", Decimal(1))
                )
                for line in data["lines"]
            ]
        if data["refund"]:
            note = self._refund(request, invoice=invoice, lines=lines, data=data)
        else:
            note = credit_note_create(
                invoice=invoice,
                lines=lines,
                amount=data.get("amount"),
                reduce_amount_due=data["reduce_amount_due"],
                credit_to_balance=data["credit_to_balance"],
                reason=data["reason"],
                memo=data["memo"],
                acting_user=acting_user(request),
            )
        return Response(
            CreditNoteSerializer(note, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED
        )

    def _refund(self, request: Any, *, invoice: Invoice, lines: Any, data: dict[str, Any]) -> CreditNote:
        """A refund share is a refund (the same service as /v1/refunds): money moves, then its credit note."""
        credit_note_refund_only(
            lines=lines,
            amount=data.get("amount"),
            reduce_amount_due=data["reduce_amount_due"],
            credit_to_balance=data["credit_to_balance"],
            refund=data["refund"],
        )
        # Above the threshold the fresh two-factor code an API key cannot give is refused (403).
        refund = refund_request_for_invoice(
            invoice=invoice,
            amount=data["refund"],
            reason=data["reason"],
            memo=data["memo"],
            requested_by=acting_user(request),
            otp_verified_at=None,
        )
        if refund.status != Refund.Status.EXECUTED or refund.credit_note is None:
            raise RefundError(
                refund.failure_text() or gettext("The refund was not executed; no credit note was issued.")
            )
        return refund.credit_note


@extend_schema_view(
    list=extend_schema(
        summary="List brands",
        description="The brands (legal entities) that issue invoices, default brand included. Read-only: "
        "brands are managed in the console. Bank details are not shown.",
    ),
    retrieve=extend_schema(
        summary="Retrieve a brand",
        description="One brand's public identity: legal mentions, colours, layout and number formats.",
    ),
)
class BrandViewSet(ReadOnlyApiViewSet):
    """Brands are shared by live and test mode (like a Stripe account's settings)."""

    queryset = Brand.objects.order_by("-pk")
    serializer_class = BrandSerializer
    filterset_fields = ("is_default",)


ROUTES = [
    ("invoices", InvoiceViewSet, "invoice"),
    ("credit_notes", CreditNoteViewSet, "credit_note"),
    ("brands", BrandViewSet, "brand"),
]
