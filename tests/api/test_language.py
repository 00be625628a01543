"""The API answers in English unless Accept-Language asks for French; the console and portal keep theirs."""

from __future__ import annotations

import re

import pytest

from config.api.language import api_language
from tests.api.conftest import assert_problem
from tests.api.test_invoices import draft_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("", "en"),
        ("fr", "fr"),
        ("fr-FR", "fr"),
        ("fr-CA,fr;q=0.9", "fr"),
        ("de-DE,fr;q=0.8,en;q=0.5", "fr"),
        ("en;q=0.9,fr;q=0.4", "en"),
        ("fr;q=0.2,en;q=0.8", "en"),
        ("de, it", "en"),
        ("*", "en"),
        ("garbage;;;q=x", "en"),
    ],
)
def test_the_language_comes_from_the_header_with_english_as_the_fallback(header, language):
    assert api_language(header) == language


def test_an_error_is_in_english_by_default_and_in_french_on_request(api):
    english = api.post("/api/v1/customers", {"legal_name": "Acme", "email": "not-an-email"}, format="json")
    french = api.post(
        "/api/v1/customers",
        {"legal_name": "Acme", "email": "not-an-email"},
        format="json",
        HTTP_ACCEPT_LANGUAGE="fr-FR",
    )

    english_problem = assert_problem(english, 400, "validation_error")
    french_problem = assert_problem(french, 400, "validation_error")
    assert english["Content-Language"] == "en" and french["Content-Language"] == "fr"
    assert english_problem["field"] == french_problem["field"] == "email"
    assert english_problem["detail"] != french_problem["detail"]
    assert english_problem["detail"] == "email: Enter a valid email address."


def test_neither_the_console_cookie_nor_language_code_change_the_api(api, settings):
    settings.LANGUAGE_CODE = "fr"
    api.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"

    response = api.get("/api/v1/customers/cus_999999")

    assert_problem(response, 404)
    assert response["Content-Language"] == "en"


def test_unknown_api_urls_answer_in_the_requested_language(api):
    english = api.get("/api/v1/nothing-here")
    french = api.get("/api/v1/nothing-here", HTTP_ACCEPT_LANGUAGE="fr")

    assert english.json()["code"] == french.json()["code"] == "not_found"
    assert english["Content-Language"] == "en" and french["Content-Language"] == "fr"


def test_the_portal_keeps_its_language_choice(client, settings):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"

    response = client.get("/accounts/login/")

    assert response["Content-Language"] == "fr"


def test_a_malformed_json_body_never_shows_pythons_message(api):
    response = api.generic("POST", "/api/v1/customers", '{"legal_name": "Acme",}', content_type="application/json")

    problem = assert_problem(response, 400)
    assert "Expecting" not in problem["detail"] and "line 1" in problem["detail"]


def test_an_integer_longer_than_python_reads_is_a_clear_error(api):
    body = '{"legal_name": "Acme", "email": "a@b.example", "balance": ' + "9" * 5000 + "}"

    response = api.generic("POST", "/api/v1/customers", body, content_type="application/json")

    problem = assert_problem(response, 400)
    assert "4300" not in problem["detail"] and "Exceeds" not in problem["detail"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({}, r"Invoice {number} has received €2\.50 in payments and cannot be voided; issue a credit note"),
        (
            {"HTTP_ACCEPT_LANGUAGE": "fr"},
            r"La facture {number} a reçu 2,50\s€ de paiements et ne peut pas être annulée\s; émettez plutôt un avoir",
        ),
    ],
)
def test_a_domain_refusal_reads_in_the_callers_language_with_money_and_a_stable_code(
    api, billing_world, header, expected
):
    # given an open invoice with 2.50 EUR received out of band
    customer, _price = billing_world
    draft = draft_for(customer)
    api.post(f"/api/v1/invoices/in_{draft.pk}/finalize")
    paid = api.post(
        f"/api/v1/invoices/in_{draft.pk}/pay",
        {"paid_out_of_band": True, "amount": 250, "method": "cheque", "reference": "CHQ-1"},
        format="json",
    )
    assert paid.status_code == 200, paid.content

    # when it is voided
    refused = api.post(f"/api/v1/invoices/in_{draft.pk}/void", {"reason": "duplicate"}, format="json", **header)

    # then the code is the same in every language; the detail reads in the caller's, amount as money
    problem = assert_problem(refused, 422, "invoice_refused")
    assert re.match(expected.format(number=re.escape(paid.json()["number"])), problem["detail"]), problem["detail"]
    assert "250" not in problem["detail"]
