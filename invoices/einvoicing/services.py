"""Writes of e-invoicing: routing at finalization, submission, statuses in, directory cache.

Submission follows the project's rule "lock and record, commit, call, record the outcome":
`transmission_submit` claims a queued row (SKIP LOCKED) and marks it submitting in one short
transaction, calls the PA with no transaction open, then records the outcome in another.
The tracking id is stable per document and the PA deduplicates on it, so a retry after a
lost acknowledgement (or a worker that died mid-call) never makes a second flow.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils.translation import gettext as _

from config.clock import system_now
from config.events.log import event_record
from config.hooks import Hook
from config.jobs import enqueue
from config.types import ActingUser, JsonDict, JsonMapping
from customers.models import Customer
from customers.selectors import customer_siren
from invoices.archive.services import ArchiveEntry, archive_append, archive_append_many
from invoices.einvoicing.adapters import (
    DirectoryAddress,
    OutboundFlow,
    OutboundStatus,
    PlatformAdapter,
    StatusReport,
    Syntax,
    VatRateAmount,
)
from invoices.einvoicing.errors import (
    PlatformAccountError,
    PlatformRejected,
    PlatformUnavailable,
    TransmissionStateError,
    WebhookSignatureError,
)
from invoices.einvoicing.locks import platform_account_qs_for_update, transmission_claim_qs, transmission_qs_for_update
from invoices.einvoicing.models import (
    ATTENTION_CODES,
    DirectoryEntry,
    LifecycleCode,
    LifecycleStatus,
    PlatformAccount,
    Transmission,
)
from invoices.einvoicing.rest import RestCredentials, RestPlatformAdapter
from invoices.einvoicing.selectors import customer_is_einvoiced, directory_entry_cached
from invoices.ereporting.selectors import allocate
from invoices.models import CreditNote, Invoice

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-PA-Signature"
SUBMIT_TASK = "einvoicing.submit_transmission"


# --- adapters ----------------------------------------------------------------------------------


# One adapter (one requests.Session: kept-alive connections) per credentials and thread. A new
# session per document opened a TCP connection per submission (bench/einvoicing.py measured it);
# a changed account (URL, client, secret) gets a new adapter, since its credentials are the key.
_adapters = threading.local()


def adapter_for_account(*, account: PlatformAccount) -> PlatformAdapter:
    """The adapter an account speaks through (the simulator serves the same REST API)."""
    credentials = RestCredentials(
        base_url=account.base_url,
        token_url=account.token_url,
        client_id=account.client_id,
        client_secret=account.client_secret or "",
    )
    cache: dict[RestCredentials, RestPlatformAdapter] | None = getattr(_adapters, "by_credentials", None)
    if cache is None:
        cache = _adapters.by_credentials = {}
    adapter = cache.get(credentials)
    if adapter is None:
        if len(cache) >= 32:  # accounts whose credentials changed: drop the old sessions
            for stale in cache.values():
                stale.session.close()
            cache.clear()
        adapter = cache[credentials] = RestPlatformAdapter(credentials)
    return adapter


# --- routing at finalization --------------------------------------------------------------------


def tracking_id_for(*, kind: str, document_id: int, livemode: bool) -> str:
    """Stable per document: the PA's idempotency key for every submission attempt."""
    return f"tarif-{'live' if livemode else 'test'}-{kind}-{document_id}"


def _route(documents: Sequence[Invoice | CreditNote], *, kind: str) -> list[Transmission]:
    accounts: dict[tuple[int, bool], PlatformAccount | None] = {}
    rows: list[Transmission] = []
    at = system_now()
    # The billing run issues thousands at once: their customers in one query, not one each.
    uncached = {d.customer_id for d in documents if not type(d).customer.is_cached(d)}
    loaded = {c.pk: c for c in Customer.objects.filter(pk__in=uncached)} if uncached else {}
    for document in documents:
        customer = loaded.get(document.customer_id) or document.customer
        if not customer_is_einvoiced(customer=customer):
            continue  # B2C and abroad: e-reporting, not transmission
        key = (document.brand_id, bool(customer.livemode))
        if key not in accounts:
            accounts[key] = PlatformAccount.objects.filter(
                brand_id=document.brand_id, livemode=customer.livemode, active=True
            ).first()
        account = accounts[key]
        if account is None:
            continue
        rows.append(
            Transmission(
                account=account,
                customer=customer,
                kind=kind,
                invoice=document if isinstance(document, Invoice) else None,
                credit_note=document if isinstance(document, CreditNote) else None,
                tracking_id=tracking_id_for(kind=kind, document_id=document.pk, livemode=bool(customer.livemode)),
                next_attempt_at=at,
            )
        )
    if not rows:
        return []
    # In the document's own transaction: the queued row is the durable hand-off the sweeper
    # finds; uniqueness per document makes a second routing of the same document a no-op.
    Transmission.objects.bulk_create(rows, ignore_conflicts=True)
    tracking_ids = [row.tracking_id for row in rows]
    transaction.on_commit(lambda: _enqueue_submissions(tracking_ids))  # only speeds up the sweeper
    return rows


