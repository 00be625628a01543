"""Run localstripe for the tests: on 127.0.0.1 only, with a private state file.

localstripe binds every interface ("::") and pickles its state to a fixed
/tmp/localstripe.pickle; both would leak beyond one test run. This runner patches the
state path and binds a loopback socket on a free port, which it prints as `PORT <n>` on
stdout. It also fills two gaps between localstripe and Stripe that Tarif's code meets:

- `GET /v1/account` (dj-stripe resolves the owner account of every synced object);
- `off_session` on `POST /v1/payment_intents/<id>/confirm` (Stripe takes it there;
  localstripe only on create), and `description` on PaymentIntents (dropped);
- Checkout in setup mode, emulated (localstripe has no Checkout): `POST /v1/checkout/sessions`
  and `GET /v1/checkout/sessions/<id>` return Stripe-shaped sessions backed by a real
  localstripe SetupIntent, and the test-only `POST /v1/checkout/sessions/<id>/_complete`
  does what Checkout's page does when the customer submits it: create the payment method
  from `card[...]` or `sepa_debit[iban]`, confirm the SetupIntent with it, attach it to the
  customer, and mark the session `complete` once the SetupIntent succeeded.
- What `import_from_stripe` reads, in Stripe's current shapes (localstripe has no prices nor
  promotion codes, and its subscriptions and invoices are of an old API version):
  `/v1/prices`, `/v1/promotion_codes`, `/v1/subscriptions` (periods on the items, expandable
  `discounts`), `/v1/subscription_schedules` (from_subscription only), `/v1/invoices`
  (listing; the test-only `POST /v1/invoices/_seed` records an open invoice as Stripe shows
  it), and `GET /v1/payment_methods` for `sepa_debit` too. Periods follow Stripe's rule:
  boundaries are the anchor plus whole intervals, the day clamped to the month's end.

Usage: python localstripe_runner.py STATE_FILE
"""

from __future__ import annotations

import pickle
import socket
import sys

from localstripe import resources
from localstripe.errors import UserError

BASE_URL: list[str] = []  # the runner's own address, known once its socket is bound


class CheckoutSession(resources.StripeObject):
    """A Checkout Session in setup mode, the minimum of Stripe's shape that Tarif reads.

    Module level so localstripe can pickle its store.
    """

    object = "checkout.session"
    _id_prefix = "cs_test_"

    def __init__(
        self,
        mode=None,
        customer=None,
        success_url=None,
        cancel_url=None,
        payment_method_types=None,
        metadata=None,
        setup_intent_data=None,
        client_reference_id=None,
        locale=None,
        **kwargs,
    ):
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        if mode != "setup":
            raise UserError(400, "Only mode=setup is emulated here")
        if not isinstance(customer, str) or not customer.startswith("cus_"):
            raise UserError(400, "Bad request", {"param": "customer"})
        resources.Customer._api_retrieve(customer)  # 404 for an unknown customer, as Stripe
        if not success_url or not cancel_url:
            raise UserError(400, "Bad request", {"param": "success_url"})
        payment_method_types = payment_method_types or ["card"]
        if not isinstance(payment_method_types, list) or not all(
            kind in ("card", "sepa_debit") for kind in payment_method_types
        ):
            raise UserError(400, "Bad request", {"param": "payment_method_types"})
        intent_data = setup_intent_data or {}
        # The SetupIntent Checkout creates behind the page (all checks are done above).
        intent = resources.SetupIntent(
            customer=customer,
            usage="off_session",
            payment_method_types=list(payment_method_types),
            metadata=intent_data.get("metadata") or {},
        )
        super().__init__()
        self.mode = "setup"
        self.customer = customer
        self.success_url = success_url.replace("{CHECKOUT_SESSION_ID}", self.id)
        self.cancel_url = cancel_url
        self.payment_method_types = list(payment_method_types)
        self.metadata = metadata or {}
        self.client_reference_id = client_reference_id
        self.locale = locale
        self.setup_intent = intent.id
        self.status = "open"
        self.payment_status = "no_payment_required"
        self.url = f"{BASE_URL[0]}/checkout/pay/{self.id}"
        self.expires_at = self.created + 24 * 3600

    @classmethod
    def _api_complete(cls, id, card=None, sepa_debit=None, billing_details=None, **kwargs):
        """What Checkout's page does when the customer submits it (test-only route)."""
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        session = cls._api_retrieve(id)
        if session.status != "open":
            raise UserError(400, "This Checkout Session is no longer open", {"code": "checkout_session_closed"})
        kind = "sepa_debit" if sepa_debit is not None else "card"
        if kind not in session.payment_method_types:
            raise UserError(400, f"This session does not take {kind}", {"param": "payment_method_types"})
        payment_method = resources.PaymentMethod(
            type=kind,
            card=card if kind == "card" else None,
            sepa_debit=sepa_debit,
            billing_details=billing_details or {"name": "Checkout customer"},
        )
        intent = resources.SetupIntent._api_confirm(session.setup_intent, payment_method=payment_method.id)
        if intent.status == "succeeded":
            resources.PaymentMethod._api_attach(payment_method.id, customer=session.customer)
            session.status = "complete"
        return session


