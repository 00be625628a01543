"""The operator console for invoices, credit notes, brands, tax rates and the balance ledger."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from invoices.models import (
    BalanceTransaction,
    CreditNote,
    Invoice,
    InvoiceCustomField,
    InvoiceLine,
    NumberSequence,
)
from tests.conftest import current_totp
from tests.tax_codes import seeded_tax_codes

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


_numbers = iter(range(1, 10_000))
_INPUT = re.compile(r"<(input|textarea|select)\b[^>]*>")
_ATTRIBUTE = re.compile(r'(\w[\w-]*)="([^"]*)"')


_MAIN_FORM = re.compile(r'<form[^>]*id="\w+_form".*?</form>', re.S)


def form_inputs(page: str) -> list[dict[str, str]]:
    """The inputs of the page's main (model) form: the console's search box, the draft editor's
    line form and other forms of the page excluded."""
    found = []
    main = _MAIN_FORM.search(page)
    for match in _INPUT.finditer(main.group(0) if main else ""):
        attributes = dict(_ATTRIBUTE.findall(match.group(0)))
        attributes["tag"] = match.group(1)
        if attributes.get("name") and attributes.get("name") != "csrfmiddlewaretoken":
            found.append(attributes)
    return found


def editable_fields(page: str) -> list[str]:
    return [field["name"] for field in form_inputs(page) if field.get("type") not in ("hidden", "submit")]


def hidden_fields(page: str) -> dict[str, str]:
    """What the browser would send back untouched: the inline formsets' management data."""
    return {field["name"]: field.get("value", "") for field in form_inputs(page) if field.get("type") == "hidden"}


def make_invoice(
    customer,
    *,
    net: int = 10000,
    status: str = Invoice.Status.OPEN,
    finalized_at: datetime | None = None,
) -> Invoice:
    """An invoice of one line (French VAT 20 % on top of `net`), drafted and issued by the services."""
    from invoices.services.drafts import invoice_create
    from invoices.services.finalize import invoice_finalize
    from invoices.services.lifecycle import invoice_record_payment, invoice_void
    from invoices.types import DraftInvoice, DraftLine

    at = finalized_at or datetime(2026, 1, 15, tzinfo=UTC)
    draft = DraftInvoice(
        customer_id=customer.pk,
        currency="EUR",
        billing_reason=Invoice.BillingReason.MANUAL,
        lines=(DraftLine(kind=InvoiceLine.Kind.ONE_OFF, description="Accompagnement", amount=net),),
    )
    invoice = invoice_create(draft=draft, at=at, customer=customer)
    if status == Invoice.Status.DRAFT:
        return invoice
    invoice = invoice_finalize(invoice=invoice, at=at)
    if status == Invoice.Status.PAID:
        invoice = invoice_record_payment(invoice=invoice, amount=invoice.amount_remaining, at=at)
    elif status == Invoice.Status.VOID:
        invoice = invoice_void(invoice=invoice, at=at, reason="test")
    return invoice


@pytest.fixture
def buyer(customer_factory, brand):
    """Customers of one brand: brands may not share a number series."""

    def make(**fields):
        return customer_factory(brand=brand, **fields)

    return make


@pytest.fixture
def open_invoice(buyer, tax_rate):
    return make_invoice(buyer(legal_name="Facturée SARL"), net=102880)  # 1 234,56 € with VAT


@pytest.fixture
def draft_invoice(buyer, tax_rate):
    return make_invoice(buyer(legal_name="Brouillon SAS"), status=Invoice.Status.DRAFT)


@pytest.fixture
def invoices_world(open_invoice, draft_invoice):
    """One row of every invoices model (credit note, its lines, the number series, the balance
    ledger), so every change page has something to show."""
    from invoices.services.credit_notes import credit_note_create

    credit_note_create(
        invoice=open_invoice,
        amount=1200,
        credit_to_balance=1200,
        reason=CreditNote.Reason.PRODUCT_UNSATISFACTORY,
        memo="Geste commercial",
        at=datetime(2026, 1, 20, tzinfo=UTC),
    )
    assert NumberSequence.objects.exists() and BalanceTransaction.objects.exists()
    # The tax codes a migration seeds: a transactional test run before this one (same process,
    # e.g. a pytest-xdist worker) empties every table, seeded rows included.
    seeded_tax_codes()
    InvoiceCustomField.objects.create(customer=open_invoice.customer, label="PO number", value="PO-1")
    return open_invoice


