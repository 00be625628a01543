"""Driving a checkout through the sandbox's hosted card page, as a browser would."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from billing.checkout.services import checkout_session_complete, checkout_session_details_submit
from billing.payments.sandbox import setup_session_fill

GOOD_CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}
DECLINING_CARD = {"number": "4000000000000002", "exp_month": 12, "exp_year": 2034, "cvc": "123"}
LATE_DECLINE_CARD = {"number": "4000000000000341", "exp_month": 12, "exp_year": 2034, "cvc": "123"}


def enter_card(session, details, *, card=GOOD_CARD, promotion_code=""):
    """Submit the details and fill the sandbox page: the gateway session id the return URL carries."""
    url = checkout_session_details_submit(
        session=session, details=details, promotion_code=promotion_code, return_url="https://tarif.example/return/"
    )
    gateway_session_id = url.rstrip("/").rsplit("/", 1)[-1]
    back = setup_session_fill(session_id=gateway_session_id, card=card)
    assert parse_qs(urlparse(back).query)["session_id"] == [gateway_session_id]
    return gateway_session_id


def pay(session, details, *, card=GOOD_CARD, promotion_code=""):
    gateway_session_id = enter_card(session, details, card=card, promotion_code=promotion_code)
    return checkout_session_complete(session=session, gateway_session_id=gateway_session_id)
