"""The public quote page: shows the quote, accepts it once, refuses closed quotes, tokens of
another brand or mode, robots and floods; the email that carries the link and the PDF."""

from __future__ import annotations

import pytest
import time_machine
from django.core import mail, signing
from django.test import Client
from django.urls import reverse

from billing.models import Subscription
from billing.quotes.models import Quote
from billing.quotes.selectors import _SALT, quote_public_token
from billing.quotes.services import QuoteLineInput, quote_cancel, quote_finalize, quote_revise, quote_send

from .conftest import utc

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_time_trap(settings):
    settings.TARIF_QUOTE_MIN_FILL_SECONDS = 0


def _url(quote: Quote) -> str:
    return reverse("quotes:accept", args=[quote_public_token(quote)])


def _form(client: Client, quote: Quote, **fields) -> dict:
    page = client.get(_url(quote))
    started = page.context["form"]["started"].value()
    return {"signer_name": "Camille Martin", "accept": "on", "website": "", "started": started, **fields}


def test_the_page_shows_the_quote_in_the_customers_language(client, open_quote, make_customer):
    quote = open_quote(make_customer(preferred_language="fr"), terms="Paiement à 30 jours.")

    page = client.get(_url(quote))

    assert page.status_code == 200
    html = page.content.decode()
    assert quote.number in html and '<html lang="fr">' in html
    assert "69,60" in html  # 2 × 29 € + 20 % TVA, through the money formatting helper
    assert "Paiement à 30 jours." in html
    assert page["X-Robots-Tag"] == "noindex, nofollow"
    english = client.get(_url(quote) + "?lang=en").content.decode()
    assert '<html lang="en">' in english and "€69.60" in english


def test_accepting_on_the_page_records_the_signer_and_creates_the_subscription(client, open_quote):
    quote = open_quote()

    response = client.post(_url(quote), _form(client, quote), HTTP_USER_AGENT="Firefox/140", REMOTE_ADDR="198.51.100.7")

    assert response.status_code == 200
    assert "Camille Martin" in response.content.decode()
    quote.refresh_from_db()
    assert quote.status == Quote.Status.ACCEPTED
    assert (quote.accepted_name, quote.accepted_ip, quote.accepted_user_agent) == (
        "Camille Martin",
        "198.51.100.7",
        "Firefox/140",
    )
    assert quote.subscription.items.get().quantity == 2
    assert quote.invoice.total == quote.total


def test_a_second_submission_is_refused_with_a_clear_page(client, open_quote):
    quote = open_quote()
    form = _form(client, quote)
    client.post(_url(quote), form)

    again = client.post(_url(quote), {**form, "signer_name": "Someone Else"})

    assert again.status_code == 409
    assert "Ce devis a déjà été accepté." in again.content.decode()  # the customer's language (French)
    assert Subscription.objects.filter(customer=quote.customer).count() == 1


def test_the_form_needs_a_name_and_the_box_ticked_with_errors_tied_to_fields(client, open_quote):
    quote = open_quote()

    response = client.post(_url(quote), _form(client, quote, signer_name="", accept=""))

    assert response.status_code == 400
    html = response.content.decode()
    assert 'aria-describedby="id_signer_name_error"' in html and 'id="id_signer_name_error"' in html
    assert 'aria-describedby="id_accept_error"' in html
    assert not Subscription.objects.filter(customer=quote.customer).exists()


def test_the_honeypot_and_the_time_trap_stop_robots(client, open_quote, settings):
    quote = open_quote()

    filled = client.post(_url(quote), _form(client, quote, website="http://spam.example"))
    settings.TARIF_QUOTE_MIN_FILL_SECONDS = 60
    too_fast = client.post(_url(quote), _form(client, quote))
    forged = client.post(_url(quote), _form(client, quote, started="1700000000"))

    assert (filled.status_code, too_fast.status_code, forged.status_code) == (400, 400, 400)
    assert not Subscription.objects.filter(customer=quote.customer).exists()


