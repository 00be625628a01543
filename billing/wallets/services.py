"""Prepaid credits: grant, buy, void, expire, top up (docs/billing.md "Prepaid credits").

Every write goes through here (API, console, portal, tasks). Lock order: the customer
(stands for its balance and wallets), then its wallet, then its grants in pk order; the
consumption by invoices lives in `billing.wallets.consumption` (finalization calls it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils.translation import gettext as _

from billing.limits import MAX_AMOUNT
from billing.models import Price, Product
from billing.services.payments import payment_recorded
from billing.wallets.consumption import PURCHASE_MARK, wallets_after_decrease, wallets_rearm
from billing.wallets.errors import CreditGrantConflict, WalletCurrencyMismatch, WalletError
from billing.wallets.locks import credit_grant_qs_for_update, wallet_qs_for_update
from billing.wallets.models import CreditGrant, Wallet, WalletTransaction
from config import clock
from config.events.log import event_record
from config.jobs import enqueue
from config.types import ActingUser
from customers.locks import customers_lock_balance
from customers.models import Customer
from invoices.models import Invoice, InvoiceLine
from invoices.selectors import brand_for_customer
from invoices.services.drafts import invoice_build, invoice_fields, invoice_line_objects
from invoices.services.finalize import invoice_finalize
from invoices.types import DraftInvoice, DraftLine
from invoices.vat import VatDecision

Status = CreditGrant.Status
Category = CreditGrant.Category
AppliesTo = CreditGrant.AppliesTo
MAX_PRIORITY = 100


def _check_money(value: object, *, field: str, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WalletError(_("%(field)s must be a whole number of minor units.") % {"field": field}, field=field)
    low = 0 if allow_zero else 1
    if not low <= value <= MAX_AMOUNT:
        raise WalletError(
            _("%(field)s must be between %(low)d and %(high)d minor units.")
            % {"field": field, "low": low, "high": MAX_AMOUNT},
            code="out_of_bounds",
            field=field,
        )
    return value


def _grant_event(type: str, grant: CreditGrant, at: datetime, acting_user: ActingUser = None, **extra: object) -> None:
    event_record(
        type=type,
        object_type="credit_grant",
        object_id=grant.pk,
        customer_id=grant.customer_id,
        occurred_at=at,
        data={
            "currency": grant.currency,
            "category": grant.category,
            "status": grant.status,
            "amount": grant.amount,
            "remaining": grant.remaining,
            "expires_at": grant.expires_at,
            **extra,
        },
        acting_user=acting_user,
    )


def wallet_for_update(*, customer: Customer, currency: str) -> Wallet:
    """The customer's wallet in `currency`, created on first use, locked. The caller holds the customer's lock."""
    currency = currency.upper()
    Wallet.objects.get_or_create(customer=customer, currency=currency)
    return wallet_qs_for_update().get(customer=customer, currency=currency)


def wallet_balance(*, wallet: Wallet) -> int:
    return sum(CreditGrant.objects.filter(wallet=wallet, status=Status.ACTIVE).values_list("remaining", flat=True))


@transaction.atomic  # an entry point: a refusal rolls back its savepoint, not the caller's work
def wallet_configure(
    *,
    customer: Customer,
    currency: str,
    low_balance_threshold: int | None,
    top_up_threshold: int | None,
    top_up_amount: int | None,
    acting_user: ActingUser = None,
) -> Wallet:
    """Set a wallet's low-balance alert and automatic top-up rule (None: off)."""
    if low_balance_threshold is not None:
        _check_money(low_balance_threshold, field="low_balance_threshold", allow_zero=True)
    if (top_up_threshold is None) != (top_up_amount is None):
        raise WalletError(_("An automatic top-up needs both a threshold and an amount."), field="top_up_amount")
    if top_up_threshold is not None:
        _check_money(top_up_threshold, field="top_up_threshold", allow_zero=True)
        _check_money(top_up_amount, field="top_up_amount")
    customers_lock_balance(customer_ids=[customer.pk])
    wallet = wallet_for_update(customer=customer, currency=currency)
    wallet.low_balance_threshold = low_balance_threshold
    wallet.top_up_threshold = top_up_threshold
    wallet.top_up_amount = top_up_amount
    wallet.save(update_fields=["low_balance_threshold", "top_up_threshold", "top_up_amount"])
    wallets_rearm(wallet_ids=[wallet.pk])
    wallet.refresh_from_db()
    return wallet


