"""The customer hub: the console's customer page (figures, tabs) and its actions, by role and mode."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing.models import InvoiceItem, Price, UsageEvent
from billing.services.dunning import invoices_collect
from billing.services.payments import payment_method_attach
from billing.services.subscriptions import ItemSpec, subscription_create
from config.console import format_money
from config.events.models import DomainEvent
from customers.models import Customer, CustomerUser, NotificationLog
from invoices.models import BalanceTransaction, Invoice
from invoices.selectors import customer_balance
from invoices.services.balance import balance_adjust
from tests.conftest import current_totp

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
VISA = {"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2031}}


@pytest.fixture
def now():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def sign_in(staff_factory, now):
    """sign_in(role) -> a console client of a staff member in that role group (password + TOTP)."""

    def make(role: str) -> Client:
        user = staff_factory(username=f"{role.lower().replace('-', '')}-user")
        user.groups.add(Group.objects.get(name=role))
        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        client = Client()
        client.post("/admin/login/", {"username": user.username, "password": PASSWORD})
        assert client.post("/admin/otp/verify/", {"otp_token": current_totp(device)}).status_code == 302
        client.user, client.device = user, device  # type: ignore[attr-defined]
        return client

    return make


def next_code(client: Client, now, seconds: int = 31) -> str:
    """Each code works once (the sign-in used the current one): the next one."""
    now.shift(timedelta(seconds=seconds))
    return current_totp(client.device)  # type: ignore[attr-defined]


@pytest.fixture
def account(brand_factory, tax_rate_factory, customer_factory, product_factory, now):
    """A live customer with a card, a monthly subscription and its first invoice paid."""
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    brand = brand_factory(slug="atelier", is_default=True)
    monthly = {"kind": "interval", "unit": "month", "count": 1}
    price = Price.objects.create(
        product=product_factory(name="Starter"), currency="EUR", unit_amount=Decimal(2900), cycle=monthly
    )
    customer = customer_factory(
        legal_name="Boulangerie Hub", brand=brand, email="compta@hub.example", preferred_language="fr"
    )
    payment_method_attach(customer=customer, source=VISA)
    subscription = subscription_create(customer=customer, items=[ItemSpec(price, 3)], at=T0)
    invoice = subscription.invoices.get()
    invoices_collect(invoice_ids=[invoice.pk])
    invoice.refresh_from_db()
    return {"customer": customer, "subscription": subscription, "invoice": invoice, "price": price}


def hub_url(customer: Customer) -> str:
    return reverse("admin:customers_customer_change", args=[customer.pk])


def action_url(customer: Customer, action: str) -> str:
    return reverse(f"admin:customers_customer_{action}", args=[customer.pk])


def money(response, amount: int, currency: str = "EUR") -> str:
    """The amount as the page's language writes it."""
    with translation.override(response.headers.get("Content-Language", "en")):
        return format_money(amount, currency)


# -- the hub page ----------------------------------------------------------------------------------------------


def test_the_hub_shows_the_figures_finance_asks_first_and_every_tab(sign_in, account, staff_factory):
    customer, invoice = account["customer"], account["invoice"]
    balance_adjust(customer=customer, currency="EUR", amount=1500, description="Goodwill", at=T0)
    Customer.objects.filter(pk=customer.pk).update(notes="Prefers calls on Tuesdays")
    NotificationLog.objects.create(
        customer=customer, kind="invoice_finalized", dedupe_key="k1", status="sent", subject="Votre facture"
    )
    portal_user = staff_factory(username="anna", email="anna@hub.example", is_staff=False)
    CustomerUser.objects.create(user=portal_user, customer=customer)
    console = sign_in("Finance")

    response = console.get(hub_url(customer))

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="customer-hub"' in page
    assert money(response, 1500) in page  # balance
    assert money(response, 8700) in page  # MRR: 3 x 29.00
    assert money(response, invoice.amount_paid) in page  # lifetime value: what was paid
    assert "•••• 4242" in page  # default payment method
    assert invoice.number in page and "Starter × 3" in page
    assert "Votre facture" in page and "invoice.finalized" in page  # timeline: emails and events
    assert "anna@hub.example" in page and "Prefers calls on Tuesdays" in page
    assert "Goodwill" in page  # balance history
    for tab in ("overview", "subscriptions", "invoices", "payments", "upcoming", "usage", "timeline", "portal"):
        assert f'id="{tab}-group"' in page, tab
    # the upcoming invoice: the preview the portal and the API use (next month, 3 x 29.00 + 20 % VAT, less credit)
    assert money(response, 10440 - 1500) in page
    # the actions finance may take
    for action in ("charge", "balance", "credit_note", "invite"):
        assert action_url(customer, action) in page, action
    assert reverse("admin:billing_subscription_add") + f"?customer={customer.pk}" in page
    assert reverse("portal:impersonate", args=[customer.pk]) in page


