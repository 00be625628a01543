"""The Stripe gateway end to end against localstripe: save, charge, decline, authenticate, refund."""

from __future__ import annotations

import pytest
from djstripe import models as djstripe_models

from billing.models import DunningCase, Payment, PaymentMethod, Refund, Subscription
from billing.payments.gateway import GatewayError
from billing.payments.stripe import StripeGateway, payment_method_details
from billing.services.payments import (
    PaymentsError,
    invoice_collect,
    payment_method_attach,
    payment_method_setup_intent_complete,
    payment_method_setup_intent_start,
)
from billing.services.refunds import refund_request
from invoices.models import Invoice
from tests.billing.payments.stripe_gateway.conftest import (
    DECLINED_AT_ATTACH,
    DECLINED_AT_CHARGE,
    REQUIRES_ACTION,
    SEPA_OK,
    VISA_OK,
    stripe_card,
)


def _confirm_setup_in_browser(sdk, setup_reference: str, number: str) -> None:
    """What Stripe.js does with the client secret: create the method and confirm the SetupIntent."""
    payment_method = sdk.v1.payment_methods.create(params={"type": "card", **stripe_card(number)})
    sdk.v1.setup_intents.confirm(setup_reference, params={"payment_method": payment_method.id})


def test_attach_card_stores_only_token_and_display_data_and_syncs_dj_stripe(stripe_on, make_customer):
    customer = make_customer()

    method = payment_method_attach(customer=customer, source=stripe_card(VISA_OK))

    assert method.gateway == "stripe" and method.token.startswith("pm_")
    assert (method.kind, method.brand, method.last4, method.exp_month, method.exp_year) == (
        "card",
        "visa",
        "4242",
        12,
        2030,
    )
    synced = djstripe_models.Customer.objects.get(subscriber=customer)
    assert synced.id.startswith("cus_")
    mirrored = djstripe_models.PaymentMethod.objects.get(id=method.token)
    assert mirrored.customer_id == synced.id
    assert VISA_OK not in str(mirrored.stripe_data)
    # A second method goes to the same Stripe customer.
    second = payment_method_attach(customer=customer, source=stripe_card("5555555555554444"))
    assert djstripe_models.Customer.objects.filter(subscriber=customer).count() == 1
    assert stripe_on.v1.payment_methods.retrieve(second.token).customer == synced.id


def test_card_refused_at_attach_is_a_gateway_error_without_the_number(stripe_on, make_customer):
    customer = make_customer()

    with pytest.raises(GatewayError) as refused:
        payment_method_attach(customer=customer, source=stripe_card(DECLINED_AT_ATTACH))

    assert "declined" in str(refused.value) and DECLINED_AT_ATTACH not in str(refused.value)
    assert not PaymentMethod.objects.filter(customer=customer).exists()


def test_detach_detaches_at_stripe_and_in_dj_stripe(stripe_on, make_customer):
    from billing.services.payments import payment_method_detach

    method = payment_method_attach(customer=make_customer(), source=stripe_card(VISA_OK))

    payment_method_detach(payment_method=method)

    method.refresh_from_db()
    assert not method.active and method.detached_at is not None
    assert stripe_on.v1.payment_methods.retrieve(method.token).customer is None
    assert djstripe_models.PaymentMethod.objects.get(id=method.token).customer_id is None
    # Detaching what Stripe already detached is not an error.
    StripeGateway().detach_payment_method(token=method.token)


def test_save_card_through_a_setup_intent(stripe_on, make_customer):
    customer = make_customer()
    session = payment_method_setup_intent_start(customer=customer)
    assert (
        session.reference.startswith("seti_") and session.client_secret and session.status == "requires_payment_method"
    )

    _confirm_setup_in_browser(stripe_on, session.reference, VISA_OK)
    method = payment_method_setup_intent_complete(customer=customer, setup_reference=session.reference)

    assert (method.gateway, method.kind, method.last4, method.is_default) == ("stripe", "card", "4242", True)
    assert djstripe_models.SetupIntent.objects.get(id=session.reference).stripe_data["status"] == "succeeded"
    assert stripe_on.v1.payment_methods.retrieve(method.token).customer == (
        djstripe_models.Customer.objects.get(subscriber=customer).id
    )
    # Completing twice (the browser and the webhook) saves it once.
    assert payment_method_setup_intent_complete(customer=customer, setup_reference=session.reference) == method
    assert PaymentMethod.objects.filter(customer=customer).count() == 1