INVOICES_MODELS = sorted(
    (model for model in admin.site._registry if model._meta.app_label == "invoices"), key=lambda m: m.__name__
)


@pytest.mark.parametrize("model", INVOICES_MODELS, ids=lambda model: model.__name__)
def test_every_invoices_page_of_the_console_renders(console, invoices_world, model):
    opts = model._meta
    model_admin = admin.site._registry[model]
    instance = model.objects.order_by("pk").first()
    assert instance is not None, f"the world fixture should create a {opts.model_name}"

    changelist = console.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    change = console.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[instance.pk]))
    add = console.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))

    assert changelist.status_code == 200
    assert change.status_code == 200
    assert add.status_code == (200 if model_admin.has_add_permission(changelist.wsgi_request) else 403)


def test_invoices_show_amounts_as_money_in_the_readers_language(console, open_invoice):
    french = console.get(reverse("admin:invoices_invoice_changelist"), HTTP_ACCEPT_LANGUAGE="fr")
    english = console.get(reverse("admin:invoices_invoice_changelist"), HTTP_ACCEPT_LANGUAGE="en")

    assert "1\u202f234,56\xa0€" in french.content.decode()
    assert "€1,234.56" in english.content.decode()


def test_invoices_are_found_by_number_and_customer_and_filtered_by_status(console, open_invoice, draft_invoice):
    by_number = console.get(reverse("admin:invoices_invoice_changelist"), {"q": open_invoice.number}).content.decode()
    by_customer = console.get(reverse("admin:invoices_invoice_changelist"), {"q": "Brouillon"}).content.decode()
    drafts = console.get(reverse("admin:invoices_invoice_changelist"), {"status__exact": "draft"}).content.decode()

    assert "Facturée SARL" in by_number and "Brouillon SAS" not in by_number
    assert "Brouillon SAS" in by_customer and "Facturée SARL" not in by_customer
    assert "Brouillon SAS" in drafts and "Facturée SARL" not in drafts


# -- issued means frozen -------------------------------------------------------------------


def test_a_finalized_invoice_page_has_no_editable_field(console, open_invoice):
    page = console.get(reverse("admin:invoices_invoice_change", args=[open_invoice.pk])).content.decode()

    assert editable_fields(page) == []
    assert 'name="_save"' not in page
    assert "frozen and cannot be edited" in page
    assert "Accompagnement" in page  # the lines are shown, read-only


def test_posting_a_change_to_a_finalized_invoice_is_refused(console, open_invoice):
    response = console.post(
        reverse("admin:invoices_invoice_change", args=[open_invoice.pk]), {"memo": "changed", "language": "en"}
    )

    assert response.status_code == 403
    open_invoice.refresh_from_db()
    assert open_invoice.memo == "" and open_invoice.language == "fr"


def test_a_finalized_invoice_cannot_be_deleted(console, open_invoice):
    url = reverse("admin:invoices_invoice_delete", args=[open_invoice.pk])

    assert console.get(url).status_code == 403
    assert console.post(url, {"post": "yes"}).status_code == 403
    listing = console.get(reverse("admin:invoices_invoice_changelist")).content.decode()
    assert "delete_selected" not in listing
    assert Invoice.objects.filter(pk=open_invoice.pk).exists()


def test_a_draft_keeps_its_memo_editable_and_can_be_deleted(console, draft_invoice):
    change_url = reverse("admin:invoices_invoice_change", args=[draft_invoice.pk])

    page = console.get(change_url).content.decode()
    saved = console.post(change_url, {**hidden_fields(page), "memo": "Merci !", "language": "fr"})
    draft_invoice.refresh_from_db()
    deleted = console.post(reverse("admin:invoices_invoice_delete", args=[draft_invoice.pk]), {"post": "yes"})

    assert sorted(editable_fields(page)) == ["language", "memo"]
    assert saved.status_code == 302
    assert draft_invoice.memo == "Merci !"
    assert deleted.status_code == 302
    assert not Invoice.objects.filter(pk=draft_invoice.pk).exists()