def test_the_hubs_links_to_full_lists_show_this_customers_rows_only(sign_in, account, customer_factory, now):
    customer = account["customer"]
    other = customer_factory(legal_name="Other SAS", brand=customer.brand)
    other_subscription = subscription_create(customer=other, items=[ItemSpec(account["price"], 1)], at=T0)
    console = sign_in("Finance")
    page = console.get(hub_url(customer)).content.decode()

    for changelist in ("admin:billing_subscription_changelist", "admin:invoices_invoice_changelist"):
        link = f"{reverse(changelist)}?customer__id__exact={customer.pk}"
        assert link in page
        listed = console.get(link)
        assert listed.status_code == 200, changelist
        assert "Boulangerie Hub" in listed.content.decode()
        assert "Other SAS" not in listed.content.decode()
    assert (
        other_subscription.invoices.get().number
        not in console.get(
            f"{reverse('admin:invoices_invoice_changelist')}?customer__id__exact={customer.pk}"
        ).content.decode()
    )


def test_the_hub_shows_usage_this_period(sign_in, account, meter_factory):
    customer = account["customer"]
    meter = meter_factory(name="API calls")
    for n in range(3):
        UsageEvent.objects.create(customer=customer, meter=meter, external_id=f"e{n}", value=5, timestamp=T0)
    console = sign_in("Finance")

    page = console.get(hub_url(customer)).content.decode()

    usage = page[page.index('id="usage-group"') : page.index('id="timeline-group"')]
    assert "API calls" in usage
    assert re.search(r">\s*15\s*<", usage)  # 3 events of 5


def test_the_hub_page_runs_a_bounded_number_of_queries_whatever_the_history(sign_in, account, now):
    customer, price = account["customer"], account["price"]
    console = sign_in("Finance")

    def hub_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert console.get(hub_url(customer)).status_code == 200
        return len(queries)

    before = hub_queries()
    for n in range(6):  # more invoices, payments, events, balance movements, emails
        subscription = subscription_create(customer=customer, items=[ItemSpec(price, 1)], at=T0)
        invoices_collect(invoice_ids=[subscription.invoices.get().pk])
        balance_adjust(customer=customer, currency="EUR", amount=100, description=f"n{n}", at=T0)
        NotificationLog.objects.create(customer=customer, kind="payment_receipt", dedupe_key=f"r{n}", status="sent")
    after = hub_queries()

    assert Invoice.objects.filter(customer=customer).count() == 7
    # each extra subscription costs its upcoming preview (capped at three) and nothing else
    assert after <= before + 2 * 30
    assert after < 200


def test_the_hub_page_does_not_grow_with_documents_of_one_subscription(sign_in, account, now):
    customer = account["customer"]
    console = sign_in("Finance")

    def hub_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert console.get(hub_url(customer)).status_code == 200
        return len(queries)

    before = hub_queries()
    for n in range(8):
        balance_adjust(customer=customer, currency="EUR", amount=100, description=f"n{n}", at=T0)
        NotificationLog.objects.create(customer=customer, kind="payment_receipt", dedupe_key=f"r{n}", status="sent")
        DomainEvent.objects.create(
            type="customer.updated",
            object_type="customer",
            object_id=str(customer.pk),
            customer=customer,
            data={},
            occurred_at=T0,
            livemode=True,
        )
    assert hub_queries() == before


def test_read_only_sees_the_hub_without_any_action(sign_in, account):
    customer = account["customer"]
    console = sign_in("Read-only")

    response = console.get(hub_url(customer))

    page = response.content.decode()
    assert response.status_code == 200 and 'id="customer-hub"' in page
    for action in ("charge", "balance", "credit_note", "invite"):
        assert action_url(customer, action) not in page, action
    assert 'id="customer-notes-form"' not in page


