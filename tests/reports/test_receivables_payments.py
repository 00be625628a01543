from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from billing.models import DunningCase, Meter, Payment, SubscriptionChange, UsageEvent
from billing.services.payments import payment_record_manual
from billing.services.usage import usage_events_insert
from reports.filters import ReportFilters
from reports.selectors import (
    ar_aging,
    customer_timeline,
    days_sales_outstanding,
    decline_reasons,
    dunning_recovery,
    invoices_by_status,
    payment_success,
    plan_change_history,
    usage_by_meter,
)
from tests.invoices.helpers import issue

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
H1 = ReportFilters(start=date(2026, 1, 1), end=date(2026, 6, 1))


def _owed(customer, amount: int, days_ago: int, terms: int = 30):
    return issue(
        customer,
        [amount],
        at=AS_OF - timedelta(days=days_ago),
        collection_method="send_invoice",
        days_until_due=terms,
    )


@pytest.fixture
def receivables(customer, customer_factory, tax_rate):
    """Invoices of 100 € (120 € with VAT) at known ages on 30 June 2026, 30-day terms.

    Issued oldest first: a number series is chronological (docs/billing.md)."""
    _owed(customer, 10000, days_ago=160)  # 130 days late
    _owed(customer, 10000, days_ago=100)  # 70 days late
    _owed(customer, 10000, days_ago=75)  # 45 days late
    paid = _owed(customer, 10000, days_ago=50)
    _owed(customer, 10000, days_ago=45)  # 15 days late
    late_payer = _owed(customer, 10000, days_ago=40)  # paid after the as-of date: still owed then
    _owed(customer, 10000, days_ago=10)  # due in 20 days: current
    payment_record_manual(invoice=paid, amount=paid.amount_due, method="bank_transfer", at=AS_OF - timedelta(days=5))
    payment_record_manual(
        invoice=late_payer, amount=late_payer.amount_due, method="bank_transfer", at=AS_OF + timedelta(days=3)
    )
    swiss = customer_factory(country="CH", legal_name="Bergbahn AG")  # export: no VAT
    _owed(swiss, 5000, days_ago=10)
    return customer


def test_aging_buckets(receivables):
    rows = {row.bucket: row for row in ar_aging(filters=H1, as_of=AS_OF)}

    assert list(rows) == ["current", "1-30", "31-60", "61-90", "90+"]
    assert (rows["current"].invoices, rows["current"].amount) == (2, 12000 + 5000)
    assert (rows["1-30"].invoices, rows["1-30"].amount) == (2, 24000)  # 15 days late + the late payer (10)
    assert (rows["31-60"].invoices, rows["61-90"].invoices, rows["90+"].invoices) == (1, 1, 1)
    assert rows["90+"].amount == 12000


def test_aging_filters_by_country(receivables):
    rows = {row.bucket: row for row in ar_aging(filters=replace(H1, country="CH"), as_of=AS_OF)}

    assert rows["current"].amount == 5000
    assert sum(row.invoices for row in rows.values()) == 1


def test_dso_is_receivables_over_billing_times_days(receivables, monkeypatch):
    from config import clock

    monkeypatch.setattr(clock, "system_now", lambda: AS_OF)
    (row,) = days_sales_outstanding(filters=H1)

    # Seven invoices of 120 € and one of 50 € issued in H1; one paid before the end.
    assert row.billed == 7 * 12000 + 5000
    assert row.receivables == 6 * 12000 + 5000
    assert row.days == (AS_OF - datetime(2025, 12, 31, 23, 0, tzinfo=UTC)).days
    assert row.dso == Fraction(row.receivables * row.days, row.billed)


def test_invoices_by_status(receivables):
    rows = {(row.status, row.currency): row for row in invoices_by_status(filters=H1)}

    assert rows[("paid", "EUR")].invoices == 2
    assert rows[("open", "EUR")].invoices == 6
    assert rows[("open", "EUR")].amount_remaining == 12000 * 5 + 5000


@pytest.fixture
def attempts(customer, tax_rate):
    invoice = issue(customer, [10000], at=datetime(2026, 2, 1, tzinfo=UTC))
    at = datetime(2026, 2, 1, 10, tzinfo=UTC)
    common = {"invoice": invoice, "customer": customer, "currency": "EUR", "amount": 12000}
    for attempt, (method, status, code) in enumerate(
        [
            ("card", "failed", "insufficient_funds"),
            ("card", "failed", "insufficient_funds"),
            ("card", "failed", "expired_card"),
            ("card", "succeeded", ""),
            ("sepa_debit", "succeeded", ""),
            ("sepa_debit", "pending", ""),
        ],
        start=1,
    ):
        Payment.objects.create(
            **common,
            method=method,
            gateway="sandbox",
            status=status,
            decline_code=code,
            attempt=attempt,
            attempted_at=at + timedelta(days=attempt),
        )
    return invoice


