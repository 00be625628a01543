"""The console's home: a dashboard of the current mode's figures, each linked to its list,
what needs attention, a few aggregate queries; the global search; plumbing for superusers;
the sidebar by role; the language switch; API keys for Finance."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing.models import DunningCase, Payment, Subscription, WebhookDelivery, WebhookEndpoint
from billing.services.dunning import invoices_collect
from billing.services.payments import payment_method_attach
from billing.services.refunds import refund_request
from billing.services.subscriptions import ItemSpec, subscription_create
from config.events.models import DomainEvent
from tests.billing.payments.conftest import DECLINED, T0, VISA_OK, card, charged, now, subscribe  # noqa: F401
from tests.billing.services.conftest import billing_brand, make_customer, make_price  # noqa: F401
from tests.conftest import current_totp

pytestmark = pytest.mark.django_db


@pytest.fixture
def sign_in(client, staff_factory):
    """sign_in(role) -> a client signed in (password + TOTP) as a member of that role group;
    role None is a superuser."""

    def make(role: str | None, username: str | None = None):
        user = staff_factory(username=username or f"staff-{role or 'super'}".lower(), is_superuser=role is None)
        if role:
            user.groups.add(Group.objects.get(name=role))
        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        client.post("/admin/login/", {"username": user.username, "password": "correct horse battery staple"})
        assert client.post("/admin/otp/verify/", {"otp_token": current_totp(device)}).status_code == 302
        client.user = user
        return client

    return make


@pytest.fixture
def sandbox_charged(make_customer, make_price, now):  # noqa: F811
    """sandbox_charged(legal_name) -> (subscription, invoice): a test-mode customer, paid."""

    def make(legal_name: str = "Sandbox SARL"):
        customer = make_customer(legal_name=legal_name, livemode=False)
        payment_method_attach(customer=customer, source=card(VISA_OK))
        price = make_price(2900, livemode=False)
        subscription = subscription_create(customer=customer, items=[ItemSpec(price)], at=T0)
        invoice = subscription.invoices.get()
        invoices_collect(invoice_ids=[invoice.pk])
        invoice.refresh_from_db()
        return Subscription.objects.get(pk=subscription.pk), invoice

    return make


def kpi(html: str, key: str) -> tuple[str, str]:
    """(link, visible text) of a headline figure."""
    match = re.search(rf'<a id="kpi-{key}" href="([^"]*)"[^>]*>(.*?)</a>', html, re.S)
    assert match, f"no {key} figure on the page"
    return unescape(match[1]), " ".join(re.sub(r"<[^>]+>", " ", unescape(match[2])).split())


def home(client) -> str:
    response = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    return response.content.decode()


def test_the_dashboard_shows_this_modes_figures_formatted_and_linked_to_their_lists(
    sign_in,
    charged,  # noqa: F811
    sandbox_charged,
):
    charged()  # paid: 29.00 excl. tax
    charged(DECLINED)  # failed, in dunning, still open
    sandbox_charged()  # a sandbox customer: test data only
    console = sign_in("Finance")

    html = home(console)

    assert "Figures for live data" in html
    link, text = kpi(html, "revenue")
    assert "€58.00" in text and "2 invoices" in text
    assert link.startswith("/admin/invoices/invoice/?") and "finalized_at__gte=" in link
    link, text = kpi(html, "receivables")
    assert text.startswith("Open receivables €34.80") and link == "/admin/invoices/invoice/?status__exact=open"
    link, text = kpi(html, "failed_payments")
    assert text.startswith("Failed payments 1") and "status__exact=failed" in link
    link, text = kpi(html, "dunning")
    assert text.startswith("Dunning cases 1") and link == "/admin/billing/dunningcase/?status__exact=active"
    link, text = kpi(html, "subscriptions")
    assert "status__exact=active" in link
    assert kpi(html, "mrr")[0] == "/admin/reports/dashboard/mrr/"
    assert 'class="chart"' in html and "data-value=" in html  # the MRR chart, data in an attribute
    # every figure's link opens (the filters are ones the lists accept)
    for key in ("revenue", "receivables", "overdue", "failed_payments", "dunning", "subscriptions", "next_billing_run"):
        target = console.get(kpi(html, key)[0])
        assert target.status_code == 200, key
        assert "?e=1" not in target.get("Location", ""), key

    console.post("/admin/test-data/", {"test_data": "on", "next": "/admin/"})
    test_html = home(console)

    assert "Figures for test data only" in test_html
    assert "€29.00" in kpi(test_html, "revenue")[1]
    assert kpi(test_html, "failed_payments")[1].startswith("Failed payments 0")


def test_the_dashboard_costs_a_bounded_number_of_queries(
    sign_in,
    charged,  # noqa: F811
    django_assert_max_num_queries,
):
    for _ in range(3):
        charged()
        charged(DECLINED)
    console = sign_in("Finance")
    home(console)  # warm caches (content types, permissions)

    # 28 today: session, user, device, permissions, MRR (computed live while the summary is
    # not built: 2 statements in 2 savepoints), one aggregate per figure, one query per attention
    # list; the whole-book counts (subscriptions, receivables, next run's due) are one read of
    # the row the first view stored (reports.HomeFigures): 30 before, 3 aggregates (issue 20).
    with django_assert_max_num_queries(28):
        home(console)


@override_settings(TARIF_REFUND_APPROVAL_THRESHOLD=1000)
def test_needs_attention_lists_refunds_awaiting_approval_and_failed_webhooks(
    sign_in,
    charged,  # noqa: F811
    staff_factory,
):
    _subscription, invoice = charged()
    payment = Payment.objects.get(invoice=invoice, status="succeeded")
    requester = staff_factory(username="requester")
    refund = refund_request(
        payment=payment,
        amount=2000,
        reason="other",
        requested_by=requester,
        otp_verified_at=timezone.now(),
    )
    endpoint = WebhookEndpoint.objects.create(url="https://hooks.example.com/tarif", secret="whsec_x" * 4)
    WebhookDelivery.objects.create(
        endpoint=endpoint,
        event=DomainEvent.objects.filter(livemode=True).first(),
        object_key="in_1",
        status=WebhookDelivery.Status.FAILED,
        attempts=9,
        last_status_code=500,
    )
    console = sign_in("Finance")

    html = home(console)

    refunds = re.search(r'id="attention-refunds".*?</section>', html, re.S)[0]
    assert f"/admin/billing/refund/{refund.pk}/change/" in refunds
    assert "€20.00" in refunds and "requester" in refunds
    webhooks = re.search(r'id="attention-webhooks".*?</section>', html, re.S)[0]
    assert "hooks.example.com" in webhooks and "/admin/billing/webhookdelivery/" in webhooks
    assert "Every imported bank line is matched or ignored." in html


def test_support_sees_no_revenue_figures_and_read_only_sees_them(sign_in, charged):  # noqa: F811
    charged()
    support_html = home(sign_in("Support"))

    assert 'id="kpi-subscriptions"' in support_html
    assert 'id="kpi-mrr"' not in support_html and 'id="kpi-revenue"' not in support_html
    assert 'id="attention-refunds"' in support_html

    read_only_html = home(sign_in("Read-only", username="auditor"))
    assert 'id="kpi-mrr"' in read_only_html and 'id="kpi-revenue"' in read_only_html


# -- global search ----------------------------------------------------------------------


def search(client, term: str) -> str:
    response = client.get("/admin/search/", {"s": term, "extended": "1"}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    return response.content.decode()


def test_search_finds_customers_by_name_email_and_vat_and_invoices_by_number_and_public_ids(
    sign_in,
    charged,  # noqa: F811
    make_customer,  # noqa: F811
):
    subscription, invoice = charged(customer=make_customer(legal_name="Boulangerie Martin", tax_id="FR40303265045"))
    customer = subscription.customer
    payment = Payment.objects.get(invoice=invoice)
    make_customer(legal_name="Fromagerie Dupont")
    console = sign_in("Finance")

    assert f"/admin/customers/customer/{customer.pk}/change/" in search(console, "boulang")
    assert "Fromagerie" not in search(console, "boulang")
    assert f"/admin/customers/customer/{customer.pk}/change/" in search(console, customer.email.upper())
    assert f"/admin/customers/customer/{customer.pk}/change/" in search(console, "FR 40 303 265 045")
    assert f"/admin/invoices/invoice/{invoice.pk}/change/" in search(console, invoice.number)
    assert f"/admin/billing/subscription/{subscription.pk}/change/" in search(console, f"sub_{subscription.pk}")
    assert f"/admin/invoices/invoice/{invoice.pk}/change/" in search(console, f"in_{invoice.pk}")
    assert f"/admin/billing/payment/{payment.pk}/change/" in search(console, f"pay_{payment.pk}")
    assert "/change/" not in search(console, f"cus_{customer.pk + 1000}")


def test_search_stays_in_the_consoles_mode_and_within_the_viewers_permissions(
    sign_in,
    charged,  # noqa: F811
    make_customer,  # noqa: F811
    sandbox_charged,
    staff_factory,
):
    _live, live_invoice = charged(customer=make_customer(legal_name="Live Bakery"))
    sandbox_charged("Sandbox Bakery")
    console = sign_in("Finance")

    live = search(console, "bakery")
    assert "Live Bakery" in live and "Sandbox Bakery" not in live
    console.post("/admin/test-data/", {"test_data": "on", "next": "/admin/"})
    test = search(console, "bakery")
    assert "Sandbox Bakery" in test and "Live Bakery" not in test
    assert f"/invoice/{live_invoice.pk}/change/" not in search(console, live_invoice.number)  # live, from test mode

    # a role that may view customers but not invoices finds no invoice
    limited = staff_factory(username="limited")
    limited.user_permissions.add(*Group.objects.get(name="Support").permissions.exclude(codename="view_invoice"))
    limited.groups.clear()
    device = TOTPDevice.objects.create(user=limited, name="phone", confirmed=True)
    console.logout()
    console.post("/admin/login/", {"username": "limited", "password": "correct horse battery staple"})
    console.post("/admin/otp/verify/", {"otp_token": current_totp(device)})
    results = search(console, live_invoice.number)
    assert f"/admin/invoices/invoice/{live_invoice.pk}/change/" not in results
    assert "Live Bakery" in search(console, "live bak")


# -- plumbing, sidebar by role ------------------------------------------------------------

PLUMBING_URLS = (
    "/admin/django_celery_beat/periodictask/",
    "/admin/django_celery_beat/crontabschedule/",
    "/admin/events/eventcursor/",
    "/admin/axes/accessattempt/",
    "/admin/otp_totp/totpdevice/",
    "/admin/djstripe/customer/",
)


def test_plumbing_is_for_superusers_only_even_with_a_groups_view_permission(sign_in):
    finance = sign_in("Finance")
    assert finance.user.has_perm("django_celery_beat.view_periodictask")  # the role grants it...

    for url in PLUMBING_URLS:
        assert finance.get(url).status_code == 403, url  # ...the console does not open it
    assert "/admin/django_celery_beat/" not in home(finance)
    assert "periodictask" not in search(finance, "periodic")

    superuser = sign_in(None)
    for url in PLUMBING_URLS:
        assert superuser.get(url).status_code == 200, url
    assert "/admin/django_celery_beat/periodictask/" in home(superuser)  # "All tables"


def sidebar_links(html: str) -> set[str]:
    nav = re.search(r"<nav.*?</nav>", html, re.S)
    assert nav
    return set(re.findall(r'href="(/admin/[^"]*)"', nav[0]))


@pytest.mark.parametrize(
    ("role", "shown", "hidden"),
    [
        (
            "Finance",
            {"/admin/invoices/invoice/", "/admin/reports/dashboard/", "/admin/config/apikey/", "/admin/operations/"},
            {"/admin/auth/user/"},
        ),
        (
            "Support",
            {"/admin/customers/customer/", "/admin/invoices/invoice/", "/admin/operations/"},
            {"/admin/reports/dashboard/", "/admin/config/apikey/", "/admin/auth/user/"},
        ),
        (
            "Read-only",
            {"/admin/invoices/invoice/", "/admin/reports/dashboard/"},
            {"/admin/config/apikey/", "/admin/auth/user/"},
        ),
    ],
)
def test_the_sidebar_shows_each_role_only_what_it_may_open(sign_in, role, shown, hidden):
    console = sign_in(role)

    links = sidebar_links(home(console))

    assert shown <= links
    assert not (hidden & links)
    for link in links:
        assert console.get(link).status_code == 200, link


# -- language switch -----------------------------------------------------------------------


def test_the_language_switch_changes_the_console_language_and_keeps_the_page(sign_in):
    console = sign_in("Finance")
    page = "/admin/invoices/invoice/?status__exact=open"
    rendered = console.get(page).content.decode()
    assert 'action="/i18n/setlang/"' in rendered
    assert '<input name="next" type="hidden" value="/admin/invoices/invoice/?status__exact=open">' in rendered

    to_french = console.post("/i18n/setlang/", {"language": "fr", "next": page})

    assert to_french.status_code == 302 and to_french["Location"] == page
    assert "Factures" in console.get(page).content.decode()
    console.post("/i18n/setlang/", {"language": "en", "next": page})
    english = console.get(page).content.decode()
    assert "Invoices" in english and "Factures" not in english


# -- API keys ----------------------------------------------------------------------------------


def test_finance_creates_an_api_key(sign_in):
    console = sign_in("Finance")

    assert console.get("/admin/config/apikey/add/").status_code == 200
    response = console.post(
        "/admin/config/apikey/add/", {"name": "CRM sync", "scope": "read", "mode": "test"}, follow=True
    )

    assert response.status_code == 200
    assert re.search(r"tk_test_[A-Za-z0-9_\-]+", response.content.decode())
    assert console.get("/admin/config/apikey/").status_code == 200


def test_support_cannot_create_an_api_key(sign_in):
    console = sign_in("Support")

    assert console.get("/admin/config/apikey/add/").status_code == 403


def test_dunning_fixture_sanity(charged):  # noqa: F811
    """The failed-payment fixture the dashboard tests lean on does open a dunning case."""
    _subscription, invoice = charged(DECLINED)
    assert DunningCase.objects.filter(invoice=invoice, status="active").exists()
