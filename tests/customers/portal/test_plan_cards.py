"""Issue 17: plan cards (a price for every price model), a confirmation step whose numbers are what
the change then bills, renewing a subscription set to end, and starting one when none is active."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import translation

from billing.entitlements.models import Feature, ProductFeature
from billing.models import Price, Subscription, SubscriptionChange
from billing.services.dunning import invoices_collect
from billing.services.subscriptions import subscription_cancel
from customers.portal.plans import plan_cards, price_summary
from invoices.models import Invoice
from tests.billing.payments.conftest import T0
from tests.billing.services.conftest import make_metered_price  # noqa: F401
from tests.customers.portal.conftest import fresh_step_up

pytestmark = pytest.mark.django_db

TIERS = [{"up_to": 10, "unit_amount": "500", "flat_amount": 0}, {"up_to": None, "unit_amount": "400"}]
YEARLY = {"kind": "interval", "unit": "year", "count": 1}


def amounts(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]+)<', page)
    assert match, f"#{element_id} missing"
    return match.group(1).strip()


def test_every_price_model_shows_a_price_per_cycle(make_price, product_factory, make_metered_price):  # noqa: F811
    seat = product_factory(name="Team", unit_label="seat")
    flat = make_price(4900, product=product_factory(name="Pro"))
    per_seat = make_price(1000, product=seat)
    tiered = make_price(None, product=product_factory(name="Scale"), scheme=Price.Scheme.TIERED_GRADUATED, tiers=TIERS)
    volume = make_price(None, product=product_factory(name="Bulk"), scheme=Price.Scheme.TIERED_VOLUME, tiers=TIERS)
    package = make_price(2000, product=product_factory(name="Pack"), scheme=Price.Scheme.PACKAGE, package_size=100)
    metered = make_metered_price("2", product=product_factory(name="API", unit_label="call"))
    yearly = make_price(49000, product=product_factory(name="Pro yearly"), cycle=YEARLY)

    with translation.override("en"):
        summaries = {
            price.pk: price_summary(price) for price in [flat, per_seat, tiered, volume, package, metered, yearly]
        }

    assert (summaries[flat.pk].amount, summaries[flat.pk].unit, summaries[flat.pk].cycle) == ("€49.00", "", "per month")
    assert (summaries[per_seat.pk].amount, summaries[per_seat.pk].unit) == ("€10.00", "per seat")
    assert (summaries[tiered.pk].amount, summaries[tiered.pk].unit) == ("from €4.00", "per unit")
    assert summaries[volume.pk].amount == "from €4.00"
    assert (summaries[package.pk].amount, summaries[package.pk].unit) == ("€20.00", "per 100 units")
    assert (summaries[metered.pk].amount, summaries[metered.pk].unit) == ("€0.02", "per call used")
    assert summaries[yearly.pk].cycle == "per year" and summaries[yearly.pk].per_month == "€40.83 a month"


def test_cards_mark_the_current_plan_and_tell_look_alike_plans_apart(make_price, product_factory):
    product = product_factory(name="Nuage Pro")
    flat = make_price(4900, product=product)
    tiered = make_price(None, product=product, scheme=Price.Scheme.TIERED_VOLUME, tiers=TIERS)
    starter = make_price(1900, product=product_factory(name="Nuage Starter"))
    sso = Feature.objects.create(lookup_key="sso", name="Single sign-on")
    projects = Feature.objects.create(lookup_key="projects", name="Projects", kind=Feature.Kind.QUANTITY)
    ProductFeature.objects.create(product=product, feature=sso)
    ProductFeature.objects.create(product=product, feature=projects, quantity=50)
    ProductFeature.objects.create(product=starter.product, feature=projects, quantity=5)

    with translation.override("en"):
        cards = {
            card.price.pk: card for card in plan_cards(prices=[flat, tiered, starter], current_price_ids=[starter.pk])
        }

    assert cards[starter.pk].is_current and not cards[flat.pk].is_current
    assert cards[flat.pk].variant != cards[tiered.pk].variant  # same product, same cycle: named apart
    assert "volume pricing" in cards[tiered.pk].variant
    assert ("Single sign-on", True) in cards[flat.pk].differences
    assert ("Projects: 50", True) in cards[flat.pk].differences
    assert ("Projects: 5", False) in cards[flat.pk].differences
    assert cards[starter.pk].differences == ()


def test_the_change_page_shows_plan_cards_with_prices(portal, account, plans):
    page = portal.get(f"/portal/subscriptions/{account[2].pk}/change/").content.decode()

    assert 'id="plan-cards"' in page
    assert f'id="plan-{plans["starter"].pk}"' in page and f'id="plan-{plans["pro"].pk}"' in page
    assert f'id="plan-{plans["hidden"].pk}"' not in page
    assert "79,00" in page and "29,00" in page
    assert "Votre formule actuelle" in page or "Your current plan" in page
    starter_card = page.split(f'id="plan-{plans["starter"].pk}"')[1].split("</label>")[0]
    assert "plan-badge" in starter_card  # the current plan is marked


def test_the_confirmation_shows_exactly_what_the_change_then_bills(portal, account, plans, now):
    customer, user, subscription, _invoice = account
    now.move_to(T0 + timedelta(days=10))
    portal.force_login(user)
    url = f"/portal/subscriptions/{subscription.pk}/change/"

    confirmation = portal.post(url, {"price": plans["pro"].pk, "quantity": 3})
    page = confirmation.content.decode()
    assert confirmation.status_code == 200 and SubscriptionChange.objects.filter(kind="change").count() == 0
    due_now, total_now, tax_now = (
        amounts(page, "confirm-due-now"),
        amounts(page, "confirm-now-total"),
        amounts(page, "confirm-now-tax"),
    )
    next_total = amounts(page, "confirm-next-total")

    done = portal.post(url, {"price": plans["pro"].pk, "quantity": 3, "confirmed": "1"})
    assert done.status_code == 302

    change = SubscriptionChange.objects.get(subscription=subscription, kind="change")
    invoice = Invoice.objects.filter(subscription=subscription).exclude(pk=account[3].pk).get()
    from customers.templatetags.portal import money_filter

    with translation.override("fr"):
        assert money_filter(invoice.total, "EUR") == total_now
        assert money_filter(invoice.tax_total, "EUR") == tax_now
        assert money_filter(invoice.amount_due, "EUR") == due_now
    assert change.proration_amount == invoice.subtotal
    overview = portal.get("/portal/").content.decode()
    assert next_total in overview  # the next invoice announced on the overview is the one confirmed


def test_the_same_plan_and_quantity_is_not_a_change(portal, account, plans):
    response = portal.post(
        f"/portal/subscriptions/{account[2].pk}/change/", {"price": plans["starter"].pk, "quantity": 2}
    )

    assert response.status_code == 200 and 'role="alert"' in response.content.decode()
    assert not SubscriptionChange.objects.filter(kind="change").exists()


def test_a_subscription_set_to_end_can_be_kept(portal, account):
    subscription = account[2]
    subscription_cancel(subscription=subscription, at_period_end=True)
    home = portal.get("/portal/").content.decode()
    assert f'id="renew-{subscription.pk}"' in home

    response = portal.post(f"/portal/subscriptions/{subscription.pk}/renew/")

    subscription.refresh_from_db()
    assert response.status_code == 302
    assert not subscription.cancel_at_period_end and subscription.status == Subscription.Status.ACTIVE
    assert f'id="renew-{subscription.pk}"' not in portal.get("/portal/").content.decode()


def test_keeping_a_subscription_that_is_not_ending_says_so(portal, account):
    response = portal.post(f"/portal/subscriptions/{account[2].pk}/renew/", follow=True)

    assert response.status_code == 200 and "messages" in response.content.decode()
    assert not account[2].cancel_at_period_end


@pytest.fixture
def ended(account, now):
    customer, user, subscription, _invoice = account
    subscription_cancel(subscription=subscription, at_period_end=False)
    return account


def test_without_an_active_subscription_the_overview_offers_plan_cards(portal, ended, plans):
    page = portal.get("/portal/").content.decode()

    assert 'id="start-subscription"' in page
    assert f'id="plan-{plans["pro"].pk}"' in page and f'id="plan-{plans["hidden"].pk}"' not in page


def test_starting_a_subscription_needs_a_step_up_then_confirms_the_first_invoice(
    portal, ended, plans, django_capture_on_commit_callbacks
):
    customer = ended[0]

    assert portal.get("/portal/subscribe/")["Location"].startswith("/portal/verify/")
    fresh_step_up(portal)
    confirmation = portal.post("/portal/subscribe/", {"price": plans["pro"].pk, "quantity": 1})
    page = confirmation.content.decode()
    assert confirmation.status_code == 200 and 'id="confirm-subscribe"' in page
    due_now = amounts(page, "confirm-due-now")
    assert Subscription.objects.filter(customer=customer).count() == 1  # nothing created yet

    with django_capture_on_commit_callbacks(execute=True):
        done = portal.post("/portal/subscribe/", {"price": plans["pro"].pk, "quantity": 1, "confirmed": "1"})

    assert done.status_code == 302
    subscription = Subscription.objects.filter(customer=customer, status="active").get()
    invoice = subscription.invoices.get()
    invoices_collect(invoice_ids=[invoice.pk])
    invoice.refresh_from_db()
    from customers.templatetags.portal import money_filter

    with translation.override("fr"):
        assert money_filter(invoice.total, "EUR") == due_now
    assert invoice.status == "paid"
    result = portal.get(done["Location"]).content.decode()
    assert invoice.number in result
    assert portal.get("/portal/subscribe/")["Location"] == "/portal/"  # one active subscription is enough


def test_starting_without_a_payment_method_is_refused(portal, ended, plans):
    from billing.models import PaymentMethod

    PaymentMethod.objects.filter(customer=ended[0]).update(active=False, is_default=False)
    fresh_step_up(portal)

    response = portal.post("/portal/subscribe/", {"price": plans["pro"].pk, "quantity": 1, "confirmed": "1"})

    assert response.status_code == 200 and 'role="alert"' in response.content.decode()
    assert not Subscription.objects.filter(customer=ended[0], status="active").exists()


def test_a_hidden_or_foreign_plan_cannot_be_started(portal, ended, plans, make_price):
    fresh_step_up(portal)
    usd = make_price(1000, currency="USD")

    for price in (plans["hidden"], usd):
        response = portal.post("/portal/subscribe/", {"price": price.pk, "quantity": 1, "confirmed": "1"})
        assert response.status_code == 200 and "id_price_errors" in response.content.decode()
    assert not Subscription.objects.filter(customer=ended[0], status="active").exists()


def test_the_confirmation_counts_prepaid_credits_as_the_change_then_uses_them(portal, account, plans, now):
    """Credits pay first (before the balance and the card): the confirmation shows what they pay of
    the invoice issued now and of the next one, and the change then consumes exactly that."""
    from billing.wallets.models import CreditGrant
    from tests.billing.wallets.helpers import grant

    customer, user, subscription, _invoice = account
    now.move_to(T0 + timedelta(days=10))
    credit = grant(customer, 9_000, at=T0 + timedelta(days=1), category=CreditGrant.Category.PROMOTIONAL)
    portal.force_login(user)
    url = f"/portal/subscriptions/{subscription.pk}/change/"

    page = portal.post(url, {"price": plans["pro"].pk, "quantity": 3}).content.decode()
    credits_now = amounts(page, "confirm-credits-used")
    due_now = amounts(page, "confirm-due-now")

    assert portal.post(url, {"price": plans["pro"].pk, "quantity": 3, "confirmed": "1"}).status_code == 302
    invoice = Invoice.objects.filter(subscription=subscription).exclude(pk=account[3].pk).get()
    from customers.templatetags.portal import money_filter

    assert invoice.credits_applied > 0
    with translation.override("fr"):
        assert money_filter(-invoice.credits_applied, "EUR") == credits_now
        assert money_filter(invoice.amount_due, "EUR") == due_now
    credit.refresh_from_db()
    assert credit.remaining == 9_000 - invoice.credits_applied
