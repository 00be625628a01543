"""Run localstripe for the tests: on 127.0.0.1 only, with a private state file.

localstripe binds every interface ("::") and pickles its state to a fixed
/tmp/localstripe.pickle; both would leak beyond one test run. This runner patches the
state path and binds a loopback socket on a free port, which it prints as `PORT <n>` on
stdout. It also fills two gaps between localstripe and Stripe that Tarif's code meets:

- `GET /v1/account` (dj-stripe resolves the owner account of every synced object);
- `off_session` on `POST /v1/payment_intents/<id>/confirm` (Stripe takes it there;
  localstripe only on create), and `description` on PaymentIntents (dropped).

Usage: python localstripe_runner.py STATE_FILE
"""

from __future__ import annotations

import pickle
import socket
import sys


def main(state_file: str) -> None:
    from localstripe import resources

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
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    web.run_app(server.app, sock=sock, print=None, access_log=None, handle_signals=True)


if __name__ == "__main__":
    main(sys.argv[1])