@dataclass(frozen=True, slots=True)
class GrantRequest:
    amount: int
    currency: str
    category: str = Category.PROMOTIONAL
    name: str = ""
    priority: int = 50
    effective_at: datetime | None = None
    expires_at: datetime | None = None
    applies_to: str = AppliesTo.ALL
    price_ids: Sequence[int] = ()
    product_ids: Sequence[int] = ()
    reason: str = ""
    metadata: dict | None = None


def _check_request(*, customer: Customer, request: GrantRequest, at: datetime) -> None:
    _check_money(request.amount, field="amount")
    if request.category not in Category.values:
        raise WalletError(_("Unknown category."), field="category")
    if request.applies_to not in AppliesTo.values:
        raise WalletError(_("Unknown eligibility."), field="applies_to")
    if isinstance(request.priority, bool) or not 0 <= request.priority <= MAX_PRIORITY:
        raise WalletError(
            _("Priority is between 0 and %(max)d.") % {"max": MAX_PRIORITY}, code="out_of_bounds", field="priority"
        )
    if customer.currency and request.currency.upper() != customer.currency.upper():
        raise WalletCurrencyMismatch(
            _("Credits are in the customer's currency (%(currency)s).") % {"currency": customer.currency.upper()},
            field="currency",
        )
    effective_at = request.effective_at or at
    if request.expires_at is not None and request.expires_at <= max(effective_at, at):
        raise WalletError(_("The expiry must be in the future and after the start."), field="expires_at")
    if request.applies_to == AppliesTo.PRICES:
        if not request.price_ids and not request.product_ids:
            raise WalletError(_("Name the prices or products these credits pay for."), field="price_ids")
        mode = customer.livemode
        found_prices = Price.objects.filter(pk__in=list(request.price_ids), livemode=mode).count()
        found_products = Product.objects.filter(pk__in=list(request.product_ids), livemode=mode).count()
        if found_prices != len(set(request.price_ids)) or found_products != len(set(request.product_ids)):
            raise WalletError(_("A price or product does not exist."), code="resource_missing", field="price_ids")
    elif request.price_ids or request.product_ids:
        raise WalletError(_("Prices and products go with applies_to=prices."), field="applies_to")


@transaction.atomic  # an entry point: a refusal rolls back its savepoint, not the caller's work
def credit_grant_create(
    *, customer: Customer, request: GrantRequest, acting_user: ActingUser = None, at: datetime | None = None
) -> CreditGrant:
    """Grant credits. Promotional: available at once (a `grant` ledger row). Paid: a purchase
    invoice for the amount is issued and collected; the credits become available when it is paid."""
    at = at or clock.now(customer=customer)
    _check_request(customer=customer, request=request, at=at)
    # The customer's lock serializes every move of its credits; the wallet row is not locked here,
    # because a paid grant then issues its purchase invoice (ranked before the wallet).
    customers_lock_balance(customer_ids=[customer.pk])
    wallet, _created = Wallet.objects.get_or_create(customer=customer, currency=request.currency.upper())
    paid = request.category == Category.PAID
    grant = CreditGrant.objects.create(
        wallet=wallet,
        customer=customer,
        currency=wallet.currency,
        name=request.name[:100],
        category=request.category,
        status=Status.PENDING if paid else Status.ACTIVE,
        amount=request.amount,
        remaining=0 if paid else request.amount,
        priority=request.priority,
        effective_at=request.effective_at or at,
        expires_at=request.expires_at,
        applies_to=request.applies_to,
        price_ids=sorted({int(pk) for pk in request.price_ids}),
        product_ids=sorted({int(pk) for pk in request.product_ids}),
        reason=request.reason[:300],
        metadata=request.metadata or {},
        created_at=at,
    )
    if not paid:
        WalletTransaction.objects.create(
            wallet=wallet, grant=grant, kind=WalletTransaction.Kind.GRANT, amount=grant.amount, created_at=at
        )
        wallets_rearm(wallet_ids=[wallet.pk])
    _grant_event("wallet.credit_grant.created", grant, at, acting_user, reason=grant.reason)
    if paid:
        _purchase_invoice(grant=grant, customer=customer, acting_user=acting_user)
    return grant