def test_support_may_invite_and_edit_notes_but_not_move_money(sign_in, account):
    customer = account["customer"]
    console = sign_in("Support")

    page = console.get(hub_url(customer)).content.decode()

    assert action_url(customer, "invite") in page and 'id="customer-notes-form"' in page
    assert action_url(customer, "charge") not in page and action_url(customer, "balance") not in page
    assert console.get(action_url(customer, "charge")).status_code == 403
    assert console.get(action_url(customer, "balance")).status_code == 403
    assert console.get(action_url(customer, "credit_note")).status_code == 403


def test_another_modes_customer_is_not_found_from_the_hub_or_its_actions(sign_in, customer_factory):
    test_customer = customer_factory(legal_name="Sandbox SAS", livemode=False)
    console = sign_in("Finance")

    assert console.get(hub_url(test_customer)).status_code in (302, 404)  # the admin's "not found"
    for action in ("charge", "balance", "invite", "credit_note", "notes"):
        assert console.get(action_url(test_customer, action)).status_code == 404, action
    response = console.post(
        action_url(test_customer, "charge"), {"description": "Fee", "amount": "10", "confirmed": "yes"}
    )
    assert response.status_code == 404 and not InvoiceItem.objects.exists()


# -- one-off charge --------------------------------------------------------------------------------------------


def test_a_one_off_charge_is_confirmed_then_waits_for_the_next_invoice(sign_in, account):
    customer = account["customer"]
    console = sign_in("Finance")
    url = action_url(customer, "charge")
    data = {"description": "Set-up fee", "amount": "12.50"}

    confirmation = console.post(url, data)

    page = confirmation.content.decode()
    assert confirmation.status_code == 200 and 'id="action-confirmation"' in page
    assert money(confirmation, 1250) in page and "next invoice" in page
    assert not InvoiceItem.objects.filter(customer=customer).exists()  # nothing before the confirmation

    done = console.post(url, {**data, "confirmed": "yes"})

    assert done.status_code == 302 and done["Location"].endswith("#upcoming")
    item = InvoiceItem.objects.get(customer=customer)
    assert (item.amount, item.currency, item.description, item.invoice_id) == (1250, "EUR", "Set-up fee", None)
    event = DomainEvent.objects.get(type="invoiceitem.created")
    assert event.acting_user == console.user  # type: ignore[attr-defined]
    follow = console.get(hub_url(customer)).content.decode()
    assert "Set-up fee" in follow  # pending charges, on the upcoming tab


def test_a_one_off_charge_invoiced_now_issues_an_invoice(sign_in, account):
    customer = account["customer"]
    console = sign_in("Finance")

    done = console.post(
        action_url(customer, "charge"),
        {"description": "Consulting day", "amount": "600", "invoice_now": "on", "confirmed": "yes"},
    )

    assert done.status_code == 302
    item = InvoiceItem.objects.get(customer=customer)
    assert item.invoice is not None and item.invoice.status != Invoice.Status.DRAFT
    assert item.invoice.subtotal == 60000


@pytest.mark.parametrize("amount", ["abc", "12.345", "0", "-5", "1000000000", ""])
def test_a_one_off_charge_with_a_bad_amount_is_refused(sign_in, account, amount):
    customer = account["customer"]
    console = sign_in("Finance")

    response = console.post(
        action_url(customer, "charge"), {"description": "Fee", "amount": amount, "confirmed": "yes"}
    )

    assert response.status_code == 200
    assert 'id="action-confirmation"' not in response.content.decode()
    assert not InvoiceItem.objects.filter(customer=customer).exists()


def test_a_one_off_charge_needs_a_description(sign_in, account):
    customer = account["customer"]
    console = sign_in("Finance")

    response = console.post(action_url(customer, "charge"), {"description": "  ", "amount": "10", "confirmed": "yes"})

    assert response.status_code == 200 and not InvoiceItem.objects.exists()


def test_read_only_cannot_charge(sign_in, account):
    customer = account["customer"]
    console = sign_in("Read-only")

    response = console.post(action_url(customer, "charge"), {"description": "Fee", "amount": "10", "confirmed": "yes"})

    assert response.status_code == 403 and not InvoiceItem.objects.exists()


# -- balance credit / debit ------------------------------------------------------------------------------------


