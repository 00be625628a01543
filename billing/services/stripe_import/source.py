"""Reading a Stripe account: list endpoints page by page (`starting_after`), through the SDK.

Only reads: the importer never writes to Stripe. The key is held by the client only; it is
never logged or put in an error message (Stripe's errors do not contain it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import stripe

PAGE_SIZE = 100

# stage -> (list path, fixed query parameters)
LISTS: dict[str, tuple[str, dict[str, Any]]] = {
    "products": ("/v1/products", {}),
    "prices": ("/v1/prices", {"expand": ["data.tiers"]}),
    "coupons": ("/v1/coupons", {}),
    "promotion_codes": ("/v1/promotion_codes", {}),
    "customers": ("/v1/customers", {"expand": ["data.tax_ids"]}),
    "subscriptions": ("/v1/subscriptions", {"status": "all", "expand": ["data.discounts"]}),
    "invoices": ("/v1/invoices", {"status": "open"}),
}


class StripeReadError(Exception):
    """Stripe could not be read (network, refused key): the run stops and can be resumed."""


def _plain(obj: Any) -> dict[str, Any]:
    return json.loads(str(obj)) if not isinstance(obj, dict) or hasattr(obj, "to_dict") else obj


class StripeSource:
    def __init__(self, *, api_key: str, api_base: str = "") -> None:
        self._client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base} if api_base else {}, max_network_retries=2
        )

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.raw_request("get", path, **params)
        except stripe.StripeError as error:
            # The SDK's message never contains the key; the status and code say enough.
            raise StripeReadError(
                f"Stripe refused GET {path}: {error.http_status or ''} {error.code or type(error).__name__}"
            ) from error
        return _plain(self._client.deserialize(response, api_mode="V1"))

    def account(self) -> dict[str, Any]:
        return self._get("/v1/account", {})

    def objects(self, stage: str, *, starting_after: str | None) -> Iterator[dict[str, Any]]:
        """Every object of a stage's list, oldest page first, after `starting_after`."""
        path, fixed = LISTS[stage]
        yield from self._pages(path, fixed, starting_after)

    def _pages(self, path: str, fixed: dict[str, Any], starting_after: str | None) -> Iterator[dict[str, Any]]:
        while True:
            params = {**fixed, "limit": PAGE_SIZE}
            if starting_after:
                params["starting_after"] = starting_after
            page = self._get(path, params)
            data = page.get("data") or []
            yield from data
            if not page.get("has_more") or not data:
                return
            starting_after = data[-1]["id"]

    def tax_ids(self, customer: dict[str, Any]) -> list[dict[str, Any]]:
        """The customer's tax ids, listed with it (`expand[]=data.tax_ids`) or read separately."""
        embedded = customer.get("tax_ids")
        if isinstance(embedded, dict) and not embedded.get("has_more"):
            return list(embedded.get("data") or [])
        return list(self._pages(f"/v1/customers/{customer['id']}/tax_ids", {}, None))

    def payment_methods(self, customer_id: str) -> list[dict[str, Any]]:
        methods: list[dict[str, Any]] = []
        for kind in ("card", "sepa_debit"):
            methods.extend(self._pages("/v1/payment_methods", {"customer": customer_id, "type": kind}, None))
        return methods
