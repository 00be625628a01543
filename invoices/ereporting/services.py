"""Writes of e-reporting: build a period's report, submit it through the PA, record its statuses.

State machine (EReportingPeriod.State), enforced here under the period's row lock:

    draft/built --build--> built (rebuilt in place: never sent)
    built --submit--> submitted --PA--> accepted | rejected
    submitted/accepted/rejected --build--> a new version (v+1) of the period, `corrects` the
        last version the PA received; it becomes `corrected` once the new version is submitted.

Submission follows the house rule (no external call under a lock): mark the attempt and
commit, call the PA outside any transaction, then record the outcome. A crash in between
leaves the period `built` with its attempt counted: the sweeper submits it again with the
same tracking id, which the PA deduplicates (docs/ereporting.md, "Submission").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict
from datetime import date, datetime
from typing import Protocol

from django.db import transaction

from config.clock import system_now
from config.types import JsonDict
from invoices.archive.models import ArchiveRecord
from invoices.archive.services import archive_append
from invoices.einvoicing.adapters import FlowReceipt, OutboundFlow, PlatformAdapter, StatusReport
from invoices.einvoicing.errors import PlatformRejected
from invoices.einvoicing.models import PlatformAccount
from invoices.ereporting.errors import (
    EReportingExchangeRateMissing,
    EReportingInvalidTransition,
    EReportingPeriodInvalid,
    EReportingPeriodOpen,
)
from invoices.ereporting.flows import render_flow
from invoices.ereporting.locks import ereporting_period_qs_for_update
from invoices.ereporting.models import EReportingPeriod, EReportingRegime, EReportingStatus, Regime
from invoices.ereporting.periods import period_containing, periods_closed_between
from invoices.ereporting.selectors import (
    PaymentTotal,
    TransactionTotal,
    ereporting_payment_totals,
    ereporting_transaction_totals,
)
from invoices.models import Brand

State = EReportingPeriod.State
RECEIVED_BY_PA = (State.SUBMITTED, State.ACCEPTED, State.REJECTED)
PA_OUTCOMES = {State.ACCEPTED, State.REJECTED}


class EReportingSubmitter(Protocol):
    """The one operation of the PA adapter (invoices.einvoicing.adapters.PlatformAdapter) used here."""

    def submit_ereporting(self, *, flow: OutboundFlow) -> FlowReceipt: ...


def brand_regime(*, brand: Brand) -> str:
    regime = EReportingRegime.objects.filter(brand=brand).values_list("regime", flat=True).first()
    return regime or Regime.NORMAL_MONTHLY


def tracking_id_for(*, brand: Brand, livemode: bool, kind: str, start: date, version: int) -> str:
    """Deterministic per period version: the PA deduplicates a retried submission on it."""
    mode = "live" if livemode else "test"
    return f"ereport-{brand.pk}-{mode}-{kind}-{start:%Y%m%d}-v{version}"


def _totals_json(*, transactions: list[TransactionTotal], payments: list[PaymentTotal]) -> JsonDict:
    rows: list[JsonDict] = []
    for row in transactions:
        rows.append({**asdict(row), "day": row.day.isoformat()})
    for payment in payments:
        rows.append({**asdict(payment), "day": payment.day.isoformat()})
    return {"rows": rows}


def _status(period: EReportingPeriod, *, state: str, at: datetime, reason: str = "", origin: str = "tarif") -> None:
    EReportingStatus.objects.create(period=period, state=state, origin=origin, reason=reason[:300], at=at)


def ereporting_period_build(
    *, brand: Brand, livemode: bool, kind: str, start: date, end: date | None = None
) -> EReportingPeriod:
    """Build (or rebuild) the report of the period of `brand`'s regime that starts on `start`.

    A period the PA already received is never changed: the build makes its next version,
    flagged as a correction. Raises EReportingPeriodInvalid for dates that are not a period.
    """
    if kind not in EReportingPeriod.Kind.values:
        raise EReportingPeriodInvalid()
    expected = period_containing(regime=brand_regime(brand=brand), kind=kind, day=start)
    if expected[0] != start or (end is not None and expected[1] != end):
        raise EReportingPeriodInvalid()
    end = expected[1]
    at = system_now()
    if kind == EReportingPeriod.Kind.TRANSACTIONS:
        transactions = ereporting_transaction_totals(brand=brand, livemode=livemode, start=start, end=end)
        payments: list[PaymentTotal] = []
    else:
        transactions = []
        payments = ereporting_payment_totals(brand=brand, livemode=livemode, start=start, end=end)
    with transaction.atomic(durable=True):
        versions = ereporting_period_qs_for_update().filter(brand=brand, livemode=livemode, kind=kind, start=start)
        latest = max(versions, key=lambda period: period.version, default=None)
        if latest is None or latest.state not in RECEIVED_BY_PA:
            period = latest or EReportingPeriod(brand=brand, livemode=livemode, kind=kind, start=start, end=end)
        else:
            received = latest if latest.state != State.REJECTED else latest.corrects
            period = EReportingPeriod(
                brand=brand,
                livemode=livemode,
                kind=kind,
                start=start,
                end=end,
                version=latest.version + 1,
                corrects=received,
            )
        period.tracking_id = tracking_id_for(
            brand=brand, livemode=livemode, kind=kind, start=start, version=period.version
        )
        period.content = render_flow(
            tracking_id=period.tracking_id,
            kind=kind,
            issuer_siren=brand.siren,
            issuer_vat_number=brand.vat_number,
            issuer_name=brand.legal_name,
            start=start,
            end=end,
            version=period.version,
            corrects_tracking_id=period.corrects.tracking_id if period.corrects else "",
            created_at=at,
            transactions=transactions,
            payments=payments,
        )
        period.content_sha256 = hashlib.sha256(period.content).hexdigest()
        period.totals = _totals_json(transactions=transactions, payments=payments)
        period.state = State.BUILT
        period.built_at = at
        period.reason = ""
        period.save()
        _status(period, state=State.BUILT, at=at)
    return period


def ereporting_period_hold(
    *, brand: Brand, livemode: bool, kind: str, start: date, end: date, reason: str
) -> EReportingPeriod:
    """A closed period that could not be built (a missing exchange rate): a draft with the reason,
    listed in "needs attention"; the sweeper builds it once the cause is fixed. Never submitted."""
    with transaction.atomic(durable=True):
        versions = ereporting_period_qs_for_update().filter(brand=brand, livemode=livemode, kind=kind, start=start)
        latest = max(versions, key=lambda period: period.version, default=None)
        if latest is not None and latest.state != State.DRAFT:
            return latest  # built or received: the error concerns a rebuild the caller reports itself
        period = latest or EReportingPeriod(brand=brand, livemode=livemode, kind=kind, start=start, end=end)
        changed = period.reason != reason[:300]
        period.reason = reason[:300]
        period.save()
        if changed:
            _status(period, state=State.DRAFT, at=system_now(), reason=reason)
    return period


def ereporting_period_submit(*, period: EReportingPeriod, adapter: EReportingSubmitter) -> EReportingPeriod:
    """Send a built period's flow to the PA and record the receipt (and archive what was sent).

    `PlatformUnavailable` propagates (the period stays built; the task retries, the sweeper
    finds it); `PlatformRejected` records the rejection with the PA's reason.
    """
    today = system_now().date()
    with transaction.atomic(durable=True):
        locked = ereporting_period_qs_for_update().get(pk=period.pk)
        if locked.state != State.BUILT:
            raise EReportingInvalidTransition()
        if locked.end >= today:
            raise EReportingPeriodOpen()
        EReportingPeriod.objects.filter(pk=locked.pk).update(submit_attempts=locked.submit_attempts + 1)
    flow = OutboundFlow(
        tracking_id=locked.tracking_id,
        # The PA protocol names document syntaxes only; the flow type says it is e-reporting
        # and the content is Tarif's flow-10 XML (invoices/ereporting/flows.py).
        syntax="cii",
        filename=f"{locked.tracking_id}.xml",
        content=bytes(locked.content),
        flow_type="ereporting_transactions"
        if locked.kind == EReportingPeriod.Kind.TRANSACTIONS
        else "ereporting_payments",
    )
    try:
        receipt = adapter.submit_ereporting(flow=flow)
    except PlatformRejected as rejected:
        return ereporting_status_record(
            period=locked, state=State.REJECTED, origin=EReportingStatus.Origin.PLATFORM, reason=str(rejected)
        )
    at = system_now()
    with transaction.atomic(durable=True):
        locked = ereporting_period_qs_for_update().get(pk=period.pk)
        if locked.state != State.BUILT:  # a concurrent submission recorded it first
            return locked
        locked.state = State.SUBMITTED
        locked.flow_id = receipt.flow_id
        locked.submitted_at = at
        locked.save(update_fields=["state", "flow_id", "submitted_at"])
        _status(locked, state=State.SUBMITTED, at=at, reason="duplicate" if receipt.duplicate else "")
        if locked.corrects is not None:
            EReportingPeriod.objects.filter(pk=locked.corrects.pk).update(state=State.CORRECTED)
            _status(locked.corrects, state=State.CORRECTED, at=at, reason=locked.tracking_id)
        archive_append(
            kind=ArchiveRecord.Kind.EREPORT,
            reference=locked.tracking_id,
            content=bytes(locked.content),
            brand=locked.brand,
            livemode=locked.livemode,
            metadata={
                "flow_id": receipt.flow_id,
                "kind": locked.kind,
                "start": locked.start.isoformat(),
                "end": locked.end.isoformat(),
                "version": locked.version,
                "corrects": locked.corrects.tracking_id if locked.corrects else "",
            },
        )
    return locked


TRANSITIONS: dict[str, frozenset[str]] = {
    State.BUILT: frozenset({State.REJECTED}),  # refused at deposit
    State.SUBMITTED: frozenset({State.ACCEPTED, State.REJECTED}),
    State.ACCEPTED: frozenset({State.REJECTED}),  # a later rejection after checks
}


def ereporting_status_record(
    *, period: EReportingPeriod, state: str, origin: str, reason: str = "", at: datetime | None = None
) -> EReportingPeriod:
    """Record the PA's verdict on a submitted flow (pushed or polled by invoices.einvoicing)."""
    at = at or system_now()
    with transaction.atomic(savepoint=False):
        locked = ereporting_period_qs_for_update().get(pk=period.pk)
        if locked.state == state:
            return locked  # a duplicate delivery
        if state not in TRANSITIONS.get(locked.state, frozenset()):
            raise EReportingInvalidTransition()
        locked.state = state
        locked.reason = reason[:300]
        locked.save(update_fields=["state", "reason"])
        _status(locked, state=state, at=at, reason=reason, origin=origin)
    return locked


