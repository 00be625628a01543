"""Billing resources of the integrator API (/api/v1/): each action is one call into billing.services."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import django_filters
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from billing.models import (
    Coupon,
    InvoiceItem,
    Payment,
    PaymentMethod,
    Price,
    Product,
    PromotionCode,
    Refund,
    Subscription,
    TestClock,
    UsageEvent,
    WebhookEndpoint,
)
from billing.serializers import (
    ChangePreviewSerializer,
    CouponSerializer,
    CreatePreviewSerializer,
    DomainEventSerializer,
    InvoiceItemSerializer,
    PaymentMethodCreateSerializer,
    PaymentMethodSerializer,
    PaymentSerializer,
    PriceSerializer,
    ProductSerializer,
    PromotionCodeSerializer,
    RefundCreateSerializer,
    RefundSerializer,
    SubscriptionCancelSerializer,
    SubscriptionChangeSerializer,
    SubscriptionCreateSerializer,
    SubscriptionPauseSerializer,
    SubscriptionSerializer,
    TestClockAdvanceSerializer,
    TestClockSerializer,
    UsageBatchResultSerializer,
    UsageBatchSerializer,
    UsageEventSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWithSecretSerializer,
)
from billing.services.catalog import price_create, price_update, product_create, product_update
from billing.services.changes import subscription_change, subscription_preview_change
from billing.services.coupons import coupon_create, coupon_update, promotion_code_create
from billing.services.invoice_items import invoice_item_create
from billing.services.payments import payment_method_attach, payment_method_detach
from billing.services.refunds import refund_request
from billing.services.subscriptions import (
    ItemSpec,
    subscription_cancel,
    subscription_cancel_at,
    subscription_create,
    subscription_pause,
    subscription_preview_create,
    subscription_resume,
)
from billing.services.test_clocks import test_clock_advance, test_clock_create
from billing.services.usage import UsageEventInput, usage_events_record
from billing.services.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_roll_secret,
    webhook_endpoint_update,
)
from config.api.authentication import acting_user
from config.api.filters import UtcDateTimeFilter, invalid_id_in_filter
from config.api.ids import InvalidPublicId, pk_from_public_id
from config.api.permissions import HasApiKeyScope, SandboxKeyOnly
from config.api.serializers import expand_select_related
from config.api.views import ApiViewSet, ReadOnlyApiViewSet
from config.events.models import DomainEvent
from customers.models import Customer
from invoices.models import Invoice
from invoices.serializers import invoice_preview_data


def _id_filter(model: Any, field_name: str) -> django_filters.Filter:
    """A filter on a related object given by its public id (`?customer=cus_42`)."""

    def method(queryset: Any, name: str, value: str) -> Any:
        try:
            return queryset.filter(**{f"{field_name}_id": pk_from_public_id(value, model=model)})
        except InvalidPublicId as error:
            raise invalid_id_in_filter(name, error) from None

    return django_filters.CharFilter(method=lambda qs, name, value: method(qs, name, value))


class CreatedRangeFilterSet(django_filters.FilterSet):
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")


# -- catalog -------------------------------------------------------------------------


class ProductFilter(CreatedRangeFilterSet):
    class Meta:
        model = Product
        fields = ("active",)


@extend_schema_view(create=extend_schema(summary="Create a product"), partial_update=extend_schema(summary="Update"))
class ProductViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = Product.objects.order_by("-pk")
    serializer_class = ProductSerializer
    filterset_class = ProductFilter
    http_method_names = ["get", "post", "patch", "head", "options"]

    def create(self, request: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = product_create(data=serializer.validated_data)
        return Response(self.get_serializer(product).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Any, pk: str) -> Response:
        product = self.get_object()
        serializer = self.get_serializer(product, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        product = product_update(product=product, changes=serializer.validated_data)
        return Response(self.get_serializer(product).data)


class PriceFilter(CreatedRangeFilterSet):
    product = _id_filter(Product, "product")

    class Meta:
        model = Price
        fields = ("active", "currency", "type", "lookup_key")


class PriceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = PriceSerializer
    filterset_class = PriceFilter
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> Any:
        return expand_select_related(Price.objects.order_by("-pk"), self.request, {"product": "product"})

    def create(self, request: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        price = price_create(data=serializer.validated_data)
        return Response(self.get_serializer(price).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Any, pk: str) -> Response:
        price = self.get_object()
        serializer = self.get_serializer(price, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        price = price_update(price=price, changes=serializer.validated_data)
        return Response(self.get_serializer(price).data)


class CouponViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = Coupon.objects.order_by("-pk").prefetch_related("applies_to")
    serializer_class = CouponSerializer
    filterset_fields = ("active", "duration")

    def create(self, request: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        applies_to = data.pop("applies_to", [])
        coupon = coupon_create(data=data, applies_to=applies_to)
        return Response(self.get_serializer(coupon).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Any, pk: str) -> Response:
        """Name, limits and active flag; the discount itself only until the coupon is redeemed."""
        coupon = self.get_object()
        serializer = self.get_serializer(coupon, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        coupon = coupon_update(coupon=coupon, changes=dict(serializer.validated_data), acting_user=acting_user(request))
        return Response(self.get_serializer(coupon).data)


class PromotionCodeFilter(django_filters.FilterSet):
    coupon = _id_filter(Coupon, "coupon")

    class Meta:
        model = PromotionCode
        fields = ("active", "code")


class PromotionCodeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = PromotionCode.objects.order_by("-pk")
    serializer_class = PromotionCodeSerializer
    filterset_class = PromotionCodeFilter

    def create(self, request: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        code = promotion_code_create(data=serializer.validated_data)
        return Response(self.get_serializer(code).data, status=status.HTTP_201_CREATED)


# -- subscriptions -------------------------------------------------------------------


class SubscriptionFilter(CreatedRangeFilterSet):
    customer = _id_filter(Customer, "customer")

    class Meta:
        model = Subscription
        fields = ("status", "currency", "collection_method")


def _items(validated: list[dict]) -> list[ItemSpec]:
    return [ItemSpec(price=item["price"], quantity=item["quantity"]) for item in validated]


class SubscriptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = SubscriptionSerializer
    read_actions = ("preview_change", "preview")
    bodyless_actions = ("resume",)
    filterset_class = SubscriptionFilter

    def get_queryset(self) -> Any:
        queryset = Subscription.objects.order_by("-pk").prefetch_related("items")
        return expand_select_related(queryset, self.request, {"customer": "customer"})

    def _out(self, subscription: Subscription, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=subscription.pk)
        return Response(SubscriptionSerializer(fresh, context=self.get_serializer_context()).data, status=code)

    @extend_schema(request=SubscriptionCreateSerializer, responses={201: SubscriptionSerializer})
    def create(self, request: Any) -> Response:
        serializer = SubscriptionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        subscription = subscription_create(
            customer=data["customer"],
            items=_items(data["items"]),
            trial_days=data.get("trial_days"),
            billing_cycle_anchor=data.get("billing_cycle_anchor"),
            coupon=data.get("coupon"),
            promotion_code=data.get("promotion_code"),
            collection_method=data["collection_method"],
            days_until_due=data.get("days_until_due"),
            metadata=data.get("metadata"),
            acting_user=acting_user(request),
        )
        return self._out(subscription, status.HTTP_201_CREATED)

    @extend_schema(
        request=SubscriptionCreateSerializer,
        responses={200: CreatePreviewSerializer},
        summary="Preview a new subscription: its first invoice, without saving anything",
    )
    @action(detail=False, methods=["post"])
    def preview(self, request: Any) -> Response:
        """Computes what creating this subscription would do (status, periods, first invoice with tax and
        discounts) without saving anything. Takes the same parameters as creating a subscription.
        """
        serializer = SubscriptionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        preview = subscription_preview_create(
            customer=data["customer"],
            items=_items(data["items"]),
            trial_days=data.get("trial_days"),
            billing_cycle_anchor=data.get("billing_cycle_anchor"),
            coupon=data.get("coupon"),
            promotion_code=data.get("promotion_code"),
            collection_method=data["collection_method"],
            days_until_due=data.get("days_until_due"),
        )
        body = {
            "object": "subscription_create_preview",
            "at": preview.at,
            "status": preview.status,
            "trial_end": preview.trial_end,
            "current_period_start": preview.current_period_start,
            "current_period_end": preview.current_period_end,
            "currency": preview.currency,
            "mrr": preview.mrr,
            "first_invoice": invoice_preview_data(preview.first_invoice),
        }
        return Response(CreatePreviewSerializer(body).data)

    @extend_schema(
        request=SubscriptionChangeSerializer,
        responses={200: ChangePreviewSerializer},
        summary="Preview a change: the invoices it would issue, without saving anything",
    )
    @action(detail=True, methods=["post"])
    def preview_change(self, request: Any, pk: str) -> Response:
        """Computes the proration and the invoices a change of items would issue, without saving anything. Takes
        the same parameters as `change`.
        """
        subscription = self.get_object()
        serializer = SubscriptionChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        preview = subscription_preview_change(
            subscription=subscription,
            items=_items(serializer.validated_data["items"]),
            proration=serializer.validated_data["proration_behavior"],
        )
        data = {
            "object": "subscription_change_preview",
            "at": preview.at,
            "proration_behavior": preview.proration_mode,
            "cycle_changed": preview.cycle_changed,
            "proration_total": preview.proration_total,
            "proration_lines": [
                {"description": line.description, "amount": line.amount} for line in preview.proration_lines
            ],
            "immediate_invoice": invoice_preview_data(preview.immediate_invoice),
            "upcoming_invoice": invoice_preview_data(preview.upcoming_invoice),
            "mrr_before": preview.mrr_before,
            "mrr_after": preview.mrr_after,
        }
        return Response(ChangePreviewSerializer(data).data)

    @extend_schema(
        request=SubscriptionChangeSerializer,
        responses={200: SubscriptionSerializer},
        summary="Change a subscription's items",
    )
    @action(detail=True, methods=["post"])
    def change(self, request: Any, pk: str) -> Response:
        """Replaces the subscription's items (prices and quantities). With `create_prorations` the unused time is
        credited and the new items charged on the next invoice; `always_invoice` invoices the difference at
        once; `none` changes the items from the next period without proration.
        """
        subscription = self.get_object()
        serializer = SubscriptionChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subscription_change(
            subscription=subscription,
            items=_items(serializer.validated_data["items"]),
            proration=serializer.validated_data["proration_behavior"],
            acting_user=acting_user(request),
        )
        return self._out(subscription)

    @extend_schema(
        request=SubscriptionCancelSerializer, responses={200: SubscriptionSerializer}, summary="Cancel a subscription"
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Any, pk: str) -> Response:
        """Cancels at the period's end (default), at once (`at_period_end: false`, optionally crediting the unused
        time with `prorate`), or at a chosen future instant (`cancel_at`).
        """
        subscription = self.get_object()
        serializer = SubscriptionCancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        cancel_at = data.pop("cancel_at", None)
        if cancel_at is not None:
            subscription_cancel_at(
                subscription=subscription,
                cancel_at=cancel_at,
                reason=data.get("reason", ""),
                acting_user=acting_user(request),
            )
        else:
            subscription_cancel(subscription=subscription, acting_user=acting_user(request), **data)
        return self._out(subscription)

    @extend_schema(
        request=SubscriptionPauseSerializer, responses={200: SubscriptionSerializer}, summary="Pause a subscription"
    )
    @action(detail=True, methods=["post"])
    def pause(self, request: Any, pk: str) -> Response:
        """Pauses collection: no invoice is issued until the subscription resumes, on `resumes_at` if given or when
        `resume` is called.
        """
        subscription = self.get_object()
        serializer = SubscriptionPauseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subscription_pause(
            subscription=subscription,
            resumes_at=serializer.validated_data.get("resumes_at"),
            acting_user=acting_user(request),
        )
        return self._out(subscription)

    @extend_schema(request=None, responses={200: SubscriptionSerializer}, summary="Resume a paused subscription")
    @action(detail=True, methods=["post"])
    def resume(self, request: Any, pk: str) -> Response:
        """Resumes a paused subscription now. Takes no parameters."""
        subscription = self.get_object()
        subscription_resume(subscription=subscription, acting_user=acting_user(request))
        return self._out(subscription)


# -- invoice items, payment methods, payments, refunds --------------------------------


class InvoiceItemFilter(CreatedRangeFilterSet):
    customer = _id_filter(Customer, "customer")
    subscription = _id_filter(Subscription, "subscription")
    pending = django_filters.BooleanFilter(field_name="invoice", lookup_expr="isnull")

    class Meta:
        model = InvoiceItem
        fields = ("currency",)


class InvoiceItemViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = InvoiceItemSerializer
    filterset_class = InvoiceItemFilter

    def get_queryset(self) -> Any:
        return expand_select_related(InvoiceItem.objects.order_by("-pk"), self.request, {"customer": "customer"})

    def create(self, request: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        item = invoice_item_create(
            customer=data["customer"],
            description=data.get("description", ""),
            amount=data.get("amount"),
            price=data.get("price"),
            quantity=data["quantity"],
            currency=data.get("currency"),
            subscription=data.get("subscription"),
            invoice_now=data["invoice_now"],
            discountable=data.get("discountable", True),
            acting_user=acting_user(request),
        )
        return Response(self.get_serializer(item).data, status=status.HTTP_201_CREATED)


class PaymentMethodFilter(django_filters.FilterSet):
    customer = _id_filter(Customer, "customer")

    class Meta:
        model = PaymentMethod
        fields = ("active", "kind")


class PaymentMethodViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = PaymentMethod.objects.order_by("-pk")
    serializer_class = PaymentMethodSerializer
    filterset_class = PaymentMethodFilter
    bodyless_actions = ("detach",)

    @extend_schema(request=PaymentMethodCreateSerializer, responses={201: PaymentMethodSerializer})
    def create(self, request: Any) -> Response:
        serializer = PaymentMethodCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        method = payment_method_attach(acting_user=acting_user(request), **serializer.validated_data)
        return Response(PaymentMethodSerializer(method).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: PaymentMethodSerializer}, summary="Detach a payment method")
    @action(detail=True, methods=["post"])
    def detach(self, request: Any, pk: str) -> Response:
        """Detaches the payment method from its customer: it is no longer charged. Takes no parameters."""
        method = payment_method_detach(payment_method=self.get_object(), acting_user=acting_user(request))
        return Response(PaymentMethodSerializer(method).data)


class PaymentFilter(django_filters.FilterSet):
    customer = _id_filter(Customer, "customer")
    invoice = django_filters.CharFilter(method="filter_invoice")

    class Meta:
        model = Payment
        fields = ("status", "currency")

    def filter_invoice(self, queryset: Any, name: str, value: str) -> Any:
        try:
            return queryset.filter(invoice_id=pk_from_public_id(value, model=Invoice))
        except InvalidPublicId as error:
            raise invalid_id_in_filter(name, error) from None


class PaymentViewSet(ReadOnlyApiViewSet):
    serializer_class = PaymentSerializer
    filterset_class = PaymentFilter

    def get_queryset(self) -> Any:
        return expand_select_related(Payment.objects.order_by("-pk"), self.request, {"invoice": "invoice"})


class RefundViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = Refund.objects.order_by("-pk")
    serializer_class = RefundSerializer
    filterset_fields = ("status",)

    @extend_schema(request=RefundCreateSerializer, responses={201: RefundSerializer})
    def create(self, request: Any) -> Response:
        """Refunds above TARIF_REFUND_APPROVAL_THRESHOLD need a second staff approver in the admin (403)."""
        serializer = RefundCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        refund = refund_request(
            payment=data["payment"],
            amount=data["amount"],
            reason=data["reason"],
            memo=data["memo"],
            requested_by=acting_user(request),
            otp_verified_at=None,
        )
        return Response(RefundSerializer(refund).data, status=status.HTTP_201_CREATED)


# -- usage ---------------------------------------------------------------------------


# The keys of one usage event (UsageEventInputSerializer's fields); others are refused per event.
USAGE_EVENT_KEYS = frozenset({"id", "customer", "meter", "timestamp", "value", "unique_value"})


def _usage_inputs(raw_events: list[dict]) -> tuple[list[UsageEventInput], list[int], list[dict]]:
    """Turn JSON events into service inputs; events that cannot even be parsed are reported here."""
    inputs: list[UsageEventInput] = []
    positions: list[int] = []
    errors: list[dict] = []
    for index, raw in enumerate(raw_events):
        external_id = raw.get("id")
        shown_id = external_id if isinstance(external_id, str) else ""

        def refuse(code: str, message: str, index: int = index, shown_id: str = shown_id) -> None:
            errors.append({"index": index, "id": shown_id, "code": code, "message": message})

        unknown = sorted(str(key) for key in raw if key not in USAGE_EVENT_KEYS)
        if unknown:
            refuse("unknown_parameter", gettext("Unknown parameter: %(name)s.") % {"name": unknown[0]})
            continue
        try:
            customer_id = pk_from_public_id(raw.get("customer"), model=Customer)
        except InvalidPublicId as error:
            refuse("invalid_customer", gettext("customer: %(error)s") % {"error": error})
            continue
        timestamp = raw.get("timestamp")
        parsed = parse_datetime(timestamp) if isinstance(timestamp, str) else None
        if parsed is None:
            refuse("invalid_timestamp", gettext("timestamp: an ISO 8601 date-time with a UTC offset is required."))
            continue
        value = raw.get("value", 1)
        if isinstance(value, float):
            value = str(value)  # JSON numbers with a point: read them as written, never through binary floats
        if isinstance(value, str):
            try:
                value = Decimal(value)
            except InvalidOperation:
                refuse("invalid_value", gettext("value: not a number."))
                continue
        unique_value = raw.get("unique_value", "")
        meter_key = raw.get("meter")
        inputs.append(
            UsageEventInput(
                customer_id=customer_id,
                meter_key=meter_key if isinstance(meter_key, str) else "",
                external_id=external_id if isinstance(external_id, str) else "",
                timestamp=parsed,
                value=value,
                unique_value=unique_value if isinstance(unique_value, str) else str(unique_value),
            )
        )
        positions.append(index)
    return inputs, positions, errors


class UsageEventFilter(django_filters.FilterSet):
    customer = _id_filter(Customer, "customer")
    meter = django_filters.CharFilter(field_name="meter__key")
    external_id = django_filters.CharFilter()

    class Meta:
        model = UsageEvent
        fields: list[str] = []


class UsageEventViewSet(ReadOnlyApiViewSet):
    serializer_class = UsageEventSerializer
    filterset_class = UsageEventFilter

    def get_queryset(self) -> Any:
        return UsageEvent.objects.order_by("-pk").select_related("meter")

    @extend_schema(
        request=UsageBatchSerializer,
        responses={200: UsageBatchResultSerializer},
        summary="Record a batch of usage events (up to 1,000; deduplicated on id; errors per event)",
    )
    def create(self, request: Any) -> Response:
        """Records up to 1,000 usage events at once. Each event is checked on its own: the valid ones are recorded,
        the others reported in `errors` with their position. An event whose `id` was already recorded counts as
        a duplicate and is not recorded again.
        """
        serializer = UsageBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        inputs, positions, errors = _usage_inputs(serializer.validated_data["events"])
        result = usage_events_record(events=inputs)
        errors += [
            {"index": positions[error.index], "id": error.external_id, "code": error.code, "message": error.message}
            for error in result.errors
        ]
        errors.sort(key=lambda error: error["index"])
        body = {"object": "usage_batch", "accepted": result.accepted, "duplicates": result.duplicates, "errors": errors}
        return Response(UsageBatchResultSerializer(body).data)


# -- events, test clocks -------------------------------------------------------------


class DomainEventFilter(django_filters.FilterSet):
    customer = _id_filter(Customer, "customer")
    type = django_filters.CharFilter()
    type_prefix = django_filters.CharFilter(field_name="type", lookup_expr="startswith")
    occurred_after = UtcDateTimeFilter(field_name="occurred_at", lookup_expr="gte")

    class Meta:
        model = DomainEvent
        fields = ("object_type",)


class DomainEventViewSet(ReadOnlyApiViewSet):
    queryset = DomainEvent.objects.order_by("-pk")
    serializer_class = DomainEventSerializer
    filterset_class = DomainEventFilter


class TestClockViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    __test__ = False
    queryset = TestClock.objects.order_by("-pk")
    serializer_class = TestClockSerializer
    permission_classes = [HasApiKeyScope, SandboxKeyOnly]

    def create(self, request: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        clock = test_clock_create(**serializer.validated_data)
        return Response(self.get_serializer(clock).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=TestClockAdvanceSerializer,
        responses={200: TestClockSerializer},
        summary="Advance the clock and bill its customers up to the new time",
    )
    @action(detail=True, methods=["post"])
    def advance(self, request: Any, pk: str) -> Response:
        """Moves a test clock forward (never back) and runs, for the customers attached to it, everything that
        falls due up to the new time: renewals, trials ending, invoices, collection and dunning. Sandbox keys
        only.
        """
        clock = self.get_object()
        serializer = TestClockAdvanceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        test_clock_advance(clock=clock, to=serializer.validated_data["frozen_time"], acting_user=acting_user(request))
        clock.refresh_from_db()
        return Response(self.get_serializer(clock).data)


class WebhookEndpointViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Endpoints receiving signed events; the secret is returned only on create and roll_secret."""

    queryset = WebhookEndpoint.objects.order_by("-pk")
    serializer_class = WebhookEndpointSerializer
    filterset_fields = ("active",)
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    bodyless_actions = ("destroy", "roll_secret")

    @extend_schema(request=WebhookEndpointSerializer, responses={201: WebhookEndpointWithSecretSerializer})
    def create(self, request: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        endpoint = webhook_endpoint_create(
            url=data["url"], enabled_events=data.get("enabled_events", []), description=data.get("description", "")
        )
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Any, pk: str) -> Response:
        endpoint = self.get_object()
        serializer = self.get_serializer(endpoint, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_update(endpoint=endpoint, changes=serializer.validated_data)
        return Response(self.get_serializer(endpoint).data)

    def destroy(self, request: Any, pk: str) -> Response:
        """Stops deliveries (the endpoint is deactivated; its delivery history stays)."""
        webhook_endpoint_update(endpoint=self.get_object(), changes={"active": False})
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses={200: WebhookEndpointWithSecretSerializer},
        summary="Roll a webhook endpoint's signing secret",
    )
    @action(detail=True, methods=["post"])
    def roll_secret(self, request: Any, pk: str) -> Response:
        """Replaces the endpoint's signing secret and returns the new one (shown once). Deliveries are signed with
        the new secret from now on. Takes no parameters.
        """
        endpoint = webhook_endpoint_roll_secret(endpoint=self.get_object())
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data)


ROUTES = [
    ("products", ProductViewSet, "product"),
    ("prices", PriceViewSet, "price"),
    ("coupons", CouponViewSet, "coupon"),
    ("promotion_codes", PromotionCodeViewSet, "promotion_code"),
    ("subscriptions", SubscriptionViewSet, "subscription"),
    ("invoice_items", InvoiceItemViewSet, "invoice_item"),
    ("payment_methods", PaymentMethodViewSet, "payment_method"),
    ("payments", PaymentViewSet, "payment"),
    ("refunds", RefundViewSet, "refund"),
    ("usage_events", UsageEventViewSet, "usage_event"),
    ("events", DomainEventViewSet, "event"),
    ("test_clocks", TestClockViewSet, "test_clock"),
    ("webhook_endpoints", WebhookEndpointViewSet, "webhook_endpoint"),
]
