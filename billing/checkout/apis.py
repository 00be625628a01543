"""`/api/v1/checkout/sessions`: create, list, retrieve, expire. Thin over the services.

The calling key's mode is the session's: a test key (`tk_test_…`) creates test-mode sessions
from test-mode prices only (a live price id is "no such object"), and never sees live sessions.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from billing.checkout.models import CheckoutSession
from billing.checkout.selectors import checkout_session_get
from billing.checkout.serializers import CheckoutSessionInputSerializer, CheckoutSessionSerializer
from billing.checkout.services import checkout_session_create, checkout_session_expire
from config.api.authentication import acting_user
from config.api.views import ApiViewSet, request_livemode
from invoices.models import Brand
from invoices.selectors import NoBrandConfigured

SESSION_EXAMPLE = OpenApiExample(
    "An open subscription checkout",
    value={
        "id": "cs_live_4f9c2d7e0b1a4c8e9d3f5a6b7c8d9e0f",
        "object": "checkout.session",
        "url": "https://billing.example.com/checkout/cs_live_4f9c2d7e0b1a4c8e9d3f5a6b7c8d9e0f/",
        "livemode": True,
        "mode": "subscription",
        "status": "open",
        "brand": "brand_1",
        "currency": "EUR",
        "line_items": [{"object": "item", "price": "price_12", "quantity": 1}],
        "amount_subtotal": None,
        "amount_tax": None,
        "amount_total": None,
        "customer": None,
        "customer_email": "",
        "trial_period_days": 14,
        "coupon": None,
        "allow_promotion_codes": True,
        "tax_id_collection": True,
        "billing_address_collection": "auto",
        "success_url": "https://example.com/welcome?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://example.com/pricing",
        "origin": "api",
        "origin_id": "",
        "payment_method_types": ["card", "sepa_debit"],
        "payment_method_type": "",
        "subscription": None,
        "invoice": None,
        "payment_method": None,
        "metadata": {},
        "expires_at": "2026-12-08T09:00:00Z",
        "completed_at": None,
        "created_at": "2026-12-07T09:00:00Z",
    },
    response_only=True,
)


@extend_schema_view(
    list=extend_schema(
        summary="List checkout sessions",
        description="Sessions of the key's mode, newest first; filter by `status`.",
        responses={200: CheckoutSessionSerializer(many=True)},
        examples=[SESSION_EXAMPLE],
    ),
    retrieve=extend_schema(
        summary="Retrieve a checkout session",
        description="One session by id (`cs_live_…` / `cs_test_…`). Once complete it names the customer, "
        "subscription, invoice and payment method it created.",
        responses={200: CheckoutSessionSerializer},
        examples=[SESSION_EXAMPLE],
    ),
    create=extend_schema(
        summary="Create a checkout session",
        description="A page hosted by Tarif where a visitor subscribes (`subscription`), pays once (`payment`) "
        "or saves a card (`setup`). Send the visitor to `url`; on success Tarif creates the customer, the "
        "subscription or paid invoice, invites them to the portal, records `checkout.session.completed` and "
        "redirects to `success_url` (with `{CHECKOUT_SESSION_ID}` replaced). Sessions expire after 24 hours. "
        "Accepts an `Idempotency-Key`.",
        request=CheckoutSessionInputSerializer,
        responses={201: CheckoutSessionSerializer},
        examples=[
            OpenApiExample(
                "Subscribe to a plan with a trial",
                value={
                    "mode": "subscription",
                    "line_items": [{"price": "price_12", "quantity": 1}],
                    "trial_period_days": 14,
                    "allow_promotion_codes": True,
                    "success_url": "https://example.com/welcome?session_id={CHECKOUT_SESSION_ID}",
                    "cancel_url": "https://example.com/pricing",
                },
                request_only=True,
            ),
            SESSION_EXAMPLE,
        ],
    ),
    expire=extend_schema(
        summary="Expire a checkout session",
        description="Closes an open session at once: its page no longer accepts a payment. "
        "A session already complete or expired is a 409. Takes no parameters.",
        request=None,
        responses={200: CheckoutSessionSerializer},
        examples=[
            OpenApiExample(
                "Expired",
                value={**SESSION_EXAMPLE.value, "status": "expired", "url": None},
                response_only=True,
            )
        ],
    ),
)
class CheckoutSessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = CheckoutSessionSerializer
    filterset_fields = ("status", "mode", "origin")
    http_method_names = ["get", "post", "head", "options"]
    bodyless_actions = ("expire",)
    lookup_value_regex = "cs_(?:live|test)_[0-9a-f]{1,40}"

    def get_queryset(self) -> Any:
        return CheckoutSession.objects.select_related("brand").prefetch_related("line_items").order_by("-pk")

    def get_object(self) -> CheckoutSession:
        session = checkout_session_get(public_id=self.kwargs["pk"], livemode=request_livemode(self.request))
        if session is None:
            raise Http404
        return session

    def create(self, request: Any) -> Response:
        serializer = CheckoutSessionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        brand = data.pop("brand", None) or Brand.objects.filter(is_default=True).first()
        if brand is None:
            raise NoBrandConfigured(gettext("No brand was given and there is no default brand."))
        session = checkout_session_create(
            brand=brand,
            livemode=request_livemode(request),
            mode=data["mode"],
            line_items=[(item["price"], item["quantity"]) for item in data.get("line_items", [])],
            success_url=data["success_url"],
            cancel_url=data["cancel_url"],
            customer=data.get("customer"),
            customer_email=data.get("customer_email", ""),
            trial_period_days=data.get("trial_period_days"),
            coupon=data.get("coupon"),
            allow_promotion_codes=data.get("allow_promotion_codes", False),
            tax_id_collection=data.get("tax_id_collection", True),
            billing_address_collection=data.get("billing_address_collection", "auto"),
            metadata=data.get("metadata") or None,
            payment_method_types=data.get("payment_method_types"),
            origin=CheckoutSession.Origin.API,
            acting_user=acting_user(request),
        )
        return Response(CheckoutSessionSerializer(session).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def expire(self, request: Any, pk: str) -> Response:
        session = checkout_session_expire(session=self.get_object(), acting_user=acting_user(request))
        return Response(CheckoutSessionSerializer(session).data)


ROUTES = [("checkout/sessions", CheckoutSessionViewSet, "checkout-session")]