# The PA's statuses on an e-reporting flow: deposited/received/... means the tax authority's
# platform took it; 213 (rejected) and 210 (refused) are final refusals with a reason.
PA_REJECTED_CODES = frozenset({"210", "213"})
PA_ACCEPTED_CODES = frozenset({"200", "201", "202", "203", "204", "205", "209"})


class EReportingStatusSource(Protocol):
    def get_flow_status(self, *, flow_id: str) -> list[StatusReport]: ...


def ereporting_status_apply(*, period: EReportingPeriod, reports: Iterable[StatusReport]) -> EReportingPeriod:
    """Apply the PA's status reports of a period's flow (pulled here, or pushed to
    invoices.einvoicing's webhook, which can hand over the reports whose flow is no document's)."""
    for report in sorted(reports, key=lambda report: report.occurred_at):
        if report.code in PA_REJECTED_CODES:
            reason = " ".join(part for part in (report.reason_code, report.reason_text) if part)
            period = ereporting_status_record(
                period=period, state=State.REJECTED, origin="platform", reason=reason, at=report.occurred_at
            )
        elif report.code in PA_ACCEPTED_CODES and period.state == State.SUBMITTED:
            period = ereporting_status_record(
                period=period, state=State.ACCEPTED, origin="platform", at=report.occurred_at
            )
    return period


