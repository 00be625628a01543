"""Two sweepers at once on PostgreSQL: one submission (SKIP LOCKED claim, then the call outside the lock)."""

from __future__ import annotations

import time

import pytest

from invoices.einvoicing import services
from invoices.einvoicing.models import Transmission
from invoices.einvoicing.rest import RestPlatformAdapter
from invoices.einvoicing.services import transmissions_submit_due
from tests.billing.services.test_races import race
from tests.invoices.helpers import issue

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_sweepers_submit_a_document_once(postgres_only, sim, account, b2b_customer, fr_vat, monkeypatch):
    # given a queued transmission (the after-commit fast path is off: the sweepers race for it)
    monkeypatch.setattr(services, "_enqueue_submissions", lambda tracking_ids: None)
    invoice = issue(b2b_customer, [1000])
    original = RestPlatformAdapter.submit_flow

    def slow_submit(self, *, flow):
        time.sleep(0.3)  # the first sweeper is mid-call while the second looks for work
        return original(self, flow=flow)

    monkeypatch.setattr(RestPlatformAdapter, "submit_flow", slow_submit)

    # when two sweepers run at the same time
    results = race(transmissions_submit_due, transmissions_submit_due)

    # then exactly one submitted it, and the platform received one request
    assert sorted(results) == [0, 1]
    transmission = Transmission.objects.get(invoice=invoice)
    assert (transmission.state, transmission.attempts) == ("submitted", 1)
    assert sim.state()["submissions"] == {transmission.tracking_id: 1}