def _enqueue_submissions(tracking_ids: Sequence[str]) -> None:
    for pk in Transmission.objects.filter(tracking_id__in=tracking_ids).values_list("pk", flat=True):
        try:
            enqueue(SUBMIT_TASK, args=[pk])
        except Exception:  # a broker outage: the beat sweeper submits it later
            logger.warning("could not enqueue e-invoice transmission %s; the sweeper will", pk, exc_info=True)


def transmissions_route_invoices(*, invoices: Sequence[Invoice]) -> None:
    """Hook receiver (invoices.invoices_finalized): queue French B2B invoices for the PA."""
    _route(invoices, kind=Transmission.Kind.INVOICE)


def transmissions_route_credit_note(*, credit_note: CreditNote) -> None:
    """Hook receiver (invoices.credit_note_issued): queue a French B2B credit note for the PA."""
    _route([credit_note], kind=Transmission.Kind.CREDIT_NOTE)


# --- payload ------------------------------------------------------------------------------------


def transmission_payload(transmission: Transmission, *, routing_id: str = "") -> OutboundFlow:
    """The flow sent for a document: the one place the syntax is chosen. The customer's
    e-invoice format (Factur-X, UBL 2.1 or CII D16B; "auto" = the account's default, else
    Factur-X), rendered as issued with the buyer's routing address from the directory (BT-49)."""
    from invoices.rendering.einvoice import (  # deferred: WeasyPrint and the XML builders are heavy
        customer_einvoice_syntax,
        document_einvoice,
    )

    syntax: Syntax = customer_einvoice_syntax(
        customer=transmission.customer, pa_default=transmission.account.default_syntax
    )
    if transmission.kind == Transmission.Kind.INVOICE:
        document: object = transmission.invoice
        kind: Literal["invoice", "credit_note"] = "invoice"
    else:
        document, kind = transmission.credit_note, "credit_note"
    assert document is not None
    rendered = document_einvoice(kind=kind, document=document, syntax=syntax, routing_id=routing_id)
    return OutboundFlow(
        tracking_id=transmission.tracking_id,
        syntax=syntax,
        filename=rendered.filename,
        content=rendered.content,
        flow_type=kind,
    )


# --- directory ----------------------------------------------------------------------------------


def directory_lookup(*, account: PlatformAccount, siren: str, siret: str = "", refresh: bool = False) -> DirectoryEntry:
    """Where `siren` receives e-invoices: the cached answer while fresh, else the PA's (cached).

    Raises PlatformUnavailable / PlatformRejected when the PA cannot answer. No transaction
    may be open around it with locks: it calls the PA.
    """
    at = system_now()
    if not refresh:
        cached = directory_entry_cached(siren=siren, siret=siret, livemode=account.livemode, at=at)
        if cached is not None:
            return cached
    found: DirectoryAddress | None = adapter_for_account(account=account).lookup_directory(siren=siren, siret=siret)
    expires = at + timedelta(days=settings.TARIF_EINVOICING_DIRECTORY_TTL_DAYS)
    entry, _created = DirectoryEntry.objects.update_or_create(
        livemode=account.livemode,
        siren=siren,
        siret=siret,
        defaults={
            "found": found is not None,
            "routing_address": found.routing_address if found else "",
            "platform": found.platform if found else "",
            "name": found.name if found else "",
            "fetched_at": at,
            "expires_at": expires,
        },
    )
    return entry


# --- submission ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitOutcome:
    transmission_id: int
    state: str
    flow_id: str = ""
    duplicate: bool = False


def _backoff(attempts: int) -> timedelta:
    base = settings.TARIF_EINVOICING_RETRY_BASE_SECONDS
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), settings.TARIF_EINVOICING_RETRY_MAX_SECONDS))


def _claimable(at: datetime) -> QuerySet[Transmission]:
    return (
        transmission_claim_qs()
        .filter(state=Transmission.State.QUEUED)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=at))
        # what the attempt reads, in the claim's one query (no per-document re-reads)
        .select_related("account__brand", "customer", "invoice", "credit_note")
    )


def _mark_submitting(claimed: list[Transmission], *, at: datetime) -> None:
    Transmission.objects.filter(pk__in=[row.pk for row in claimed]).update(
        state=Transmission.State.SUBMITTING, attempts=F("attempts") + 1, submitting_since=at, updated_at=at
    )
    for row in claimed:
        row.state, row.attempts, row.submitting_since = Transmission.State.SUBMITTING, row.attempts + 1, at


def _claim(transmission_id: int, *, at: datetime) -> Transmission | None:
    with transaction.atomic(durable=True):
        transmission = _claimable(at).filter(pk=transmission_id).first()
        if transmission is None:
            return None  # another worker has it, or it is not due / not queued any more
        _mark_submitting([transmission], at=at)
    return transmission


