"""checkout_session_create / preview / complete / expire: the rules and every refusal."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError

from billing.checkout.errors import CheckoutError, CheckoutPaymentDeclined, CheckoutSessionClosed
from billing.checkout.models import CheckoutSession
from billing.checkout.selectors import checkout_session_url
from billing.checkout.services import (
    checkout_buyer,
    checkout_session_complete,
    checkout_session_expire,
    checkout_session_preview,
    checkout_sessions_expire_overdue,
    success_redirect_url,
)
from billing.models import Coupon, PaymentMethod, Price, PromotionCode, Subscription
from config.events.models import DomainEvent
from customers.models import Customer, CustomerUser
from invoices.models import Invoice
from tests.billing.checkout.conftest import BE_BUSINESS, FR_BUSINESS, FR_PERSON
from tests.billing.checkout.helpers import DECLINING_CARD, LATE_DECLINE_CARD, enter_card, pay

pytestmark = pytest.mark.django_db


def test_a_new_session_is_open_with_an_unguessable_id_and_a_url(make_session, monthly, settings):
    settings.TARIF_BASE_URL = "https://billing.example"
    session = make_session()
    assert session.status == "open" and session.livemode
    assert session.public_id.startswith("cs_live_") and len(session.public_id) == len("cs_live_") + 32
    assert checkout_session_url(session) == f"https://billing.example/checkout/{session.public_id}/"
    assert session.expires_at - session.created_at == pytest.approx(timedelta(hours=24), abs=timedelta(seconds=5))
    assert [(item.price_id, item.quantity) for item in session.line_items.all()] == [(monthly.pk, 1)]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"mode": "donation"}, "invalid_mode"),
        ({"line_items": []}, "no_line_items"),
        ({"success_url": "/thanks"}, "invalid_url"),
        ({"cancel_url": "javascript:alert(1)"}, "invalid_url"),
        ({"billing_address_collection": "never"}, "invalid_address_collection"),
        ({"trial_period_days": 0}, "invalid_trial"),
        ({"customer_email": "not-an-email"}, "invalid_email"),
        ({"metadata": {"k": 1}}, "invalid_metadata"),
        ({"origin": "fax"}, "invalid_origin"),
    ],
)
def test_create_refuses_bad_arguments(make_session, overrides, code):
    with pytest.raises(CheckoutError) as refused:
        make_session(**overrides)
    assert refused.value.code == code
    assert not CheckoutSession.objects.exists()


def test_create_refuses_prices_that_could_never_complete(make_session, monthly, one_time, price_factory):
    archived = price_factory(active=False)
    usd = price_factory(currency="USD")
    test_price = price_factory(livemode=False)
    cases = [
        ({"line_items": [(archived, 1)]}, "archived_price"),
        ({"line_items": [(monthly, 1), (usd, 1)]}, "mixed_currencies"),
        ({"line_items": [(test_price, 1)]}, "no_such_price"),  # a live session never sees test prices
        ({"line_items": [(one_time, 1)]}, "no_recurring_price"),
        ({"mode": "payment", "line_items": [(monthly, 1)]}, "recurring_price_in_payment"),
        ({"mode": "payment", "line_items": [(one_time, 1)], "trial_period_days": 7}, "trial_outside_subscription"),
        ({"mode": "setup"}, "setup_with_items"),
        ({"mode": "payment", "line_items": [(one_time, 1)], "allow_promotion_codes": True}, "discount_in_payment"),
        ({"line_items": [(monthly, 0)]}, "invalid_quantity"),
        ({"line_items": [(monthly, 1), (monthly, 2)]}, "duplicate_price"),
    ]
    for overrides, code in cases:
        with pytest.raises(CheckoutError) as refused:
            make_session(**overrides)
        assert refused.value.code == code, overrides


def test_create_refuses_a_customer_of_another_mode_brand_or_currency(make_session, customer_factory, brand_factory):
    other_brand = brand_factory(slug="other")
    for customer, code in [
        (customer_factory(livemode=False), "no_such_customer"),
        (customer_factory(brand=other_brand), "customer_brand"),
        (customer_factory(currency="USD"), "customer_currency"),
    ]:
        with pytest.raises(CheckoutError) as refused:
            make_session(customer=customer)
        assert refused.value.code == code


def test_create_refuses_a_coupon_with_promotion_codes_or_of_the_other_mode(make_session):
    coupon = Coupon.objects.create(name="Launch", percent_off=Decimal(20), duration="once")
    with pytest.raises(CheckoutError) as both:
        make_session(coupon=coupon, allow_promotion_codes=True)
    assert both.value.code == "coupon_and_promotion_codes"
    test_coupon = Coupon.objects.create(name="Test", percent_off=Decimal(20), duration="once", livemode=False)
    with pytest.raises(CheckoutError) as other_mode:
        make_session(coupon=test_coupon)
    assert other_mode.value.code == "no_such_coupon"


def test_a_test_mode_session_takes_test_prices_only(make_session, price_factory):
    test_price = price_factory(livemode=False)
    session = make_session(livemode=False, line_items=[(test_price, 2)])
    assert session.public_id.startswith("cs_test_") and not session.livemode


def test_preview_french_business_pays_french_vat(make_session):
    session = make_session()
    buyer = checkout_buyer(session=session, details=FR_BUSINESS)
    preview = checkout_session_preview(session=session, buyer=buyer)
    assert preview.invoice.subtotal == 2900
    assert preview.invoice.totals.tax_total == 580
    assert preview.amount_due_now == 3480
    assert not preview.reverse_charge


def test_preview_belgian_business_is_reverse_charged(make_session):
    session = make_session()
    preview = checkout_session_preview(session=session, buyer=checkout_buyer(session=session, details=BE_BUSINESS))
    assert preview.invoice.totals.tax_total == 0 and preview.amount_due_now == 2900
    assert preview.reverse_charge


def test_preview_french_consumer_pays_french_vat(make_session):
    session = make_session()
    preview = checkout_session_preview(session=session, buyer=checkout_buyer(session=session, details=FR_PERSON))
    assert preview.amount_due_now == 3480 and not preview.reverse_charge


def test_a_vat_number_of_another_country_or_with_bad_check_digits_is_refused(make_session):
    session = make_session()
    with pytest.raises(ValidationError) as wrong_country:
        checkout_buyer(session=session, details={**FR_BUSINESS, "tax_id": "BE0403019261"})
    assert "tax_id" in wrong_country.value.message_dict
    with pytest.raises(ValidationError) as bad_digits:
        checkout_buyer(session=session, details={**FR_BUSINESS, "tax_id": "FR00303265045"})
    assert "tax_id" in bad_digits.value.message_dict


def test_an_address_is_required_when_the_session_says_so(make_session):
    session = make_session(billing_address_collection="required")
    with pytest.raises(ValidationError) as refused:
        checkout_buyer(session=session, details=FR_PERSON)
    assert set(refused.value.message_dict) == {"address_line1", "postal_code", "city"}


def test_promotion_code_applies_live_and_an_unknown_one_is_reported(make_session):
    coupon = Coupon.objects.create(name="Half", percent_off=Decimal(50), duration="once")
    PromotionCode.objects.create(coupon=coupon, code="HALF")
    session = make_session(allow_promotion_codes=True)
    buyer = checkout_buyer(session=session, details=FR_PERSON)
    applied = checkout_session_preview(session=session, buyer=buyer, promotion_code="half")
    assert applied.promotion_error == "" and applied.amount_due_now == 1740
    unknown = checkout_session_preview(session=session, buyer=buyer, promotion_code="NOPE")
    assert unknown.promotion_error and unknown.amount_due_now == 3480


def test_completion_creates_customer_card_subscription_invoice_invitation_and_event(
    make_session, settings, django_capture_on_commit_callbacks
):
    settings.TARIF_BASE_URL = "https://billing.example"
    session = make_session()
    with django_capture_on_commit_callbacks(execute=True):  # the collection hand-off charges the invoice
        done = pay(session, FR_BUSINESS)
    assert done.status == "complete" and done.completed_at is not None
    customer = Customer.objects.get(email="compta@lune-rousse.example")
    assert done.customer == customer and customer.brand == session.brand and customer.tax_id == "FR40303265045"
    method = PaymentMethod.objects.get(customer=customer)
    assert method.is_default and method.last4 == "4242"
    subscription = Subscription.objects.get(customer=customer)
    assert done.subscription == subscription and subscription.status == "active"
    invoice = Invoice.objects.get(customer=customer)
    assert done.invoice == invoice and invoice.number and invoice.total == 3480 and invoice.status == "paid"
    assert CustomerUser.objects.filter(customer=customer, user__email="compta@lune-rousse.example").exists()
    invitations = [m for m in mail.outbox if "/accounts/password/reset/key/" in m.body]
    assert [m.to for m in invitations] == [["compta@lune-rousse.example"]]
    event = DomainEvent.objects.get(type="checkout.session.completed")
    assert event.object_id == session.public_id and event.customer_id == customer.pk
    assert success_redirect_url(done) == f"https://shop.example/thanks?session={session.public_id}"


def test_completion_with_a_promotion_code_redeems_it_once_and_keeps_the_lock_order(
    make_session, django_capture_on_commit_callbacks
):
    """The redemption locks the promotion code and its coupon, which rank before the customer the
    completion creates (docs/billing.md): the test settings' lock-order checker fails otherwise."""
    coupon = Coupon.objects.create(name="Half", percent_off=Decimal(50), duration="once")
    PromotionCode.objects.create(coupon=coupon, code="HALF")
    session = make_session(allow_promotion_codes=True)

    with django_capture_on_commit_callbacks(execute=True):
        done = pay(session, FR_PERSON, promotion_code="HALF")

    assert done.status == "complete"
    assert Invoice.objects.get(customer=done.customer).total == 1740
    assert PromotionCode.objects.get(code="HALF").times_redeemed == 1


