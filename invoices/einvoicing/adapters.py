"""The protocol between Tarif and its approved platform (Plateforme Agréée, PA).

Modelled on the AFNOR XP Z12-013 API, which frames the exchanges between a company's
information system and its PA: flows in (invoices, credit notes, e-reporting, statuses),
lifecycle statuses out (pushed to a webhook or pulled by polling), and the directory
(annuaire) that tells where a SIREN/SIRET receives its invoices.

Implementations: `rest.RestPlatformAdapter` (any PA speaking this REST API, including the
local simulator, `python -m invoices.einvoicing.simulator`). Code that needs an adapter asks
`invoices.einvoicing.services.adapter_for_account(account=...)` and never builds one itself.

Errors: every method raises `PlatformUnavailable` (retry later: timeouts, 5xx, connection
refused or dropped) or `PlatformRejected` (final: a 4xx with the PA's reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from invoices.einvoicing.errors import PlatformRejected, PlatformUnavailable

Syntax = Literal["factur-x", "ubl", "cii"]
FlowType = Literal["invoice", "credit_note", "ereporting_transactions", "ereporting_payments", "status"]
Origin = Literal["issuer", "platform", "buyer"]

SYNTAXES: tuple[Syntax, ...] = ("factur-x", "ubl", "cii")
FLOW_TYPES: tuple[FlowType, ...] = (
    "invoice",
    "credit_note",
    "ereporting_transactions",
    "ereporting_payments",
    "status",
)
ORIGINS: tuple[Origin, ...] = ("issuer", "platform", "buyer")

__all__ = [
    "FLOW_TYPES",
    "ORIGINS",
    "SYNTAXES",
    "DirectoryAddress",
    "FlowReceipt",
    "FlowType",
    "Origin",
    "OutboundFlow",
    "OutboundStatus",
    "PlatformAdapter",
    "PlatformRejected",
    "PlatformUnavailable",
    "StatusPage",
    "StatusReport",
    "Syntax",
    "VatRateAmount",
]


@dataclass(frozen=True)
class OutboundFlow:
    """A document (or report) handed to the PA.

    `tracking_id` is our idempotency key: stable per document, the PA deduplicates on it, so
    a retry after a lost acknowledgement never makes a second flow.
    """

    tracking_id: str
    syntax: Syntax
    filename: str
    content: bytes = field(repr=False)
    flow_type: FlowType


@dataclass(frozen=True)
class FlowReceipt:
    """The PA's acknowledgement of a flow (`duplicate` when it had already received `tracking_id`)."""

    flow_id: str
    tracking_id: str
    duplicate: bool = False


@dataclass(frozen=True)
class StatusReport:
    """One lifecycle status of a flow, as the PA reports it (pushed or pulled)."""

    flow_id: str
    tracking_id: str
    code: str  # the reform's numeric code: "200" deposited ... "213" rejected
    occurred_at: datetime
    origin: Origin
    reason_code: str = ""
    reason_text: str = ""
    raw: dict[str, object] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class StatusPage:
    """One page of polled statuses; pass `next_cursor` to the next `poll_statuses` call."""

    reports: tuple[StatusReport, ...]
    next_cursor: str


@dataclass(frozen=True)
class VatRateAmount:
    """Part of a collected amount at one VAT rate (a "MEN" block of the CDAR status message)."""

    rate: str  # percent, as the invoice's VAT breakdown writes it: "20", "5.5", "0"
    amount: int  # minor units


@dataclass(frozen=True)
class OutboundStatus:
    """A status Tarif sends as the issuer (the reform's "212 Encaissée" with amount and date).

    For 212, `vat_amounts` splits `amount` per VAT rate (BR-FR-CDV-14: MDG-43 blocks "MEN",
    amount and rate); the parts add up to `amount`."""

    code: str
    occurred_at: datetime
    amount: int | None = None  # minor units
    currency: str = ""
    reason_code: str = ""
    reason_text: str = ""
    vat_amounts: tuple[VatRateAmount, ...] = ()


@dataclass(frozen=True)
class DirectoryAddress:
    """Where a company receives its e-invoices, per the directory (annuaire)."""

    siren: str
    siret: str
    routing_address: str  # the addressing identifier (BT-49 / buyer electronic address)
    platform: str  # the receiving platform's name or registration number
    name: str = ""


@runtime_checkable
class PlatformAdapter(Protocol):
    """The operations Tarif needs from its PA (AFNOR XP Z12-013 framing)."""

    def submit_flow(self, *, flow: OutboundFlow) -> FlowReceipt:
        """Deposit an invoice or credit note; idempotent on `flow.tracking_id`."""
        ...

    def get_flow_status(self, *, flow_id: str) -> list[StatusReport]:
        """Every status the PA holds for one flow, oldest first."""
        ...

    def poll_statuses(self, *, cursor: str) -> StatusPage:
        """Statuses of all our flows since `cursor` ("" from the beginning)."""
        ...

    def submit_status(self, *, flow_id: str, status: OutboundStatus) -> None:
        """Send a status as the issuer (e.g. 212 Encaissée)."""
        ...

    def submit_ereporting(self, *, flow: OutboundFlow) -> FlowReceipt:
        """Deposit an e-reporting flow (transactions or payments); idempotent on `tracking_id`."""
        ...

    def lookup_directory(self, *, siren: str, siret: str = "") -> DirectoryAddress | None:
        """The company's receiving address, None when the directory has no entry."""
        ...
