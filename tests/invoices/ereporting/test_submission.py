"""Submission through the PA adapter, statuses, corrections, the archive of what was sent."""

from __future__ import annotations

from datetime import date

import pytest
from lxml import etree

from invoices.archive.models import ArchiveRecord
from invoices.archive.services import archive_verify
from invoices.einvoicing.errors import PlatformUnavailable
from invoices.ereporting.errors import EReportingInvalidTransition, EReportingPeriodOpen
from invoices.ereporting.flows import NAMESPACE
from invoices.ereporting.models import EReportingPeriod
from invoices.ereporting.services import (
    ereporting_period_build,
    ereporting_period_submit,
    ereporting_status_record,
)
from tests.invoices.ereporting.conftest import IN_PERIOD, FakeAdapter
from tests.invoices.helpers import issue

pytestmark = pytest.mark.django_db

State = EReportingPeriod.State
NS = {"r": NAMESPACE}


def _build(brand):
    return ereporting_period_build(brand=brand, livemode=True, kind="transactions", start=date(2026, 10, 1))


def test_built_period_is_submitted_once_archived_and_accepted(brand, vat_rates, customer_factory, fake_adapter):
    # given a built decade with one consumer invoice
    issue(customer_factory(brand=brand, is_business=False), [10000], at=IN_PERIOD)
    period = _build(brand)
    flow = etree.fromstring(bytes(period.content))
    assert flow.findtext("r:TransactionsReport/r:Transactions/r:TaxExclusiveAmount", namespaces=NS) == "100.00"
    assert flow.findtext("r:TransactionsReport/r:Transactions/r:CategoryCode", namespaces=NS) == "TPS1"

    # when it is submitted, and submitted again
    submitted = ereporting_period_submit(period=period, adapter=fake_adapter)
    with pytest.raises(EReportingInvalidTransition):
        ereporting_period_submit(period=period, adapter=fake_adapter)

    # then the PA received one flow, the period holds its flow id, the archive holds the bytes sent
    assert [flow.tracking_id for flow in fake_adapter.flows] == [period.tracking_id]
    assert fake_adapter.flows[0].flow_type == "ereporting_transactions"
    assert (submitted.state, submitted.flow_id) == (State.SUBMITTED, "flow-1")
    [record] = ArchiveRecord.objects.filter(kind="ereport")
    assert bytes(record.content) == bytes(period.content) and record.reference == period.tracking_id
    assert archive_verify() == []

    # and the PA's verdict is recorded once, a duplicate delivery changes nothing
    ereporting_status_record(period=submitted, state=State.ACCEPTED, origin="platform")
    accepted = ereporting_status_record(period=submitted, state=State.ACCEPTED, origin="platform")
    assert accepted.state == State.ACCEPTED
    assert list(accepted.statuses.values_list("state", flat=True)) == ["built", "submitted", "accepted"]


def test_rebuilding_a_submitted_period_makes_a_corrective_version(brand, vat_rates, customer_factory, fake_adapter):
    # given a submitted decade, then a late invoice dated in it (e.g. imported)
    consumer = customer_factory(brand=brand, is_business=False)
    issue(consumer, [10000], at=IN_PERIOD)
    first = ereporting_period_submit(period=_build(brand), adapter=fake_adapter)
    issue(consumer, [500], at=IN_PERIOD)

    # when the period is rebuilt and the correction submitted
    correction = _build(brand)
    ereporting_period_submit(period=correction, adapter=fake_adapter)

    # then version 2 corrects version 1 (flagged in the flow), which becomes "corrected"
    first.refresh_from_db()
    correction.refresh_from_db()
    assert (correction.version, correction.corrects_id, correction.state) == (2, first.pk, State.SUBMITTED)
    assert first.state == State.CORRECTED
    flow = etree.fromstring(bytes(correction.content))
    assert flow.findtext("r:ReportDocument/r:TypeCode", namespaces=NS) == "CORRECTION"
    assert flow.findtext("r:ReportDocument/r:CorrectedReportId", namespaces=NS) == first.tracking_id
    assert sum(row["taxable_amount"] for row in correction.totals["rows"]) == 10500
    assert len(fake_adapter.flows) == 2 and ArchiveRecord.objects.filter(kind="ereport").count() == 2


def test_rebuilding_a_built_period_changes_it_in_place(brand, vat_rates, customer_factory):
    issue(customer_factory(brand=brand, is_business=False), [10000], at=IN_PERIOD)
    first = _build(brand)
    again = _build(brand)

    assert again.pk == first.pk and again.version == 1
    assert EReportingPeriod.objects.count() == 1


def test_outage_leaves_the_period_built_and_a_retry_is_deduplicated(brand, vat_rates, customer_factory):
    issue(customer_factory(brand=brand, is_business=False), [10000], at=IN_PERIOD)
    period = _build(brand)
    adapter = FakeAdapter(outcome="outage")

    with pytest.raises(PlatformUnavailable):
        ereporting_period_submit(period=period, adapter=adapter)
    period.refresh_from_db()
    assert (period.state, period.submit_attempts) == (State.BUILT, 1)
    assert not ArchiveRecord.objects.exists()

    # the retry sends the same tracking id, which the PA deduplicates
    adapter.outcome = "accept"
    ereporting_period_submit(period=period, adapter=adapter)
    period.refresh_from_db()
    assert period.state == State.SUBMITTED and period.submit_attempts == 2
    assert [flow.tracking_id for flow in adapter.flows] == [period.tracking_id, period.tracking_id]


def test_rejection_is_recorded_with_the_reason_and_a_rebuild_is_a_new_version(brand, vat_rates, customer_factory):
    issue(customer_factory(brand=brand, is_business=False), [10000], at=IN_PERIOD)
    period = ereporting_period_submit(period=_build(brand), adapter=FakeAdapter(outcome="reject"))

    assert period.state == State.REJECTED and "REJ_SEMAN" in period.reason
    retry = _build(brand)
    assert (retry.version, retry.corrects_id) == (2, None)


def test_a_period_that_has_not_ended_cannot_be_submitted(brand, fake_adapter):
    from django.utils import timezone

    today = timezone.now().date()
    period = ereporting_period_build(brand=brand, livemode=True, kind="payments", start=today.replace(day=1))

    with pytest.raises(EReportingPeriodOpen):
        ereporting_period_submit(period=period, adapter=fake_adapter)
    assert fake_adapter.flows == []
