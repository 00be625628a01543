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

    resources.extra_apis[:0] = [
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
