"""Invoices, invoice items, credit notes, payment methods, payments and refunds over the API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.models import Payment, Refund
from invoices.models import CreditNote, Invoice
from invoices.services.drafts import invoice_create
from invoices.types import DraftInvoice, DraftLine
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db

CARD = {"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}}


def subscribe(api, customer, price, **extra):
    response = api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}"}], **extra},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def draft_for(customer, amount=1000):
    draft = DraftInvoice(
        customer_id=customer.pk,
        currency="EUR",
        billing_reason="manual",
        lines=(DraftLine(kind="one_off", description="Setup", amount=amount),),
    )
    return invoice_create(draft=draft, at=datetime.now(tz=UTC), customer=customer)


def test_finalize_a_draft_assigns_a_number(api, billing_world):
    customer, _price = billing_world
    draft = draft_for(customer)

    response = api.post(f"/api/v1/invoices/in_{draft.pk}/finalize")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "open" and body["number"] and body["total"] == 1200
    assert body["lines"][0]["amount"] == 1000 and body["lines"][0]["id"].startswith("il_")


@pytest.mark.django_db(transaction=True)
def test_finalizing_twice_is_a_conflict(api, billing_world):
    customer, _price = billing_world
    draft = draft_for(customer)
    api.post(f"/api/v1/invoices/in_{draft.pk}/finalize")

    assert_problem(api.post(f"/api/v1/invoices/in_{draft.pk}/finalize"), 409, "invalid_state")


def test_void_an_open_invoice(api, billing_world):
    customer, _price = billing_world
    draft = draft_for(customer)
    api.post(f"/api/v1/invoices/in_{draft.pk}/finalize")

    response = api.post(f"/api/v1/invoices/in_{draft.pk}/void", {"reason": "duplicate"}, format="json")

    assert response.status_code == 200 and response.json()["status"] == "void"


def test_pay_out_of_band_then_credit_note(api, billing_world):
    customer, price = billing_world
    subscription = subscribe(api, customer, price, collection_method="send_invoice")
    invoice = api.get("/api/v1/invoices", {"subscription": subscription["id"]}).json()["data"][0]
    assert invoice["status"] == "open" and invoice["amount_remaining"] == 3480

    paid = api.post(
        f"/api/v1/invoices/{invoice['id']}/pay",
        {"paid_out_of_band": True, "method": "bank_transfer", "reference": "VIR-1"},
        format="json",
    )

    assert paid.status_code == 200, paid.content
    assert paid.json()["status"] == "paid" and paid.json()["amount_paid"] == 3480
    payments = api.get("/api/v1/payments", {"invoice": invoice["id"]}).json()["data"]
    assert payments[0]["amount"] == 3480 and payments[0]["currency"] == "EUR"

    note = api.post(
        "/api/v1/credit_notes",
        {"invoice": invoice["id"], "amount": 1200, "credit_to_balance": 1200, "reason": "order_change"},
        format="json",
    )
    assert note.status_code == 201, note.content
    assert note.json()["total"] == 1200 and note.json()["id"].startswith("cn_")
    assert api.get("/api/v1/credit_notes", {"invoice": invoice["id"]}).json()["data"][0]["number"]


def test_card_attach_pay_and_refund(api, billing_world):
    customer, price = billing_world
    method = api.post("/api/v1/payment_methods", {"customer": f"cus_{customer.pk}", "source": CARD}, format="json")
    assert method.status_code == 201, method.content
    assert method.json()["last4"] == "4242" and "number" not in method.json()

    subscription = subscribe(api, customer, price)

    invoice = api.get("/api/v1/invoices", {"subscription": subscription["id"], "expand": "customer"}).json()["data"][0]
    assert invoice["customer"]["id"] == f"cus_{customer.pk}"
    # Collection runs after commit (a task); charging it through the API is the same service.
    paid = api.post(f"/api/v1/invoices/{invoice['id']}/pay", {}, format="json")
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    payment = api.get("/api/v1/payments", {"customer": f"cus_{customer.pk}"}).json()["data"][0]
    assert payment["status"] == "succeeded"

    refund = api.post(
        "/api/v1/refunds", {"payment": payment["id"], "amount": 1000, "reason": "duplicate"}, format="json"
    )
    assert refund.status_code == 201, refund.content
    assert refund.json()["status"] == "executed" and refund.json()["credit_note"].startswith("cn_")
    assert Refund.objects.get().requested_by.username == "integrations"
    requested = api.get("/api/v1/events", {"type": "refund.requested"}).json()["data"][0]
    assert requested["data"]["payment"] == payment["id"] and "requested_by" not in requested["data"]

    detached = api.post(f"/api/v1/payment_methods/{method.json()['id']}/detach")
    assert detached.status_code == 200 and detached.json()["active"] is False


@pytest.mark.django_db(transaction=True)
def test_refund_above_the_threshold_needs_a_staff_approver(api, billing_world, settings):
    settings.TARIF_REFUND_APPROVAL_THRESHOLD = 100
    customer, price = billing_world
    api.post("/api/v1/payment_methods", {"customer": f"cus_{customer.pk}", "source": CARD}, format="json")
    subscription = subscribe(api, customer, price)
    invoice = api.get("/api/v1/invoices", {"subscription": subscription["id"]}).json()["data"][0]
    api.post(f"/api/v1/invoices/{invoice['id']}/pay", {}, format="json")
    payment = Payment.objects.get()

    response = api.post(
        "/api/v1/refunds", {"payment": f"pay_{payment.pk}", "amount": 1000, "reason": "duplicate"}, format="json"
    )

    assert_problem(response, 403, "approval_required")
    assert not Refund.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_unknown_test_card_is_a_gateway_refusal_not_a_500(api, billing_world):
    customer, _price = billing_world
    bad = {"card": {"number": "1234123412341234", "exp_month": 1, "exp_year": 2030}}

    response = api.post("/api/v1/payment_methods", {"customer": f"cus_{customer.pk}", "source": bad}, format="json")

    body = assert_problem(response, 422, "gateway_refused")
    assert "1234123412341234" not in body["detail"]


def test_charge_a_non_open_invoice_is_a_conflict(api, billing_world):
    customer, _price = billing_world
    draft = draft_for(customer)

    assert_problem(api.post(f"/api/v1/invoices/in_{draft.pk}/pay", {}, format="json"), 409, "invalid_state")


def test_pdf_and_facturx(api, billing_world):
    customer, _price = billing_world
    draft = draft_for(customer)
    api.post(f"/api/v1/invoices/in_{draft.pk}/finalize")

    pdf = api.get(f"/api/v1/invoices/in_{draft.pk}/pdf")
    xml = api.get(f"/api/v1/invoices/in_{draft.pk}/facturx")

    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert xml.status_code == 200 and b"CrossIndustryInvoice" in xml.content


def test_a_draft_has_no_pdf(api, billing_world):
    customer, _price = billing_world
    draft = draft_for(customer)

    assert_problem(api.get(f"/api/v1/invoices/in_{draft.pk}/pdf"), 409, "not_issued")
    assert_problem(api.get(f"/api/v1/invoices/in_{draft.pk}/facturx"), 409, "not_issued")


def test_invoice_items_wait_for_the_next_invoice(api, billing_world):
    customer, price = billing_world
    subscription = subscribe(api, customer, price)

    item = api.post(
        "/api/v1/invoice_items",
        {"customer": f"cus_{customer.pk}", "subscription": subscription["id"], "amount": 5000, "description": "Setup"},
        format="json",
    )

    assert item.status_code == 201, item.content
    assert item.json()["currency"] == "EUR" and item.json()["invoice"] is None
    upcoming = api.get("/api/v1/invoices/upcoming", {"subscription": subscription["id"]}).json()
    assert any(line["description"] == "Setup" and line["amount"] == 5000 for line in upcoming["lines"])
    assert api.get("/api/v1/invoice_items", {"pending": "true"}).json()["data"][0]["id"] == item.json()["id"]


def test_invoice_item_now_is_invoiced_at_once(api, billing_world):
    customer, _price = billing_world

    item = api.post(
        "/api/v1/invoice_items",
        {"customer": f"cus_{customer.pk}", "amount": 700, "description": "Consulting", "invoice_now": True},
        format="json",
    )

    assert item.status_code == 201 and item.json()["invoice"].startswith("in_")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"amount": 100, "currency": "XYZ"}, 400),
        ({"amount": "cent"}, 400),
        ({"amount": 100, "quantity": -3}, 400),
        ({}, 422),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_bad_invoice_items(api, billing_world, body, status):
    customer, _price = billing_world

    response = api.post("/api/v1/invoice_items", {"customer": f"cus_{customer.pk}", **body}, format="json")

    assert_problem(response, status)


def test_upcoming_needs_a_valid_subscription(api):
    assert_problem(api.get("/api/v1/invoices/upcoming"), 400, "invalid_id")
    assert_problem(api.get("/api/v1/invoices/upcoming", {"subscription": "sub_9999"}), 404, "resource_missing")


def test_invoice_list_paginates_with_a_cursor(api, billing_world):
    customer, _price = billing_world
    drafts = [draft_for(customer, amount=100 * n) for n in range(1, 6)]

    first = api.get("/api/v1/invoices", {"limit": 2}).json()
    second = api.get(first["next"]).json()
    rest = api.get(second["next"]).json()

    seen = [row["id"] for row in first["data"] + second["data"] + rest["data"]]
    assert seen == [f"in_{invoice.pk}" for invoice in reversed(drafts)]
    assert first["has_more"] and not rest["has_more"] and rest["next"] is None
    assert_problem(api.get("/api/v1/invoices", {"cursor": "garbage"}), 400, "invalid_cursor")


@pytest.mark.django_db(transaction=True)
def test_credit_note_for_a_draft_is_refused(api, billing_world):
    customer, _price = billing_world
    draft = draft_for(customer)

    response = api.post(
        "/api/v1/credit_notes", {"invoice": f"in_{draft.pk}", "amount": 100, "reason": "duplicate"}, format="json"
    )

    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)
    assert not CreditNote.objects.exists() and Invoice.objects.count() == 1


def test_the_invoice_list_shows_each_invoice_exactly_as_the_invoice_serializer_does(api, billing_world):
    # given a subscription invoice (paid, with tax) and a one-off draft without subscription
    customer, price = billing_world
    subscribe(api, customer, price)
    draft_for(customer, amount=1234)
    from invoices.serializers import InvoiceSummarySerializer

    # when the list is read (its fast path) and each invoice through the serializer
    listed = api.get("/api/v1/invoices").json()["data"]
    expected = [dict(InvoiceSummarySerializer(invoice).data) for invoice in Invoice.objects.order_by("-pk")]

    # then they agree on every field, the nullable and date ones included
    assert len(listed) == 2
    assert listed == expected
    assert {row["subscription"] is None for row in listed} == {True, False}
    assert any(row["finalized_at"] for row in listed) and any(row["finalized_at"] is None for row in listed)


def test_an_expanded_invoice_list_nests_the_customer(api, billing_world):
    customer, price = billing_world
    subscribe(api, customer, price)

    listed = api.get("/api/v1/invoices", {"expand": "customer"}).json()["data"]

    assert listed[0]["customer"]["id"] == f"cus_{customer.pk}"
