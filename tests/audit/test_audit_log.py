"""Every staff action in the console lands in the append-only audit log."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.urls import reverse

from config.audit.models import AuditEntry, AuditLogIsAppendOnly
from config.audit.services import audit_record
from customers.models import Customer

pytestmark = pytest.mark.django_db


def change_form_data(client, url: str) -> dict:
    """What the browser would post back unchanged: the form's values and its inlines' management forms."""
    context = client.get(url).context
    form = context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if value is None or value is False:
            continue
        data[name] = "on" if value is True else (field.prepare_value(value) if name == "metadata" else value)
    for inline in context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(name): management[name].value() for name in management.fields})
    return data


def test_a_customer_change_is_recorded_with_before_after_who_ip_and_request_id(console, customer):
    url = reverse("admin:customers_customer_change", args=[customer.pk])
    data = change_form_data(console, url) | {"legal_name": "Nouvelle Raison Sociale"}
    old_name = customer.legal_name

    response = console.post(url, data, HTTP_X_REQUEST_ID="req-audit-0001", REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    entry = AuditEntry.objects.get(action="change", target_type="customers.customer")
    assert entry.actor == console.user and entry.actor_repr == console.user.username
    assert entry.target_id == str(customer.pk)
    assert entry.changes["legal_name"] == [old_name, "Nouvelle Raison Sociale"]
    assert entry.ip_address == "203.0.113.9"
    assert entry.request_id == "req-audit-0001"
    assert response["X-Request-ID"] == "req-audit-0001"


def test_encrypted_values_are_masked_in_the_log(staff):
    customer = Customer.objects.create(legal_name="Acme", email="a@example.com", country="FR", tax_id="FR40303265045")
    before = Customer.objects.get(pk=customer.pk)
    customer.tax_id = "FR23334175221"
    customer.save()

    entry = audit_record(actor=staff, action="change", obj=customer, before=before, after=customer)

    old, new = entry.changes["tax_id"]
    assert old != new
    assert "FR40303265045" not in str(entry.before) and "FR23334175221" not in str(entry.after)


def test_a_refused_form_is_not_recorded_as_a_change(console, customer):
    url = reverse("admin:customers_customer_change", args=[customer.pk])

    response = console.post(url, {"legal_name": ""})

    assert response.status_code == 200
    assert not AuditEntry.objects.filter(action="change").exists()


def test_add_and_delete_are_recorded(console):
    from tests.factories import ProductFactory

    product = ProductFactory()
    delete_url = reverse("admin:billing_product_delete", args=[product.pk])

    response = console.post(delete_url, {"post": "yes"})

    if response.status_code == 403:
        pytest.skip("products cannot be deleted from the console")
    entry = AuditEntry.objects.get(action="delete")
    assert entry.before["name"] == product.name
    assert entry.after is None


def test_an_admin_action_on_selected_rows_is_recorded_per_row(console, customer_factory):
    customers = customer_factory.create_batch(2)
    url = reverse("admin:customers_customer_changelist")

    console.post(url, {"action": "export_admin_action", "_selected_action": [c.pk for c in customers]})

    entries = AuditEntry.objects.filter(action="action:export_admin_action")
    assert sorted(entries.values_list("target_id", flat=True)) == sorted(str(c.pk) for c in customers)


def test_staff_cannot_change_or_delete_entries_in_the_console(console, staff):
    entry = audit_record(actor=staff, action="test", target_type="x", target_id=1)

    assert console.get(reverse("admin:audit_auditentry_change", args=[entry.pk])).status_code == 200
    assert console.post(reverse("admin:audit_auditentry_change", args=[entry.pk]), {"action": "x"}).status_code == 403
    assert console.post(reverse("admin:audit_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_the_model_refuses_updates_and_deletes(staff):
    entry = audit_record(actor=staff, action="test")

    with pytest.raises(AuditLogIsAppendOnly):
        entry.save()
    with pytest.raises(AuditLogIsAppendOnly):
        entry.delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).update(action="forged")
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEntry.objects.all().delete()


def test_postgresql_refuses_raw_update_and_delete(postgres_only, staff):
    entry = audit_record(actor=staff, action="test")

    for statement in (
        "UPDATE audit_auditentry SET action = 'forged' WHERE id = %s",
        "DELETE FROM audit_auditentry WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [entry.pk])
    assert AuditEntry.objects.get(pk=entry.pk).action == "test"


def test_finance_staff_export_the_filtered_log_as_csv(console, staff):
    audit_record(actor=staff, action="refund", target_type="billing.payment", target_id=7, target_repr="=HYPERLINK(1)")
    audit_record(actor=staff, action="change", target_type="customers.customer", target_id=3)

    response = console.get(reverse("admin:audit_auditentry_export") + "?action__exact=refund")

    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["at", "actor_repr", "channel", "action"]
    assert [row[3] for row in rows[1:]] == ["refund"]
    assert rows[1][6] == "'=HYPERLINK(1)", "a cell must not start a spreadsheet formula"


def test_finance_role_may_view_but_not_add(db):
    from django.contrib.auth.models import Group

    finance = set(Group.objects.get(name="Finance").permissions.values_list("codename", flat=True))
    support = set(Group.objects.get(name="Support").permissions.values_list("codename", flat=True))

    assert "view_auditentry" in finance and "add_auditentry" not in finance
    assert "view_auditentry" not in support


def test_a_service_view_without_object_in_the_url_is_recorded_with_what_was_posted(console):
    url = reverse("admin:billing_payment_record_manual")

    console.post(url, {"invoice_number": "F-NOPE", "amount": "10.00", "password": "hunter2hunter2"})

    entry = AuditEntry.objects.get(action="record_manual")
    assert entry.target_type == "billing.payment"
    assert entry.extra["posted"]["invoice_number"] == "F-NOPE"
    assert entry.extra["posted"]["password"] == "[redacted]"


def test_a_service_action_records_the_invoice_before_and_after(console, customer, tax_rate):
    from tests.invoices.helpers import create_draft

    draft = create_draft(customer, [1000])
    url = reverse("admin:invoices_invoice_finalize_draft", args=[draft.pk])

    console.post(url, {"confirm": "1"})

    entry = AuditEntry.objects.get(action="finalize_draft")
    draft.refresh_from_db()
    assert entry.target_id == str(draft.pk) and entry.target_type == "invoices.invoice"
    assert entry.changes["status"] == ["draft", "open"]
    assert entry.changes["number"] == [None, draft.number]
    assert entry.actor == console.user
