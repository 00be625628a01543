"""finalize -> charge -> paid / failed -> dunning -> recovered or final outcome, per sandbox card."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.models import DunningCase, Payment, SandboxCharge, Subscription
from billing.payments.sandbox import SIGNATURE_HEADER, SandboxGateway, sign_webhook
from billing.services.dunning import dunning_run_due
from billing.services.payments import (
    invoice_collect,
    payment_method_attach,
    payment_record_manual,
    payment_webhook_handle,
)
from config.events.models import DomainEvent
from invoices.models import Invoice
from tests.billing.payments.conftest import (
    DECLINED,
    INSUFFICIENT_FUNDS,
    REQUIRES_AUTH,
    T0,
    VISA_OK,
    card,
)

pytestmark = pytest.mark.django_db
Status = Subscription.Status


def events(type_prefix: str) -> list[str]:
    return list(DomainEvent.objects.filter(type__startswith=type_prefix).values_list("type", flat=True))


def test_finalizing_a_charge_automatically_invoice_charges_it_after_commit(
    subscribe, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        subscription, invoice = subscribe(VISA_OK)

    invoice.refresh_from_db()
    payment = Payment.objects.get(invoice=invoice)
    assert invoice.status == Invoice.Status.PAID and invoice.amount_paid == invoice.total == 3480
    assert (payment.status, payment.amount, payment.idempotency_key) == (
        Payment.Status.SUCCEEDED,
        3480,
        f"invoice:{invoice.pk}:attempt:1",
    )
    assert "payment.succeeded" in events("payment.")


def test_a_send_invoice_invoice_is_not_charged(subscribe, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _, invoice = subscribe(VISA_OK, collection_method="send_invoice", days_until_due=15)

    assert not Payment.objects.filter(invoice=invoice).exists()
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.OPEN and invoice.due_at == T0 + timedelta(days=15)


@pytest.mark.parametrize(
    ("number", "status", "decline_code"),
    [
        (DECLINED, Payment.Status.FAILED, "generic_decline"),
        (INSUFFICIENT_FUNDS, Payment.Status.FAILED, "insufficient_funds"),
        (REQUIRES_AUTH, Payment.Status.REQUIRES_ACTION, "authentication_required"),
    ],
)
def test_a_failed_charge_is_recorded_and_starts_dunning(charged, number, status, decline_code):
    subscription, invoice = charged(number)

    payment = Payment.objects.get(invoice=invoice)
    assert (payment.status, payment.decline_code) == (status, decline_code)
    assert invoice.status == Invoice.Status.OPEN and invoice.amount_paid == 0
    assert subscription.status == Status.PAST_DUE
    case = DunningCase.objects.get(invoice=invoice)
    assert case.next_retry_at == T0 + timedelta(days=1)
    assert case.schedule_days == [1, 3, 5, 7]
    assert "dunning.started" in events("dunning.")


FAILING_CARDS = [
    (DECLINED, Payment.Status.FAILED),
    (INSUFFICIENT_FUNDS, Payment.Status.FAILED),
    (REQUIRES_AUTH, Payment.Status.REQUIRES_ACTION),
]


@pytest.mark.parametrize(("number", "attempt_status"), FAILING_CARDS)
def test_dunning_retries_on_schedule_then_cancels(charged, now, number, attempt_status):
    subscription, invoice = charged(number)

    for day in (1, 3, 5):
        now.move_to(T0 + timedelta(days=day, minutes=5))
        assert dunning_run_due(as_of=T0 + timedelta(days=day, minutes=5)) == 1
        assert DunningCase.objects.get(invoice=invoice).status == DunningCase.Status.ACTIVE
    now.move_to(T0 + timedelta(days=7, minutes=5))
    dunning_run_due(as_of=T0 + timedelta(days=7, minutes=5))

    attempts = Payment.objects.filter(invoice=invoice).order_by("attempt")
    assert [p.attempt for p in attempts] == [1, 2, 3, 4, 5]
    assert {p.status for p in attempts} == {attempt_status}
    case = DunningCase.objects.get(invoice=invoice)
    assert (case.status, case.final_action, case.retries_done) == (DunningCase.Status.EXHAUSTED, "cancel", 4)
    subscription.refresh_from_db()
    assert subscription.status == Status.CANCELED
    assert events("dunning.") == ["dunning.started"] + ["dunning.retry_failed"] * 4 + ["dunning.exhausted"]
    assert SandboxCharge.objects.count() == 5


def test_nothing_is_retried_before_its_time(charged):
    _, invoice = charged(DECLINED)

    assert dunning_run_due(as_of=T0 + timedelta(hours=23)) == 0
    assert Payment.objects.filter(invoice=invoice).count() == 1


@pytest.mark.parametrize(
    ("final_action", "subscription_status", "invoice_status"),
    [
        ("unpaid", Status.UNPAID, Invoice.Status.OPEN),
        ("uncollectible", Status.ACTIVE, Invoice.Status.UNCOLLECTIBLE),
    ],
)
def test_configurable_final_outcome(charged, settings, final_action, subscription_status, invoice_status):
    settings.TARIF_DUNNING_SCHEDULE_DAYS = [2]
    settings.TARIF_DUNNING_FINAL_ACTION = final_action
    subscription, invoice = charged(INSUFFICIENT_FUNDS)

    dunning_run_due(as_of=T0 + timedelta(days=3))

    subscription.refresh_from_db()
    invoice.refresh_from_db()
    assert (subscription.status, invoice.status) == (subscription_status, invoice_status)
    assert DunningCase.objects.get(invoice=invoice).final_action == final_action


def test_a_scheduled_retry_succeeds_with_the_new_default_card(charged):
    subscription, invoice = charged(INSUFFICIENT_FUNDS)
    # Added from a context whose on_commit retry does not run: the schedule picks it up.
    payment_method_attach(customer=subscription.customer, source=card(VISA_OK))

    dunning_run_due(as_of=T0 + timedelta(days=1, minutes=1))

    invoice.refresh_from_db()
    subscription.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert subscription.status == Status.ACTIVE
    assert DunningCase.objects.get(invoice=invoice).status == DunningCase.Status.RECOVERED
    assert "dunning.recovered" in events("dunning.")


@pytest.mark.parametrize(("number", "first_status"), FAILING_CARDS)
def test_a_new_payment_method_triggers_an_immediate_retry(
    charged, django_capture_on_commit_callbacks, number, first_status
):
    subscription, invoice = charged(number)

    with django_capture_on_commit_callbacks(execute=True):
        payment_method_attach(customer=subscription.customer, source=card(VISA_OK))

    invoice.refresh_from_db()
    subscription.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert subscription.status == Status.ACTIVE
    assert [p.status for p in Payment.objects.filter(invoice=invoice).order_by("attempt")] == [
        first_status,
        Payment.Status.SUCCEEDED,
    ]
    assert DunningCase.objects.get(invoice=invoice).status == DunningCase.Status.RECOVERED


def test_without_a_payment_method_the_invoice_waits_then_enters_dunning(charged):
    subscription, invoice = charged(None)
    assert not Payment.objects.filter(invoice=invoice).exists()
    assert subscription.status == Status.ACTIVE

    dunning_run_due(as_of=T0 + timedelta(hours=2))
    subscription.refresh_from_db()
    assert subscription.status == Status.PAST_DUE
    dunning_run_due(as_of=T0 + timedelta(days=1, minutes=1))

    payment = Payment.objects.get(invoice=invoice)
    assert (payment.status, payment.decline_code) == (Payment.Status.FAILED, "no_payment_method")
    assert SandboxCharge.objects.count() == 0
    assert DunningCase.objects.get(invoice=invoice).retries_done == 1


def test_authentication_completed_later_settles_the_invoice_once(charged):
    subscription, invoice = charged(REQUIRES_AUTH)
    payment = Payment.objects.get(invoice=invoice)

    payload = SandboxGateway().complete_authentication(charge_reference=payment.gateway_reference)
    headers = {SIGNATURE_HEADER: sign_webhook(payload)}
    first = payment_webhook_handle(gateway_name="sandbox", payload=payload, headers=headers)
    duplicate = payment_webhook_handle(gateway_name="sandbox", payload=payload, headers=headers)

    invoice.refresh_from_db()
    subscription.refresh_from_db()
    assert (first, duplicate) == (True, False)
    assert invoice.status == Invoice.Status.PAID and invoice.amount_paid == 3480
    assert subscription.status == Status.ACTIVE


def test_a_forged_webhook_is_refused(charged):
    from billing.payments.gateway import GatewayError

    _, invoice = charged(REQUIRES_AUTH)
    payment = Payment.objects.get(invoice=invoice)
    payload = SandboxGateway().complete_authentication(charge_reference=payment.gateway_reference)

    with pytest.raises(GatewayError):
        payment_webhook_handle(gateway_name="sandbox", payload=payload, headers={SIGNATURE_HEADER: "forged"})
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.OPEN


@pytest.mark.parametrize(
    ("iban", "status", "decline_code"),
    [
        ("AT611904300234573201", Invoice.Status.PAID, ""),
        ("AT861904300235473202", Invoice.Status.OPEN, "insufficient_funds"),
    ],
)
def test_sepa_direct_debit_collection(subscribe, iban, status, decline_code):
    subscription, invoice = subscribe(None)
    payment_method_attach(customer=subscription.customer, source={"iban": iban})

    payment = invoice_collect(invoice=invoice)

    invoice.refresh_from_db()
    assert (payment.method, payment.decline_code, invoice.status) == ("sepa_debit", decline_code, status)


def test_partial_manual_payment_then_the_card_pays_the_rest(charged, staff):
    subscription, invoice = charged(DECLINED)

    payment_record_manual(invoice=invoice, amount=1000, method="cheque", reference="CHQ 0042", acting_user=staff)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.amount_remaining) == (Invoice.Status.OPEN, 1000, 2480)

    payment_method_attach(customer=subscription.customer, source=card(VISA_OK))
    retry = invoice_collect(invoice=invoice)

    invoice.refresh_from_db()
    assert retry.amount == 2480 and retry.status == Payment.Status.SUCCEEDED
    assert invoice.status == Invoice.Status.PAID and invoice.amount_paid == 3480


def test_an_overdue_send_invoice_invoice_gets_reminders_then_the_final_action(subscribe, settings):
    settings.TARIF_DUNNING_SCHEDULE_DAYS = [1, 3]
    settings.TARIF_DUNNING_FINAL_ACTION = "unpaid"
    subscription, invoice = subscribe(VISA_OK, collection_method="send_invoice", days_until_due=15)

    dunning_run_due(as_of=T0 + timedelta(days=15, hours=1))
    subscription.refresh_from_db()
    assert subscription.status == Status.PAST_DUE
    dunning_run_due(as_of=T0 + timedelta(days=19))

    subscription.refresh_from_db()
    assert subscription.status == Status.UNPAID
    assert not Payment.objects.filter(invoice=invoice).exists()  # reminders, never charges
    assert events("dunning.") == ["dunning.started", "dunning.reminder", "dunning.reminder", "dunning.exhausted"]


def test_a_step_of_the_schedule_runs_once_even_if_two_runners_reach_it(charged):
    _, invoice = charged(DECLINED)
    due = T0 + timedelta(days=1, minutes=1)

    dunning_run_due(as_of=due)
    late = invoice_collect(invoice=invoice, at=due, scheduled_retry=True)  # a second runner, just behind

    assert late is None
    assert Payment.objects.filter(invoice=invoice).count() == 2
    assert DunningCase.objects.get(invoice=invoice).retries_done == 1


def test_an_authentication_completed_after_another_card_paid_becomes_customer_credit(
    charged, django_capture_on_commit_callbacks
):
    from invoices.selectors import customer_balance

    subscription, invoice = charged(REQUIRES_AUTH)
    waiting = Payment.objects.get(invoice=invoice)
    with django_capture_on_commit_callbacks(execute=True):
        payment_method_attach(customer=subscription.customer, source=card(VISA_OK))

    payload = SandboxGateway().complete_authentication(charge_reference=waiting.gateway_reference)
    payment_webhook_handle(gateway_name="sandbox", payload=payload, headers={SIGNATURE_HEADER: sign_webhook(payload)})

    invoice.refresh_from_db()
    waiting.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID and invoice.amount_paid == 3480  # paid once
    assert waiting.status == Payment.Status.SUCCEEDED
    assert customer_balance(customer_id=subscription.customer_id, currency="EUR") == 3480
    assert "payment.overpaid" in events("payment.")
