"""End to end with the PA simulator (invoices/einvoicing/simulator.py as a subprocess): the beat
sweep builds the closed periods, submits them once, pulls the statuses; reconciled to the cent."""

from __future__ import annotations

from datetime import date

import pytest

from invoices.archive.models import ArchiveRecord
from invoices.ereporting.models import EReportingPeriod
from invoices.ereporting.selectors import ereporting_document_totals
from invoices.ereporting.tasks import ereporting_close_due_task
from tests.invoices.einvoicing.conftest import Sim, simulator_process  # noqa: F401 (the session fixture)
from tests.invoices.ereporting.conftest import IN_PERIOD
from tests.invoices.helpers import issue

pytestmark = pytest.mark.django_db


@pytest.fixture
def sim(simulator_process):  # noqa: F811
    simulator = Sim(simulator_process)
    simulator.control("reset")
    return simulator


@pytest.fixture
def account(brand, sim):
    from invoices.einvoicing.models import PlatformAccount

    return PlatformAccount.objects.create(
        brand=brand,
        livemode=True,
        name="Simulated PA",
        kind=PlatformAccount.Kind.SIMULATOR,
        base_url=sim.url,
        token_url=f"{sim.url}/oauth/token",
        client_id="tarif",
        client_secret="s3cret",
        webhook_secret="whsec-test",
    )


def test_sweep_builds_submits_once_and_pulls_statuses(settings, brand, vat_rates, customer_factory, account, sim):
    # given consumer sales in the first decade of October, e-reporting from 1 October
    settings.TARIF_EREPORTING_SINCE = "2026-10-01"
    consumer = customer_factory(brand=brand, is_business=False)
    issue(consumer, [10000, 2550], at=IN_PERIOD)

    # when the beat task runs twice (the second run polls the statuses)
    ereporting_close_due_task.delay()
    ereporting_close_due_task.delay()

    # then the decade was submitted once, archived, and accepted after the PA's statuses
    decade = EReportingPeriod.objects.get(kind="transactions", start=date(2026, 10, 1))
    assert decade.state == EReportingPeriod.State.ACCEPTED
    state = sim.state()
    flows = [flow for flow in state["flows"] if flow["trackingId"] == decade.tracking_id]
    assert len(flows) == 1 and flows[0]["ereporting"] is True
    assert state["submissions"][decade.tracking_id] == 1
    assert ArchiveRecord.objects.filter(reference=decade.tracking_id).count() == 1
    [documents] = ereporting_document_totals(brand=brand, livemode=True, start=decade.start, end=decade.end)
    assert sum(row["taxable_amount"] for row in decade.totals["rows"]) == documents.net_excluding_tax == 12550
    assert sum(row["tax_amount"] for row in decade.totals["rows"]) == documents.net_tax == 2510


def test_simulated_rejection_is_recorded_with_its_reason(settings, brand, vat_rates, customer_factory, account, sim):
    settings.TARIF_EREPORTING_SINCE = "2026-10-01"
    issue(customer_factory(brand=brand, is_business=False), [10000], at=IN_PERIOD)
    tracking_id = f"ereport-{brand.pk}-live-transactions-20261001-v1"
    sim.control("rules", tracking_id=tracking_id, outcome="reject", reason_code="REJ_SEMAN", reason_text="bad totals")

    ereporting_close_due_task.delay()
    ereporting_close_due_task.delay()

    decade = EReportingPeriod.objects.get(kind="transactions", start=date(2026, 10, 1))
    assert decade.state == EReportingPeriod.State.REJECTED
    assert "bad totals" in decade.reason


def test_statuses_polled_through_the_einvoicing_account_reach_the_ereporting_period(
    settings, brand, vat_rates, customer_factory, account, sim
):
    """The e-invoicing poll (and webhook) finds no document for an e-reporting flow: it hands the
    status over (unmatched_status_received) and the period applies it."""
    from invoices.einvoicing.services import account_poll_statuses

    settings.TARIF_EREPORTING_SINCE = "2026-10-01"
    issue(customer_factory(brand=brand, is_business=False), [10000], at=IN_PERIOD)
    ereporting_close_due_task.delay()  # built and submitted; its statuses not pulled yet
    decade = EReportingPeriod.objects.get(kind="transactions", start=date(2026, 10, 1))
    assert decade.state == EReportingPeriod.State.SUBMITTED

    account_poll_statuses(account=account)

    decade.refresh_from_db()
    assert decade.state == EReportingPeriod.State.ACCEPTED