# --- Stripe-shaped billing objects for the importer ----------------------------------
SEEDED: dict[str, dict[str, dict]] = {"price": {}, "promotion_code": {}, "subscription": {}, "invoice": {}}


class _Json:
    """What localstripe's route wrappers expect back: something with `_export(expand=)`."""

    def __init__(self, data, expandable=()):
        self.data = data
        self.expandable = expandable

    def _export(self, expand=None):
        import copy

        data = copy.deepcopy(self.data)
        expand = expand or []
        for item in data.get("data", [data]) if data.get("object") == "list" else [data]:
            if "tiers" in item and "tiers" not in expand and "data.tiers" not in expand:
                item.pop("tiers")
            if "discounts" in item and not ({"discounts", "data.discounts"} & set(expand)):
                item["discounts"] = [d["id"] for d in item["discounts"]]
        return data


def _now():
    import time

    return int(time.time())


def _id(prefix):
    return prefix + resources.random_id(14)


def _int(value, default=None):
    return default if value in (None, "") else int(value)


def _add(start, unit, count):
    """Stripe's boundary: `start` plus `count` units, the day clamped to the month's end."""
    import calendar
    from datetime import UTC, datetime, timedelta

    moment = datetime.fromtimestamp(start, tz=UTC)
    if unit in ("day", "week"):
        return int((moment + timedelta(days=count * (7 if unit == "week" else 1))).timestamp())
    months = count * (12 if unit == "year" else 1)
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def _list(kind, url, limit=None, starting_after=None, keep=lambda obj: True):
    objects = [obj for obj in SEEDED[kind].values() if keep(obj)]
    start = 0
    if starting_after:
        start = next((i + 1 for i, obj in enumerate(objects) if obj["id"] == starting_after), len(objects))
    limit = _int(limit, 10)
    page = objects[start : start + limit]
    return _Json({"object": "list", "url": url, "has_more": start + limit < len(objects), "data": page})


def price_create(
    product=None,
    currency=None,
    unit_amount=None,
    unit_amount_decimal=None,
    recurring=None,
    billing_scheme="per_unit",
    tiers=None,
    tiers_mode=None,
    tax_behavior="unspecified",
    transform_quantity=None,
    nickname=None,
    lookup_key=None,
    metadata=None,
    active=True,
    **kwargs,
):
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    resources.Product._api_retrieve(product)
    if recurring is not None:
        recurring = {
            "interval": recurring["interval"],
            "interval_count": _int(recurring.get("interval_count"), 1),
            "meter": None,
            "usage_type": recurring.get("usage_type", "licensed"),
            "aggregate_usage": None,
            "trial_period_days": None,
        }
    price = {
        "id": _id("price_"),
        "object": "price",
        "active": str(active).lower() != "false",
        "billing_scheme": billing_scheme,
        "created": _now(),
        "currency": currency.lower(),
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": metadata or {},
        "nickname": nickname,
        "product": product,
        "recurring": recurring,
        "tax_behavior": tax_behavior,
        "tiers_mode": tiers_mode,
        "transform_quantity": (
            {"divide_by": _int(transform_quantity["divide_by"]), "round": transform_quantity.get("round", "up")}
            if transform_quantity
            else None
        ),
        "type": "recurring" if recurring else "one_time",
        "unit_amount": _int(unit_amount),
        "unit_amount_decimal": str(unit_amount_decimal or unit_amount) if unit_amount is not None else None,
    }
    if billing_scheme == "tiered":
        price["tiers"] = [
            {
                "flat_amount": _int(tier.get("flat_amount")),
                "flat_amount_decimal": tier.get("flat_amount"),
                "unit_amount": _int(tier.get("unit_amount")),
                "unit_amount_decimal": tier.get("unit_amount"),
                "up_to": None if tier["up_to"] == "inf" else int(tier["up_to"]),
            }
            for tier in (tiers[str(i)] if isinstance(tiers, dict) else tiers[i] for i in range(len(tiers)))
        ]
        price["unit_amount"] = price["unit_amount_decimal"] = None
    SEEDED["price"][price["id"]] = price
    return _Json(price)


def _coupon(coupon_id):
    return resources.Coupon._api_retrieve(coupon_id)._export()