def test_payment_mode_issues_an_invoice_paid_at_once(make_session, one_time, django_capture_on_commit_callbacks):
    session = make_session(mode="payment", line_items=[(one_time, 2)])
    with django_capture_on_commit_callbacks(execute=True):
        done = pay(session, FR_PERSON)
    assert done.subscription is None
    invoice = Invoice.objects.get(pk=done.invoice_id)
    assert invoice.total == 36000 and invoice.status == "paid"


def test_setup_mode_only_saves_the_card(make_session):
    session = make_session(mode="setup", line_items=[])
    done = pay(session, FR_PERSON)
    assert done.invoice is None and done.subscription is None
    assert done.payment_method.last4 == "4242"


def test_trial_gives_a_zero_first_invoice(make_session):
    session = make_session(trial_period_days=14)
    done = pay(session, FR_PERSON)
    assert done.subscription.status == "trialing" and done.invoice.total == 0


@pytest.mark.parametrize("card", [DECLINING_CARD, LATE_DECLINE_CARD])
def test_a_declining_card_is_refused_in_plain_words_and_nothing_is_created(make_session, card):
    session = make_session()
    with pytest.raises(CheckoutPaymentDeclined) as declined:
        pay(session, FR_BUSINESS, card=card)
    assert "declined" in declined.value.message_text()
    assert not Customer.objects.exists() and not Subscription.objects.exists() and not Invoice.objects.exists()
    session.refresh_from_db()
    assert session.status == "open" and "declined" in session.decline_message
    # The buyer tries another card on the same session.
    assert pay(session, FR_BUSINESS).status == "complete"


