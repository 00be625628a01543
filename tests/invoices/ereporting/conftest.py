from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from invoices.einvoicing.adapters import FlowReceipt, OutboundFlow
from invoices.einvoicing.errors import PlatformRejected, PlatformUnavailable

# 5 October 2026, 09:30 UTC (11:30 in Paris): in the decade 1-10 October and the month of October.
IN_PERIOD = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)


@pytest.fixture
def brand(brand_factory):
    return brand_factory(
        slug="ereport-brand",
        invoice_number_format="ER-{year}-{seq:06d}",
        credit_note_number_format="ERA-{year}-{seq:06d}",
    )


@pytest.fixture
def vat_rates(tax_rate_factory):
    return (
        tax_rate_factory(country="FR", percentage=Decimal("20")),
        tax_rate_factory(country="DE", name="MwSt", percentage=Decimal("19")),
    )


class FakeAdapter:
    """The PA's e-reporting entry point, in memory: dedups on the tracking id like a PA."""

    def __init__(self, *, outcome: str = "accept") -> None:
        self.outcome = outcome
        self.flows: list[OutboundFlow] = []
        self.receipts: dict[str, FlowReceipt] = {}

    def submit_ereporting(self, *, flow: OutboundFlow) -> FlowReceipt:
        self.flows.append(flow)
        if self.outcome == "outage":
            raise PlatformUnavailable("connection refused")
        if self.outcome == "reject":
            raise PlatformRejected("REJ_SEMAN: period already declared")
        if flow.tracking_id in self.receipts:
            return FlowReceipt(
                flow_id=self.receipts[flow.tracking_id].flow_id, tracking_id=flow.tracking_id, duplicate=True
            )
        receipt = FlowReceipt(flow_id=f"flow-{len(self.receipts) + 1}", tracking_id=flow.tracking_id)
        self.receipts[flow.tracking_id] = receipt
        return receipt


@pytest.fixture
def fake_adapter():
    return FakeAdapter()