def _purchase_invoice(*, grant: CreditGrant, customer: Customer, acting_user: ActingUser) -> Invoice:
    """Issue the invoice that buys a paid grant. Out of VAT scope: credits are a multi-purpose
    voucher (EU directive 2016/1065), taxed when they pay the invoices they are used on."""
    draft = DraftInvoice(
        customer_id=customer.pk,
        currency=grant.currency,
        billing_reason=Invoice.BillingReason.MANUAL,
        lines=(
            DraftLine(
                kind=InvoiceLine.Kind.ONE_OFF,
                description=grant.name or _("Prepaid credits"),
                amount=grant.amount,
                discountable=False,
                metadata={"credit_grant_id": grant.pk},
            ),
        ),
    )
    decision = VatDecision(
        category="O", rate=Decimal(0), mention_key=None, reason="prepaid credits: a multi-purpose voucher"
    )
    brand = brand_for_customer(customer=customer)
    preview = invoice_build(customer=customer, draft=draft, brand=brand, decision=decision)
    fields = invoice_fields(draft=draft, preview=preview, language=customer.preferred_language)
    fields["custom_fields"] = {**fields["custom_fields"], PURCHASE_MARK: grant.pk}
    invoice = Invoice.objects.create(**fields)
    InvoiceLine.objects.bulk_create(invoice_line_objects(preview=preview, invoice_id=invoice.pk))
    grant.purchase_invoice = invoice
    grant.save(update_fields=["purchase_invoice"])
    invoice = invoice_finalize(invoice=invoice, acting_user=acting_user)
    if invoice.status == Invoice.Status.PAID:  # the customer's balance paid it at once
        # After commit (the number sequence is held until then); the sweeper is the durable side.
        _settle_on_commit(invoice_id=invoice.pk)
    return invoice


def _settle_on_commit(*, invoice_id: int) -> None:
    transaction.on_commit(lambda: enqueue("wallets.settle", kwargs={"invoice_ids": [invoice_id]}), robust=True)


@transaction.atomic(savepoint=False)
def credit_grants_settle(*, invoice_ids: Iterable[int] | None = None, at: datetime | None = None) -> int:
    """Paid grants follow their purchase invoice: paid -> the credits become available (a
    `grant` row, event `wallet.credit_grant.granted`); voided or uncollectible -> the grant is
    voided. `invoice_ids` None: every pending grant (the sweeper). Returns how many moved."""
    pending = CreditGrant.objects.filter(status=Status.PENDING, purchase_invoice__isnull=False).filter(
        purchase_invoice__status__in=[Invoice.Status.PAID, Invoice.Status.VOID, Invoice.Status.UNCOLLECTIBLE]
    )
    if invoice_ids is not None:
        pending = pending.filter(purchase_invoice_id__in=list(invoice_ids))
    customer_ids = sorted(set(pending.values_list("customer_id", flat=True)))
    if not customer_ids:
        return 0
    customers_lock_balance(customer_ids=customer_ids)
    moved = 0
    wallet_ids: set[int] = set()
    for grant in credit_grant_qs_for_update().filter(pk__in=pending.values("pk")).select_related("purchase_invoice"):
        if grant.status != Status.PENDING:
            continue  # settled by a concurrent call
        invoice = grant.purchase_invoice
        assert invoice is not None
        when = at or clock.now(customer=grant.customer)
        if invoice.status == Invoice.Status.PAID:
            grant.status = Status.ACTIVE
            grant.remaining = grant.amount
            grant.save(update_fields=["status", "remaining"])
            WalletTransaction.objects.create(
                wallet_id=grant.wallet_id,
                grant=grant,
                kind=WalletTransaction.Kind.GRANT,
                amount=grant.amount,
                invoice=invoice,
                created_at=when,
            )
            wallet_ids.add(grant.wallet_id)
            _grant_event("wallet.credit_grant.granted", grant, when, invoice_number=invoice.number)
        else:
            grant.status = Status.VOIDED
            grant.voided_at = when
            grant.save(update_fields=["status", "voided_at"])
            _grant_event("wallet.credit_grant.voided", grant, when, reason="purchase invoice " + invoice.status)
        moved += 1
    wallets_rearm(wallet_ids=sorted(wallet_ids))
    return moved


@transaction.atomic  # an entry point: a refusal rolls back its savepoint, not the caller's work
def credit_grant_void(
    *, grant: CreditGrant, reason: str = "", acting_user: ActingUser = None, at: datetime | None = None
) -> CreditGrant:
    """Void a grant: what remains of it is gone (a `void` row). A paid grant still awaiting
    payment is voided too (its purchase invoice stays: void or credit it separately)."""
    customers_lock_balance(customer_ids=[grant.customer_id])
    wallet_qs_for_update().filter(pk=grant.wallet_id).get()
    grant = credit_grant_qs_for_update().select_related("customer").get(pk=grant.pk)
    at = at or clock.now(customer=grant.customer)
    if grant.status not in (Status.ACTIVE, Status.PENDING):
        raise CreditGrantConflict(
            _("This grant is %(status)s: it cannot be voided.") % {"status": grant.get_status_display()}
        )
    before = wallet_balance(wallet=grant.wallet)
    lost = grant.remaining
    if lost:
        WalletTransaction.objects.create(
            wallet_id=grant.wallet_id, grant=grant, kind=WalletTransaction.Kind.VOID, amount=-lost, created_at=at
        )
    grant.status = Status.VOIDED
    grant.remaining = 0
    grant.voided_at = at
    grant.save(update_fields=["status", "remaining", "voided_at"])
    _grant_event("wallet.credit_grant.voided", grant, at, acting_user, reason=reason[:300], amount_voided=lost)
    wallets_after_decrease(changes={grant.wallet_id: (before, before - lost)}, at_of={grant.wallet_id: at})
    return grant