def test_credit_notes_are_read_only(console, invoices_world):
    note = CreditNote.objects.get()

    page = console.get(reverse("admin:invoices_creditnote_change", args=[note.pk])).content.decode()
    refused = console.post(reverse("admin:invoices_creditnote_change", args=[note.pk]), {"memo": "x"})

    assert editable_fields(page) == [] and 'name="_save"' not in page
    assert "Geste commercial" in page and "€12.00" in page
    assert refused.status_code == 403
    assert console.get(reverse("admin:invoices_creditnote_delete", args=[note.pk])).status_code == 403


# -- actions -------------------------------------------------------------------------------


def test_the_list_has_no_bulk_finalize_without_confirmation(console, draft_invoice):
    listing = console.get(reverse("admin:invoices_invoice_changelist")).content.decode()
    refused = console.post(
        reverse("admin:invoices_invoice_changelist"),
        {"action": "finalize", "_selected_action": [draft_invoice.pk]},
        follow=True,
    )

    assert 'value="finalize"' not in listing
    draft_invoice.refresh_from_db()
    assert draft_invoice.status == Invoice.Status.DRAFT and refused.status_code == 200


def test_voiding_asks_for_a_reason_then_voids(console, open_invoice):
    changelist = reverse("admin:invoices_invoice_changelist")

    asked = console.post(changelist, {"action": "void", "_selected_action": [open_invoice.pk]})
    without_reason = console.post(
        changelist, {"action": "void", "_selected_action": [open_invoice.pk], "apply": "1", "reason": ""}
    )
    voided = console.post(
        changelist,
        {"action": "void", "_selected_action": [open_invoice.pk], "apply": "1", "reason": "Sent twice"},
        follow=True,
    )

    assert asked.status_code == 200 and 'name="reason"' in asked.content.decode()
    assert without_reason.status_code == 200 and "This field is required" in without_reason.content.decode()
    open_invoice.refresh_from_db()
    assert open_invoice.status == Invoice.Status.VOID
    assert open_invoice.number  # a voided invoice keeps its number
    assert "1 invoice voided." in voided.content.decode()


# -- credit notes from the invoice page ----------------------------------------------------


def test_an_open_invoice_offers_to_issue_a_credit_note_and_a_draft_does_not(console, open_invoice, draft_invoice):
    issued = console.get(reverse("admin:invoices_invoice_change", args=[open_invoice.pk])).content.decode()
    draft = console.get(reverse("admin:invoices_invoice_change", args=[draft_invoice.pk])).content.decode()

    assert reverse("admin:invoices_invoice_issue_credit_note", args=[open_invoice.pk]) in issued
    assert "/issue-credit-note/" not in draft


def credit_by_amount(console, invoice, amount: str, destination: str = "auto", **extra):
    return console.post(
        reverse("admin:invoices_invoice_credit_note", args=[invoice.pk]),
        {"amount": amount, "destination": destination, "reason": "order_change", **extra},
        **({"HTTP_ACCEPT_LANGUAGE": extra.pop("language")} if "language" in extra else {}),
    )


def test_the_credit_note_form_refuses_to_credit_more_than_the_invoice(console, open_invoice):
    response = credit_by_amount(console, open_invoice, "2000.00")

    page = response.content.decode()
    assert response.status_code == 200
    assert "more than is left to credit on the invoice: at most €1,234.56" in page
    assert not CreditNote.objects.exists()


def test_the_credit_note_form_refuses_more_decimals_than_the_currency_has(console, open_invoice):
    response = credit_by_amount(console, open_invoice, "10.005")

    # The message of Money.from_major, the one reader of typed amounts (it was Django's DecimalValidator's).
    assert "has more decimals than EUR allows (at most 2)." in response.content.decode()
    assert not CreditNote.objects.exists()


def test_a_credit_note_by_amount_reduces_what_is_owed_first(console, open_invoice, tax_rate):
    response = credit_by_amount(console, open_invoice, "120.00", memo="Two seats fewer")

    assert response.status_code == 302, response.content.decode()[-2000:]
    note = CreditNote.objects.get()
    assert (note.total, note.reduced_amount_due, note.credited_to_balance, note.refunded) == (12000, 12000, 0, 0)
    assert note.memo == "Two seats fewer"