def _claim_batch(*, at: datetime, size: int, exclude: set[int]) -> list[Transmission]:
    """Up to `size` due transmissions, claimed in one short transaction (rows another sweeper
    holds are skipped, so several sweepers share the queue without waiting for each other).
    `exclude`: rows this pass already tried (one attempt per row and pass, even when due again)."""
    with transaction.atomic(durable=True):
        claimed = list(_claimable(at).exclude(pk__in=exclude)[:size])
        if claimed:
            _mark_submitting(claimed, at=at)
    return claimed


@dataclass
class _Attempt:
    """What one submission attempt found, recorded afterwards (no transaction is open meanwhile)."""

    apply: dict[str, object]
    sent: OutboundFlow | None = None
    number: str = ""
    duplicate: bool = False
    error: Exception | None = None  # a bug on our side: the single path re-raises it


def directory_entries_cached(
    *, transmissions: Sequence[Transmission], at: datetime
) -> dict[tuple[bool, str], DirectoryEntry]:
    """The fresh directory answers for the buyers of `transmissions`, by (livemode, SIREN)."""
    sirens = {customer_siren(customer=row.customer) for row in transmissions}
    modes = {row.account.livemode for row in transmissions}
    entries = DirectoryEntry.objects.filter(livemode__in=modes, siren__in=sirens, siret="", expires_at__gt=at)
    return {(entry.livemode, entry.siren): entry for entry in entries}


@dataclass(frozen=True)
class _Prepared:
    """A claimed transmission ready for the PA: the flow, where it goes, the document's number."""

    flow: OutboundFlow
    routing_address: str
    number: str


def _failure(transmission: Transmission, error: Exception, *, at: datetime) -> _Attempt:
    """What a failed attempt changes: retry later (unavailable), needs attention (refused), or
    queued again with a backoff (a bug on our side, re-raised by the single path)."""
    if isinstance(error, PlatformUnavailable):
        exhausted = transmission.attempts >= settings.TARIF_EINVOICING_MAX_ATTEMPTS
        apply: dict[str, object] = {"last_error": str(error.message_text())[:2000]}
        if exhausted:
            apply.update(
                state=Transmission.State.FAILED,
                needs_attention=True,
                attention_reason=_("The platform stayed unavailable after %(count)d attempts.")
                % {"count": transmission.attempts},
                next_attempt_at=None,
            )
        else:
            apply.update(state=Transmission.State.QUEUED, next_attempt_at=at + _backoff(transmission.attempts))
        return _Attempt(apply=apply)
    if isinstance(error, PlatformRejected):
        reason = error.message_text()
        if error.reason_code:
            reason = f"{error.reason_code}: {reason}"
        return _Attempt(
            apply={
                "state": Transmission.State.FAILED,
                "last_error": reason[:2000],
                "needs_attention": True,
                "attention_reason": _("The platform refused the submission: %(reason)s") % {"reason": reason},
                "next_attempt_at": None,
            }
        )
    # A bug on our side (rendering...): put it back with a backoff so it is not lost.
    return _Attempt(
        apply={
            "state": Transmission.State.QUEUED,
            "last_error": "internal error while preparing the flow",
            "next_attempt_at": at + _backoff(transmission.attempts),
        },
        error=error,
    )


def _prepare(
    transmission: Transmission, *, at: datetime, directory: dict[tuple[bool, str], DirectoryEntry]
) -> _Prepared | _Attempt:
    """Directory and payload of one claimed transmission (no lock held): the flow to send, or
    the attempt's outcome when there is nothing to send."""
    account = transmission.account
    try:
        siren = customer_siren(customer=transmission.customer)
        entry = directory.get((account.livemode, siren))
        if entry is None:
            entry = directory[(account.livemode, siren)] = directory_lookup(account=account, siren=siren)
        if not entry.found:
            reason = _("No e-invoicing address in the directory for SIREN %(siren)s.") % {"siren": siren}
            return _Attempt(
                apply={
                    "state": Transmission.State.FAILED,
                    "last_error": reason,
                    "needs_attention": True,
                    "attention_reason": reason,
                    "next_attempt_at": None,
                }
            )
        flow = transmission_payload(transmission, routing_id=entry.routing_address)
    except Exception as error:  # mapped by _failure: unavailable, refused, or a bug (re-raised later)
        return _failure(transmission, error, at=at)
    return _Prepared(
        flow=flow,
        routing_address=entry.routing_address,
        number=str(getattr(transmission.document, "number", "") or ""),
    )


def _send(transmission: Transmission, prepared: _Prepared, *, at: datetime) -> _Attempt:
    """The PA call alone: no database access, so it may run in a pool thread."""
    try:
        receipt = adapter_for_account(account=transmission.account).submit_flow(flow=prepared.flow)
    except Exception as error:  # mapped by _failure: unavailable, refused, or a bug (re-raised later)
        return _failure(transmission, error, at=at)
    return _Attempt(
        apply={
            "state": Transmission.State.SUBMITTED,
            "flow_id": receipt.flow_id,
            "syntax": prepared.flow.syntax,
            "submitted_at": system_now(),
            "last_error": "",
            "routing_address": prepared.routing_address,
            "next_attempt_at": None,
        },
        sent=prepared.flow,
        number=prepared.number,
        duplicate=receipt.duplicate,
    )