def test_crediting_the_balance_needs_a_fresh_code_a_reason_and_a_confirmation(sign_in, account, now):
    customer = account["customer"]
    console = sign_in("Finance")
    url = action_url(customer, "balance")
    data = {"direction": "credit", "amount": "25", "reason": "Outage in March"}

    without_code = console.post(url, {**data, "confirmed": "yes"})
    assert without_code.status_code == 200 and not BalanceTransaction.objects.exists()
    assert "authenticator" in without_code.content.decode()

    code = next_code(console, now)
    confirmation = console.post(url, {**data, "otp_token": code})
    page = confirmation.content.decode()
    assert 'id="action-confirmation"' in page and money(confirmation, 2500) in page
    assert not BalanceTransaction.objects.exists()

    done = console.post(url, {**data, "confirmed": "yes"})  # the code typed a moment ago is still fresh

    assert done.status_code == 302
    entry = BalanceTransaction.objects.get(customer=customer)
    assert (entry.amount, entry.kind, entry.description) == (2500, "adjustment", "Outage in March")
    assert customer_balance(customer_id=customer.pk, currency="EUR") == 2500
    event = DomainEvent.objects.get(type="customer.balance_transaction.created")
    assert event.acting_user == console.user  # type: ignore[attr-defined]


def test_a_balance_adjustment_without_a_reason_is_refused(sign_in, account, now):
    customer = account["customer"]
    console = sign_in("Finance")

    response = console.post(
        action_url(customer, "balance"),
        {
            "direction": "credit",
            "amount": "25",
            "reason": "   ",
            "otp_token": next_code(console, now),
            "confirmed": "yes",
        },
    )

    assert response.status_code == 200 and not BalanceTransaction.objects.exists()


def test_a_debit_larger_than_the_credit_is_refused_in_money_not_cents(sign_in, account, now):
    customer = account["customer"]
    balance_adjust(customer=customer, currency="EUR", amount=1000, description="Goodwill", at=T0)
    console = sign_in("Finance")

    response = console.post(
        action_url(customer, "balance"),
        {
            "direction": "debit",
            "amount": "15",
            "reason": "Mistake",
            "otp_token": next_code(console, now),
            "confirmed": "yes",
        },
    )

    page = response.content.decode()
    assert response.status_code == 200 and money(response, 1000) in page
    assert customer_balance(customer_id=customer.pk, currency="EUR") == 1000


def test_a_debit_within_the_credit_takes_it_back(sign_in, account, now):
    customer = account["customer"]
    balance_adjust(customer=customer, currency="EUR", amount=1000, description="Goodwill", at=T0)
    console = sign_in("Finance")

    done = console.post(
        action_url(customer, "balance"),
        {
            "direction": "debit",
            "amount": "4",
            "reason": "Mistake",
            "otp_token": next_code(console, now),
            "confirmed": "yes",
        },
    )

    assert done.status_code == 302
    assert customer_balance(customer_id=customer.pk, currency="EUR") == 600


@pytest.mark.parametrize("amount", ["x", "0", "0.001", "1000000000"])
def test_a_balance_adjustment_with_a_bad_amount_is_refused(sign_in, account, now, amount):
    customer = account["customer"]
    console = sign_in("Finance")

    response = console.post(
        action_url(customer, "balance"),
        {
            "direction": "credit",
            "amount": amount,
            "reason": "Why",
            "otp_token": next_code(console, now),
            "confirmed": "yes",
        },
    )

    assert response.status_code == 200 and not BalanceTransaction.objects.exists()


@pytest.mark.parametrize("role", ["Support", "Read-only"])
def test_only_finance_adjusts_a_balance(sign_in, account, now, role):
    customer = account["customer"]
    console = sign_in(role)

    response = console.post(
        action_url(customer, "balance"),
        {
            "direction": "credit",
            "amount": "25",
            "reason": "Why",
            "otp_token": next_code(console, now),
            "confirmed": "yes",
        },
    )

    assert response.status_code == 403 and not BalanceTransaction.objects.exists()


# -- credit note, invitation, notes ----------------------------------------------------------------------------


