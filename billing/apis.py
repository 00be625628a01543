"""Billing resources of the integrator API (/api/v1/): each action is one call into billing.services."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import F
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from billing.cycles import AnchorConfig
from billing.models import (
    Coupon,
    CustomerDiscount,
    InvoiceItem,
    Payment,
    PaymentMethod,
    Price,
    Product,
    PromotionCode,
    Refund,
    Subscription,
    SubscriptionDiscount,
    TestClock,
    UsageEvent,
    WebhookEndpoint,
)
from billing.serializers import (
    ChangePreviewSerializer,
    CouponSerializer,
    CreatePreviewSerializer,
    DiscountInputSerializer,
    DiscountSerializer,
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
from billing.services.coupons import (
    DiscountSpec,
    coupon_create,
    coupon_update,
    customer_discount_apply,
    customer_discount_remove,
    promotion_code_create,
)
from billing.services.invoice_items import invoice_item_create
from billing.services.payments import payment_method_attach, payment_method_detach
from billing.services.refunds import refund_request
from billing.services.subscriptions import (
    ItemSpec,
    subscription_cancel,
    subscription_cancel_at,
    subscription_coupon_remove,
    subscription_create,
    subscription_discount_add,
    subscription_pause,
    subscription_preview_create,
    subscription_resume,
)
from billing.services.subscriptions.common import instant
from billing.services.subscriptions.update import subscription_preview_update, subscription_update
from billing.services.test_clocks import test_clock_advance, test_clock_create
from billing.services.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_roll_secret,
    webhook_endpoint_update,
)
from billing.update_serializers import SubscriptionUpdateSerializer, pending_update_prefetch
from billing.usage_apis import CURRENT_USAGE_SCHEMA, USAGE_ROUTES, subscription_usage_response, usage_batch_body
from config.api.authentication import acting_user
from config.api.filters import UtcDateTimeFilter, invalid_id_in_filter
from config.api.ids import InvalidPublicId, pk_from_public_id
from config.api.permissions import HasApiKeyScope, SandboxKeyOnly
from config.api.serializers import expand_select_related
from config.api.views import ApiViewSet, ReadOnlyApiViewSet
from config.events.models import DomainEvent
from config.modes import scope_to_mode
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


def _change_preview_body(preview: Any) -> Any:
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
    return ChangePreviewSerializer(data).data


def _anchor_arguments(data: dict) -> dict[str, Any]:
    """Issue 16, cycles: the anchor rule and the first period's proration, as the services take them."""
    config = data.get("billing_cycle_anchor_config")
    return {
        "billing_cycle_anchor_config": AnchorConfig(**config) if config else None,
        "proration_behavior": data.get("proration_behavior"),
    }


_CREATE_DESCRIPTION = (
    "Subscribes a customer to recurring prices and issues the first invoice. The anchor is `billing_cycle_anchor` "
    "(an instant) or `billing_cycle_anchor_config` (a rule: day of the month, and the month for yearly cycles; "
    "day 31 bills on the last day of shorter months), never both. With an anchor, `proration_behavior` says "
    "whether the time up to the first billing date is billed now, prorated (`create_prorations`), or free "
    "(`none`). Prices billed in arrears are not charged on the first invoice. Errors are problem+json "
    "(documented per status): 422 `anchor_and_anchor_config` (both an anchor and a rule), "
    "`invalid_anchor_config` (a rule the cycle cannot follow, e.g. on a weekly cycle, or a month on a "
    "monthly one; `field` names the parameter), currency, trial or coupon refusals; 400 for invalid or "
    "unknown parameters."
)
_CREATE_EXAMPLES = [
    OpenApiExample(
        "Bill on the 31st (last day of shorter months), first period free",
        request_only=True,
        value={
            "customer": "cus_42",
            "items": [{"price": "price_7", "quantity": 1}],
            "billing_cycle_anchor_config": {"day_of_month": 31, "hour": 0, "minute": 0, "second": 0},
            "proration_behavior": "none",
        },
    ),
    OpenApiExample(
        "Yearly on 1 January, first period prorated",
        request_only=True,
        value={
            "customer": "cus_42",
            "items": [{"price": "price_8"}],
            "billing_cycle_anchor_config": {"day_of_month": 1, "month": 1},
            "proration_behavior": "create_prorations",
        },
    ),
]


class SubscriptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = SubscriptionSerializer
    read_actions = ("preview_change", "preview", "usage", "preview_update")
    bodyless_actions = ("resume", "discount_remove")
    filterset_class = SubscriptionFilter

    def get_queryset(self) -> Any:
        queryset = Subscription.objects.order_by("-pk").prefetch_related(
            "items", pending_update_prefetch(), "discounts"
        )
        return expand_select_related(queryset, self.request, {"customer": "customer"})

    def _out(self, subscription: Subscription, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=subscription.pk)
        return Response(SubscriptionSerializer(fresh, context=self.get_serializer_context()).data, status=code)

    @extend_schema(
        request=SubscriptionCreateSerializer,
        responses={201: SubscriptionSerializer},
        summary="Create a subscription",
        description=_CREATE_DESCRIPTION,
        examples=_CREATE_EXAMPLES,
    )
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
            discounts=_discount_specs(data.get("discounts") or ()),
            proration_credit_basis=data.get("proration_credit_basis") or "",
            acting_user=acting_user(request),
            **_anchor_arguments(data),
        )
        return self._out(subscription, status.HTTP_201_CREATED)

    @extend_schema(
        request=SubscriptionCreateSerializer,
        responses={200: CreatePreviewSerializer},
        summary="Preview a new subscription: its first invoice, without saving anything",
        description=_CREATE_DESCRIPTION,
        examples=_CREATE_EXAMPLES,
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
            **_anchor_arguments(data),
            discounts=_discount_specs(data.get("discounts") or ()),
            proration_credit_basis=data.get("proration_credit_basis") or "",
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
            proration_credit_basis=serializer.validated_data.get("proration_credit_basis"),
        )
        return Response(_change_preview_body(preview))

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
            proration_credit_basis=serializer.validated_data.get("proration_credit_basis"),
            acting_user=acting_user(request),
        )
        return self._out(subscription)

    @extend_schema(
        summary="Update a subscription",
        description=(
            "Stripe's subscription update, applied entirely or not at all: `items` (an item `id` to change "
            "or delete with `deleted: true`, a `price` to add), `proration_behavior`, `coupon` (null removes) "
            "or `promotion_code`, `trial_end` (an instant, or `now`; on an active subscription it adds a "
            "trial), `cancel_at` (null undoes), `cancel_at_period_end`, `billing_cycle_anchor: now`, "
            '`collection_method` and `days_until_due`, `metadata` (merged; "" removes a key). '
            "`payment_behavior: pending_if_incomplete` holds an item change until its invoice is paid "
            "(`pending_update`). Errors (problem+json `code`): 400 unknown, malformed or conflicting "
            "parameters (`unknown_parameter`, `trial_end_past`, `cancel_at_past`, `cancel_at_too_far`, "
            "`parameter_conflict`, `terms`, `item_not_found`...); 404 a subscription of the other mode; 409 "
            "`subscription_canceled`, `not_trialing`, `pending_update_exists`; 422 a business rule of the "
            "composed services (currency, coupon limits). Accepts an `Idempotency-Key`."
        ),
        request=SubscriptionUpdateSerializer,
        responses={200: SubscriptionSerializer},
        examples=[
            OpenApiExample(
                "Add a seat, invoiced at once",
                value={"items": [{"id": "si_12", "quantity": 3}], "proration_behavior": "always_invoice"},
                request_only=True,
            ),
            OpenApiExample(
                "Add a trial to an active subscription",
                value={"trial_end": "2025-07-01T00:00:00Z", "proration_behavior": "create_prorations"},
                request_only=True,
            ),
            OpenApiExample("Undo a scheduled cancellation", value={"cancel_at": None}, request_only=True),
            OpenApiExample(
                "Restart the billing cycle now, tagging it",
                value={"billing_cycle_anchor": "now", "metadata": {"reason": "anniversary", "old": ""}},
                request_only=True,
            ),
        ],
    )
    def partial_update(self, request: Any, pk: str) -> Response:
        subscription = self.get_object()
        serializer = SubscriptionUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subscription_update(
            subscription=subscription,
            changes=serializer.to_update(subscription=subscription),
            acting_user=acting_user(request),
        )
        return self._out(subscription)

    @extend_schema(
        summary="Preview an update: the invoices its item changes or anchor reset would issue",
        description=(
            "Takes the body of `PATCH /subscriptions/{id}` restricted to `items`, `proration_behavior` and "
            "`billing_cycle_anchor`, and answers like `preview_change`, saving nothing. Other parameters are "
            "refused with 400 `preview_unsupported`; other errors as for the update."
        ),
        request=SubscriptionUpdateSerializer,
        responses={200: ChangePreviewSerializer},
        examples=[
            OpenApiExample(
                "Preview one more seat invoiced at once",
                value={"items": [{"id": "si_12", "quantity": 3}], "proration_behavior": "always_invoice"},
                request_only=True,
            )
        ],
    )
    @action(detail=True, methods=["post"])
    def preview_update(self, request: Any, pk: str) -> Response:
        subscription = self.get_object()
        serializer = SubscriptionUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        preview = subscription_preview_update(
            subscription=subscription, changes=serializer.to_update(subscription=subscription)
        )
        return Response(_change_preview_body(preview))

    @extend_schema(
        summary="Add a discount to a subscription",
        description=(
            "Adds a coupon (or the coupon of a promotion code) at the end of the subscription's discounts. "
            "It applies from the next invoice; the current period is not prorated. Discounts stack in order "
            '(docs/billing.md, "Several discounts").'
        ),
        request=DiscountInputSerializer,
        responses={
            201: DiscountSerializer,
        },
        examples=[OpenApiExample("By coupon", value={"coupon": "coupon_12"}, request_only=True)],
    )
    @action(detail=True, methods=["post"], url_path="discounts")
    def discounts(self, request: Any, pk: str) -> Response:
        subscription = self.get_object()
        serializer = DiscountInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        discount = subscription_discount_add(
            subscription=subscription,
            coupon=serializer.validated_data.get("coupon"),
            promotion_code=serializer.validated_data.get("promotion_code") or None,
            acting_user=acting_user(request),
        )
        return Response(DiscountSerializer(discount).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Remove a discount from a subscription",
        description="Ends one running discount (`di_…`) from the next invoice on; returns the subscription.",
        request=None,
        responses={200: SubscriptionSerializer},
        parameters=[OpenApiParameter("discount_id", str, OpenApiParameter.PATH, description="A discount id, di_…")],
    )
    @action(detail=True, methods=["delete"], url_path=r"discounts/(?P<discount_id>[^/.]+)")
    def discount_remove(self, request: Any, pk: str, discount_id: str) -> Response:
        subscription = self.get_object()
        discount = _discount_of(subscription, discount_id)
        subscription_coupon_remove(subscription=subscription, discount=discount, acting_user=acting_user(request))
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

    @CURRENT_USAGE_SCHEMA
    @action(detail=True, methods=["get"])
    def usage(self, request: Any, pk: str) -> Response:
        """Issue 16 (usage): units and cost so far in the current period, and the thresholds."""
        return subscription_usage_response(self.get_object())

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
        body = usage_batch_body(serializer.validated_data["events"])
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


