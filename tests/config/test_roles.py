from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

pytestmark = pytest.mark.django_db


def group_permissions(name: str) -> set[str]:
    group = Group.objects.get(name=name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_the_three_role_groups_exist():
    assert set(Group.objects.values_list("name", flat=True)) >= {"Finance", "Support", "Read-only"}


def test_finance_runs_billing_but_cannot_delete_legal_documents():
    permissions = group_permissions("Finance")

    assert {
        "billing.add_subscription",
        "billing.change_price",
        "invoices.change_invoice",
        "customers.add_customer",
        "invoices.add_creditnote",
    } <= permissions
    assert "invoices.delete_invoice" not in permissions
    assert "invoices.delete_creditnote" not in permissions


def test_support_edits_customers_and_only_views_billing():
    permissions = group_permissions("Support")

    assert {"customers.change_customer", "billing.view_subscription", "invoices.view_invoice"} <= permissions
    assert "billing.change_subscription" not in permissions
    assert "invoices.change_invoice" not in permissions


def test_read_only_only_views():
    permissions = group_permissions("Read-only")

    assert permissions
    assert all(codename.split(".")[1].startswith("view_") for codename in permissions)


def test_staff_in_read_only_cannot_change_a_customer_in_the_console(client, staff_factory, customer):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.conftest import current_totp

    user = staff_factory(username="auditor")
    user.groups.add(Group.objects.get(name="Read-only"))
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.post("/admin/login/", {"username": "auditor", "password": "correct horse battery staple"})
    client.post("/admin/otp/verify/", {"otp_token": current_totp(device)})

    page = client.get(f"/admin/customers/customer/{customer.pk}/change/")
    post = client.post(f"/admin/customers/customer/{customer.pk}/change/", {"legal_name": "Hacked"})

    assert page.status_code == 200
    assert post.status_code == 403
    customer.refresh_from_db()
    assert customer.legal_name != "Hacked"