def test_setup_that_did_not_succeed_or_belongs_to_another_customer_is_refused(stripe_on, make_customer):
    alice, bruno = make_customer(), make_customer()
    pending = payment_method_setup_intent_start(customer=alice)
    with pytest.raises(PaymentsError, match="not complete"):
        payment_method_setup_intent_complete(customer=alice, setup_reference=pending.reference)

    _confirm_setup_in_browser(stripe_on, pending.reference, VISA_OK)
    with pytest.raises(PaymentsError, match="another customer"):
        payment_method_setup_intent_complete(customer=bruno, setup_reference=pending.reference)
    assert not PaymentMethod.objects.exists()


def test_setup_needing_authentication_is_not_saved_until_it_succeeds(stripe_on, make_customer):
    customer = make_customer()
    session = payment_method_setup_intent_start(customer=customer)

    _confirm_setup_in_browser(stripe_on, session.reference, REQUIRES_ACTION)

    with pytest.raises(PaymentsError, match="requires_action"):
        payment_method_setup_intent_complete(customer=customer, setup_reference=session.reference)
    assert not PaymentMethod.objects.exists()


def test_charge_succeeds_and_the_invoice_is_paid(stripe_on, charged):
    subscription, invoice = charged(VISA_OK)

    payment = Payment.objects.get(invoice=invoice)
    assert invoice.status == Invoice.Status.PAID and subscription.status == Subscription.Status.ACTIVE
    assert payment.status == Payment.Status.SUCCEEDED and payment.gateway == "stripe"
    intent = stripe_on.v1.payment_intents.retrieve(payment.gateway_reference)
    assert (intent.status, intent.amount, intent.currency) == ("succeeded", invoice.total, "eur")
    assert intent.metadata["tarif_idempotency_key"] == payment.idempotency_key == f"invoice:{invoice.pk}:attempt:1"
    assert djstripe_models.PaymentIntent.objects.get(id=intent.id).stripe_data["status"] == "succeeded"


def test_decline_at_charge_time_enters_dunning(stripe_on, charged):
    subscription, invoice = charged(DECLINED_AT_CHARGE)

    payment = Payment.objects.get(invoice=invoice)
    assert payment.status == Payment.Status.FAILED and payment.decline_code == "card_declined"
    assert payment.gateway_reference.startswith("pi_")
    assert invoice.status == Invoice.Status.OPEN and subscription.status == Subscription.Status.PAST_DUE
    assert DunningCase.objects.get(invoice=invoice).status == DunningCase.Status.ACTIVE
    assert stripe_on.v1.payment_intents.retrieve(payment.gateway_reference).status == "requires_payment_method"


def test_dunning_recovers_when_the_customer_adds_a_working_card(stripe_on, charged, django_capture_on_commit_callbacks):
    subscription, invoice = charged(DECLINED_AT_CHARGE)

    with django_capture_on_commit_callbacks(execute=True):
        payment_method_attach(customer=invoice.customer, source=stripe_card(VISA_OK))

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert DunningCase.objects.get(invoice=invoice).status == DunningCase.Status.RECOVERED
    assert list(Payment.objects.filter(invoice=invoice).order_by("attempt").values_list("status", flat=True)) == [
        "failed",
        "succeeded",
    ]


def test_requires_action_waits_for_the_customer(stripe_on, charged):
    subscription, invoice = charged(REQUIRES_ACTION)

    payment = Payment.objects.get(invoice=invoice)
    assert payment.status == Payment.Status.REQUIRES_ACTION and payment.decline_code == "authentication_required"
    assert invoice.status == Invoice.Status.OPEN and subscription.status == Subscription.Status.PAST_DUE
    assert stripe_on.v1.payment_intents.retrieve(payment.gateway_reference).status == "requires_action"