def test_a_credit_note_to_the_balance_only(console, open_invoice, tax_rate):
    response = credit_by_amount(console, open_invoice, "120.00", destination="balance")

    assert response.status_code == 302
    note = CreditNote.objects.get()
    assert (note.reduced_amount_due, note.credited_to_balance) == (0, 12000)


def test_a_draft_invoice_cannot_be_credited(console, draft_invoice):
    response = console.get(reverse("admin:invoices_invoice_credit_note", args=[draft_invoice.pk]), follow=True)

    assert "credit notes are issued for open or paid invoices" in response.content.decode()


# -- the chart above the list --------------------------------------------------------------


@time_machine.travel(datetime(2026, 6, 15, 12, tzinfo=UTC), tick=False)
def test_the_invoice_list_charts_invoiced_totals_per_month(console, buyer, tax_rate):
    customer = buyer()
    make_invoice(customer, net=10000, finalized_at=datetime(2026, 1, 10, tzinfo=UTC))  # 120.00 with VAT
    make_invoice(customer, net=5000, finalized_at=datetime(2026, 1, 31, 23, 30, tzinfo=UTC))  # 1 Feb in Paris
    make_invoice(customer, net=20000, finalized_at=datetime(2026, 3, 5, tzinfo=UTC), status=Invoice.Status.PAID)
    make_invoice(customer, net=99900, finalized_at=datetime(2026, 3, 6, tzinfo=UTC), status=Invoice.Status.VOID)
    make_invoice(customer, net=77700, status=Invoice.Status.DRAFT)
    make_invoice(customer, net=55500, finalized_at=datetime(2025, 5, 1, tzinfo=UTC))  # older than 12 months

    response = console.get(reverse("admin:invoices_invoice_changelist"))

    series = response.context_data["invoice_chart"]
    assert [chart.currency for chart in series] == ["EUR"]
    totals = {bar.key: bar.amount for bar in series[0].bars}
    assert list(totals) == [f"2025-{month:02d}" for month in range(7, 13)] + [
        f"2026-{month:02d}" for month in range(1, 7)
    ]
    assert totals["2026-01"] == 12000 and totals["2026-02"] == 6000 and totals["2026-03"] == 24000
    assert sum(totals.values()) == 42000
    page = response.content.decode()
    assert 'data-month="2026-03" data-amount="24000"' in page
    assert "Mar 26: €240.00" in page


@time_machine.travel(datetime(2026, 6, 15, 12, tzinfo=UTC), tick=False)
def test_the_chart_follows_the_list_filters(console, buyer, tax_rate):
    customer = buyer()
    make_invoice(customer, net=10000, finalized_at=datetime(2026, 4, 10, tzinfo=UTC))
    make_invoice(customer, net=30000, finalized_at=datetime(2026, 4, 11, tzinfo=UTC), status=Invoice.Status.PAID)

    response = console.get(reverse("admin:invoices_invoice_changelist"), {"status__exact": "paid"})

    bars = {bar.key: bar.amount for bar in response.context_data["invoice_chart"][0].bars}
    assert bars["2026-04"] == 36000


def test_invoices_export_amounts_in_major_units(console, open_invoice):
    response = console.post(
        "/admin/invoices/invoice/export/",
        {
            "format": "0",
            "resource": "0",
            "invoiceresource_number": "on",
            "invoiceresource_customer": "on",
            "invoiceresource_total": "on",
        },
    )

    assert response.status_code == 200
    assert f"{open_invoice.number},Facturée SARL,1234.56" in response.content.decode()


def test_marking_an_open_invoice_uncollectible(console, open_invoice, staff_with_totp):
    # a write-off asks for a fresh two-factor code (issue 14): the next one after the sign-in's
    _user, device = staff_with_totp
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        response = console.post(
            reverse("admin:invoices_invoice_changelist"),
            {
                "action": "mark_uncollectible",
                "_selected_action": [open_invoice.pk],
                "apply": "1",
                "otp_token": current_totp(device),
            },
            follow=True,
        )

    open_invoice.refresh_from_db()
    assert open_invoice.status == Invoice.Status.UNCOLLECTIBLE
    assert "1 invoice marked uncollectible." in response.content.decode()