def test_payment_success_rate_by_method_and_gateway(attempts):
    rows = {(row.method, row.gateway): row for row in payment_success(filters=H1)}

    card = rows[("card", "sandbox")]
    assert (card.attempts, card.succeeded, card.failed, card.success_rate) == (4, 1, 3, Fraction(1, 4))
    sepa = rows[("sepa_debit", "sandbox")]
    assert sepa.success_rate == 1  # the pending attempt is not settled yet
    assert sepa.amount_succeeded == 12000


def test_decline_reasons_most_frequent_first(attempts):
    rows = decline_reasons(filters=H1)

    assert [(row.decline_code, row.failures) for row in rows] == [("insufficient_funds", 2), ("expired_card", 1)]


def test_dunning_recovery_rate_and_time(customer, tax_rate):
    started = datetime(2026, 3, 1, tzinfo=UTC)
    outcomes = [("recovered", 2), ("recovered", 6), ("exhausted", 20), ("active", None), ("closed", 3)]
    for days, (status, recovered_after) in enumerate(outcomes):
        invoice = issue(customer, [10000], at=started + timedelta(days=days))
        DunningCase.objects.create(
            invoice=invoice,
            customer=customer,
            status=status,
            started_at=started + timedelta(days=days),
            closed_at=None if recovered_after is None else started + timedelta(days=days + recovered_after),
        )

    (row,) = dunning_recovery(filters=H1)

    assert (row.cases, row.recovered, row.exhausted, row.active, row.closed) == (5, 2, 1, 1, 1)
    assert row.recovery_rate == Fraction(2, 3)
    assert row.average_time_to_recover == timedelta(days=4)
    assert row.longest_time_to_recover == timedelta(days=6)
    assert row.recovered_amount == 24000
    assert dunning_recovery(filters=ReportFilters(start=date(2026, 4, 1), end=date(2026, 4, 1))) == []


def test_usage_per_meter_and_customer(customer, customer_factory):
    calls = Meter.objects.create(key="api_calls", name="API calls", aggregation="sum")
    other = customer_factory(legal_name="Other")
    at = datetime(2026, 2, 10, tzinfo=UTC)
    # Through the ingestion's storage (events, dedup keys and rollups): the report reads rollups.
    usage_events_insert(
        rows=[
            *(
                UsageEvent(customer=who, meter=calls, external_id=f"e{index}", value=Decimal(value), timestamp=at)
                for index, (who, value) in enumerate([(customer, 5), (customer, 7), (other, 1)])
            ),
            UsageEvent(customer=customer, meter=calls, external_id="late", value=Decimal(100), timestamp=AS_OF),
        ]
    )

    rows = usage_by_meter(filters=ReportFilters(start=date(2026, 2, 1), end=date(2026, 2, 1)))

    assert [(row.customer_id, row.events, row.total, row.peak) for row in rows] == [
        (customer.pk, 2, Decimal(12), Decimal(7)),
        (other.pk, 1, Decimal(1), Decimal(1)),
    ]


def _subscription(customer, price):
    from billing.models import Subscription

    return Subscription.objects.create(
        customer=customer,
        status="active",
        currency="EUR",
        cycle=price.cycle,
        billing_cycle_anchor=datetime(2026, 1, 1, tzinfo=UTC),
        current_period_start=datetime(2026, 1, 1, tzinfo=UTC),
        current_period_end=datetime(2026, 2, 1, tzinfo=UTC),
    )


def test_plan_change_history_ranks_customers_and_the_timeline_shows_from_and_to(
    customer, customer_factory, price_factory
):
    basic, pro = price_factory(nickname="Basic", unit_amount=2900), price_factory(nickname="Pro", unit_amount=9900)
    hesitant = _subscription(customer, basic)
    steady = _subscription(customer_factory(legal_name="Steady"), basic)
    moves = [(basic, pro, 2900, 9900), (pro, basic, 9900, 2900), (basic, pro, 2900, 9900)]
    for month, (before, after, mrr_before, mrr_after) in enumerate(moves, start=1):
        SubscriptionChange.objects.create(
            subscription=hesitant,
            kind="change",
            effective_at=datetime(2026, month, 15, tzinfo=UTC),
            items_before=[{"price": before.pk, "quantity": 1}],
            items_after=[{"price": after.pk, "quantity": 1}],
            mrr_before=mrr_before,
            mrr_after=mrr_after,
        )
    SubscriptionChange.objects.create(
        subscription=steady,
        kind="change",
        effective_at=datetime(2026, 2, 1, tzinfo=UTC),
        mrr_before=2900,
        mrr_after=5800,
    )
    SubscriptionChange.objects.create(
        subscription=steady, kind="cancel", effective_at=datetime(2026, 3, 1, tzinfo=UTC), mrr_before=5800
    )

    rows = plan_change_history(filters=H1)

    assert [(row.customer, row.changes, row.upgrades, row.downgrades) for row in rows] == [
        (customer.legal_name, 3, 2, 1),
        ("Steady", 1, 1, 0),
    ]
    assert rows[0].mrr_change == 7000
    assert plan_change_history(filters=H1, min_changes=3)[0].customer_id == customer.pk
    assert len(plan_change_history(filters=H1, min_changes=3)) == 1

    timeline = customer_timeline(
        customer_id=customer.pk, start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 7, 1, tzinfo=UTC)
    )
    assert [(entry.details["from_plan"], entry.details["to_plan"]) for entry in timeline] == [
        ("Basic", "Pro"),
        ("Pro", "Basic"),
        ("Basic", "Pro"),
    ]
    assert [entry.at.month for entry in timeline] == [1, 2, 3]


