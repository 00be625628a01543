"""`verify_integrity`: the money invariants of docs/architecture.md, checked on the stored data.

Each check yields Violations (what, which document, why). Nothing here writes. Run after
a restore, a failover, or any time (it reads in chunks; a big database takes minutes).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.db.models import Count, Q, Sum

from billing.entitlements.selectors import entitlement_mismatches
from billing.models import Payment
from billing.selectors import usage_month_rollup_differences
from billing.wallets.models import CreditGrant, WalletTransaction
from invoices.errors import InvoiceDoesNotReconcile
from invoices.models import BalanceTransaction, CreditNote, Document, Invoice, NumberSequence
from invoices.selectors import credit_note_content_hash_matches, invoice_content_hash_matches
from invoices.services.chain import chain_walk
from invoices.services.finalize import due_at_for, invoice_totals_from_lines
from invoices.services.numbering import _format, sequence_series_key
from reports.summary import mrr_cohort_differences, mrr_month_total_differences

CHUNK = 500


@dataclass(frozen=True)
class Violation:
    check: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.subject}: {self.detail}"


def check_numbering() -> Iterator[Violation]:
    """Every number of every series from 1 to its counter exists exactly once, and no other."""
    documents = {
        NumberSequence.Kind.INVOICE: set(Invoice.objects.exclude(number=None).values_list("brand_id", "number")),
        NumberSequence.Kind.CREDIT_NOTE: set(CreditNote.objects.values_list("invoice__brand_id", "number")),
    }
    expected_all: dict[str, set[tuple[int, str]]] = defaultdict(set)
    for sequence in NumberSequence.objects.select_related("brand").order_by("brand_id", "kind", "scope"):
        key = sequence_series_key(sequence)
        expected = {(sequence.brand_id, _format(key, value)) for value in range(1, sequence.last_value + 1)}
        expected_all[sequence.kind] |= expected
        missing = sorted(number for _, number in expected - documents[sequence.kind])
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            yield Violation(
                "numbering",
                f"{sequence.brand.name} {sequence.kind} {sequence.scope or '(no scope)'}",
                f"{len(missing)} number(s) issued by the counter but held by no document (gap): {shown}",
            )
    for kind, numbered in documents.items():
        for _brand, number in sorted(numbered - expected_all[kind]):
            yield Violation("numbering", f"{kind} {number}", "number lies outside its series' counter")


def _columns_off_snapshot(invoice: Invoice) -> list[str]:
    """Frozen columns outside the content hash that no longer agree with the hashed snapshot."""
    snapshot = invoice.issued_snapshot or {}
    if "collection_method" not in snapshot:
        return []  # an invoice issued before snapshots recorded these
    off = [
        column
        for column in ("collection_method", "language")
        if column in snapshot and getattr(invoice, column) != snapshot[column]
    ]
    if invoice.finalized_at is not None:
        expected_due = due_at_for(
            at=invoice.finalized_at,
            collection_method=snapshot["collection_method"],
            days=int(snapshot.get("days_until_due") or 0),
        )
        if invoice.due_at != expected_due:
            off.append("due_at")
    return off


def check_hashes() -> Iterator[Violation]:
    """Finalized invoices and credit notes still hash to what was recorded at issue.

    The frozen columns the hash does not cover (due date, collection method, language)
    must still agree with the hashed snapshot.
    """
    invoices = Invoice.objects.exclude(status=Invoice.Status.DRAFT).order_by("pk")
    for invoice in invoices.iterator(chunk_size=CHUNK):
        if not invoice.content_hash:
            yield Violation("immutability", f"invoice {invoice.number}", "no content hash was recorded at issue")
        elif not invoice_content_hash_matches(invoice=invoice):
            yield Violation("immutability", f"invoice {invoice.number}", "content differs from what was issued")
        for column in _columns_off_snapshot(invoice):
            yield Violation(
                "immutability", f"invoice {invoice.number}", f"{column} differs from what was issued (its snapshot)"
            )
    for credit_note in CreditNote.objects.order_by("pk").iterator(chunk_size=CHUNK):
        if not credit_note_content_hash_matches(credit_note=credit_note):
            yield Violation("immutability", f"credit note {credit_note.number}", "content differs from what was issued")


def check_chain() -> Iterator[Violation]:
    """Each number series' keyed hash chain holds: nothing removed, rewritten or reordered since issue.

    The chain key is not in the database (invoices/chain.py), so this catches a deletion or a
    consistent rewrite (content and sha256 recomputed) by whoever could write the tables.
    """
    for sequence in NumberSequence.objects.select_related("brand").order_by("brand_id", "kind", "scope"):
        subject = f"{sequence.brand.name} {sequence.kind} {sequence.scope or '(no scope)'}"
        for chain_break in chain_walk(sequence=sequence, invoice_model=Invoice, credit_note_model=CreditNote):
            yield Violation("chain", f"{subject} {chain_break.number}", chain_break.detail)


def check_totals() -> Iterator[Violation]:
    """Each issued invoice's totals are exactly what its lines give."""
    invoices = Invoice.objects.exclude(status=Invoice.Status.DRAFT).prefetch_related("lines").order_by("pk")
    for invoice in invoices.iterator(chunk_size=CHUNK):
        lines = sorted(invoice.lines.all(), key=lambda line: line.position)
        try:
            invoice_totals_from_lines(invoice=invoice, lines=lines)
        except InvoiceDoesNotReconcile as error:
            yield Violation(
                "totals", f"invoice {invoice.number}", str(error).replace(f"Draft invoice #{invoice.pk}", "it")
            )