def ereporting_status_refresh(*, period: EReportingPeriod, adapter: EReportingStatusSource) -> EReportingPeriod:
    """Pull a submitted period's statuses from the PA (outside any transaction) and apply them."""
    if not period.flow_id or period.state not in (State.SUBMITTED, State.ACCEPTED):
        return period
    return ereporting_status_apply(period=period, reports=adapter.get_flow_status(flow_id=period.flow_id))


def adapter_for_brand(*, brand: Brand, livemode: bool) -> PlatformAdapter | None:
    """The brand's PA adapter in this mode (None: no active account, nothing is submitted)."""
    from invoices.einvoicing.models import PlatformAccount  # deferred: the PA app is optional per brand
    from invoices.einvoicing.services import adapter_for_account  # deferred: same

    account = PlatformAccount.objects.filter(brand=brand, livemode=livemode, active=True).first()
    return adapter_for_account(account=account) if account is not None else None


def ereporting_close_due(*, today: date | None = None) -> list[int]:
    """Build every closed period not built yet (since TARIF_EREPORTING_SINCE) of each brand that has
    an active PA account, in that account's mode. Returns the ids of the periods to submit
    (built, ended: the new ones and any left by a crash or an outage) and to poll (submitted)."""
    from django.conf import settings  # deferred: read at call time so tests can override it

    from invoices.einvoicing.models import PlatformAccount  # deferred: see adapter_for_brand

    today = today or system_now().date()
    since = date.fromisoformat(getattr(settings, "TARIF_EREPORTING_SINCE", "2026-09-01"))
    accounts = PlatformAccount.objects.filter(active=True).select_related("brand").order_by("pk")
    disabled = set(EReportingRegime.objects.filter(enabled=False).values_list("brand_id", flat=True))
    for account in accounts:
        if account.brand_id in disabled:
            continue
        regime = brand_regime(brand=account.brand)
        for kind in EReportingPeriod.Kind.values:
            existing = set(
                EReportingPeriod.objects.filter(brand=account.brand, livemode=account.livemode, kind=kind)
                .exclude(state=State.DRAFT)  # a draft is one that could not be built: try again
                .values_list("start", flat=True)
            )
            for start, end in periods_closed_between(regime=regime, kind=kind, since=since, today=today):
                if start in existing:
                    continue
                try:
                    ereporting_period_build(
                        brand=account.brand, livemode=account.livemode, kind=kind, start=start, end=end
                    )
                except EReportingExchangeRateMissing as missing:
                    ereporting_period_hold(
                        brand=account.brand,
                        livemode=account.livemode,
                        kind=kind,
                        start=start,
                        end=end,
                        reason=missing.message_text(),
                    )
    return list(
        EReportingPeriod.objects.filter(state__in=(State.BUILT, State.SUBMITTED), end__lt=today)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _on_unmatched_status(*, account: PlatformAccount, report: StatusReport) -> None:
    """A status pushed to the e-invoicing webhook for a flow that is no document's: if it is one
    of this account's e-reporting flows, apply it to that period."""
    if not report.flow_id:
        return
    period = EReportingPeriod.objects.filter(
        flow_id=report.flow_id, brand_id=account.brand_id, livemode=account.livemode
    ).first()
    if period is not None:
        ereporting_status_apply(period=period, reports=[report])


def ereporting_register() -> None:
    """Connect e-reporting to the statuses the e-invoicing webhook and poll find no document for."""
    from invoices.einvoicing.services import unmatched_status_received  # deferred: app loading

    unmatched_status_received.connect(_on_unmatched_status)