def promotion_code_create(
    coupon=None,
    code=None,
    customer=None,
    max_redemptions=None,
    expires_at=None,
    restrictions=None,
    active=True,
    metadata=None,
    **kwargs,
):
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    restrictions = restrictions or {}
    promotion = {
        "id": _id("promo_"),
        "object": "promotion_code",
        "active": str(active).lower() != "false",
        "code": code,
        "coupon": _coupon(coupon),
        "created": _now(),
        "customer": customer,
        "expires_at": _int(expires_at),
        "livemode": False,
        "max_redemptions": _int(max_redemptions),
        "metadata": metadata or {},
        "times_redeemed": 0,
        "restrictions": {
            "first_time_transaction": str(restrictions.get("first_time_transaction", "false")).lower() == "true",
            "minimum_amount": _int(restrictions.get("minimum_amount")),
            "minimum_amount_currency": restrictions.get("minimum_amount_currency"),
        },
    }
    SEEDED["promotion_code"][promotion["id"]] = promotion
    return _Json(promotion)


def subscription_create(
    customer=None,
    items=None,
    trial_end=None,
    billing_cycle_anchor=None,
    backdate_start_date=None,
    discounts=None,
    collection_method="charge_automatically",
    days_until_due=None,
    cancel_at_period_end=False,
    metadata=None,
    **kwargs,
):
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    resources.Customer._api_retrieve(customer)
    now = _now()
    start = _int(backdate_start_date, now)
    items = [items[str(i)] if isinstance(items, dict) else items[i] for i in range(len(items))]
    prices = [SEEDED["price"][item["price"]] for item in items]
    recurring = prices[0]["recurring"]
    trial_end = _int(trial_end)
    if trial_end:
        status, anchor, period = "trialing", trial_end, (start, trial_end)
    else:
        status = "active"
        anchor = _int(billing_cycle_anchor, start)
        if anchor > now:
            period = (start, anchor)  # the prorated stub up to the anchor
        else:
            k = 0
            while _add(anchor, recurring["interval"], recurring["interval_count"] * (k + 1)) <= now:
                k += 1
            period = (
                _add(anchor, recurring["interval"], recurring["interval_count"] * k),
                _add(anchor, recurring["interval"], recurring["interval_count"] * (k + 1)),
            )
    subscription_id = _id("sub_")
    subscription_discounts = []
    for discount in (discounts or {}).values() if isinstance(discounts, dict) else discounts or []:
        coupon = _coupon(discount["coupon"])
        months = coupon.get("duration_in_months") if coupon["duration"] == "repeating" else None
        subscription_discounts.append(
            {
                "id": _id("di_"),
                "object": "discount",
                "coupon": coupon,
                "customer": customer,
                "start": start,
                "end": _add(start, "month", months) if months else None,
                "subscription": subscription_id,
                "promotion_code": None,
                "invoice": None,
                "invoice_item": None,
            }
        )
    subscription = {
        "id": subscription_id,
        "object": "subscription",
        "billing_cycle_anchor": anchor,
        "cancel_at": None,
        "cancel_at_period_end": str(cancel_at_period_end).lower() == "true",
        "canceled_at": None,
        "collection_method": collection_method,
        "created": now,
        "currency": prices[0]["currency"],
        "customer": customer,
        "days_until_due": _int(days_until_due),
        "default_payment_method": None,
        "discounts": subscription_discounts,
        "items": {
            "object": "list",
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={subscription_id}",
            "data": [
                {
                    "id": _id("si_"),
                    "object": "subscription_item",
                    "created": now,
                    "current_period_start": period[0],
                    "current_period_end": period[1],
                    "price": price,
                    "quantity": _int(item.get("quantity"), 1),
                    "subscription": subscription_id,
                    "metadata": {},
                }
                for item, price in zip(items, prices, strict=True)
            ],
        },
        "livemode": False,
        "metadata": metadata or {},
        "pause_collection": None,
        "pending_update": None,
        "schedule": None,
        "start_date": start,
        "status": status,
        "trial_start": start if trial_end else None,
        "trial_end": trial_end,
    }
    SEEDED["subscription"][subscription_id] = subscription
    return _Json(subscription)


def subscription_schedule_create(from_subscription=None, **kwargs):
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    subscription = SEEDED["subscription"][from_subscription]
    schedule = {"id": _id("sub_sched_"), "object": "subscription_schedule", "subscription": from_subscription}
    subscription["schedule"] = schedule["id"]
    return _Json(schedule)


def invoice_seed(customer=None, currency=None, amount_due=None, number=None, **kwargs):
    """Test-only: an open invoice as Stripe lists it (finalized, not paid)."""
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    amount = _int(amount_due)
    invoice = {
        "id": _id("in_"),
        "object": "invoice",
        "customer": customer,
        "currency": currency,
        "status": "open",
        "number": number,
        "amount_due": amount,
        "amount_paid": 0,
        "amount_remaining": amount,
        "created": _now(),
        "due_date": None,
        "livemode": False,
        "collection_method": "charge_automatically",
    }
    SEEDED["invoice"][invoice["id"]] = invoice
    return _Json(invoice)