CUSTOMER_ID = OpenApiParameter("customer_id", str, OpenApiParameter.PATH, description="A customer id, cus_…")


class CustomerDiscountViewSet(ApiViewSet):
    bodyless_actions = ("remove",)
    """`/customers/{id}/discounts`: a customer's discount (Stripe's customer.discount)."""

    serializer_class = DiscountSerializer

    def get_queryset(self) -> Any:
        return Customer.objects.all()

    def _customer(self, customer_id: str) -> Customer:
        try:
            pk = pk_from_public_id(customer_id, model=Customer)
        except InvalidPublicId as error:
            raise NotFound() from error
        found = scope_to_mode(self.get_queryset()).filter(pk=pk).first()
        if found is None:
            raise NotFound()
        return found

    @extend_schema(
        summary="Give a customer a discount",
        parameters=[CUSTOMER_ID],
        description=(
            "Applies to every invoice of the customer's subscriptions that hold no discount of their own "
            "(a subscription's discounts win, as in Stripe). Replaces the customer's running discount."
        ),
        request=DiscountInputSerializer,
        responses={201: DiscountSerializer},
        examples=[OpenApiExample("By promotion code", value={"promotion_code": "SPRING"}, request_only=True)],
    )
    def create(self, request: Any, customer_id: str) -> Response:
        customer = self._customer(customer_id)
        serializer = DiscountInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        discount = customer_discount_apply(
            customer=customer,
            coupon=serializer.validated_data.get("coupon"),
            promotion_code=serializer.validated_data.get("promotion_code") or None,
            at=instant(at=None, customer=customer),
            acting_user=acting_user(request),
        )
        return Response(DiscountSerializer(discount).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="List a customer's discounts",
        parameters=[CUSTOMER_ID],
        description="The running discount first, then ended ones, newest first.",
        responses={200: DiscountSerializer(many=True)},
    )
    def list(self, request: Any, customer_id: str) -> Response:
        customer = self._customer(customer_id)
        rows = CustomerDiscount.objects.filter(customer=customer).order_by(F("end").desc(nulls_first=True), "-pk")
        return Response({"object": "list", "data": DiscountSerializer(rows, many=True).data})

    @extend_schema(
        summary="Remove a customer's discount",
        parameters=[CUSTOMER_ID],
        description="Ends the customer's running discount from its next invoice on.",
        request=None,
        responses={204: None},
    )
    @action(detail=False, methods=["delete"], url_path="current")
    def remove(self, request: Any, customer_id: str) -> Response:
        customer = self._customer(customer_id)
        customer_discount_remove(
            customer=customer, at=instant(at=None, customer=customer), acting_user=acting_user(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


def _discount_specs(rows: Any) -> list[DiscountSpec]:
    return [DiscountSpec(coupon=row.get("coupon"), promotion_code=row.get("promotion_code") or None) for row in rows]


def _discount_of(subscription: Subscription, discount_id: str) -> SubscriptionDiscount:
    try:
        pk = pk_from_public_id(discount_id, model=SubscriptionDiscount)
    except InvalidPublicId as error:
        raise NotFound() from error
    found = SubscriptionDiscount.objects.filter(subscription=subscription, pk=pk).first()
    if found is None:
        raise NotFound()
    return found


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
    *USAGE_ROUTES,  # issue 16 (usage): meters, usage thresholds
    (r"customers/(?P<customer_id>[^/.]+)/discounts", CustomerDiscountViewSet, "customer_discount"),
]
