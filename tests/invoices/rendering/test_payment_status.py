"""Documents that say what happened (issue 17, item 6): paid and partly paid invoices,
unpaid ones that keep the transfer instructions, where a credit note's money went, and
the VAT exemption reason printed as the Factur-X XML carries it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from facturx import get_xml_from_pdf
from lxml import etree

from billing.services.dunning import invoices_collect
from billing.services.payments import payment_method_attach, payment_record_manual
from billing.services.refunds import refund_request
from invoices.rendering.context import invoice_document
from invoices.rendering.html import document_html
from invoices.services.credit_notes import credit_note_create
from invoices.services.finalize import invoice_finalize
from invoices.services.pdf import (
    credit_note_pdf_render,
    invoice_document_store,
    invoice_pdf_current,
    invoice_pdf_render,
    invoice_settlements,
)
from tests.billing.payments.conftest import card
from tests.invoices.helpers import ISSUED_AT, create_draft
from tests.invoices.rendering.test_documents import pdf_text

pytestmark = pytest.mark.django_db

IBAN = "FR7630006000011234567890189"
RAM = "{urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100}"


def summation(pdf: bytes) -> dict[str, str]:
    _name, xml = get_xml_from_pdf(pdf, check_xsd=False)
    node = etree.fromstring(xml).find(f".//{RAM}SpecifiedTradeSettlementHeaderMonetarySummation")
    return {child.tag.replace(RAM, ""): child.text for child in node}


@pytest.fixture
def english_customer(customer_factory, branded, tax_rate):
    return customer_factory(brand=branded, preferred_language="en")


@pytest.fixture
def card_paid_invoice(english_customer):
    # given a charge-automatically invoice collected from a Visa card ending 4242
    payment_method_attach(customer=english_customer, source=card("4242424242424242"))
    invoice = invoice_finalize(invoice=create_draft(english_customer, [45000]), at=ISSUED_AT)
    invoices_collect(invoice_ids=[invoice.pk])
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    return invoice


def test_a_card_paid_invoice_says_paid_with_date_and_card_and_no_transfer_details(card_paid_invoice):
    # when the customer downloads it
    pdf = invoice_pdf_current(invoice=card_paid_invoice)
    text = pdf_text(pdf)

    # then it says Paid, when and how, and asks for nothing
    assert "PAID" in text.upper() and "card ending 4242" in text
    assert card_paid_invoice.paid_at.strftime("%B") in text  # the payment date, in words
    assert IBAN not in text and "Amount due" not in text and "Bank transfer" not in text
    # and its Factur-X says the same: all of it paid (BT-113), nothing due (BT-115)
    sums = summation(pdf)
    assert sums["TotalPrepaidAmount"] == sums["GrandTotalAmount"] and sums["DuePayableAmount"] == "0.00"

    # and the HTML view agrees
    document = invoice_document(
        invoice=card_paid_invoice,
        lines=list(card_paid_invoice.lines.all()),
        settlements=invoice_settlements(invoice=card_paid_invoice),
    )
    html = document_html(document, for_pdf=False)
    assert "card ending 4242" in html and IBAN not in html and "Amount due" not in html


def test_the_stored_original_stays_as_issued(card_paid_invoice):
    # given the original stored at issue (before the charge, as the render task does)
    original = invoice_document_store(invoice_id=card_paid_invoice.pk)

    # then it is the issued document, due amount and all, and the customer's copy differs
    with original.file.open("rb") as handle:
        stored = handle.read()
    assert summation(stored)["DuePayableAmount"] != "0.00"
    assert "Amount due" in pdf_text(stored)
    assert invoice_pdf_current(invoice=card_paid_invoice) != stored


def test_a_partly_paid_invoice_shows_what_was_paid_and_what_is_still_due(english_customer):
    # given a send-invoice invoice of which 100.00 came by bank transfer
    invoice = invoice_finalize(
        invoice=create_draft(english_customer, [45000], collection_method="send_invoice", days_until_due=30),
        at=ISSUED_AT,
    )
    payment_record_manual(invoice=invoice, amount=10000, method="bank_transfer", reference="VIR-1", at=ISSUED_AT)
    invoice.refresh_from_db()

    # when rendered now
    pdf = invoice_pdf_current(invoice=invoice)
    text = pdf_text(pdf)

    # then it shows the payment, the rest due, and still how to pay the rest
    assert "Paid so far" in text and "€100.00" in text and "by bank transfer" in text
    assert "Amount due" in text and f"€{(invoice.amount_remaining) // 100:,}." in text
    assert IBAN in text
    assert "PARTLY PAID" in text.upper()
    sums = summation(pdf)
    assert Decimal(sums["TotalPrepaidAmount"]) == Decimal("100.00")
    assert Decimal(sums["DuePayableAmount"]) == Decimal(invoice.amount_remaining) / 100


def test_an_unpaid_transfer_invoice_keeps_its_instructions(english_customer):
    invoice = invoice_finalize(
        invoice=create_draft(english_customer, [45000], collection_method="send_invoice", days_until_due=30),
        at=ISSUED_AT,
    )

    text = pdf_text(invoice_pdf_current(invoice=invoice))

    assert "Amount due" in text and IBAN in text and "PAID" not in text.upper().replace("UNPAID", "")


def test_the_french_invoice_names_the_payment_in_french(customer_factory, branded, tax_rate):
    # given a French customer who paid by card
    customer = customer_factory(brand=branded, preferred_language="fr")
    payment_method_attach(customer=customer, source=card("4242424242424242"))
    invoice = invoice_finalize(invoice=create_draft(customer, [45000]), at=ISSUED_AT)
    invoices_collect(invoice_ids=[invoice.pk])
    invoice.refresh_from_db()

    text = pdf_text(invoice_pdf_render(invoice=invoice))

    # then the transfer block and "Montant dû" are gone (the French wording of "Paid" and
    # "card ending" comes with the lead's translation pass)
    assert "Montant dû" not in text and IBAN not in text and "4242" in text


@pytest.fixture
def paid_by_card(customer_factory, branded, tax_rate):
    customer = customer_factory(brand=branded, preferred_language="en")
    payment_method_attach(customer=customer, source=card("4242424242424242"))
    invoice = invoice_finalize(invoice=create_draft(customer, [10000]), at=ISSUED_AT)
    invoices_collect(invoice_ids=[invoice.pk])
    invoice.refresh_from_db()
    return invoice


def test_a_refund_credit_note_says_it_went_back_to_the_card(paid_by_card, staff_factory):
    payment = paid_by_card.payments.get(status="succeeded")

    refund = refund_request(
        payment=payment, amount=3000, reason="other", requested_by=staff_factory(username="rf"), otp_verified_at=None
    )

    text = pdf_text(credit_note_pdf_render(credit_note=refund.credit_note))
    assert "€30.00 refunded to card ending 4242 on" in text
    assert "credited to the customer balance" not in text


def test_a_credit_note_to_the_balance_says_so(paid_by_card):
    credit_note = credit_note_create(
        invoice=paid_by_card, amount=2000, credit_to_balance=2000, reason="other", at=ISSUED_AT
    )

    text = pdf_text(credit_note_pdf_render(credit_note=credit_note))

    assert "€20.00 credited to the customer balance, used on the next invoices" in text
    assert "refunded" not in text


def test_a_credit_note_on_an_open_invoice_says_it_lowered_the_amount_due(english_customer):
    invoice = invoice_finalize(
        invoice=create_draft(english_customer, [10000], collection_method="send_invoice", days_until_due=30),
        at=ISSUED_AT,
    )

    credit_note = credit_note_create(invoice=invoice, amount=5000, reduce_amount_due=5000, reason="other", at=ISSUED_AT)
    invoice.refresh_from_db()

    text = pdf_text(credit_note_pdf_render(credit_note=credit_note))
    assert f"€50.00 deducted from the amount due on invoice {invoice.number}" in text
    # and the invoice, as it stands now, shows the credit note and the lower amount due
    current = pdf_text(invoice_pdf_current(invoice=invoice))
    assert "Credit notes" in current and "Amount due" in current


def test_the_exemption_reason_of_an_exempt_line_is_printed_as_in_the_factur_x(customer_factory, branded, tax_rate):
    from invoices.services.drafts import invoice_create
    from tests.invoices.services.test_tax_codes import _draft
    from tests.tax_codes import seeded_tax_codes

    codes = seeded_tax_codes()
    customer = customer_factory(brand=branded, preferred_language="en")
    draft = invoice_create(draft=_draft(customer, [(codes["exempt-training"], 50000)]), at=ISSUED_AT, customer=customer)
    invoice = invoice_finalize(invoice=draft, at=ISSUED_AT)

    pdf = invoice_pdf_render(invoice=invoice, as_issued=True)
    text = pdf_text(pdf)

    assert "VAT exemption (E)" in text and "article 261-4-4° a" in text and "VATEX-EU-132-1I" in text
    _name, xml = get_xml_from_pdf(pdf, check_xsd=False)
    assert b"VATEX-EU-132-1I" in xml


def test_a_french_invoice_prints_the_exemption_reason_in_french_and_carries_it_as_bt_120(
    customer_factory, branded, tax_rate
):
    from invoices.services.drafts import invoice_create
    from tests.invoices.services.test_tax_codes import _draft
    from tests.tax_codes import seeded_tax_codes

    codes = seeded_tax_codes()
    customer = customer_factory(brand=branded, preferred_language="fr")
    draft = invoice_create(draft=_draft(customer, [(codes["exempt-training"], 50000)]), at=ISSUED_AT, customer=customer)
    invoice = invoice_finalize(invoice=draft, at=ISSUED_AT)

    pdf = invoice_pdf_render(invoice=invoice, as_issued=True)
    text = pdf_text(pdf)

    assert "formation professionnelle continue" in text and "Exempt: vocational training" not in text
    _name, xml = get_xml_from_pdf(pdf, check_xsd=False)
    assert "formation professionnelle continue" in xml.decode()


def test_a_reverse_charged_invoice_states_the_reverse_charge(reverse_charge_invoice):
    text = pdf_text(invoice_pdf_render(invoice=reverse_charge_invoice))

    assert "Reverse charge" in text and "article 283-2" in text


# -- brand texts per language (django-modeltranslation columns) -------------------------------


@pytest.fixture
def bilingual_brand(branded):
    branded.footer_text_fr, branded.footer_text_en = "Merci de votre confiance", "Thank you for your trust"
    branded.payment_instructions_fr = "Virement en rappelant la référence."
    branded.payment_instructions_en = "Bank transfer quoting the reference."
    branded.save()
    return branded


@pytest.mark.parametrize(
    ("language", "own", "other"),
    [
        (
            "en",
            ["Thank you for your trust", "Bank transfer quoting the reference.", "3 × the French legal interest rate"],
            ["Merci de votre confiance", "Virement en rappelant", "le taux d'intérêt légal"],
        ),
        (
            "fr",
            ["Merci de votre confiance", "Virement en rappelant la référence.", "3 × le taux d'intérêt légal"],
            ["Thank you for your trust", "quoting the reference", "legal interest rate"],
        ),
    ],
)
def test_each_language_prints_only_its_own_brand_texts(
    customer_factory, bilingual_brand, tax_rate, language, own, other
):
    customer = customer_factory(brand=bilingual_brand, preferred_language=language)
    invoice = invoice_finalize(
        invoice=create_draft(customer, [10000], collection_method="send_invoice", days_until_due=30), at=ISSUED_AT
    )

    text = pdf_text(invoice_pdf_render(invoice=invoice, as_issued=True))

    for expected in own:
        assert expected in text
    for foreign in other:
        assert foreign not in text


@pytest.mark.parametrize(
    ("language", "own", "other"), [("en", "PO number", "Bon de commande"), ("fr", "Bon de commande", "PO number")]
)
def test_custom_field_labels_and_column_titles_are_printed_in_the_documents_language(
    customer_factory, branded, tax_rate, language, own, other
):
    from invoices.models import InvoiceCustomField

    InvoiceCustomField.objects.create(brand=branded, label_fr="Bon de commande", label_en="PO number", value="PO-7781")
    customer = customer_factory(brand=branded, preferred_language=language)
    invoice = invoice_finalize(invoice=create_draft(customer, [10000]), at=ISSUED_AT)

    text = pdf_text(invoice_pdf_render(invoice=invoice, as_issued=True))

    text = text.upper()  # labels are printed in capitals
    assert own.upper() in text and "PO-7781" in text and other.upper() not in text


def test_an_english_invoice_of_a_brand_without_english_texts_prints_no_french_text(customer_factory, branded, tax_rate):
    # given a brand whose footer exists in French only (as migrated from before issue 17)
    branded.footer_text_fr, branded.footer_text_en = "Merci de votre confiance", ""
    branded.save()
    customer = customer_factory(brand=branded, preferred_language="en")

    invoice = invoice_finalize(invoice=create_draft(customer, [10000]), at=ISSUED_AT)

    assert "Merci de votre confiance" not in pdf_text(invoice_pdf_render(invoice=invoice, as_issued=True))


def test_the_email_of_a_paid_invoice_says_paid_and_asks_for_nothing(card_paid_invoice):
    from invoices.services.emails import invoice_email_send

    message = invoice_email_send(invoice=card_paid_invoice, to=["buyer@client.example"])

    assert "paid on" in message.body and "card ending 4242" in message.body
    assert IBAN not in message.body and "Amount due" not in message.body
    html = message.alternatives[0][0]
    assert IBAN not in html and "Amount due" not in html
    assert "Amount due" not in pdf_text(message.attachments[-1][1])