def check_balances() -> Iterator[Violation]:
    """What remains due = due - paid - reduced by credit notes; statuses agree; payments add up."""
    reduced = dict(
        CreditNote.objects.exclude(status="void")
        .values("invoice_id")
        .annotate(s=Sum("reduced_amount_due"))
        .values_list("invoice_id", "s")
    )
    succeeded = dict(
        Payment.objects.filter(status=Payment.Status.SUCCEEDED)
        .values("invoice_id")
        .annotate(s=Sum("amount"))
        .values_list("invoice_id", "s")
    )
    with_payments = set(Payment.objects.values_list("invoice_id", flat=True).distinct())
    invoices = Invoice.objects.exclude(status=Invoice.Status.DRAFT).order_by("pk")
    for invoice in invoices.iterator(chunk_size=CHUNK):
        subject = f"invoice {invoice.number}"
        if invoice.status == Invoice.Status.VOID:
            if invoice.amount_remaining or invoice.amount_paid:
                yield Violation("balances", subject, "a void invoice has money remaining or paid")
            continue
        expected = invoice.amount_due - invoice.amount_paid - (reduced.get(invoice.pk) or 0)
        if invoice.amount_remaining != expected:
            yield Violation(
                "balances",
                subject,
                f"amount remaining is {invoice.amount_remaining}, expected due {invoice.amount_due} - paid "
                f"{invoice.amount_paid} - credited {reduced.get(invoice.pk) or 0} = {expected}",
            )
        if invoice.status == Invoice.Status.PAID and invoice.amount_remaining != 0:
            yield Violation("balances", subject, "marked paid but money remains due")
        if invoice.status == Invoice.Status.OPEN and invoice.amount_remaining <= 0:
            yield Violation("balances", subject, "open although nothing remains due")
        if (invoice.pk in with_payments or invoice.amount_paid) and (
            succeeded.get(invoice.pk) or 0
        ) != invoice.amount_paid:
            yield Violation(
                "payments",
                subject,
                f"amount paid is {invoice.amount_paid} but its succeeded payments sum to "
                f"{succeeded.get(invoice.pk) or 0}",
            )


def check_ledger() -> Iterator[Violation]:
    """The balance ledger matches the invoices and credit notes that moved it; no balance below zero."""
    applied = dict(
        BalanceTransaction.objects.filter(kind=BalanceTransaction.Kind.APPLIED_TO_INVOICE)
        .values("invoice_id")
        .annotate(s=Sum("amount"))
        .values_list("invoice_id", "s")
    )
    for invoice in (
        Invoice.objects.exclude(status=Invoice.Status.DRAFT)
        .filter(~Q(starting_balance_applied=0) | Q(pk__in=list(applied)))
        .order_by("pk")
    ):
        if -(applied.get(invoice.pk) or 0) != invoice.starting_balance_applied:
            yield Violation(
                "ledger",
                f"invoice {invoice.number}",
                f"applied {invoice.starting_balance_applied} of customer credit but the ledger shows "
                f"{-(applied.get(invoice.pk) or 0)}",
            )
    credited = dict(
        BalanceTransaction.objects.filter(kind=BalanceTransaction.Kind.CREDIT_NOTE)
        .values("credit_note_id")
        .annotate(s=Sum("amount"))
        .values_list("credit_note_id", "s")
    )
    for credit_note in CreditNote.objects.filter(~Q(credited_to_balance=0) | Q(pk__in=list(credited))).order_by("pk"):
        if (credited.get(credit_note.pk) or 0) != credit_note.credited_to_balance:
            yield Violation(
                "ledger",
                f"credit note {credit_note.number}",
                f"credited {credit_note.credited_to_balance} to the balance but the ledger shows "
                f"{credited.get(credit_note.pk) or 0}",
            )
    negative = (
        BalanceTransaction.objects.values("customer_id", "currency")
        .annotate(balance=Sum("amount"))
        .filter(balance__lt=0)
    )
    for row in negative:
        yield Violation(
            "ledger", f"customer {row['customer_id']}", f"balance in {row['currency']} is negative ({row['balance']})"
        )