def test_issuing_a_credit_note_starts_from_one_of_the_customers_invoices(sign_in, account, customer_factory, brand):
    customer, invoice = account["customer"], account["invoice"]
    console = sign_in("Finance")
    url = action_url(customer, "credit_note")

    chooser = console.get(url)
    assert chooser.status_code == 200 and invoice.number in chooser.content.decode()

    chosen = console.get(url, {"invoice": invoice.pk})
    assert chosen.status_code == 302
    assert chosen["Location"] == reverse("admin:invoices_invoice_credit_note", args=[invoice.pk])


def test_a_credit_note_cannot_start_from_another_customers_invoice(sign_in, account, customer_factory):
    other = customer_factory(legal_name="Other SAS", brand=account["customer"].brand)
    console = sign_in("Finance")

    response = console.get(action_url(other, "credit_note"), {"invoice": account["invoice"].pk})

    assert response.status_code == 200  # the choice is refused, the form is shown again
    assert account["invoice"].number not in response.content.decode()


def test_a_portal_invitation_is_sent_from_the_hub(sign_in, account, django_capture_on_commit_callbacks):
    customer = account["customer"]
    console = sign_in("Support")

    with django_capture_on_commit_callbacks(execute=True):
        done = console.post(action_url(customer, "invite"), {"email": "Anna@Hub.example"})

    assert done.status_code == 302 and done["Location"].endswith("#portal")
    assert CustomerUser.objects.get(customer=customer).user.email == "anna@hub.example"
    assert mail.outbox[-1].to == ["anna@hub.example"]


def test_a_portal_invitation_to_a_bad_or_taken_address_is_refused(sign_in, account, customer_factory):
    customer = account["customer"]
    other = customer_factory(legal_name="Other SAS")
    console = sign_in("Finance")
    console.post(action_url(other, "invite"), {"email": "shared@client.example"})

    bad = console.post(action_url(customer, "invite"), {"email": "not-an-email"})
    taken = console.post(action_url(customer, "invite"), {"email": "shared@client.example"})

    assert bad.status_code == 200 and taken.status_code == 200
    assert "another customer" in taken.content.decode()
    assert not CustomerUser.objects.filter(customer=customer).exists()


def test_read_only_cannot_invite(sign_in, account):
    console = sign_in("Read-only")

    response = console.post(action_url(account["customer"], "invite"), {"email": "anna@hub.example"})

    assert response.status_code == 403 and not CustomerUser.objects.exists()


def test_internal_notes_are_saved_from_the_hub_and_stay_out_of_the_api(sign_in, account):
    customer = account["customer"]
    console = sign_in("Support")

    done = console.post(action_url(customer, "notes"), {"notes": "Call before the renewal"})

    assert done.status_code == 302 and done["Location"].endswith("#notes")
    customer.refresh_from_db()
    assert customer.notes == "Call before the renewal"
    assert DomainEvent.objects.filter(type="customer.updated", data__changed=["notes"]).exists()
    from customers.serializers import CustomerSerializer

    assert "notes" not in CustomerSerializer(customer).data


def test_read_only_cannot_edit_notes(sign_in, account):
    customer = account["customer"]
    console = sign_in("Read-only")

    response = console.post(action_url(customer, "notes"), {"notes": "Hacked"})

    customer.refresh_from_db()
    assert response.status_code == 403 and customer.notes == ""


# -- the list --------------------------------------------------------------------------------------------------


def test_the_list_shows_balance_and_status_and_filters_by_country_name(sign_in, account, customer_factory):
    customer = account["customer"]
    balance_adjust(customer=customer, currency="EUR", amount=4200, description="Goodwill", at=T0)
    customer_factory(legal_name="Bergwerk AG", country="DE")
    console = sign_in("Finance")

    response = console.get(reverse("admin:customers_customer_changelist"))
    filtered = console.get(reverse("admin:customers_customer_changelist"), {"country__exact": "DE"})

    page = response.content.decode()
    assert money(response, 4200) in page
    with translation.override(response.headers.get("Content-Language", "en")):
        assert str(translation.gettext("active")) in page
    assert "Germany" in page or "Allemagne" in page  # the filter offers the customers' countries by name
    assert "Bergwerk AG" in filtered.content.decode() and "Boulangerie Hub" not in filtered.content.decode()


def test_the_vat_number_is_a_one_line_input(sign_in, account):
    page = sign_in("Finance").get(hub_url(account["customer"])).content.decode()

    assert '<input type="text" name="tax_id"' in page
    assert '<textarea name="tax_id"' not in page
