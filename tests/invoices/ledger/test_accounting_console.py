"""The console's Accounting section: every page renders for staff, follows the live/test
switch (another mode's entry is not found), shows differences, refuses bad input clearly."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from invoices.ledger.models import LedgerExport
from tests.invoices.ledger.accexport_helpers import post_payment, post_sale

pytestmark = pytest.mark.django_db


@pytest.fixture
def entries(brand, customer_factory):
    customer = customer_factory(brand=brand, legal_name="Boulangerie Martin")
    sale = post_sale(brand=brand, customer=customer, day=date(2026, 3, 10), number="F-2026-0001", source_id=1,
                     lines=[(10000, "S", Decimal("20"), 2000)])  # fmt: skip
    payment = post_payment(brand=brand, customer=customer, day=date(2026, 3, 12), amount=12000, source_id=2)
    test_customer = customer_factory(brand=brand, livemode=False)
    test_sale = post_sale(brand=brand, customer=test_customer, day=date(2026, 3, 11), number="T-1", source_id=3,
                          livemode=False, lines=[(500, "S", Decimal("20"), 100)])  # fmt: skip
    return {"sale": sale, "payment": payment, "test_sale": test_sale, "brand": brand}


MARCH = "start=2026-03-01&end=2026-03-31"


@pytest.mark.parametrize(
    "url_name",
    [
        "accounting_journal",
        "accounting_trial_balance",
        "accounting_vat",
        "accounting_periods",
        "accounting_reconciliation",
        "accounting_exports",
    ],
)
def test_every_page_renders_with_landmarks(console, entries, url_name):
    response = console.get(f"{reverse(url_name)}?brand={entries['brand'].pk}&{MARCH}")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<nav aria-label="Accounting"' in html and "<caption>" in html


def test_journal_lists_live_entries_and_filters(console, entries):
    url = reverse("accounting_journal")
    html = console.get(f"{url}?{MARCH}").content.decode()
    assert "F-2026-0001" in html and "T-1" not in html  # live mode only
    assert "120,00" in html or "120.00" in html  # money through the formatting helper
    assert "F-2026-0001" not in console.get(f"{url}?journal=BQ").content.decode()
    assert "F-2026-0001" in console.get(f"{url}?document=2026-0001").content.decode()
    assert "F-2026-0001" in console.get(f"{url}?account=411").content.decode()
    bad = console.get(f"{url}?start=2026-04-01&end=2026-03-01").content.decode()
    assert "The end date is before the start date." in bad


def test_entry_detail_links_back_and_hides_the_other_mode(console, entries):
    html = console.get(reverse("accounting_entry", args=[entries["sale"].pk])).content.decode()
    assert reverse("admin:invoices_invoice_change", args=[1]) in html
    assert "Boulangerie Martin" in html
    assert console.get(reverse("accounting_entry", args=[entries["test_sale"].pk])).status_code == 404


def test_trial_balance_shows_balanced(console, entries):
    html = console.get(f"{reverse('accounting_trial_balance')}?{MARCH}").content.decode()
    assert "Balanced" in html and "Not balanced" not in html


def test_reconciliation_highlights_what_documents_do_not_explain(console, entries):
    # the hand-posted entries have no invoice or payment behind them: differences
    html = console.get(f"{reverse('accounting_reconciliation')}?{MARCH}").content.decode()
    assert 'id="reconciliation-invoices" class="tarif-difference"' in html
    assert 'id="reconciliation-credit_notes">' in html  # nothing either side: reconciled
    assert "Reconciled" in html


def test_exports_page_prepares_an_export_and_refuses_bad_input(console, entries):
    url = f"{reverse('accounting_exports')}?brand={entries['brand'].pk}"
    refused = console.post(url, {"brand": entries["brand"].pk, "kind": "fec"})
    assert refused.status_code == 200
    assert "The FEC covers one fiscal year: choose it." in refused.content.decode()

    done = console.post(
        url, {"brand": entries["brand"].pk, "kind": "journal_csv", "start": "2026-03-01", "end": "2026-03-31"}
    )
    assert done.status_code == 302
    export = LedgerExport.objects.get()
    assert (export.status, export.livemode) == ("done", True)
    page = console.get(url).content.decode()
    assert 'value="100"' in page and export.filename in page
    download = console.get(reverse("accounting_export_download", args=[export.pk]))
    assert download.status_code == 200 and b"F-2026-0001" in b"".join(download.streaming_content)


def test_fec_download_streams(console, entries):
    response = console.get(f"{reverse('accounting_fec_download')}?fiscal_year=2026")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="552100554FEC20261231.txt"'
    body = b"".join(response.streaming_content)
    assert body.startswith(b"JournalCode\tJournalLib") and b"T-1" not in body
    assert console.get(f"{reverse('accounting_fec_download')}?fiscal_year=abc").status_code == 404


def test_close_without_a_fresh_code_is_refused_with_the_reason(console, entries):
    response = console.post(
        reverse("accounting_periods"),
        {"brand": entries["brand"].pk, "month": "2026-03-01", "action": "approve", "otp_token": "000000"},
    )
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()


def test_staff_without_the_permission_is_refused(client, staff_factory, entries):
    user = staff_factory(username="nobody")
    client.force_login(user)
    assert client.get(reverse("accounting_journal")).status_code in {302, 403}
