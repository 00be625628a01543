"""Features, product features and a customer's entitlements over the API: thin views over the services."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.response import Response

from billing.entitlements.models import Feature, ProductFeature
from billing.entitlements.selectors import customer_entitlements_in_mode
from billing.entitlements.serializers import (
    EntitlementListSerializer,
    FeatureSerializer,
    ProductFeatureInputSerializer,
    ProductFeatureSerializer,
    ProductFeatureUpdateSerializer,
    entitlement_list_representation,
)
from billing.entitlements.services import (
    feature_create,
    feature_update,
    product_feature_attach,
    product_feature_detach,
    product_feature_update,
)
from billing.models import Product
from config.api.authentication import acting_user
from config.api.ids import InvalidPublicId, pk_from_public_id
from config.api.views import ApiViewSet, request_livemode
from config.modes import scope_to_mode
from customers.models import Customer

FEATURE_EXAMPLE = OpenApiExample(
    "A quantity feature",
    value={
        "id": "feat_3",
        "object": "feature",
        "lookup_key": "projects",
        "name": "Projects",
        "kind": "quantity",
        "unit_label": "project",
        "active": True,
        "metadata": {},
        "livemode": True,
        "created_at": "2026-12-01T09:00:00Z",
    },
    response_only=True,
)
ENTITLEMENTS_EXAMPLE = OpenApiExample(
    "A customer on Pro with 3 seats",
    value={
        "object": "list",
        "customer": "cus_42",
        "data": [
            {
                "object": "entitlement",
                "feature": "feat_3",
                "lookup_key": "projects",
                "name": "Projects",
                "kind": "quantity",
                "unit_label": "project",
                "quantity": 30,
            },
            {
                "object": "entitlement",
                "feature": "feat_1",
                "lookup_key": "sso",
                "name": "Single sign-on",
                "kind": "boolean",
                "unit_label": "",
                "quantity": None,
            },
        ],
    },
    response_only=True,
)


@extend_schema_view(
    list=extend_schema(
        summary="List features",
        description="Features of the key's mode, by lookup key.",
        responses={200: FeatureSerializer(many=True)},
        examples=[FEATURE_EXAMPLE],
    ),
    retrieve=extend_schema(
        summary="Retrieve a feature",
        description="One feature by id.",
        responses={200: FeatureSerializer},
        examples=[FEATURE_EXAMPLE],
    ),
    create=extend_schema(
        summary="Create a feature",
        description="A feature products can grant: `boolean` (on/off) or `quantity` (a limit). "
        "Its `lookup_key` is what your code checks; it is unique in the key's mode.",
        request=FeatureSerializer,
        responses={201: FeatureSerializer},
        examples=[
            OpenApiExample(
                "Create",
                value={"lookup_key": "projects", "name": "Projects", "kind": "quantity", "unit_label": "project"},
                request_only=True,
            ),
            FEATURE_EXAMPLE,
        ],
    ),
    partial_update=extend_schema(
        summary="Update a feature",
        description="Name, unit label, metadata and `active`; the lookup key and kind only until a product grants it.",
        request=FeatureSerializer,
        responses={200: FeatureSerializer},
        examples=[FEATURE_EXAMPLE],
    ),
)
class FeatureViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = Feature.objects.order_by("lookup_key", "pk")
    serializer_class = FeatureSerializer
    filterset_fields = ("active", "kind", "lookup_key")
    http_method_names = ["get", "post", "patch", "head", "options"]

    def create(self, request: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        feature = feature_create(data=serializer.validated_data, livemode=request_livemode(request))
        return Response(self.get_serializer(feature).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Any, pk: str) -> Response:
        feature = self.get_object()
        serializer = self.get_serializer(feature, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        feature = feature_update(feature=feature, changes=serializer.validated_data)
        return Response(self.get_serializer(feature).data)


def _scoped_parent(request: Any, model: type, value: str) -> Any:
    """The product or customer of a nested URL, in the key's mode (another mode's id is a 404)."""
    try:
        pk = pk_from_public_id(value, model=model)
    except InvalidPublicId:
        raise Http404 from None
    obj = scope_to_mode(model.objects.all(), livemode=request_livemode(request)).filter(pk=pk).first()
    if obj is None:
        raise Http404
    return obj


@extend_schema_view(
    list=extend_schema(
        summary="List a product's features",
        description="The features the product grants its subscribers (Stripe: product features).",
        responses={200: ProductFeatureSerializer(many=True)},
    ),
    retrieve=extend_schema(summary="Retrieve a product feature", responses={200: ProductFeatureSerializer}),
    create=extend_schema(
        summary="Give a feature to a product",
        description="Every subscriber of the product gets the feature at once (their entitlements change in the "
        "same transaction and `entitlements.updated` is sent for each customer whose entitlements changed).",
        request=ProductFeatureInputSerializer,
        responses={201: ProductFeatureSerializer},
        examples=[
            OpenApiExample(
                "Projects per seat", value={"feature": "feat_3", "quantity": 10, "per_unit": True}, request_only=True
            )
        ],
    ),
    partial_update=extend_schema(
        summary="Change a product feature's quantity",
        request=ProductFeatureUpdateSerializer,
        responses={200: ProductFeatureSerializer},
    ),
    destroy=extend_schema(
        summary="Take a feature away from a product",
        description="Its subscribers lose the feature at once (unless another of their items grants it).",
        responses={204: None},
    ),
)
class ProductFeatureViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = ProductFeatureSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    bodyless_actions = ("destroy",)

    def _product(self) -> Product:
        return _scoped_parent(self.request, Product, self.kwargs["product_id"])

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no product in the URL
            return ProductFeature.objects.none()
        return ProductFeature.objects.filter(product=self._product()).select_related("feature").order_by("pk")

    def create(self, request: Any, product_id: str) -> Response:
        product = self._product()
        serializer = ProductFeatureInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        grant = product_feature_attach(product=product, acting_user=acting_user(request), **serializer.validated_data)
        return Response(ProductFeatureSerializer(grant).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Any, product_id: str, pk: str) -> Response:
        grant = self.get_object()
        serializer = ProductFeatureUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        grant = product_feature_update(grant=grant, acting_user=acting_user(request), **serializer.validated_data)
        return Response(ProductFeatureSerializer(grant).data)

    def destroy(self, request: Any, product_id: str, pk: str) -> Response:
        product_feature_detach(grant=self.get_object(), acting_user=acting_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="A customer's entitlements",
        description="Every feature the customer has now, from its active, trialing and past-due subscriptions: "
        "`quantity` adds up across items for quantity features and is null for on/off features. Answered from a "
        "table kept current on every subscription change, so it is cheap to call on every request of your app.",
        responses={200: EntitlementListSerializer},
        examples=[ENTITLEMENTS_EXAMPLE],
    ),
)
class CustomerEntitlementViewSet(ApiViewSet):
    """`GET /api/v1/customers/{id}/entitlements`: one indexed aggregate (bench/entitlements.py)."""

    serializer_class = EntitlementListSerializer
    pagination_class = None
    read_actions = ("list",)

    def get_queryset(self) -> Any:
        return Customer.objects.none()

    def list(self, request: Any, customer_id: str) -> Response:
        try:
            pk = pk_from_public_id(customer_id, model=Customer)
        except InvalidPublicId:
            raise Http404 from None
        # One round trip: the customer in the key's mode and its entitlements (another mode's id: 404).
        entitlements = customer_entitlements_in_mode(customer_id=pk, livemode=request_livemode(request))
        if entitlements is None:
            raise Http404
        return Response(entitlement_list_representation(customer_id=pk, entitlements=entitlements))


ROUTES = [
    ("features", FeatureViewSet, "feature"),
    (r"products/(?P<product_id>prod_[0-9]+)/features", ProductFeatureViewSet, "product-feature"),
    (r"customers/(?P<customer_id>cus_[0-9]+)/entitlements", CustomerEntitlementViewSet, "customer-entitlement"),
]
