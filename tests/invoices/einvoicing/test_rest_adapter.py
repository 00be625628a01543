"""The REST adapter's error mapping and token handling, against the simulator and dead sockets."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest

from invoices.einvoicing.adapters import OutboundFlow, OutboundStatus, PlatformAdapter, VatRateAmount
from invoices.einvoicing.errors import PlatformRejected, PlatformUnavailable
from invoices.einvoicing.rest import RestCredentials, RestPlatformAdapter


def adapter(url: str, *, secret: str = "s3cret", timeout=(2.0, 2.0)) -> RestPlatformAdapter:
    return RestPlatformAdapter(
        RestCredentials(
            base_url=url, token_url=f"{url}/oauth/token", client_id=f"tarif-{secret}", client_secret=secret
        ),
        timeout=timeout,
    )


def flow(tracking_id: str = "t-1", syntax: str = "factur-x") -> OutboundFlow:
    return OutboundFlow(
        tracking_id=tracking_id, syntax=syntax, filename="F-1.pdf", content=b"%PDF", flow_type="invoice"
    )  # type: ignore[arg-type]


def test_the_adapter_satisfies_the_protocol(sim):
    assert isinstance(adapter(sim.url), PlatformAdapter)


def test_submission_is_idempotent_on_the_tracking_id(sim):
    client = adapter(sim.url)
    first = client.submit_flow(flow=flow())
    second = client.submit_flow(flow=flow())
    assert (first.duplicate, second.duplicate, second.flow_id) == (False, True, first.flow_id)
    assert [report.code for report in client.get_flow_status(flow_id=first.flow_id)] == ["200", "202", "203"]
    page = client.poll_statuses(cursor="")
    assert len(page.reports) == 3 and page.next_cursor == "3"
    assert client.poll_statuses(cursor=page.next_cursor).reports == ()


def test_5xx_and_dropped_connections_are_unavailable(sim):
    client = adapter(sim.url)
    sim.control("outage", count=1, mode="503")
    with pytest.raises(PlatformUnavailable):
        client.submit_flow(flow=flow())
    sim.control("outage", count=1, mode="drop")
    with pytest.raises(PlatformUnavailable):
        client.submit_flow(flow=flow())
    assert sim.state()["flows"] == []


def test_connection_refused_and_timeouts_are_unavailable():
    with socket.socket() as listener:  # a port that accepts connections but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        silent = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(PlatformUnavailable):
            RestPlatformAdapter(RestCredentials(base_url=silent), timeout=(0.5, 0.5)).submit_flow(flow=flow())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(PlatformUnavailable):
        RestPlatformAdapter(RestCredentials(base_url=closed)).lookup_directory(siren="732829320")


def test_4xx_is_rejected_with_the_platforms_reason(sim):
    client = adapter(sim.url)
    with pytest.raises(PlatformRejected) as rejected:
        client.submit_flow(flow=flow(syntax="pdf"))
    assert (rejected.value.reason_code, rejected.value.status_code) == ("BAD_SYNTAX", 400)
    with pytest.raises(PlatformRejected) as bad_status:
        client.submit_status(
            flow_id=client.submit_flow(flow=flow()).flow_id,
            status=OutboundStatus(code="213", occurred_at=datetime.now(UTC)),
        )
    assert bad_status.value.reason_code == "BAD_STATUS"


def test_bad_client_credentials_are_rejected(sim):
    with pytest.raises(PlatformRejected) as rejected:
        adapter(sim.url, secret="bad").submit_flow(flow=flow())
    assert rejected.value.status_code == 401


def test_directory_lookup_found_and_not_found(sim):
    client = adapter(sim.url)
    found = client.lookup_directory(siren="732829320")
    assert found is not None and found.routing_address == "0225:732829320"
    assert client.lookup_directory(siren="443061841") is None
    with pytest.raises(PlatformRejected):
        client.lookup_directory(siren="12")


def collected(amount: int = 12000, parts: tuple[tuple[str, int], ...] = (("20", 10550), ("5.5", 1450))):
    return OutboundStatus(
        code="212",
        occurred_at=datetime(2026, 3, 20, tzinfo=UTC),
        amount=amount,
        currency="EUR",
        vat_amounts=tuple(VatRateAmount(rate=rate, amount=part) for rate, part in parts),
    )


def test_the_issuer_sends_the_collected_status_with_its_amount_per_vat_rate(sim):
    client = adapter(sim.url)
    receipt = client.submit_flow(flow=flow())
    client.submit_status(flow_id=receipt.flow_id, status=collected())
    [sent] = sim.state()["issuer_statuses"]
    assert (sent["code"], sent["amount"], sent["currency"]) == ("212", 12000, "EUR")
    assert sent["collectedByVatRate"] == [
        {"typeCode": "MEN", "vatRate": "20", "amount": 10550},
        {"typeCode": "MEN", "vatRate": "5.5", "amount": 1450},
    ]


@pytest.mark.parametrize(
    "status",
    [
        collected(parts=()),  # no split per rate
        collected(parts=(("20", 10550), ("5.5", 1449))),  # parts that do not add up
        collected(parts=(("20", 6000), ("20", 6000))),  # one rate twice
        collected(parts=(("20 %", 12000),)),  # not a rate
        collected(amount=0, parts=(("20", 0),)),  # nothing collected
    ],
    ids=["no-split", "wrong-sum", "rate-twice", "bad-rate", "zero"],
)
def test_the_platform_refuses_a_collected_status_without_a_valid_split_per_rate(sim, status):
    # BR-FR-CDV-14, as the simulator checks it: the negative controls of the split
    client = adapter(sim.url)
    receipt = client.submit_flow(flow=flow())
    with pytest.raises(PlatformRejected) as refused:
        client.submit_status(flow_id=receipt.flow_id, status=status)
    assert refused.value.reason_code == "BR-FR-CDV-14"
    assert sim.state()["issuer_statuses"] == []
