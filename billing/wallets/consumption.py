"""Credits meet invoices: consumption at finalization, return on void, and the balance thresholds.

Finalization (`invoices.services.finalize`, one invoice or a billing-run chunk) calls
`credits_plan` after it locked the customers and, once the invoices have ids,
`credits_record`. Both are set-based: one query locks every usable grant of the chunk's
customers (in primary-key order, `CREDIT_GRANT` rank: after the customer and the invoice,
before the number sequence), one INSERT writes the ledger rows and one UPDATE moves the
grants' `remaining`. An invoice is finalized once (its draft -> open transition is checked
under its lock), and the ledger refuses a second consumption of one grant by one invoice
(unique constraint), so credits are consumed exactly once under retries and concurrency.

This module imports no invoices service: finalization imports it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Sum, Value, When

from billing.models import Price
from billing.wallets.allocation import Allocation, GrantState, LineCapacity, allocate
from billing.wallets.locks import credit_grant_qs_for_update
from billing.wallets.models import CreditGrant, Wallet, WalletTransaction
from config.events.log import EventRow, event_record, events_record_bulk
from config.jobs import enqueue
from invoices.models import Invoice, InvoiceLine
from invoices.types import PreviewLine

#: `custom_fields` key marking an invoice that buys credits: credits never pay for credits.
PURCHASE_MARK = "credit_grant_purchase"

Status = CreditGrant.Status


def wallet_mode() -> str:
    return str(getattr(settings, "TARIF_WALLET_APPLIES", "after_tax"))


@dataclass(frozen=True, slots=True)
class PlanEntry:
    customer_id: int
    currency: str
    at: datetime
    lines: Sequence[InvoiceLine]
    total: int
    usable: bool = True  # False for an invoice that buys credits


@dataclass(slots=True)
class CreditPlan:
    entries: Sequence[PlanEntry]
    allocations: list[Allocation]
    grants: dict[int, CreditGrant] = field(default_factory=dict)

    def applied(self, index: int) -> int:
        return self.allocations[index].total if self.allocations else 0


def _state(grant: CreditGrant, remaining: int) -> GrantState:
    return GrantState(
        grant_id=grant.pk,
        remaining=remaining,
        priority=grant.priority,
        created_at=grant.created_at,
        effective_at=grant.effective_at,
        expires_at=grant.expires_at,
        active=grant.status == Status.ACTIVE,
        applies_to=grant.applies_to,
        price_ids=frozenset(int(pk) for pk in grant.price_ids or ()),
        product_ids=frozenset(int(pk) for pk in grant.product_ids or ()),
    )


def line_capacity(line: InvoiceLine, *, key: int, product_id: int | None = None) -> LineCapacity:
    return LineCapacity(
        key=key,
        kind=line.kind,
        net=line.amount - line.discount_amount,
        exclusive_tax=0 if line.tax_inclusive else line.tax_amount,
        price_id=line.price_id,
        product_id=product_id,
    )


def credits_plan(*, entries: Sequence[PlanEntry]) -> CreditPlan:
    """Lock the usable grants of these invoices' customers and decide what each invoice consumes.

    The caller holds the customers' locks. Invoices of one customer are served in the
    order given, each from what the previous ones left. One query when no customer has
    credits; one more when a grant is limited to products.
    """
    usable = [entry for entry in entries if entry.usable and entry.total > 0]
    if not usable:
        return CreditPlan(entries=entries, allocations=[])
    customer_ids = sorted({entry.customer_id for entry in usable})
    grants = list(
        credit_grant_qs_for_update().filter(customer_id__in=customer_ids, status=Status.ACTIVE, remaining__gt=0)
    )
    if not grants:
        return CreditPlan(entries=entries, allocations=[])
    by_wallet: dict[tuple[int, str], list[CreditGrant]] = defaultdict(list)
    for grant in grants:
        by_wallet[(grant.customer_id, grant.currency)].append(grant)
    products: dict[int, int] = {}
    if any(grant.product_ids for grant in grants):
        price_ids = {line.price_id for entry in usable for line in entry.lines if line.price_id is not None}
        products = dict(Price.objects.filter(pk__in=price_ids).values_list("pk", "product_id"))
    remaining = {grant.pk: grant.remaining for grant in grants}
    allocations: list[Allocation] = []
    mode = wallet_mode()
    for entry in entries:
        candidates = by_wallet.get((entry.customer_id, entry.currency), [])
        if not entry.usable or entry.total <= 0 or not candidates:
            allocations.append(Allocation())
            continue
        allocation = allocate(
            lines=[
                line_capacity(line, key=position, product_id=products.get(line.price_id) if line.price_id else None)
                for position, line in enumerate(entry.lines)
            ],
            invoice_total=entry.total,
            grants=[_state(grant, remaining[grant.pk]) for grant in candidates],
            at=entry.at,
            mode=mode,
        )
        for grant_id, used in allocation.by_grant.items():
            remaining[grant_id] -= used
        allocations.append(allocation)
    return CreditPlan(entries=entries, allocations=allocations, grants={grant.pk: grant for grant in grants})


class CreditsPreview:
    """The read-only counterpart of `credits_plan` for previews (invoices.types.CreditSource).

    Reads the customer's usable grants once (no lock: a preview writes nothing and a grant
    used meanwhile only makes the preview stale, as any preview is) and serves the invoices
    previewed in call order, each from what the previous ones left, with finalization's rules
    (`allocate`, the same wallet mode), so "what credit is used" on a confirmation page is
    what finalization will take.
    """

    def __init__(self, *, customer_id: int, currency: str) -> None:
        self._grants = list(
            CreditGrant.objects.filter(
                customer_id=customer_id, currency=currency.upper(), status=Status.ACTIVE, remaining__gt=0
            )
        )
        self._remaining = {grant.pk: grant.remaining for grant in self._grants}
        self._products: dict[int, int] | None = None

    def _product_of(self, price_ids: set[int]) -> dict[int, int]:
        if not any(grant.product_ids for grant in self._grants):
            return {}
        if self._products is None:
            self._products = {}
        missing = price_ids - set(self._products)
        if missing:
            self._products.update(Price.objects.filter(pk__in=missing).values_list("pk", "product_id"))
        return self._products

    def consume(self, *, lines: Sequence[PreviewLine], total: int, at: datetime) -> int:
        if not self._grants or total <= 0:
            return 0
        products = self._product_of({line.draft.price_id for line in lines if line.draft.price_id is not None})
        allocation = allocate(
            lines=[
                LineCapacity(
                    key=position,
                    kind=line.draft.kind,
                    net=line.totals.amount - line.totals.discount_amount,
                    exclusive_tax=0 if line.draft.tax_inclusive else line.totals.tax_amount,
                    price_id=line.draft.price_id,
                    product_id=products.get(line.draft.price_id) if line.draft.price_id is not None else None,
                )
                for position, line in enumerate(lines)
            ],
            invoice_total=total,
            grants=[_state(grant, self._remaining[grant.pk]) for grant in self._grants],
            at=at,
            mode=wallet_mode(),
        )
        for grant_id, used in allocation.by_grant.items():
            self._remaining[grant_id] -= used
        return allocation.total


def credits_record(
    *, plan: CreditPlan, invoice_ids: Sequence[int], livemode_of: Mapping[int, bool] | None = None
) -> int:
    """Write what `plan` decided, now that the invoices have ids: ledger rows (one INSERT), the
    grants' `remaining` (one UPDATE), then the thresholds of the wallets that went down.
    Returns the total consumed."""
    rows: list[WalletTransaction] = []
    consumed: dict[int, int] = defaultdict(int)
    for entry, allocation, invoice_id in zip(plan.entries, plan.allocations, invoice_ids, strict=False):
        for grant_id, used in allocation.by_grant.items():
            grant = plan.grants[grant_id]
            consumed[grant_id] += used
            rows.append(
                WalletTransaction(
                    wallet_id=grant.wallet_id,
                    grant_id=grant_id,
                    kind=WalletTransaction.Kind.CONSUMPTION,
                    amount=-used,
                    invoice_id=invoice_id,
                    created_at=entry.at,
                )
            )
    if not rows:
        return 0
    WalletTransaction.objects.bulk_create(rows)
    CreditGrant.objects.filter(pk__in=list(consumed)).update(
        remaining=Case(*(When(pk=pk, then=F("remaining") - Value(used)) for pk, used in consumed.items()))
    )
    before: dict[int, int] = defaultdict(int)
    for grant in plan.grants.values():
        before[grant.wallet_id] += grant.remaining
    after = dict(before)
    for grant_id, used in consumed.items():
        after[plan.grants[grant_id].wallet_id] -= used
    at_of_wallet = {}
    for entry, allocation in zip(plan.entries, plan.allocations, strict=False):
        for grant_id in allocation.by_grant:
            at_of_wallet[plan.grants[grant_id].wallet_id] = entry.at
    wallets_after_decrease(
        changes={wallet_id: (before[wallet_id], after[wallet_id]) for wallet_id in at_of_wallet},
        at_of=at_of_wallet,
        livemode_of=livemode_of,
    )
    return sum(consumed.values())


def wallets_after_decrease(
    *,
    changes: Mapping[int, tuple[int, int]],
    at_of: Mapping[int, datetime],
    livemode_of: Mapping[int, bool] | None = None,
) -> None:
    """The wallets' balances went from before to after (wallet id -> (before, after)), under
    their customer's lock: record `customer.wallet.balance_low` when a balance crosses under
    its threshold and request the automatic top-up, each once per crossing (the `*_armed`
    flags, flipped by a conditional UPDATE and re-armed when the balance is back above).
    """
    moved = {wallet_id: pair for wallet_id, pair in changes.items() if pair[1] < pair[0]}
    if not moved:
        return
    events: list[EventRow] = []
    top_ups: list[CreditGrant] = []
    watched = Q(low_balance_threshold__isnull=False) | Q(top_up_threshold__isnull=False)
    for wallet in Wallet.objects.filter(watched, pk__in=list(moved)).order_by("pk"):
        balance_before, balance_after = moved[wallet.pk]
        at = at_of[wallet.pk]
        threshold = wallet.low_balance_threshold
        if (
            threshold is not None
            and balance_after < threshold
            and Wallet.objects.filter(pk=wallet.pk, low_balance_armed=True).update(low_balance_armed=False)
        ):
            events.append(
                EventRow(
                    type="customer.wallet.balance_low",
                    object_type="wallet",
                    object_id=wallet.pk,
                    customer_id=wallet.customer_id,
                    occurred_at=at,
                    data={
                        "currency": wallet.currency,
                        "balance": balance_after,
                        "previous_balance": balance_before,
                        "threshold": threshold,
                    },
                    livemode=(livemode_of or {}).get(wallet.customer_id),
                )
            )
        if (
            wallet.top_up_threshold is not None
            and wallet.top_up_amount
            and balance_after < wallet.top_up_threshold
            and Wallet.objects.filter(pk=wallet.pk, top_up_armed=True).update(top_up_armed=False)
        ):
            top_ups.append(
                CreditGrant(
                    wallet=wallet,
                    customer_id=wallet.customer_id,
                    currency=wallet.currency,
                    category=CreditGrant.Category.PAID,
                    status=Status.PENDING,
                    amount=wallet.top_up_amount,
                    remaining=0,
                    effective_at=at,
                    automatic_top_up=True,
                    created_at=at,
                )
            )
    if top_ups:
        # Durable: the pending grant is the hand-off; the sweeper (wallets.top_ups_invoice) finds it
        # if the fast path below never runs. The purchase invoice is created outside this transaction.
        CreditGrant.objects.bulk_create(top_ups)
        for grant in top_ups:
            events.append(
                EventRow(
                    type="wallet.top_up.requested",
                    object_type="credit_grant",
                    object_id=grant.pk,
                    customer_id=grant.customer_id,
                    occurred_at=grant.created_at,
                    data={"currency": grant.currency, "amount": grant.amount, "automatic": True},
                    livemode=(livemode_of or {}).get(grant.customer_id),
                )
            )
        ids = [grant.pk for grant in top_ups]
        enqueue_top_ups_on_commit(grant_ids=ids)
    if events:
        events_record_bulk(rows=events)


def enqueue_top_ups_on_commit(*, grant_ids: list[int]) -> None:
    transaction.on_commit(lambda: enqueue("wallets.top_ups_invoice", kwargs={"grant_ids": grant_ids}), robust=True)


def wallets_rearm(*, wallet_ids: Sequence[int]) -> None:
    """After credits were added: re-arm the alerts and top-ups of wallets back at or above their thresholds."""
    if not wallet_ids:
        return
    totals = dict(
        CreditGrant.objects.filter(wallet_id__in=wallet_ids, status=Status.ACTIVE)
        .values("wallet_id")
        .annotate(total=Sum("remaining"))
        .values_list("wallet_id", "total")
    )
    for wallet in Wallet.objects.filter(pk__in=wallet_ids):
        balance = totals.get(wallet.pk) or 0
        updates = {}
        if not wallet.low_balance_armed and (
            wallet.low_balance_threshold is None or balance >= wallet.low_balance_threshold
        ):
            updates["low_balance_armed"] = True
        if not wallet.top_up_armed and (wallet.top_up_threshold is None or balance >= wallet.top_up_threshold):
            updates["top_up_armed"] = True
        if updates:
            Wallet.objects.filter(pk=wallet.pk).update(**updates)


def credits_return(*, invoice: Invoice, at: datetime) -> int:
    """An invoice that consumed credits is voided: each grant gets back what this invoice took
    (a `reversal` row). A grant that has expired or been voided since gets it back and loses it
    again at once (an `expiry` / `void` row), so returned credits never outlive their grant.
    The caller holds the customer's and the invoice's locks. Returns the amount returned."""
    taken: dict[int, int] = defaultdict(int)
    for grant_id, amount in WalletTransaction.objects.filter(
        invoice=invoice, kind=WalletTransaction.Kind.CONSUMPTION
    ).values_list("grant_id", "amount"):
        taken[grant_id] += -amount
    if not taken:
        return 0
    grants = list(credit_grant_qs_for_update().filter(pk__in=list(taken)))
    rows: list[WalletTransaction] = []
    usable_back: dict[int, int] = {}
    for grant in grants:
        amount = taken[grant.pk]
        rows.append(
            WalletTransaction(
                wallet_id=grant.wallet_id,
                grant=grant,
                kind=WalletTransaction.Kind.REVERSAL,
                amount=amount,
                invoice=invoice,
                created_at=at,
            )
        )
        gone = grant.status in (Status.EXPIRED, Status.VOIDED) or (
            grant.expires_at is not None and grant.expires_at <= at
        )
        if gone:
            kind = WalletTransaction.Kind.VOID if grant.status == Status.VOIDED else WalletTransaction.Kind.EXPIRY
            rows.append(
                WalletTransaction(
                    wallet_id=grant.wallet_id, grant=grant, kind=kind, amount=-amount, invoice=None, created_at=at
                )
            )
        else:
            usable_back[grant.pk] = amount
    WalletTransaction.objects.bulk_create(rows)
    if usable_back:
        CreditGrant.objects.filter(pk__in=list(usable_back)).update(
            remaining=Case(*(When(pk=pk, then=F("remaining") + Value(amount)) for pk, amount in usable_back.items()))
        )
        wallets_rearm(wallet_ids=sorted({grant.wallet_id for grant in grants if grant.pk in usable_back}))
    total = sum(taken.values())
    event_record(
        type="wallet.credits_returned",
        object_type="invoice",
        object_id=invoice.pk,
        customer_id=invoice.customer_id,
        occurred_at=at,
        data={"number": invoice.number, "currency": invoice.currency, "amount": total},
    )
    return total
