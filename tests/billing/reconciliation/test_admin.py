"""The reconciliation console: import with preview then confirm, errors, unmatched lines,
manual match and ignore, role permissions."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from billing.models import BankStatement, BankStatementLine, Payment
from invoices.models import Invoice
from tests.billing.reconciliation.conftest import data_file

pytestmark = pytest.mark.django_db
Status = BankStatementLine.Status
CSV_FORMAT, CAMT_FORMAT = "0", "1"


def upload(console, name: str, content: bytes, format_index: str):
    return console.post(
        reverse("admin:billing_bankstatement_import"),
        {"import_file": SimpleUploadedFile(name, content), "format": format_index, "resource": "0"},
    )


def confirm(console, preview):
    form = preview.context["confirm_form"]
    data = {name: form[name].value() for name in form.fields}
    return console.post(reverse("admin:billing_bankstatement_process_import"), data)


def test_import_previews_without_writing_then_confirms(console, open_invoice):
    form_page = console.get(reverse("admin:billing_bankstatement_import"))
    assert "CAMT.053" in form_page.content.decode() and "remittance_info" in form_page.content.decode()
    invoice = open_invoice(4201)
    open_invoice(4202)
    open_invoice(4203)

    preview = upload(console, "releve.xml", data_file("camt053_001_02.xml"), CAMT_FORMAT)

    assert preview.status_code == 200
    assert preview.context.get("confirm_form") is not None, preview.context["form"].errors
    page = preview.content.decode()
    # what matching would do, in words (the preview shows labels, not stored values)
    assert "RF21TARIF00004201" in page and "partially matched (invoice still open)" in page
    assert not BankStatement.objects.exists() and not Payment.objects.exists()  # a dry run

    done = confirm(console, preview)

    assert done.status_code == 302
    statement = BankStatement.objects.get()
    assert statement.imported_by == console.user
    # the confirmation lands on the imported lines, where unmatched ones offer their invoices
    assert done.url == f"{reverse('admin:billing_bankstatementline_changelist')}?statement__id__exact={statement.pk}"
    assert BankStatementLine.objects.count() == 4
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    statements = console.get(reverse("admin:billing_bankstatement_changelist")).content.decode()
    assert "STMT-2026-03-05" in statements and "3 / 1 / 0" in statements and "<svg" in statements


def test_the_same_file_again_previews_as_skipped_and_changes_nothing(console, open_invoice):
    open_invoice(4201)
    confirm(console, upload(console, "releve.csv", data_file("releve_fr.csv"), CSV_FORMAT))
    payments = list(Payment.objects.values_list("pk", flat=True))

    again = upload(console, "releve.csv", data_file("releve_fr.csv"), CSV_FORMAT)
    assert again.context["result"].totals["skip"] == 3 and again.context["result"].totals["new"] == 0
    confirm(console, again)

    assert list(Payment.objects.values_list("pk", flat=True)) == payments
    assert BankStatementLine.objects.count() == 3


@pytest.mark.parametrize(
    ("content", "format_index", "message"),
    [
        (b"date;montant;devise\n2026-03-05;12,00;EUR\n", CSV_FORMAT, "Missing column(s): remittance_info"),
        (b"not xml", CAMT_FORMAT, "not a well-formed XML file"),
        (b"date;montant;devise;libelle\n2026-03-05;12,00;EUX;RF\n", CSV_FORMAT, "not a known currency"),
    ],
)
def test_a_malformed_file_shows_the_reason_on_the_form(console, content, format_index, message):
    page = upload(console, "bad.txt", content, format_index)

    assert page.status_code == 200 and page.context.get("confirm_form") is None
    assert message in " ".join(page.context["form"].errors["import_file"])
    assert not BankStatement.objects.exists()


@pytest.fixture
def unmatched_line(console, open_invoice):
    invoice = open_invoice(4201)
    body = b"booking_date;amount;currency;remittance_info;entry_reference\n2026-03-05;34,80;EUR;virement mars;L1\n"
    confirm(console, upload(console, "s.csv", body, CSV_FORMAT))
    return BankStatementLine.objects.get(), invoice


def test_unmatched_lines_are_listed_and_matched_by_hand(console, unmatched_line):
    line, invoice = unmatched_line

    listing = console.get(reverse("admin:billing_bankstatementline_unmatched"), follow=True)
    assert "virement mars" in listing.content.decode() and "Match…" in listing.content.decode()
    form_page = console.get(reverse("admin:billing_bankstatementline_match", args=[line.pk]))
    assert invoice.number in form_page.content.decode()  # suggested: same amount

    neither = console.post(reverse("admin:billing_bankstatementline_match", args=[line.pk]), {})
    assert neither.status_code == 200 and "either" in neither.content.decode()
    unknown = console.post(reverse("admin:billing_bankstatementline_match", args=[line.pk]), {"invoice_number": "NOPE"})
    assert "No invoice has this number" in unknown.content.decode()

    matched = console.post(
        reverse("admin:billing_bankstatementline_match", args=[line.pk]), {"invoice_number": invoice.number}
    )

    assert matched.status_code == 302
    line.refresh_from_db()
    invoice.refresh_from_db()
    assert (line.status, line.matched_by, invoice.status) == (Status.MANUALLY_MATCHED, console.user, "paid")
    twice = console.post(
        reverse("admin:billing_bankstatementline_match", args=[line.pk]), {"invoice_number": invoice.number}
    )
    assert twice.status_code == 200 and "already" in twice.content.decode()
    assert Payment.objects.count() == 1


def test_ignore_needs_a_reason(console, unmatched_line):
    line, _ = unmatched_line
    url = reverse("admin:billing_bankstatementline_ignore", args=[line.pk])

    assert console.post(url, {"reason": ""}).status_code == 200

    assert console.post(url, {"reason": "Intérêts créditeurs"}).status_code == 302
    line.refresh_from_db()
    assert (line.status, line.status_reason) == (Status.IGNORED, "Intérêts créditeurs")


def test_read_only_staff_see_but_cannot_import_or_match(console, unmatched_line, staff_factory, client):
    line, _ = unmatched_line
    viewer = staff_factory(username="viewer")
    viewer.groups.add(Group.objects.get(name="Read-only"))
    client.force_login(viewer)
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.conftest import current_totp

    device = TOTPDevice.objects.create(user=viewer, name="phone", confirmed=True)
    client.post("/admin/otp/verify/", {"otp_token": current_totp(device)})

    statements = client.get(reverse("admin:billing_bankstatement_changelist"))
    assert statements.status_code == 200
    assert reverse("admin:billing_bankstatement_import") not in statements.content.decode()
    assert client.get(reverse("admin:billing_bankstatementline_change", args=[line.pk])).status_code == 200
    assert client.get(reverse("admin:billing_bankstatement_import")).status_code == 403
    assert client.post(reverse("admin:billing_bankstatementline_match", args=[line.pk]), {}).status_code == 403
    assert (
        client.post(reverse("admin:billing_bankstatementline_ignore", args=[line.pk]), {"reason": "x"}).status_code
        == 403
    )
    line.refresh_from_db()
    assert line.status == Status.UNMATCHED


def visible_text(response) -> str:
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


@pytest.mark.parametrize(
    ("language", "amounts"),
    [("fr", ["34,80\xa0€", "1\u202f234,56\xa0€"]), ("en", ["€34.80", "€1,234.56"])],
)
def test_the_preview_shows_money_and_short_references(console, language, amounts):
    preview = console.post(
        reverse("admin:billing_bankstatement_import"),
        {"import_file": SimpleUploadedFile("r.csv", data_file("releve_fr.csv")), "format": CSV_FORMAT, "resource": "0"},
        HTTP_ACCEPT_LANGUAGE=language,
    )

    text = visible_text(preview)
    assert preview.status_code == 200 and 'id="bank-import-preview"' in preview.content.decode()
    for amount in amounts:
        assert amount in text
    assert "3480" not in text and "123456" not in text  # never cents
    # no 64-character fingerprint column: the bank's short reference, or a cut hash with a tooltip
    assert "BQ-0001" in text and not re.search(r"\b[0-9a-f]{64}\b", text)


def test_a_preview_without_bank_references_cuts_the_fingerprint_and_keeps_it_in_a_tooltip(console):
    body = b"booking_date;amount;currency;remittance_info\n2026-03-05;34,80;EUR;virement mars\n"

    preview = console.post(
        reverse("admin:billing_bankstatement_import"),
        {"import_file": SimpleUploadedFile("s.csv", body), "format": CSV_FORMAT, "resource": "0"},
    )

    page = preview.content.decode()
    fingerprint = re.search(r'title="([0-9a-f]{64})"', page)
    assert fingerprint is not None and fingerprint.group(1)[:14] + "…" in visible_text(preview)
    assert fingerprint.group(1) not in visible_text(preview)


@pytest.mark.parametrize(("language", "due"), [("fr", "34,80\xa0€"), ("en", "€34.80")])
def test_unmatched_lines_suggest_invoices_that_fill_the_match_form(console, unmatched_line, language, due):
    line, invoice = unmatched_line

    listing = console.get(
        f"{reverse('admin:billing_bankstatementline_changelist')}?statement__id__exact={line.statement_id}",
        HTTP_ACCEPT_LANGUAGE=language,
    )
    match_url = f"{reverse('admin:billing_bankstatementline_match', args=[line.pk])}?invoice_number={invoice.number}"
    form_page = console.get(match_url, HTTP_ACCEPT_LANGUAGE=language)

    text = visible_text(listing)
    assert match_url in listing.content.decode() and invoice.number in text
    assert due in text and "3480" not in text
    assert form_page.context["form"]["invoice_number"].value() == invoice.number
    assert due in visible_text(form_page) and "3480" not in visible_text(form_page)


@pytest.mark.parametrize(("language", "shown"), [("fr", "34,80\xa0€"), ("en", "€34.80")])
def test_statement_and_line_pages_read_as_money(console, unmatched_line, language, shown):
    line, _ = unmatched_line

    for url in (
        reverse("admin:billing_bankstatement_changelist"),
        reverse("admin:billing_bankstatement_change", args=[line.statement_id]),
        reverse("admin:billing_bankstatementline_change", args=[line.pk]),
    ):
        response = console.get(url, HTTP_ACCEPT_LANGUAGE=language)
        text = visible_text(response)
        assert response.status_code == 200 and shown in text and "3480" not in text, url
        assert line.fingerprint not in text  # cut short; whole in the tooltip
