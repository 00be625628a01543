"""Issue 17: allauth's pages in the portal's design and language, no sign-up link while sign-up is
closed, no enumeration, allauth's rate limits, and passwordless sign-in by an emailed code."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.cache import cache
from django.test import override_settings

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()  # allauth counts attempts in the cache
    yield
    cache.clear()


@pytest.fixture
def verified(account):
    user = account[1]
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return account


def without_csrf(page: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", page)


PAGES = [
    "/accounts/login/",
    "/accounts/password/reset/",
    "/accounts/password/reset/done/",
    "/accounts/confirm-email/",
    "/accounts/login/code/",
    "/accounts/password/reset/key/1-bad-key/",
]


@pytest.mark.parametrize("url", PAGES)
@pytest.mark.parametrize("language", ["en", "fr"])
def test_sign_in_pages_use_the_portal_design_in_both_languages(client, billing_brand, url, language):
    response = client.get(url, HTTP_ACCEPT_LANGUAGE=language, follow=True)

    page = response.content.decode()
    assert response.status_code == 200
    assert f'<html lang="{language}">' in page
    assert "tarif/portal.css" in page and 'class="portal-header"' in page  # the portal's look
    assert billing_brand.name in page  # branded
    assert 'id="language-select"' in page  # the language switch
    assert "Menu:" not in page  # not allauth's bare layout


@pytest.mark.parametrize(("language", "forgot"), [("en", "Forgot your password?"), ("fr", "Mot de passe oublié")])
def test_the_sign_in_page_follows_the_visitors_language(client, billing_brand, language, forgot):
    page = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE=language).content.decode()

    assert forgot in page


def test_the_sign_in_page_has_no_sign_up_link_while_sign_up_is_closed(client, billing_brand):
    page = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "/accounts/signup/" not in page
    assert "sign up" not in page.lower()
    assert 'id="invited-only"' in page


@override_settings(TARIF_OPEN_SIGNUP=True)
def test_the_sign_in_page_offers_sign_up_when_the_adapter_opens_it(client, billing_brand):
    page = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "/accounts/signup/" in page
    assert 'id="invited-only"' not in page


def test_a_wrong_password_is_an_error_tied_to_the_form(client, verified):
    response = client.post("/accounts/login/", {"login": verified[1].email, "password": "wrong one"})

    page = response.content.decode()
    assert response.status_code == 200
    assert 'role="alert"' in page and "form-errors" in page
    assert "_auth_user_id" not in client.session


def test_signing_in_with_a_password_reaches_the_portal(client, verified):
    response = client.post("/accounts/login/", {"login": verified[1].email, "password": PASSWORD})

    assert response.status_code == 302 and response["Location"] == "/portal/"
    assert client.get("/portal/").status_code == 200


def test_a_field_error_is_described_by_its_message(client, billing_brand):
    page = client.post("/accounts/password/reset/", {"email": "not an email"}).content.decode()

    assert 'aria-describedby="id_email_errors"' in page and 'aria-invalid="true"' in page
    assert 'id="id_email_errors"' in page


def test_a_reset_for_an_unknown_address_answers_exactly_like_a_known_one(client, verified):
    known = client.post("/accounts/password/reset/", {"email": verified[1].email}, follow=True)
    known_mail = len(mail.outbox)
    unknown = client.post("/accounts/password/reset/", {"email": "nobody@nowhere.example"}, follow=True)

    assert known.redirect_chain == unknown.redirect_chain
    assert without_csrf(known.content.decode()) == without_csrf(unknown.content.decode())
    assert known_mail == 1 and mail.outbox[0].to == [verified[1].email]
    assert "/accounts/password/reset/key/" in mail.outbox[0].body
    # The unknown address may be told it has no account, never given a reset link.
    assert all("/accounts/password/reset/key/" not in message.body for message in mail.outbox[1:])


def test_sign_in_by_emailed_code_end_to_end(client, verified):
    user = verified[1]

    requested = client.post("/accounts/login/code/", {"email": user.email})
    assert requested.status_code == 302 and requested["Location"].startswith("/accounts/login/code/confirm/")
    confirm_page = client.get(requested["Location"]).content.decode()
    assert "Enter your sign-in code" in confirm_page
    code = re.search(r"^\s*([A-Z0-9]{3,}(?:-[A-Z0-9]{3,})*)\s*$", mail.outbox[-1].body, re.MULTILINE).group(1)

    wrong = client.post("/accounts/login/code/confirm/", {"code": "XXXXXX"})
    assert wrong.status_code == 200 and 'aria-invalid="true"' in wrong.content.decode()
    signed_in = client.post("/accounts/login/code/confirm/", {"code": code})

    assert signed_in.status_code == 302 and signed_in["Location"] == "/portal/"
    assert client.get("/portal/").status_code == 200


def test_a_code_request_for_an_unknown_address_looks_the_same(client, verified):
    known = client.post("/accounts/login/code/", {"email": verified[1].email})
    unknown_client_response = client.post("/accounts/login/code/", {"email": "nobody@nowhere.example"})

    assert known.status_code == unknown_client_response.status_code == 302
    assert known["Location"] == unknown_client_response["Location"]


@override_settings(ACCOUNT_RATE_LIMITS={"login_failed": "3/m/ip", "login": "30/m/ip"})
def test_repeated_failed_sign_ins_get_a_friendly_refusal(client, verified):
    pages = [
        client.post("/accounts/login/", {"login": verified[1].email, "password": "nope nope"}).content.decode()
        for _ in range(3)
    ]
    limited = client.post("/accounts/login/", {"login": verified[1].email, "password": PASSWORD})

    assert all("Too many failed login attempts" not in page for page in pages)
    assert "Too many failed login attempts" in limited.content.decode()  # even with the right password
    assert "_auth_user_id" not in client.session


@override_settings(ACCOUNT_RATE_LIMITS={"login": "3/m/ip"})
def test_sign_in_attempts_beyond_the_limit_get_429(client, verified):
    statuses = [
        client.post("/accounts/login/", {"login": f"guess{n}@client.example", "password": "nope"}).status_code
        for n in range(4)
    ]

    assert statuses[:3] == [200, 200, 200] and statuses[3] == 429
    limited = client.post("/accounts/login/", {"login": "x@client.example", "password": "nope"})
    assert limited.status_code == 429 and "Too many attempts" in limited.content.decode()
    assert 'class="portal-header"' in limited.content.decode()


@override_settings(ACCOUNT_RATE_LIMITS={"reset_password": "2/m/ip"})
def test_password_reset_requests_are_rate_limited(client, billing_brand):
    statuses = [
        client.post("/accounts/password/reset/", {"email": f"x{n}@client.example"}).status_code for n in range(4)
    ]

    assert statuses[:2] == [302, 302]
    assert statuses[-1] == 429


def test_a_light_brand_colour_keeps_text_readable(client, billing_brand):
    from customers.templatetags.portal import contrast_ratio, ink_colour_filter, on_colour_filter

    billing_brand.primary_colour = "#f0d000"  # a yellow: white text on it would read at 1.5:1
    billing_brand.save(update_fields=["primary_colour"])

    page = client.get("/accounts/login/").content.decode()

    ink = ink_colour_filter("#f0d000")
    assert "--brand-on-primary: #1d2433" in page and f"--brand-ink: {ink}" in page
    assert contrast_ratio(on_colour_filter("#f0d000"), "#f0d000") >= 4.5
    assert contrast_ratio(ink, "#ffffff") >= 4.5
    assert on_colour_filter("#2851a3") == "#ffffff" and ink_colour_filter("#2851a3") == "#2851a3"
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21)  # the formula itself