def _statuses(status):
    return None if status in (None, "all") else {status}


IMPORT_APIS = [
    ("POST", "/v1/prices", price_create),
    (
        "GET",
        "/v1/prices",
        lambda limit=None, starting_after=None, active=None, **kw: _list("price", "/v1/prices", limit, starting_after),
    ),
    ("GET", "/v1/prices/{id}", lambda id, **kw: _Json(SEEDED["price"][id])),
    ("POST", "/v1/promotion_codes", promotion_code_create),
    (
        "GET",
        "/v1/promotion_codes",
        lambda limit=None, starting_after=None, **kw: _list(
            "promotion_code", "/v1/promotion_codes", limit, starting_after
        ),
    ),
    ("POST", "/v1/subscription_schedules", subscription_schedule_create),
    ("POST", "/v1/subscriptions", subscription_create),
    (
        "GET",
        "/v1/subscriptions",
        lambda limit=None, starting_after=None, status=None, customer=None, **kw: _list(
            "subscription",
            "/v1/subscriptions",
            limit,
            starting_after,
            keep=lambda s: (
                (_statuses(status) is None or s["status"] in _statuses(status))
                and (customer is None or s["customer"] == customer)
            ),
        ),
    ),
    ("GET", "/v1/subscriptions/{id}", lambda id, **kw: _Json(SEEDED["subscription"][id])),
    ("POST", "/v1/invoices/_seed", invoice_seed),
    (
        "GET",
        "/v1/invoices",
        lambda limit=None, starting_after=None, status=None, customer=None, **kw: _list(
            "invoice",
            "/v1/invoices",
            limit,
            starting_after,
            keep=lambda i: (
                (status is None or i["status"] == status) and (customer is None or i["customer"] == customer)
            ),
        ),
    ),
]


def main(state_file: str) -> None:
    def dump_to_disk(self) -> None:
        with open(state_file, "wb") as handle:
            pickle.dump(self, handle, protocol=pickle.HIGHEST_PROTOCOL)

    def try_load_from_disk(self) -> None:  # always from scratch
        return None

    resources.Store.dump_to_disk = dump_to_disk
    resources.Store.try_load_from_disk = try_load_from_disk

    confirm = resources.PaymentIntent._api_confirm

    def confirm_off_session(off_session=None, **data):
        return confirm(**data)

    resources.extra_apis[:] = [
        (method, url, confirm_off_session if url == "/v1/payment_intents/{id}/confirm" else func)
        for method, url, func in resources.extra_apis
    ]

    create_intent = resources.PaymentIntent._api_create.__func__

    def create_intent_with_description(cls, description=None, **data):
        return create_intent(cls, **data)

    resources.PaymentIntent._api_create = classmethod(create_intent_with_description)

    list_methods = resources.PaymentMethod._api_list_all.__func__

    def list_methods_sepa_too(cls, url, customer=None, type=None, limit=None, starting_after=None):
        if type == "sepa_debit":  # Stripe lists them; localstripe refuses the type
            li = list_methods(cls, url, customer=customer, type="card", limit=limit, starting_after=starting_after)
            li._list = [
                pm
                for pm in resources.store.values()
                if isinstance(pm, resources.PaymentMethod) and pm.customer == customer and pm.type == "sepa_debit"
            ]
            return li
        return list_methods(cls, url, customer=customer, type=type, limit=limit, starting_after=starting_after)

    resources.PaymentMethod._api_list_all = classmethod(list_methods_sepa_too)

    resources.extra_apis[:0] = [
        *IMPORT_APIS,
        ("POST", "/v1/checkout/sessions", CheckoutSession._api_create),
        ("GET", "/v1/checkout/sessions/{id}", CheckoutSession._api_retrieve),
        ("POST", "/v1/checkout/sessions/{id}/_complete", CheckoutSession._api_complete),
    ]

    from aiohttp import web
    from localstripe import server  # registers its routes from extra_apis on import

    async def account(request):
        return web.json_response(
            {
                "id": "acct_localstripe",
                "object": "account",
                "type": "standard",
                "country": "FR",
                "default_currency": "eur",
                "email": "billing@tarif.localhost",
                "charges_enabled": True,
                "payouts_enabled": True,
                "details_submitted": True,
                "livemode": False,
                "business_profile": {"name": "Tarif (localstripe)"},
                "settings": {"dashboard": {"display_name": "Tarif (localstripe)"}},
                "metadata": {},
                "created": 1700000000,
            }
        )

    server.app.router.add_get("/v1/account", account)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    BASE_URL.append(f"http://127.0.0.1:{sock.getsockname()[1]}")
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    web.run_app(server.app, sock=sock, print=None, access_log=None, handle_signals=True)


if __name__ == "__main__":
    main(sys.argv[1])
