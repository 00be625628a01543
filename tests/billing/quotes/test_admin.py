"""The console's quote pages: draft with the item inline (through the services), refusals as form
errors, finalize and send actions, list and change pages with amounts through the money helper."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from billing.quotes.models import Quote

pytestmark = pytest.mark.django_db


def _add_data(customer, lines, **fields):
    data = {
        "customer": customer.pk,
        "valid_until_0": "2031-01-31",
        "valid_until_1": "12:00:00",
        "collection_method": "send_invoice",
        "days_until_due": "30",
        "trial_days": "0",
        "coupon": "",
        "header": "",
        "terms": "Net 30",
        "footer": "",
        "lines-TOTAL_FORMS": str(len(lines)),
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        **fields,
    }
    for index, line in enumerate(lines):
        for key, value in line.items():
            data[f"lines-{index}-{key}"] = value
        data.setdefault(f"lines-{index}-position", str(index))
    return data


def test_staff_draft_a_quote_with_items_then_finalize_and_send_it(
    console, make_customer, make_price, django_capture_on_commit_callbacks
):
    customer, price = make_customer(), make_price(2900)

    response = console.post(
        reverse("admin:quotes_quote_add"),
        _add_data(
            customer,
            [
                {"price": price.pk, "quantity": "3", "description": "", "unit_amount": ""},
                {"price": "", "quantity": "1", "description": "Atelier de cadrage", "unit_amount": "40000"},
            ],
        ),
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    quote = Quote.objects.get(customer=customer)
    assert (quote.status, quote.total) == (Quote.Status.DRAFT, (8700 + 40000) * 120 // 100)
    assert quote.lines.count() == 2
    page = console.get(reverse("admin:quotes_quote_change", args=[quote.pk]))
    assert page.status_code == 200 and "€584.40" in page.content.decode()

    finalized = console.post(reverse("admin:quotes_quote_finalize_action", args=[quote.pk]), {"confirm": "1"})
    quote.refresh_from_db()
    assert finalized.status_code == 302 and quote.status == Quote.Status.OPEN and quote.number
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        sent = console.post(reverse("admin:quotes_quote_send_action", args=[quote.pk]), {"confirm": "1"})
    assert sent.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].attachments
    listing = console.get(reverse("admin:quotes_quote_changelist") + "?status__exact=open")
    assert listing.status_code == 200 and quote.number in listing.content.decode()
    pdf = console.get(reverse("admin:quotes_quote_pdf_action", args=[quote.pk]))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_an_item_the_engine_refuses_is_a_form_error(console, make_customer, make_price):
    customer, dollars = make_customer(), make_price(2900, currency="USD")

    response = console.post(
        reverse("admin:quotes_quote_add"),
        _add_data(customer, [{"price": dollars.pk, "quantity": "1", "description": "", "unit_amount": ""}]),
    )

    assert response.status_code == 200
    assert "USD" in response.content.decode()
    assert not Quote.objects.exists()


def test_an_issued_quote_cannot_be_edited_or_finalized_again(console, open_quote):
    quote = open_quote()

    again = console.post(reverse("admin:quotes_quote_finalize_action", args=[quote.pk]), {"confirm": "1"})

    assert again.status_code == 302
    number = quote.number
    quote.refresh_from_db()
    assert quote.number == number and quote.status == Quote.Status.OPEN
