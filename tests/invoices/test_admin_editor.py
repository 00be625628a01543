"""The console's invoice editor and invoice-page actions (invoices/admin/editor.py), as finance uses them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing.models import Payment
from config.audit.models import AuditEntry
from invoices.models import CreditNote, Invoice
from invoices.services.draft_editor import invoice_draft_create, invoice_draft_line_add
from invoices.services.finalize import invoice_finalize
from tests.conftest import current_totp
from tests.factories import CustomerFactory, PriceFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def buyer(customer_factory, brand, tax_rate):
    return customer_factory(brand=brand, legal_name="Boulangerie Martin SARL")


@pytest.fixture
def draft(buyer):
    return invoice_draft_create(customer=buyer)


@pytest.fixture
def issued(buyer):
    """An open invoice of one line: 2 x 150.00 + 20 % VAT = 360.00."""
    invoice = invoice_draft_create(customer=buyer)
    invoice_draft_line_add(invoice=invoice, description="Atelier", amount=15000, quantity=2)
    return invoice_finalize(invoice=invoice)


def url(name: str, invoice: Invoice, *more: object) -> str:
    return reverse(f"admin:invoices_invoice_{name}", args=[invoice.pk, *more])


def signed_in(client, staff_factory, username: str, group: str):
    user = staff_factory(username=username)
    user.groups.add(Group.objects.get(name=group))
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.post("/admin/login/", {"username": username, "password": PASSWORD})
    client.post("/admin/otp/verify/", {"otp_token": current_totp(device)})
    return client


# -- a new draft ------------------------------------------------------------------------------


def test_the_customer_hub_link_prefills_the_customer_and_creates_a_draft(console, buyer):
    add = reverse("admin:invoices_invoice_add")

    page = console.get(f"{add}?customer={buyer.pk}").content.decode()
    created = console.post(add, {"customer": buyer.pk, "collection_method": "send_invoice", "days_until_due": 15})

    assert f'<option value="{buyer.pk}" selected>' in page
    invoice = Invoice.objects.get()
    assert (invoice.status, invoice.customer, invoice.custom_fields["days_until_due"]) == ("draft", buyer, 15)
    assert created.status_code == 302 and created["Location"] == url("change", invoice)


def test_a_test_mode_customer_is_not_offered_in_live_mode(console, buyer):
    sandbox = CustomerFactory(brand=buyer.brand, livemode=False)
    add = reverse("admin:invoices_invoice_add")

    page = console.get(f"{add}?customer={sandbox.pk}").content.decode()
    refused = console.post(add, {"customer": sandbox.pk, "collection_method": "send_invoice", "days_until_due": 30})

    assert f'value="{sandbox.pk}" selected' not in page
    assert refused.status_code == 200 and not Invoice.objects.exists()


# -- lines and live totals --------------------------------------------------------------------


def test_adding_a_free_line_typed_in_major_units_shows_the_totals(console, draft):
    added = console.post(
        url("line_add", draft),
        {"description": "Atelier", "unit_amount": "150,50", "quantity": "2", "tax": "auto"},
        HTTP_ACCEPT_LANGUAGE="fr",
    )
    page = console.get(url("change", draft), HTTP_ACCEPT_LANGUAGE="fr").content.decode()

    assert added.status_code == 302
    draft.refresh_from_db()
    assert (draft.subtotal, draft.tax_total, draft.total) == (30100, 6020, 36120)
    assert "361,20\u00a0€" in page  # the total, as French writes money
    assert 'id="draft-lines"' in page and "Atelier" in page


def test_the_live_preview_shows_the_totals_with_the_line_and_writes_nothing(console, draft):
    response = console.post(
        url("preview", draft), {"description": "Atelier", "unit_amount": "100", "quantity": "3", "tax": "auto"}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "Totals with this line" in page and "€360.00" in page
    assert not draft.lines.exists()
    assert not AuditEntry.objects.filter(action="preview").exists()  # a preview is not an action


def test_a_price_line_from_the_picker(console, draft):
    price = PriceFactory(unit_amount=Decimal(2900), nickname="Mensuel")

    form = console.get(url("change", draft)).content.decode()
    console.post(url("line_add", draft), {"price": price.pk, "quantity": "2", "tax": "auto"})

    assert "€29.00" in form and "Mensuel" in form  # the picker shows the amount and the cycle
    line = draft.lines.get()
    assert (line.price, line.amount) == (price, 5800)


@pytest.mark.parametrize(
    ("price_fields", "why"),
    [({"livemode": False}, "test-mode price"), ({"currency": "USD"}, "other currency")],
)
def test_a_price_of_another_mode_or_currency_is_refused(console, draft, price_fields, why):
    price = PriceFactory(**price_fields)

    form = console.get(url("change", draft)).content.decode()
    refused = console.post(url("line_add", draft), {"price": price.pk, "quantity": "1", "tax": "auto"})

    assert price.product.name not in form, why  # not offered by the picker
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    assert not draft.lines.exists()


@pytest.mark.parametrize("typed", ["-5", "0", "99999999999999", "12.345", "abc"])
def test_negative_or_absurd_amounts_are_refused_with_a_message(console, draft, typed):
    refused = console.post(
        url("line_add", draft), {"description": "X", "unit_amount": typed, "quantity": "1", "tax": "auto"}
    )

    assert refused.status_code == 200
    assert "errornote" in refused.content.decode()
    assert not draft.lines.exists()


def test_a_line_is_changed_and_removed(console, draft):
    line = invoice_draft_line_add(invoice=draft, description="Atelier", amount=10000)

    edit_page = console.get(url("line_edit", draft, line.pk)).content.decode()
    console.post(
        url("line_edit", draft, line.pk),
        {"description": "Atelier (2 j)", "unit_amount": "100", "quantity": "2", "tax": "auto"},
    )
    line.refresh_from_db()
    assert 'value="100.00"' in edit_page  # the unit amount in major units, as it was typed
    assert (line.description, line.amount) == ("Atelier (2 j)", 20000)

    console.post(url("line_remove", draft, line.pk))
    draft.refresh_from_db()
    assert not draft.lines.exists() and draft.total == 0


def test_the_lines_of_a_finalized_invoice_cannot_be_edited(console, issued):
    line = issued.lines.get()

    edit = console.post(
        url("line_edit", issued, line.pk), {"description": "X", "unit_amount": "1", "quantity": "1", "tax": "auto"}
    )
    add = console.post(
        url("line_add", issued), {"description": "X", "unit_amount": "1", "quantity": "1", "tax": "auto"}
    )
    remove = console.post(url("line_remove", issued, line.pk), follow=True)

    assert edit.status_code == 302 and add.status_code == 200
    assert "only a draft" in add.content.decode()
    assert "only a draft" in remove.content.decode()
    line.refresh_from_db()
    assert line.amount == 30000 and issued.lines.count() == 1


# -- finalize ---------------------------------------------------------------------------------


def test_the_finalize_confirmation_states_number_total_and_due_date_then_finalizes(console, draft):
    invoice_draft_line_add(invoice=draft, description="Atelier", amount=10000)

    confirmation = console.get(url("finalize_draft", draft)).content.decode()
    finalized = console.post(url("finalize_draft", draft), {"confirm": "1"}, follow=True)

    draft.refresh_from_db()
    assert draft.status == "open" and draft.number
    assert draft.number in confirmation  # announced before, taken after
    assert "€120.00" in confirmation
    due = timezone.localtime(draft.due_at)
    assert f"{due:%b}" in confirmation and str(due.year) in confirmation
    assert f"Invoice {draft.number} issued for €120.00." in finalized.content.decode()


def test_finalizing_twice_is_refused_and_takes_no_second_number(console, draft):
    invoice_draft_line_add(invoice=draft, description="Atelier", amount=10000)
    console.post(url("finalize_draft", draft), {"confirm": "1"})
    draft.refresh_from_db()
    number = draft.number

    again = console.post(url("finalize_draft", draft), {"confirm": "1"}, follow=True)

    draft.refresh_from_db()
    assert draft.number == number
    assert again.status_code in (200, 403)


def test_an_empty_draft_is_not_finalized(console, draft):
    response = console.post(url("finalize_draft", draft), {"confirm": "1"}, follow=True)

    draft.refresh_from_db()
    assert draft.status == "draft"
    assert "Add at least one line" in response.content.decode()


# -- invoice-page actions -------------------------------------------------------------------


def test_recording_a_partial_payment(console, issued):
    page = console.get(url("record_payment", issued)).content.decode()
    token = page.split('name="token" value="')[1].split('"')[0]

    response = console.post(
        url("record_payment", issued),
        {
            "amount": "100.00",
            "received_on": timezone.localdate().isoformat(),
            "method": "bank_transfer",
            "reference": "VIR 42",
            "token": token,
        },
        follow=True,
    )

    issued.refresh_from_db()
    assert (issued.amount_paid, issued.amount_remaining, issued.status) == (10000, 26000, "open")
    assert Payment.objects.get().method == "bank_transfer"
    assert "Payment of €100.00 recorded; €260.00 remains due." in response.content.decode()


@pytest.mark.parametrize(
    ("amount", "days_from_today", "message"),
    [("400.00", 0, "360"), ("100.00", 3, "cannot be received in the future"), ("-1", 0, "")],
)
def test_an_impossible_payment_is_refused(console, issued, amount, days_from_today, message):
    response = console.post(
        url("record_payment", issued),
        {
            "amount": amount,
            "received_on": (timezone.localdate() + timedelta(days=days_from_today)).isoformat(),
            "method": "cheque",
            "token": "t1",
        },
    )

    assert response.status_code == 200 and message in response.content.decode()
    assert not Payment.objects.exists()


def test_sending_an_invoice_by_email(console, issued):
    confirmation = console.get(url("send_by_email", issued)).content.decode()

    response = console.post(url("send_by_email", issued), {"confirm": "1"}, follow=True)

    assert issued.customer.email in confirmation
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [issued.customer.invoice_email or issued.customer.email]
    assert f"Invoice {issued.number} emailed" in response.content.decode()


def test_voiding_from_the_invoice_page_states_the_consequence(console, issued):
    confirmation = console.get(url("void_invoice", issued)).content.decode()
    console.post(url("void_invoice", issued), {"reason": "Sent twice"})

    issued.refresh_from_db()
    assert "keeps its number" in confirmation
    assert issued.status == "void" and issued.number


def test_a_write_off_needs_a_fresh_code(console, issued, staff_with_totp):
    _user, device = staff_with_totp
    stale = console.post(url("write_off", issued), {"otp_token": ""})
    issued.refresh_from_db()
    assert issued.status == "open" and stale.status_code == 200

    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        console.post(url("write_off", issued), {"otp_token": current_totp(device)})

    issued.refresh_from_db()
    assert issued.status == "uncollectible"


def test_the_pdf_button_downloads_the_invoice(console, issued):
    response = console.get(url("download_invoice_pdf", issued), follow=True)

    assert response["Content-Type"] == "application/pdf"


# -- credit note by line ----------------------------------------------------------------------


def test_a_credit_note_for_one_unit_of_a_line_explains_the_split_then_issues(console, issued):
    line = issued.lines.get()
    data = {f"qty_{line.pk}": "1", "destination": "auto", "reason": "order_change"}

    preview = console.post(url("credit_preview", issued), data).content.decode()
    response = console.post(url("credit_note", issued), data, follow=True)

    # one of two units: 150.00 + 30.00 VAT, reducing what is owed (360.00 to 180.00)
    assert "€180.00" in preview and "€150.00" in preview and "€30.00" in preview
    assert "reduces what Boulangerie Martin SARL still owes" in preview and "to €180.00" in preview
    note = CreditNote.objects.get()
    assert (note.total, note.reduced_amount_due, note.credited_to_balance) == (18000, 18000, 0)
    assert note.lines.get().invoice_line_id == line.pk
    assert f"Credit note {note.number} issued" in response.content.decode()


def test_crediting_more_than_a_line_has_is_refused(console, issued):
    line = issued.lines.get()

    too_many = console.post(
        url("credit_note", issued), {f"qty_{line.pk}": "3", "destination": "auto", "reason": "other"}
    )
    too_much = console.post(
        url("credit_note", issued), {f"amount_{line.pk}": "300.01", "destination": "auto", "reason": "other"}
    )

    assert too_many.status_code == 200 and "Between 0 and 2" in too_many.content.decode()
    assert (
        too_much.status_code == 200 and "At most €300.00 is left to credit on this line." in too_much.content.decode()
    )
    assert not CreditNote.objects.exists()


def test_a_credit_to_the_balance_says_so_before_confirming(console, issued):
    line = issued.lines.get()

    preview = console.post(
        url("credit_preview", issued), {f"qty_{line.pk}": "2", "destination": "balance", "reason": "other"}
    ).content.decode()

    assert "€360.00 is credited to Boulangerie Martin SARL" in preview and "next invoices" in preview


# -- roles and modes --------------------------------------------------------------------------


@pytest.mark.parametrize("group", ["Support", "Read-only"])
def test_support_and_read_only_see_invoices_but_cannot_act(client, staff_factory, issued, draft, group):
    client = signed_in(client, staff_factory, f"user-{group.lower()}", group)
    line = issued.lines.get()

    page = client.get(url("change", issued))
    draft_page = client.get(url("change", draft)).content.decode()

    assert page.status_code == 200
    for action in ("record-payment", "issue-credit-note", "void", "write-off", "send-email"):
        assert f"/{action}/" not in page.content.decode()
    assert 'id="draft-line-form"' not in draft_page
    for name, target in (
        ("finalize_draft", draft),
        ("record_payment", issued),
        ("void_invoice", issued),
        ("send_by_email", issued),
        ("credit_note", issued),
    ):
        assert client.post(url(name, target), {"confirm": "1"}).status_code == 403, name
    assert (
        client.post(url("line_add", draft), {"description": "X", "unit_amount": "1", "quantity": "1"}).status_code
        == 403
    )
    assert client.post(url("credit_preview", issued), {f"qty_{line.pk}": "1"}).status_code == 403
    draft.refresh_from_db()
    assert draft.status == "draft" and not draft.lines.exists()


def test_an_invoice_of_the_other_mode_is_not_found(console, buyer):
    sandbox = CustomerFactory(brand=buyer.brand, livemode=False)
    sandbox_draft = invoice_draft_create(customer=sandbox)

    assert console.get(url("finalize_draft", sandbox_draft)).status_code == 404
    assert console.post(url("line_add", sandbox_draft), {"description": "X"}).status_code == 404