@pytest.mark.parametrize("how", ["expired", "canceled", "superseded"])
def test_a_closed_quote_shows_why_and_cannot_be_accepted(client, open_quote, how):
    with time_machine.travel(utc(2026, 1, 10), tick=False):
        quote = open_quote(valid_until=utc(2026, 1, 20))
        form = _form(client, quote)
        if how == "canceled":
            quote_cancel(quote=quote)
        elif how == "superseded":
            quote_finalize(quote=quote_revise(quote=quote))
    moment = utc(2026, 1, 21) if how == "expired" else utc(2026, 1, 11)

    with time_machine.travel(moment, tick=False):
        page = client.get(_url(quote) + "?lang=en")
        posted = client.post(_url(quote) + "?lang=en", form)

    expected = {"expired": "has expired", "canceled": "was withdrawn", "superseded": "replaced by a revised"}[how]
    assert page.status_code == 410 and expected in page.content.decode()
    assert 'name="signer_name"' not in page.content.decode()
    assert posted.status_code == 409 and expected in posted.content.decode()
    assert not Subscription.objects.filter(customer=quote.customer).exists()


def test_a_token_of_another_brand_or_mode_or_an_edited_one_is_a_404(client, open_quote, brand_factory):
    quote = open_quote()
    signer = signing.Signer(salt=_SALT)
    other_brand = brand_factory(slug="elsewhere")
    wrong_brand = signer.sign(f"{quote.public_token}.{other_brand.pk}.live")
    wrong_mode = signer.sign(f"{quote.public_token}.{quote.brand_id}.test")
    unsigned = f"{quote.public_token}.{quote.brand_id}.live:forged"

    for token in (wrong_brand, wrong_mode, unsigned, quote.public_token, "x"):
        assert client.get(reverse("quotes:accept", args=[token])).status_code == 404
        assert client.get(reverse("quotes:pdf", args=[token])).status_code == 404
    assert client.get(_url(quote)).status_code == 200


def test_a_draft_quote_has_no_public_page(client, open_quote):
    draft = open_quote(finalize=False)

    assert client.get(_url(draft)).status_code == 404


def test_a_test_mode_quote_says_so(client, open_quote, make_customer, make_price):
    quote = open_quote(make_customer(livemode=False), lines=[QuoteLineInput(price=make_price(100, livemode=False))])

    page = client.get(_url(quote) + "?lang=en")

    assert page.status_code == 200 and "Test mode" in page.content.decode()


def test_the_acceptance_needs_the_csrf_token(open_quote):
    quote = open_quote()
    strict = Client(enforce_csrf_checks=True)

    response = strict.post(_url(quote), _form(strict, quote))

    assert response.status_code == 403
    assert not Subscription.objects.filter(customer=quote.customer).exists()


def test_too_many_attempts_get_a_429(client, open_quote, settings):
    settings.TARIF_RATELIMIT_QUOTE_ACCEPT = "2/m"
    quote = open_quote()
    form = _form(client, quote, signer_name="")

    statuses = [client.post(_url(quote), form, REMOTE_ADDR="192.0.2.44").status_code for _ in range(3)]

    assert statuses == [400, 400, 429]
    assert client.post(_url(quote), _form(client, quote), REMOTE_ADDR="192.0.2.45").status_code == 200


def test_the_pdf_link_serves_the_quote(client, open_quote):
    quote = open_quote()

    response = client.get(reverse("quotes:pdf", args=[quote_public_token(quote)]))

    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")


def test_sending_emails_the_pdf_and_the_acceptance_link(open_quote, make_customer, django_capture_on_commit_callbacks):
    quote = open_quote(make_customer(preferred_language="en", email="buyer@client.example"))
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        log = quote_send(quote=quote)

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["buyer@client.example"]
    assert quote.number in message.subject
    assert quote_public_token(quote) in message.body
    (name, content, mimetype) = next(a for a in message.attachments if isinstance(a, tuple) or hasattr(a, "filename"))
    assert (name, mimetype) == (f"{quote.number}.pdf", "application/pdf") and content.startswith(b"%PDF")
    log.refresh_from_db()
    assert log.status == "sent"
    quote.refresh_from_db()
    assert quote.sent_at is not None


def test_the_pdf_shows_the_quote_in_the_brands_design(client, open_quote, quote_brand):
    from io import BytesIO

    from pypdf import PdfReader

    quote = open_quote()

    response = client.get(reverse("quotes:pdf", args=[quote_public_token(quote)]) + "?lang=en")

    text = PdfReader(BytesIO(response.content)).pages[0].extract_text()
    assert quote.number in text and quote_brand.legal_name in text
    assert "€69.60" in text  # the quoted first invoice, incl. VAT