def test_timeline_merges_invoices_payments_and_failures_in_order(attempts, customer):
    timeline = customer_timeline(
        customer_id=customer.pk, start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 7, 1, tzinfo=UTC)
    )

    assert [(entry.source, entry.kind) for entry in timeline] == [
        ("invoice", "open"),
        ("payment", "failed"),
        ("payment", "failed"),
        ("payment", "failed"),
        ("payment", "succeeded"),
        ("payment", "succeeded"),
        ("payment", "pending"),
    ]
    assert timeline[1].details["decline_code"] == "insufficient_funds"
    assert [entry.at for entry in timeline] == sorted(entry.at for entry in timeline)


def test_timeline_adds_the_rest_of_the_event_log_without_repeating_sources(customer):
    from config.events.log import event_record

    at = datetime(2026, 2, 3, tzinfo=UTC)
    for type in ("payment_method.attached", "invoice.finalized"):
        event_record(type=type, object_type="x", object_id=1, customer_id=customer.pk, occurred_at=at)

    timeline = customer_timeline(
        customer_id=customer.pk, start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 7, 1, tzinfo=UTC)
    )

    assert [(entry.source, entry.kind) for entry in timeline] == [("event", "payment_method.attached")]


def test_timeline_shows_notifications_sent_and_survey_answers(customer):
    # given an email sent to the customer and a cancellation survey they answered
    from customers.models import NotificationLog
    from feedback.models import Answer, Choice, Question, Survey, SurveyResponse

    sent_at = datetime(2026, 3, 1, 9, tzinfo=UTC)
    answered_at = datetime(2026, 3, 5, 17, tzinfo=UTC)
    NotificationLog.objects.create(
        customer=customer,
        kind="plan_changed",
        dedupe_key="change:7",
        status="sent",
        subject="Votre formule a changé",
        recipient="compta@example.com",
        sent_at=sent_at,
    )
    survey = Survey.objects.create(name="Churn", title_fr="Départ", title_en="Leaving", trigger="cancellation")
    nps = Question.objects.create(survey=survey, kind="nps", text_fr="Recommanderiez-vous ?", text_en="Recommend?")
    reason = Question.objects.create(survey=survey, kind="single", text_fr="Pourquoi ?", text_en="Why?", position=1)
    too_expensive = Choice.objects.create(
        question=reason, code="too_expensive", label_fr="Trop cher", label_en="Pricey"
    )
    response = SurveyResponse.objects.create(
        survey=survey, customer=customer, trigger="cancellation", language="fr", submitted_at=answered_at
    )
    Answer.objects.create(response=response, question=nps, score=4)
    Answer.objects.create(response=response, question=reason).choices.add(too_expensive)

    # when
    timeline = customer_timeline(
        customer_id=customer.pk, start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 7, 1, tzinfo=UTC)
    )

    # then both appear in order, with what was sent and what was answered
    assert [(entry.source, entry.at) for entry in timeline] == [("notification", sent_at), ("survey", answered_at)]
    assert timeline[0].kind == "plan_changed:sent" and timeline[0].summary == "Votre formule a changé"
    assert timeline[1].kind == "cancellation" and timeline[1].details["answers"] == "nps=4; too_expensive"


def test_reports_count_live_data_unless_asked_for_test_mode(customer, customer_factory, tax_rate):
    # given a live invoice and a test-mode one (a sandbox customer: a simulation)
    _owed(customer, 10000, days_ago=10)
    sandbox = customer_factory(livemode=False, legal_name="Sandbox SAS")
    _owed(sandbox, 30000, days_ago=10)

    # when the receivables are reported, by default and for test mode
    live_rows = {(row.status, row.currency): row for row in invoices_by_status(filters=H1)}
    test_rows = {(row.status, row.currency): row for row in invoices_by_status(filters=replace(H1, livemode=False))}

    # then each mode counts its own invoices only
    assert live_rows[("open", "EUR")].invoices == 1 and live_rows[("open", "EUR")].amount_remaining == 12000
    assert test_rows[("open", "EUR")].invoices == 1 and test_rows[("open", "EUR")].amount_remaining == 36000