def _attempt(
    transmission: Transmission, *, at: datetime, directory: dict[tuple[bool, str], DirectoryEntry]
) -> _Attempt:
    """Directory, payload and the PA call for one claimed transmission (no lock held)."""
    prepared = _prepare(transmission, at=at, directory=directory)
    return prepared if isinstance(prepared, _Attempt) else _send(transmission, prepared, at=at)


# The PA calls of a batch overlap in a few threads (each with its own kept-alive session, see
# adapter_for_account): a submission is mostly waiting for the platform's answer.
_send_pool_lock = threading.Lock()
_send_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, size, pool)


def _send_executor(size: int) -> ThreadPoolExecutor:
    global _send_pool
    with _send_pool_lock:
        if _send_pool is None or _send_pool[:2] != (os.getpid(), size):  # a forked worker makes its own
            _send_pool = (os.getpid(), size, ThreadPoolExecutor(max_workers=size, thread_name_prefix="pa-submit"))
        return _send_pool[2]


def _send_all(ready: Sequence[tuple[Transmission, _Prepared]], *, at: datetime) -> dict[int, _Attempt]:
    size = min(settings.TARIF_EINVOICING_SUBMIT_CONCURRENCY, len(ready))
    if size <= 1:
        return {transmission.pk: _send(transmission, prepared, at=at) for transmission, prepared in ready}
    outcomes = _send_executor(settings.TARIF_EINVOICING_SUBMIT_CONCURRENCY).map(
        lambda item: _send(item[0], item[1], at=at), ready
    )
    return {transmission.pk: outcome for (transmission, _prepared), outcome in zip(ready, outcomes, strict=True)}