def test_voiding_a_paid_invoice_is_refused_with_the_reason(console, buyer, tax_rate):
    paid = make_invoice(buyer(), status=Invoice.Status.PAID)

    response = console.post(
        reverse("admin:invoices_invoice_changelist"),
        {"action": "void", "_selected_action": [paid.pk], "apply": "1", "reason": "Oops"},
        follow=True,
    )

    page = response.content.decode()
    assert f"{paid.number}: Invoice {paid.number} cannot go from &#x27;paid&#x27; to &#x27;void&#x27;." in page
    paid.refresh_from_db()
    assert paid.status == Invoice.Status.PAID


def test_read_only_staff_see_invoices_but_cannot_act_on_them(client, staff_factory, open_invoice):
    from django.contrib.auth.models import Group
    from django_otp.plugins.otp_totp.models import TOTPDevice

    viewer = staff_factory(username="regard")
    viewer.groups.add(Group.objects.get(name="Read-only"))
    device = TOTPDevice.objects.create(user=viewer, name="phone", confirmed=True)
    client.post("/admin/login/", {"username": "regard", "password": PASSWORD})
    client.post("/admin/otp/verify/", {"otp_token": current_totp(device)})

    listing = client.get(reverse("admin:invoices_invoice_changelist"))
    page = client.get(reverse("admin:invoices_invoice_change", args=[open_invoice.pk])).content.decode()
    credit = client.get(reverse("admin:invoices_invoice_credit_note", args=[open_invoice.pk]))

    assert listing.status_code == 200
    assert 'value="finalize"' not in listing.content.decode() and 'value="void"' not in listing.content.decode()
    assert "/issue-credit-note/" not in page and "/void/" not in page and "/record-payment/" not in page
    assert credit.status_code == 403
    assert client.get(reverse("admin:invoices_invoice_void_invoice", args=[open_invoice.pk])).status_code == 403
    assert client.get(reverse("admin:invoices_invoice_add")).status_code == 403


@pytest.mark.parametrize(
    ("language", "typed"),
    [("fr", "1\u202f234,56"), ("fr", "1 234,56"), ("fr", "1234,56"), ("en", "1,234.56"), ("en", "1234.56")],
)
def test_the_credit_note_form_reads_an_amount_as_the_console_shows_it(console, open_invoice, language, typed):
    # given the page's own "at most 1 234,56 €", typed back in the operator's language
    response = console.post(
        reverse("admin:invoices_invoice_credit_note", args=[open_invoice.pk]),
        {"amount": typed, "destination": "auto", "reason": "other"},
        HTTP_ACCEPT_LANGUAGE=language,
    )

    # then the credit note takes exactly that amount (Money.from_major, as every console form)
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert CreditNote.objects.get().total == 123456


def test_the_credit_note_form_in_french_refuses_an_english_thousands_comma(console, open_invoice):
    # "1,234" in French is 1.234 €: more decimals than EUR has, refused rather than read as 1 234 €
    response = console.post(
        reverse("admin:invoices_invoice_credit_note", args=[open_invoice.pk]),
        {"amount": "1,234", "destination": "auto", "reason": "other"},
        HTTP_ACCEPT_LANGUAGE="fr",
    )

    assert response.status_code == 200
    assert not CreditNote.objects.exists()


def test_a_refused_void_reads_in_french_with_the_paid_amount_as_money(console, buyer, tax_rate):
    from invoices.services.lifecycle import invoice_record_payment

    invoice = make_invoice(buyer())
    invoice_record_payment(invoice=invoice, amount=1250, at=datetime(2026, 1, 16, tzinfo=UTC))

    response = console.post(
        reverse("admin:invoices_invoice_changelist"),
        {"action": "void", "_selected_action": [invoice.pk], "apply": "1", "reason": "Doublon"},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="fr",
    )

    page = response.content.decode()
    assert re.search(
        rf"La facture {invoice.number} a reçu 12,50\s€ de paiements et ne peut pas être annulée\s;"
        r" émettez plutôt un avoir avec remboursement\.",
        page,
    ), page
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.OPEN
