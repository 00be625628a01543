"""The write-off VAT relief setting (Accounting › Settings): finance changes it through
`ledger_settings_update` (audited), other staff cannot, bad input is a form error, and the
next write-off follows the new value."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from config.audit.models import AuditEntry
from invoices.ledger.errors import LedgerSettingsRefused
from invoices.ledger.models import LedgerSettings
from invoices.ledger.services import ledger_settings_update
from invoices.services.lifecycle import invoice_mark_uncollectible
from tests.console_pages import role_user, signed_in_client
from tests.invoices.helpers import ISSUED_AT, issue
from tests.invoices.ledger.helpers import lines_of

pytestmark = pytest.mark.django_db

LATER = ISSUED_AT + timedelta(days=2)


def settings_url(brand) -> str:
    return f"{reverse('accounting_settings')}?brand={brand.pk}"


def relief_of(brand) -> bool | None:
    return LedgerSettings.objects.get(brand=brand).write_off_vat_relief


def test_the_page_shows_the_charts_default_and_writes_nothing_on_get(console, brand):
    html = console.get(settings_url(brand)).content.decode()

    assert '<label for="id_write_off_vat_relief">VAT on written-off invoices</label>' in html
    assert "The chart&#x27;s default (recovered)" in html  # the French PCG recovers it
    assert 'aria-describedby="id_write_off_vat_relief_help"' in html
    assert not LedgerSettings.objects.filter(brand=brand).exists()


def test_finance_turns_the_relief_off_and_the_change_is_audited(console, brand):
    response = console.post(settings_url(brand), {"brand": brand.pk, "write_off_vat_relief": "off"})

    assert response.status_code == 302
    assert relief_of(brand) is False
    entry = AuditEntry.objects.get(action="ledger.settings_update")
    assert entry.actor == console.user
    assert entry.changes["write_off_vat_relief"] == [None, False]
    assert "Not recovered" in console.get(settings_url(brand)).content.decode()

    # and back to the chart's default
    console.post(settings_url(brand), {"brand": brand.pk, "write_off_vat_relief": "default"})
    assert relief_of(brand) is None
    assert AuditEntry.objects.filter(action="ledger.settings_update").count() == 2


def test_an_unknown_choice_is_a_form_error_tied_to_the_field_and_changes_nothing(console, brand):
    ledger_settings_update(brand=brand, write_off_vat_relief=True, acting_user=console.user)

    response = console.post(settings_url(brand), {"brand": brand.pk, "write_off_vat_relief": "maybe"})

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="id_write_off_vat_relief_error" class="errorlist" role="alert"' in html
    assert 'aria-describedby="id_write_off_vat_relief_error id_write_off_vat_relief_help"' in html
    assert "Select a valid choice." in html
    assert relief_of(brand) is True


def test_another_brands_id_is_not_found(console, brand):
    response = console.post(
        f"{reverse('accounting_settings')}?brand=999999", {"brand": 999999, "write_off_vat_relief": "off"}
    )
    assert response.status_code == 404
    assert not LedgerSettings.objects.filter(write_off_vat_relief=False).exists()


def test_read_only_staff_see_the_setting_but_cannot_change_it(brand):
    auditor = role_user("Read-only", username="auditor")
    client = signed_in_client(auditor)

    page = client.get(settings_url(brand))
    assert page.status_code == 200
    assert "Only finance staff can change these settings." in page.content.decode()
    assert 'name="write_off_vat_relief"' not in page.content.decode()
    assert client.post(settings_url(brand), {"brand": brand.pk, "write_off_vat_relief": "off"}).status_code == 403

    # the service refuses too, whatever the entry point
    with pytest.raises(LedgerSettingsRefused) as refused:
        ledger_settings_update(brand=brand, write_off_vat_relief=False, acting_user=auditor)
    assert refused.value.http_status == 403
    with pytest.raises(LedgerSettingsRefused):
        ledger_settings_update(brand=brand, write_off_vat_relief=False, acting_user=None)
    assert not LedgerSettings.objects.filter(brand=brand, write_off_vat_relief=False).exists()
    assert not AuditEntry.objects.filter(action="ledger.settings_update").exists()


def test_finance_role_may_change_it(brand):
    finance = role_user("Finance", username="finance-lead")

    ledger_settings_update(brand=brand, write_off_vat_relief=False, acting_user=finance)

    assert relief_of(brand) is False


def test_the_next_write_off_follows_the_setting_changed_on_the_screen(console, brand, customer_factory, fr_vat):
    customer = customer_factory(brand=brand)
    before = issue(customer, [10000], collection_method="send_invoice")
    invoice_mark_uncollectible(invoice=before, at=LATER, automatic=True)
    # the chart's default (French PCG): the VAT comes back, the net goes to bad debts
    assert lines_of("invoice", before.pk, "invoice_uncollectible") == [
        ("411", 0, 12000),
        ("445712", 2000, 0),
        ("654", 10000, 0),
    ]

    # when finance turns the relief off on the screen
    console.post(settings_url(brand), {"brand": brand.pk, "write_off_vat_relief": "off"})

    # then the next write-off puts the whole amount on bad debts, and the earlier entry is unchanged
    after = issue(customer, [10000], collection_method="send_invoice")
    invoice_mark_uncollectible(invoice=after, at=LATER, automatic=True)
    assert lines_of("invoice", after.pk, "invoice_uncollectible") == [("411", 0, 12000), ("654", 12000, 0)]
    assert ("445712", 2000, 0) in lines_of("invoice", before.pk, "invoice_uncollectible")