def _update_per_row(rows: Sequence[Transmission], names: Sequence[str]) -> None:
    """Write values that differ per row in one statement. On PostgreSQL an UPDATE ... FROM
    (VALUES ...): Django's bulk_update writes a CASE of one WHEN per row for each column, which
    took ~60 ms for a batch of 50 (bench/einvoicing.py), this about a millisecond."""
    if connection.vendor != "postgresql":
        Transmission.objects.bulk_update(rows, list(names))
        return
    concrete = {field.name: field for field in Transmission._meta.concrete_fields}
    fields = [concrete[name] for name in names]
    quote = connection.ops.quote_name
    row_sql = "(%s::bigint, " + ", ".join(f"%s::{field.db_type(connection)}" for field in fields) + ")"
    params: list[Any] = []
    for row in rows:
        params.append(row.pk)
        params.extend(field.get_db_prep_save(getattr(row, field.attname), connection) for field in fields)
    columns = [quote(field.column) for field in fields]
    sql = (
        f"UPDATE {quote(Transmission._meta.db_table)} AS t SET "
        + ", ".join(f"{column} = v.{column}" for column in columns)
        + f" FROM (VALUES {', '.join([row_sql] * len(rows))}) AS v(id, {', '.join(columns)}) WHERE t.id = v.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _record_outcomes(attempts: dict[int, _Attempt]) -> dict[int, Transmission]:
    """Record a batch of attempts in one transaction: the rows (locked in pk order), the flows
    as sent in the archive (one chain-head lock for the batch), the failure events."""
    if not attempts:
        return {}
    with transaction.atomic(durable=True):
        rows = transmission_qs_for_update().select_related("account").filter(pk__in=list(attempts))
        locked = {row.pk: row for row in rows}
        recorded_at = system_now()  # one time for the batch: one shared value in the UPDATE
        changed: list[Transmission] = []
        fields: set[str] = {"submitting_since", "updated_at"}
        archived: list[ArchiveEntry] = []
        for pk, attempt in attempts.items():
            transmission = locked[pk]
            if transmission.state != Transmission.State.SUBMITTING:
                continue  # reset by the stuck sweeper meanwhile: the PA deduplicates the retry
            for name, value in attempt.apply.items():
                setattr(transmission, name, value)
            fields.update(attempt.apply)
            transmission.submitting_since = None
            transmission.updated_at = recorded_at
            changed.append(transmission)
            if attempt.sent is not None and transmission.state == Transmission.State.SUBMITTED:
                # The flow as the platform received it, in the 10-year hash-chained archive (docs/archive.md).
                archived.append(
                    ArchiveEntry(
                        kind="document",
                        reference=transmission.tracking_id,
                        content=attempt.sent.content,
                        brand_id=transmission.account.brand_id,
                        livemode=transmission.account.livemode,
                        metadata={
                            "flow_id": transmission.flow_id,
                            "syntax": attempt.sent.syntax,
                            "filename": attempt.sent.filename,
                            "number": attempt.number,
                        },
                    )
                )
            if transmission.state == Transmission.State.FAILED:
                event_record(
                    type="einvoice.transmission_failed",
                    object_type=transmission.kind,
                    object_id=transmission.invoice_id or transmission.credit_note_id or 0,
                    customer_id=transmission.customer_id,
                    occurred_at=system_now(),
                    data={"tracking_id": transmission.tracking_id, "reason": transmission.last_error},
                )
        if changed:
            # One UPDATE for the values the batch shares (state, times...), a CASE update only
            # for those that differ per row (flow ids...): bulk_update of every field costs more.
            shared: dict[str, object] = {}
            varying: list[str] = []
            for name in sorted(fields):
                values = {getattr(row, name) for row in changed}
                if len(values) == 1:
                    shared[name] = values.pop()
                else:
                    varying.append(name)
            Transmission.objects.filter(pk__in=[row.pk for row in changed]).update(**shared)
            if varying:
                _update_per_row(changed, varying)
        archive_append_many(entries=archived)
    return locked


def transmission_submit(*, transmission_id: int) -> SubmitOutcome:
    """Submit one queued transmission to its PA (once; safe to call from several workers)."""
    at = system_now()
    transmission = _claim(transmission_id, at=at)
    if transmission is None:
        current = Transmission.objects.filter(pk=transmission_id).values_list("state", "flow_id").first()
        state, flow_id = current if current else ("", "")
        return SubmitOutcome(transmission_id=transmission_id, state=state, flow_id=flow_id)
    attempt = _attempt(transmission, at=at, directory={})
    transmission = _record_outcomes({transmission_id: attempt})[transmission_id]
    if attempt.error is not None:
        raise attempt.error
    return SubmitOutcome(
        transmission_id=transmission_id,
        state=transmission.state,
        flow_id=transmission.flow_id,
        duplicate=attempt.duplicate,
    )


def transmissions_requeue_stuck() -> int:
    """Submissions left "submitting" by a worker that died mid-call go back to the queue."""
    limit = system_now() - timedelta(seconds=settings.TARIF_EINVOICING_STUCK_SECONDS)
    return Transmission.objects.filter(state=Transmission.State.SUBMITTING, submitting_since__lt=limit).update(
        state=Transmission.State.QUEUED, next_attempt_at=system_now(), submitting_since=None
    )


def transmissions_submit_due(*, limit: int = 200, batch: int = 50) -> int:
    """The sweeper: submit every queued transmission that is due (beat, every minute).

    Claims `batch` rows at a time (one short transaction), calls the PA for each with no
    transaction open (one kept-alive connection), then records the batch in one transaction.
    A worker that dies mid-batch leaves its rows `submitting`: the stuck sweeper queues them
    again and the PA deduplicates on the tracking id."""
    transmissions_requeue_stuck()
    submitted = 0
    remaining = limit
    tried: set[int] = set()
    while remaining > 0:
        at = system_now()
        claimed = _claim_batch(at=at, size=min(batch, remaining), exclude=tried)
        if not claimed:
            break
        remaining -= len(claimed)
        tried.update(row.pk for row in claimed)
        # The batch's cached directory answers in one query (the others are asked per SIREN).
        directory = directory_entries_cached(transmissions=claimed, at=at)
        prepared = {row.pk: _prepare(row, at=at, directory=directory) for row in claimed}
        ready = [(row, item) for row in claimed if isinstance(item := prepared[row.pk], _Prepared)]
        sent = _send_all(ready, at=at)  # the PA calls, overlapping (no database access)
        attempts: dict[int, _Attempt] = {}
        for transmission in claimed:
            item = prepared[transmission.pk]
            attempt = sent[transmission.pk] if isinstance(item, _Prepared) else item
            if attempt.error is not None:
                logger.error(
                    "e-invoice transmission %s could not be prepared; queued again",
                    transmission.pk,
                    exc_info=attempt.error,
                )
            attempts[transmission.pk] = attempt
        recorded = _record_outcomes(attempts)
        submitted += sum(
            1
            for pk, attempt in attempts.items()
            if attempt.sent is not None and recorded[pk].state == Transmission.State.SUBMITTED
        )
    return submitted


def transmission_retry(*, transmission: Transmission, acting_user: ActingUser = None) -> Transmission:
    """Staff's "retry now": a failed (or waiting) transmission is queued for an immediate attempt."""
    with transaction.atomic(durable=True):
        locked = transmission_qs_for_update().get(pk=transmission.pk)
        if locked.state not in {Transmission.State.FAILED, Transmission.State.QUEUED}:
            raise TransmissionStateError(
                _("Only a failed or queued transmission can be retried (this one is %(state)s).")
                % {"state": locked.get_state_display()}
            )
        locked.state = Transmission.State.QUEUED
        locked.next_attempt_at = system_now()
        # A "not found" directory answer is asked again: the usual fix is the buyer registering.
        DirectoryEntry.objects.filter(
            livemode=locked.account.livemode, siren=customer_siren(customer=locked.customer), found=False
        ).update(expires_at=system_now())
        if not locked.last_status_code or locked.last_status_code not in ATTENTION_CODES:
            locked.needs_attention = False
            locked.attention_reason = ""
        locked.save()
        event_record(
            type="einvoice.transmission_retried",
            object_type=locked.kind,
            object_id=locked.document.pk,
            customer_id=locked.customer_id,
            occurred_at=system_now(),
            data={"tracking_id": locked.tracking_id},
            acting_user=acting_user,
        )
        pk = locked.pk
        transaction.on_commit(lambda: enqueue(SUBMIT_TASK, args=[pk]))
    return locked


# --- statuses in --------------------------------------------------------------------------------


def _transmission_for_report(*, account: PlatformAccount, report: StatusReport) -> Transmission | None:
    scope = Transmission.objects.filter(account=account)
    if report.tracking_id:
        found = scope.filter(tracking_id=report.tracking_id).first()
        if found is not None:
            return found
    if report.flow_id:
        return scope.filter(flow_id=report.flow_id).first()
    return None


def lifecycle_status_record(
    *, transmission: Transmission, report: StatusReport, received_at: datetime | None = None
) -> tuple[LifecycleStatus, bool]:
    """Store one status of a document once (a duplicate delivery returns the stored one, False)."""
    valid = {choice.value for choice in LifecycleCode}
    if report.code not in valid:
        raise PlatformRejected(_("Unknown lifecycle status code %(code)s.") % {"code": report.code})
    with transaction.atomic(savepoint=False):
        locked = transmission_qs_for_update().get(pk=transmission.pk)
        existing = LifecycleStatus.objects.filter(
            transmission=locked, code=report.code, occurred_at=report.occurred_at, origin=report.origin
        ).first()
        if existing is not None:
            return existing, False
        status = LifecycleStatus.objects.create(
            transmission=locked,
            code=report.code,
            occurred_at=report.occurred_at,
            origin=report.origin,
            reason_code=report.reason_code[:40],
            reason_text=report.reason_text,
            received_at=received_at or system_now(),
            raw=dict(report.raw),
        )
        latest = locked.statuses.order_by("-occurred_at", "-pk").values_list("code", flat=True).first()
        locked.last_status_code = latest or report.code
        if locked.flow_id == "" and report.flow_id:
            locked.flow_id = report.flow_id
        if report.code in ATTENTION_CODES:
            label = LifecycleCode(report.code).label
            reason = report.reason_text or report.reason_code or _("no reason given")
            locked.needs_attention = True
            locked.attention_reason = _("%(status)s by the %(origin)s: %(reason)s") % {
                "status": label,
                "origin": status.get_origin_display(),
                "reason": f"{report.reason_code} {reason}".strip() if report.reason_text else reason,
            }
        locked.save()
        archive_append(
            kind="status",
            reference=f"{locked.tracking_id}:{report.code}:{status.pk}",
            content=json.dumps(dict(report.raw), sort_keys=True, default=str).encode(),
            brand=locked.account.brand,
            livemode=locked.account.livemode,
            metadata={
                "code": report.code,
                "origin": report.origin,
                "occurred_at": report.occurred_at.isoformat(),
                "flow_id": locked.flow_id,
            },
        )
        event_record(
            type="einvoice.status_changed",
            object_type=locked.kind,
            object_id=locked.document.pk,
            customer_id=locked.customer_id,
            occurred_at=report.occurred_at,
            data={
                "tracking_id": locked.tracking_id,
                "flow_id": locked.flow_id,
                "code": report.code,
                "label": str(LifecycleCode(report.code).label),
                "origin": report.origin,
                "reason_code": report.reason_code,
                "reason_text": report.reason_text,
            },
        )
    return status, True


# Statuses whose flow is no document's (e-reporting flows): invoices.ereporting applies them.
unmatched_status_received = Hook("einvoicing.unmatched_status_received")


def statuses_receive(*, account: PlatformAccount, reports: Iterable[StatusReport]) -> int:
    """Record statuses the PA delivered (pushed or pulled); returns how many were new."""
    created = 0
    valid_codes = set(LifecycleCode.values)
    for report in reports:
        if report.code not in valid_codes:  # a status this version does not know: kept out, never blocks the cursor
            logger.warning("unknown lifecycle status %s for flow %s ignored", report.code, report.flow_id)
            continue
        transmission = _transmission_for_report(account=account, report=report)
        if transmission is None:
            # Not a document's flow: an e-reporting flow's status (invoices.ereporting listens), or unknown.
            logger.info("status %s for flow %s / %s: no document", report.code, report.flow_id, report.tracking_id)
            unmatched_status_received.fire(account=account, report=report)
            continue
        try:
            with transaction.atomic():
                _status, new = lifecycle_status_record(transmission=transmission, report=report)
        except IntegrityError:  # a concurrent delivery of the same status won the insert
            new = False
        created += new
    return created


def account_poll_statuses(*, account: PlatformAccount, max_pages: int = 50) -> int:
    """Pull statuses since the account's cursor (the PA is called with no transaction open)."""
    adapter = adapter_for_account(account=account)
    cursor = account.poll_cursor
    created = 0
    for _page in range(max_pages):
        page = adapter.poll_statuses(cursor=cursor)
        with transaction.atomic(durable=True):
            # The account's row first (lock order): two pollers take turns moving its cursor.
            locked = platform_account_qs_for_update().get(pk=account.pk)
            created += statuses_receive(account=account, reports=page.reports)
            locked.poll_cursor = page.next_cursor
            locked.save(update_fields=["poll_cursor", "updated_at"])
        if not page.reports or page.next_cursor == cursor:
            break
        cursor = page.next_cursor
    account.poll_cursor = cursor
    return created


def accounts_poll_statuses() -> int:
    """The polling sweeper: every active account, one after the other; one outage skips one account."""
    created = 0
    for account in PlatformAccount.objects.filter(active=True).order_by("pk"):
        try:
            created += account_poll_statuses(account=account)
        except (PlatformUnavailable, PlatformRejected) as error:
            logger.warning("status poll of platform account %s failed: %s", account.pk, error)
    return created


def webhook_verify(*, account: PlatformAccount, body: bytes, header: str, now: datetime | None = None) -> None:
    """Check an inbound status webhook's HMAC-SHA256 signature and age (raises WebhookSignatureError)."""
    secret = account.webhook_secret or ""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        raise WebhookSignatureError() from None
    signature = parts.get("v1", "")
    if not secret or not signature:
        raise WebhookSignatureError()
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise WebhookSignatureError()
    age = abs((now or system_now()).timestamp() - timestamp)
    if age > settings.TARIF_EINVOICING_WEBHOOK_TOLERANCE_SECONDS:
        raise WebhookSignatureError(_("The webhook timestamp is too old."))


# --- "212 Encaissée": the collection status Tarif sends as the issuer ------------------------------


def collection_reported(*, invoice: Invoice) -> bool:
    """VAT due on receipt: services (a line without a product counts as a service, Tarif sells
    SaaS), unless the brand opted for VAT on debits. Goods-only invoices owe VAT on delivery."""
    if invoice.brand_id is not None and invoice.brand.vat_on_debits:
        return False
    kinds = set(invoice.lines.values_list("price__product__supply_kind", flat=True))
    return any(kind in (None, "services") for kind in kinds) or not kinds


def _rate_text(value: object) -> str:
    rate = Decimal(str(value)).normalize()
    return f"{rate:f}" if rate != rate.to_integral_value() else f"{rate.to_integral_value():f}"


def collected_vat_amounts(*, amount: int, breakdown: Sequence[JsonMapping]) -> list[JsonDict]:
    """`amount` collected on an invoice, split per VAT rate (BR-FR-CDV-14's "MEN" blocks):
    pro rata of the invoice's VAT breakdown (each group weighs its amount including VAT), by the
    largest remainder so the parts add up to `amount` exactly, with the same rule and weights as
    the payment e-report (`invoices.ereporting.selectors.allocate`). Groups of the same rate
    (categories S and Z, or inclusive and exclusive parts) make one part; a part may be 0."""
    groups = [group for group in breakdown if "rate" in group]
    if not groups:  # a document stored without a breakdown: all of it at no known VAT
        return [{"rate": "0", "amount": amount}]
    weights = [
        int(str(group.get("taxable_amount") or 0))
        + (0 if group.get("inclusive") else int(str(group.get("tax_amount") or 0)))
        for group in groups
    ]
    by_rate: dict[str, int] = {}
    for group, share in zip(groups, allocate(amount, weights), strict=True):
        rate = _rate_text(group["rate"])
        by_rate[rate] = by_rate.get(rate, 0) + share
    return [{"rate": rate, "amount": part} for rate, part in by_rate.items()]


def collected_status_record(*, invoice: Invoice, at: datetime) -> LifecycleStatus | None:
    """A payment on a transmitted invoice whose VAT is due on receipt: record "212 Encaissée"
    with the amount collected since the last one, in the payment's transaction (the durable
    hand-off: `collected_statuses_send` sends it after the commit). None when nothing is owed."""
    transmission = Transmission.objects.filter(invoice_id=invoice.pk).first()
    if transmission is None or not collection_reported(invoice=invoice):
        return None
    reported = sum(
        amount or 0
        for amount in transmission.statuses.filter(
            code=LifecycleCode.COLLECTED, origin=LifecycleStatus.Origin.ISSUER
        ).values_list("amount", flat=True)
    )
    # Read again: the payment paths pass the invoice they locked, before it recorded the payment.
    paid = Invoice.objects.filter(pk=invoice.pk).values_list("amount_paid", flat=True).get()
    amount = paid - reported
    if amount <= 0:
        return None
    status, _created = LifecycleStatus.objects.get_or_create(
        transmission=transmission,
        code=LifecycleCode.COLLECTED,
        occurred_at=at,
        origin=LifecycleStatus.Origin.ISSUER,
        defaults={
            "amount": amount,
            "currency": invoice.currency,
            "vat_amounts": collected_vat_amounts(amount=amount, breakdown=invoice.tax_breakdown or []),
            "received_at": system_now(),
        },
    )
    return status


def collected_statuses_send(*, limit: int = 200) -> int:
    """Send the recorded "212 Encaissée" statuses of submitted documents (beat, with the
    submission sweeper). No lock is held during the call; `sent_at` is set by a conditional
    UPDATE after it, so a status is sent again only if the worker died between the two (the
    platform deduplicates on flow, code and date)."""
    pending = (
        LifecycleStatus.objects.filter(
            origin=LifecycleStatus.Origin.ISSUER, code=LifecycleCode.COLLECTED, sent_at__isnull=True
        )
        .exclude(transmission__flow_id="")
        .select_related("transmission__account")
        .order_by("pk")[:limit]
    )
    sent = 0
    for status in pending:
        transmission = status.transmission
        vat_amounts = status.vat_amounts
        if not vat_amounts and status.amount:  # recorded before the split existed: split it now
            breakdown = (
                Invoice.objects.filter(pk=transmission.invoice_id or 0).values_list("tax_breakdown", flat=True).first()
            )
            vat_amounts = collected_vat_amounts(amount=status.amount, breakdown=breakdown or [])
        try:
            adapter_for_account(account=transmission.account).submit_status(
                flow_id=transmission.flow_id,
                status=OutboundStatus(
                    code=status.code,
                    occurred_at=status.occurred_at,
                    amount=status.amount,
                    currency=status.currency,
                    vat_amounts=tuple(
                        VatRateAmount(rate=str(part["rate"]), amount=int(part["amount"])) for part in vat_amounts
                    ),
                ),
            )
        except (PlatformUnavailable, PlatformRejected) as error:
            logger.warning("einvoicing: collected status %s not sent: %s", status.pk, error)
            continue
        with transaction.atomic():
            marked = LifecycleStatus.objects.filter(pk=status.pk, sent_at__isnull=True).update(sent_at=system_now())
            if marked:
                archive_append(
                    kind="status",
                    reference=f"{transmission.tracking_id}:{status.code}:{status.pk}",
                    content=json.dumps(
                        {
                            "code": status.code,
                            "occurred_at": status.occurred_at.isoformat(),
                            "amount": status.amount,
                            "currency": status.currency,
                            "vat_amounts": vat_amounts,
                        },
                        sort_keys=True,
                    ).encode(),
                    brand=transmission.account.brand,
                    livemode=transmission.account.livemode,
                    metadata={"code": status.code, "origin": status.origin, "flow_id": transmission.flow_id},
                )
        sent += marked
    return sent


def _on_payment_recorded(*, invoice: Invoice, at: datetime) -> None:
    collected_status_record(invoice=invoice, at=at)


def einvoicing_register() -> None:
    """Connect routing to the moments documents are issued, and the collection status to payments
    (called from the app's ready())."""
    from billing.services.payments import payment_recorded  # deferred: app loading
    from invoices.services.credit_notes import credit_note_issued  # deferred: app loading
    from invoices.services.finalize import invoices_finalized  # deferred: app loading

    invoices_finalized.connect(transmissions_route_invoices)
    credit_note_issued.connect(transmissions_route_credit_note)
    payment_recorded.connect(_on_payment_recorded)


# --- platform accounts (console) ------------------------------------------------------------------

ACCOUNT_FIELDS = frozenset(
    {
        "name",
        "kind",
        "base_url",
        "token_url",
        "client_id",
        "client_secret",
        "webhook_secret",
        "default_syntax",
        "active",
    }
)
SECRET_FIELDS = frozenset({"client_secret", "webhook_secret"})


def platform_account_create(*, brand_id: int, livemode: bool, data: JsonMapping) -> PlatformAccount:
    """A brand's account at its PA in one mode (one per brand and mode: a second one is refused)."""
    unknown = set(data) - ACCOUNT_FIELDS
    if unknown:
        raise ValueError(f"unknown platform account fields: {sorted(unknown)}")
    with transaction.atomic(savepoint=False):
        if PlatformAccount.objects.filter(brand_id=brand_id, livemode=livemode).exists():
            raise PlatformAccountError(_("This brand already has a platform account in this mode."))
        return PlatformAccount.objects.create(brand_id=brand_id, livemode=livemode, **data)


def platform_account_update(*, account: PlatformAccount, changes: JsonMapping) -> PlatformAccount:
    """Change an account; an empty secret keeps the stored one (secrets are write-only)."""
    unknown = set(changes) - ACCOUNT_FIELDS
    if unknown:
        raise ValueError(f"unknown platform account fields: {sorted(unknown)}")
    with transaction.atomic(savepoint=False):
        locked = platform_account_qs_for_update().get(pk=account.pk)
        for name, value in changes.items():
            if name in SECRET_FIELDS and not value:
                continue
            setattr(locked, name, value)
        locked.save()
    return locked