@transaction.atomic(savepoint=False)
def credit_grants_expire(*, at: datetime) -> int:
    """Expire every active grant whose expiry has passed: what remains is lost (an `expiry`
    row, event `wallet.credit_grant.expired`). Returns how many grants expired."""
    due = CreditGrant.objects.filter(status=Status.ACTIVE, expires_at__lte=at)
    customer_ids = sorted(set(due.values_list("customer_id", flat=True)))
    if not customer_ids:
        return 0
    customers_lock_balance(customer_ids=customer_ids)
    grants = list(credit_grant_qs_for_update().filter(pk__in=due.values("pk")))
    wallet_before = {
        wallet_id: wallet_balance(wallet=Wallet(pk=wallet_id)) for wallet_id in {g.wallet_id for g in grants}
    }
    lost_by_wallet: dict[int, int] = dict.fromkeys(wallet_before, 0)
    for grant in grants:
        if grant.status != Status.ACTIVE or grant.expires_at is None or grant.expires_at > at:
            continue
        lost = grant.remaining
        if lost:
            WalletTransaction.objects.create(
                wallet_id=grant.wallet_id,
                grant=grant,
                kind=WalletTransaction.Kind.EXPIRY,
                amount=-lost,
                created_at=grant.expires_at,
            )
        grant.status = Status.EXPIRED
        grant.remaining = 0
        grant.save(update_fields=["status", "remaining"])
        lost_by_wallet[grant.wallet_id] += lost
        _grant_event("wallet.credit_grant.expired", grant, grant.expires_at, amount_expired=lost)
    wallets_after_decrease(
        changes={wid: (before, before - lost_by_wallet[wid]) for wid, before in wallet_before.items()},
        at_of=dict.fromkeys(wallet_before, at),
    )
    return len(grants)


def top_ups_invoice(*, grant_ids: Iterable[int] | None = None) -> int:
    """Issue the purchase invoice of each automatic top-up still waiting for one (the fast path
    after commit, and the sweeper). Each in its own transaction, after the one that requested it:
    the invoice goes to collection through the default payment method by the usual hand-off."""
    waiting = CreditGrant.objects.filter(status=Status.PENDING, purchase_invoice__isnull=True)
    if grant_ids is not None:
        waiting = waiting.filter(pk__in=list(grant_ids))
    done = 0
    for grant_id in waiting.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            customer_id = CreditGrant.objects.values_list("customer_id", flat=True).get(pk=grant_id)
            customers_lock_balance(customer_ids=[customer_id])
            # Read under the customer's lock (which every writer of its grants holds), not locked
            # itself: issuing the invoice locks it, ranked before the grants.
            grant = CreditGrant.objects.select_related("customer").get(pk=grant_id)
            if grant.status != Status.PENDING or grant.purchase_invoice_id is not None:
                continue  # done by a concurrent run
            _purchase_invoice(grant=grant, customer=grant.customer, acting_user=None)
            done += 1
    return done


def wallets_sweep(*, at: datetime | None = None) -> dict[str, int]:
    """Beat: expiries, settled purchases, waiting top-ups."""
    now = at or clock.now()
    return {
        "expired": credit_grants_expire(at=now),
        "settled": credit_grants_settle(),
        "top_ups": top_ups_invoice(),
    }


def _on_payment_recorded(*, invoice: Invoice, at: datetime) -> None:
    # The fast path: a payment that settles a purchase invoice grants its credits right after
    # commit. Not inline: the payment holds locks ranked after the customer and the grants. The
    # durable side is the pending grant itself, which the sweeper settles (as it does for
    # purchase invoices paid another way: a credit note, the balance).
    del at
    if PURCHASE_MARK in (invoice.custom_fields or {}):
        _settle_on_commit(invoice_id=invoice.pk)


def wallets_register() -> None:
    payment_recorded.connect(_on_payment_recorded)


__all__ = [
    "GrantRequest",
    "credit_grant_create",
    "credit_grant_void",
    "credit_grants_expire",
    "credit_grants_settle",
    "top_ups_invoice",
    "wallet_configure",
    "wallets_sweep",
]