def test_completing_twice_returns_the_first_outcome(make_session):
    session = make_session()
    gateway_session_id = enter_card(session, FR_PERSON)
    first = checkout_session_complete(session=session, gateway_session_id=gateway_session_id)
    stale = CheckoutSession.objects.get(pk=session.pk)
    stale.status = "open"  # a second tab that loaded the row before the first completed
    again = checkout_session_complete(session=stale, gateway_session_id=gateway_session_id)
    assert again.pk == first.pk and again.status == "complete"
    assert Customer.objects.count() == 1 and Subscription.objects.count() == 1 and Invoice.objects.count() == 1
    assert DomainEvent.objects.filter(type="checkout.session.completed").count() == 1


def test_another_sessions_card_entry_is_refused(make_session):
    first, second = make_session(), make_session()
    gateway_session_id = enter_card(first, FR_PERSON)
    enter_card(second, FR_PERSON)
    with pytest.raises(CheckoutError) as refused:
        checkout_session_complete(session=second, gateway_session_id=gateway_session_id)
    assert refused.value.code == "wrong_setup"


def test_an_expired_session_cannot_be_completed_and_the_sweeper_expires_it(make_session):
    session = make_session()
    gateway_session_id = enter_card(session, FR_PERSON)
    with time_machine.travel(session.expires_at + timedelta(seconds=1)):
        with pytest.raises(CheckoutSessionClosed) as closed:
            checkout_session_complete(session=session, gateway_session_id=gateway_session_id)
    assert closed.value.code == "checkout_session_expired"
    assert not Customer.objects.exists()
    other = make_session()
    with time_machine.travel(other.expires_at + timedelta(seconds=1)):
        assert checkout_sessions_expire_overdue() == 1
    other.refresh_from_db()
    assert other.status == "expired"
    assert DomainEvent.objects.filter(type="checkout.session.expired").count() == 2


def test_expire_refuses_a_closed_session(make_session):
    session = make_session()
    checkout_session_expire(session=session)
    with pytest.raises(CheckoutSessionClosed):
        checkout_session_expire(session=session)


def test_an_existing_customers_email_gets_a_new_customer_and_no_second_login(
    make_session, customer_factory, django_capture_on_commit_callbacks
):
    existing = customer_factory(email="compta@lune-rousse.example")
    from customers.services import customer_invite_portal_user

    customer_invite_portal_user(customer=existing, email=existing.email, base_url="https://x.example")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        done = pay(make_session(), FR_BUSINESS)
    assert done.customer != existing  # Stripe's behaviour: checkout never reveals or reuses a customer by email
    assert CustomerUser.objects.get(user__email="compta@lune-rousse.example").customer == existing
    assert not [m for m in mail.outbox if "/accounts/password/reset/key/" in m.body]


def test_an_existing_customer_session_attaches_to_it(make_session, customer_factory):
    customer = customer_factory(brand=None)
    done = pay(make_session(customer=customer), {})
    assert done.customer == customer and Customer.objects.count() == 1
    assert Price.objects.exists()