def check_duplicates() -> Iterator[Violation]:
    """At most one renewal invoice per subscription-period (voided ones aside)."""
    duplicates = (
        Invoice.objects.filter(billing_reason=Invoice.BillingReason.SUBSCRIPTION_CYCLE)
        .exclude(status=Invoice.Status.VOID)
        .values("subscription_id", "period_start")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
    )
    for row in duplicates:
        yield Violation(
            "duplicates",
            f"subscription {row['subscription_id']}",
            f"{row['n']} invoices for the period {row['period_start']}",
        )


def check_documents() -> Iterator[Violation]:
    """Every stored PDF is present and still has the bytes (sha256) that were sent."""
    for document in Document.objects.order_by("pk").iterator(chunk_size=CHUNK):
        try:
            with document.file.open("rb") as stored:
                digest = hashlib.file_digest(stored, "sha256").hexdigest()
        except FileNotFoundError:
            yield Violation("documents", document.file.name, "the stored PDF is missing")
            continue
        if digest != document.sha256:
            yield Violation("documents", document.file.name, "the stored PDF's bytes changed (sha256 differs)")


def check_entitlements() -> Iterator[Violation]:
    """Every subscription's entitlements projection equals what its status, items and catalog grant."""
    for subscription_id, stored, expected in entitlement_mismatches(chunk=CHUNK):
        yield Violation(
            "entitlements",
            f"subscription {subscription_id}",
            f"stored {dict(sorted(stored.items()))} but grants {dict(sorted(expected.items()))} "
            "(feature id: quantity); `manage.py entitlements_rebuild` repairs it",
        )


def check_wallets() -> Iterator[Violation]:
    """Prepaid credits (issue 16): each grant's remaining is its ledger's sum, within [0, amount];
    each invoice's credits_applied is what its consumption rows took."""
    ledger = dict(WalletTransaction.objects.values("grant_id").annotate(s=Sum("amount")).values_list("grant_id", "s"))
    for grant in CreditGrant.objects.order_by("pk").iterator(chunk_size=CHUNK):
        total = ledger.get(grant.pk) or 0
        if grant.remaining != total or not 0 <= grant.remaining <= grant.amount:
            yield Violation(
                "wallets",
                f"credit grant #{grant.pk}",
                f"remaining is {grant.remaining} of {grant.amount} but its ledger sums to {total}",
            )
    consumed = dict(
        WalletTransaction.objects.filter(kind=WalletTransaction.Kind.CONSUMPTION)
        .values("invoice_id")
        .annotate(s=Sum("amount"))
        .values_list("invoice_id", "s")
    )
    for invoice in (
        Invoice.objects.exclude(status=Invoice.Status.DRAFT)
        .filter(~Q(credits_applied=0) | Q(pk__in=list(consumed)))
        .order_by("pk")
    ):
        if -(consumed.get(invoice.pk) or 0) != invoice.credits_applied:
            yield Violation(
                "wallets",
                f"invoice {invoice.number}",
                f"applied {invoice.credits_applied} of prepaid credits but the ledger shows "
                f"{-(consumed.get(invoice.pk) or 0)}",
            )


def check_mrr_totals() -> Iterator[Violation]:
    """The MRR reports' month totals equal the sums of the MRR summary's rows they stand for."""
    for difference in mrr_month_total_differences():
        yield Violation("mrr_totals", "MRR month totals", difference)


def check_mrr_cohorts() -> Iterator[Violation]:
    """The cohort report's cells equal the cells the MRR summary's rows give."""
    for difference in mrr_cohort_differences():
        yield Violation("mrr_cohorts", "MRR cohort cells", difference)


def check_usage_months() -> Iterator[Violation]:
    """The usage month rollups (the usage report's whole months) equal the sums of their daily rollups."""
    for difference in usage_month_rollup_differences():
        yield Violation("usage_months", "usage month rollups", difference)


CHECKS: dict[str, Callable[[], Iterator[Violation]]] = {
    "numbering": check_numbering,
    "immutability": check_hashes,
    "chain": check_chain,
    "totals": check_totals,
    "balances": check_balances,
    "ledger": check_ledger,
    "duplicates": check_duplicates,
    "documents": check_documents,
    "entitlements": check_entitlements,
    "wallets": check_wallets,
    "mrr_totals": check_mrr_totals,
    "mrr_cohorts": check_mrr_cohorts,
    "usage_months": check_usage_months,
}


def integrity_verify(*, checks: list[str] | None = None) -> dict[str, list[Violation]]:
    return {name: list(CHECKS[name]()) for name in (checks or list(CHECKS))}