def test_refund_through_stripe_is_linked_to_a_credit_note(stripe_on, charged, staff_factory, localstripe):
    _, invoice = charged(VISA_OK)
    payment = Payment.objects.get(invoice=invoice)

    refund = refund_request(
        payment=payment, amount=800, reason="order_change", requested_by=staff_factory(), otp_verified_at=None
    )

    assert refund.status == Refund.Status.EXECUTED and refund.gateway_reference.startswith("re_")
    assert (refund.credit_note.total, refund.credit_note.refunded) == (800, 800)
    at_stripe = localstripe.get("/v1/refunds", {"payment_intent": payment.gateway_reference})["data"]
    assert [(item["id"], item["amount"]) for item in at_stripe] == [(refund.gateway_reference, 800)]
    # The same key again (a retry after a crash) returns that refund and refunds nothing more.
    again = StripeGateway().refund(
        charge_reference=payment.gateway_reference, amount=800, currency="EUR", idempotency_key=refund.idempotency_key
    )
    assert again.reference == refund.gateway_reference
    assert len(localstripe.get("/v1/refunds", {"payment_intent": payment.gateway_reference})["data"]) == 1


def test_refund_of_a_failed_charge_is_refused_by_stripe(stripe_on, charged):
    _, invoice = charged(DECLINED_AT_CHARGE)
    payment = Payment.objects.get(invoice=invoice)

    with pytest.raises(GatewayError):
        StripeGateway().refund(
            charge_reference=payment.gateway_reference, amount=100, currency="EUR", idempotency_key="refund:test"
        )


def test_sepa_debit_shows_iban_last4_and_mandate_and_is_charged(stripe_on, subscribe):
    subscription, invoice = subscribe(None)
    method = payment_method_attach(customer=invoice.customer, source={"iban": SEPA_OK})

    assert (method.kind, method.iban_last4) == ("sepa_debit", "3000") and method.mandate_reference
    assert SEPA_OK not in str(djstripe_models.PaymentMethod.objects.get(id=method.token).stripe_data)

    payment = invoice_collect(invoice=invoice)

    # localstripe settles a good SEPA debit at once (Stripe says `processing`, then a webhook).
    assert payment.status == Payment.Status.SUCCEEDED
    intent = stripe_on.v1.payment_intents.retrieve(payment.gateway_reference)
    assert intent.payment_method == method.token and intent.amount == invoice.total


def test_wallets_and_link_are_shown_from_the_card_wallet():
    apple_pay = payment_method_details(
        {
            "id": "pm_1",
            "type": "card",
            "card": {
                "brand": "visa",
                "last4": "4242",
                "exp_month": 1,
                "exp_year": 2031,
                "wallet": {"type": "apple_pay"},
            },
        }
    )
    google_pay = payment_method_details(
        {
            "id": "pm_2",
            "type": "card",
            "card": {"brand": "mastercard", "last4": "4444", "wallet": {"type": "google_pay"}},
        }
    )
    link = payment_method_details({"id": "pm_3", "type": "link", "link": {"email": "a@example.com"}})

    assert (apple_pay.kind, apple_pay.wallet, apple_pay.last4, apple_pay.exp_year) == (
        "wallet",
        "apple_pay",
        "4242",
        2031,
    )
    assert (google_pay.kind, google_pay.wallet) == ("wallet", "google_pay")
    assert (link.kind, link.wallet) == ("wallet", "link")
    with pytest.raises(GatewayError):
        payment_method_details({"id": "pm_4", "type": "us_bank_account"})


def test_no_secret_key_no_stripe(settings, make_customer):
    settings.STRIPE_SECRET_KEY = ""

    with pytest.raises(GatewayError, match="STRIPE_SECRET_KEY"):
        StripeGateway().attach_payment_method(customer_reference=str(make_customer().pk), source=stripe_card(VISA_OK))
