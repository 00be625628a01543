"""Importing a Stripe account into Tarif (issue 16, item 14; docs/migrating-from-stripe.md).

`stripe_import_start` checks the key, reads the account id and records a run (or finds
the unfinished run of the same account and mode, to resume it); `stripe_import_run`
reads Stripe stage by stage (billing/stripe_import_models.STRIPE_IMPORT_STAGES) and
recreates each object through Tarif's own services -- catalog, customers, coupons,
payment methods, `subscription_adopt` -- recording `stripe id -> Tarif object` in the
same transaction. A second run finds every mapping and changes nothing; a crashed run
resumes from its per-stage cursor. Objects Tarif cannot express are listed in the run's
report with a code and a reason, never half-created. A dry run writes only its run record.

Stripe is called outside every transaction (no external call under a lock): an object is
read, then created and mapped in one short transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from billing.cycles import CycleSpec, next_boundary, period_containing
from billing.locks import stripe_import_run_qs_for_update
from billing.models import Coupon, PaymentMethod, Price, Product, PromotionCode, Subscription, TestClock
from billing.payments.gateway import GatewayError
from billing.payments.registry import default_gateway_name, gateway_for
from billing.services.catalog import price_create, product_create
from billing.services.coupons import coupon_create, promotion_code_create
from billing.services.invoice_items import invoice_item_create
from billing.services.payments import payment_method_attach
from billing.services.stripe_import import mapping
from billing.services.stripe_import.mapping import Unmappable
from billing.services.stripe_import.source import StripeReadError, StripeSource
from billing.services.subscriptions.adopt import subscription_adopt
from billing.services.subscriptions.common import ItemSpec
from billing.stripe_import_models import STRIPE_IMPORT_STAGES, StripeImportMapping, StripeImportRun
from config import clock
from config.errors import DomainError
from config.types import ActingUser
from customers.models import Customer
from customers.services import customer_create

OPEN_INVOICE_CHOICES = ("report", "carry")
MAX_REPORT_ROWS = 5000


class StripeImportError(DomainError):
    code = "stripe_import"
    http_status = 422


class StripeImportAlreadyRunning(StripeImportError):
    code = "stripe_import_running"
    http_status = 409


def _message(error: BaseException) -> str:
    if isinstance(error, DomainError):
        return error.message_text()
    if isinstance(error, ValidationError):
        return " ".join(str(message) for message in error.messages)
    return str(error)


def _code(error: BaseException) -> str:
    if isinstance(error, Unmappable):
        return error.code
    if isinstance(error, DomainError):
        return error.problem_code
    return str(getattr(error, "code", "") or "invalid")


def stripe_import_start(
    *,
    api_key: str,
    api_base: str = "",
    dry_run: bool = False,
    open_invoices: str = "report",
    test_clock: TestClock | None = None,
    acting_user: ActingUser = None,
) -> StripeImportRun:
    """A run for the key's account and mode: the unfinished one (resumed, new key kept), or a new one.

    Calls Stripe (GET /v1/account) before writing anything.
    """
    try:
        livemode = mapping.key_mode(api_key)
    except Unmappable as error:
        raise StripeImportError(error.reason, code="api_key") from error
    if test_clock is not None and livemode:
        raise StripeImportError(_("Only a test-mode import can put customers on a test clock."), code="test_clock")
    if open_invoices not in OPEN_INVOICE_CHOICES:
        raise StripeImportError(_("Open invoices are either reported or carried."), code="open_invoices")
    try:
        account = StripeSource(api_key=api_key, api_base=api_base).account()
    except StripeReadError as error:
        raise StripeImportError(str(error), code="stripe_unreachable") from error
    account_id = str(account.get("id") or "")
    with transaction.atomic():
        if not dry_run:
            unfinished = (
                stripe_import_run_qs_for_update()
                .filter(account_id=account_id, livemode=livemode, dry_run=False)
                .exclude(status=StripeImportRun.Status.DONE)
                .order_by("-pk")
                .first()
            )
            if unfinished is not None:
                unfinished.api_key = api_key
                unfinished.api_base = api_base
                unfinished.status = StripeImportRun.Status.RUNNING
                unfinished.last_error = ""
                unfinished.save(update_fields=["api_key", "api_base", "status", "last_error"])
                return unfinished
        return StripeImportRun.objects.create(
            account_id=account_id,
            livemode=livemode,
            dry_run=dry_run,
            api_key=api_key,
            api_base=api_base,
            key_hint=mapping.key_hint(api_key),
            open_invoices=open_invoices,
            test_clock=test_clock,
            started_by=acting_user if getattr(acting_user, "is_authenticated", False) else None,
            counts={stage: {} for stage in STRIPE_IMPORT_STAGES},
            default_currency=str(account.get("default_currency") or "eur").upper(),
        )


class _Importer:
    def __init__(self, run: StripeImportRun, source: StripeSource) -> None:
        self.run = run
        self.source = source
        self.reported = {row["id"] for row in run.report}
        self.customer_currencies: dict[str, set[str]] = {}

    # --- bookkeeping ----------------------------------------------------------------

    def count(self, stage: str, outcome: str) -> None:
        per_stage = self.run.counts.setdefault(stage, {})
        per_stage[outcome] = per_stage.get(outcome, 0) + 1

    def report(self, stage: str, stripe_id: str, error: BaseException) -> None:
        self.count(stage, "not_mapped")
        if stripe_id in self.reported or len(self.run.report) >= MAX_REPORT_ROWS:
            return
        self.reported.add(stripe_id)
        self.run.report.append({"type": stage, "id": stripe_id, "code": _code(error), "reason": _message(error)})

    def mapped(self, stripe_id: str) -> StripeImportMapping | None:
        return StripeImportMapping.objects.filter(
            account_id=self.run.account_id, livemode=self.run.livemode, stripe_id=stripe_id
        ).first()

    def target(self, model: Any, stripe_id: str) -> Any:
        row = self.mapped(stripe_id)
        if row is None:
            return None
        return model.objects.filter(pk=row.object_id).first()

    def record(self, stripe_type: str, stripe_id: str, obj: Any) -> None:
        StripeImportMapping.objects.create(
            account_id=self.run.account_id,
            livemode=self.run.livemode,
            stripe_type=stripe_type,
            stripe_id=stripe_id,
            object_type=obj._meta.label_lower,
            object_id=obj.pk,
            run=self.run,
        )

    def save_progress(self, stage: str, stripe_id: str | None) -> None:
        if stripe_id:
            self.run.cursors[stage] = stripe_id
        self.run.processed += 1
        self.run.heartbeat_at = clock.system_now()
        self.run.save(update_fields=["cursors", "processed", "counts", "report", "heartbeat_at"])

    # --- one object -----------------------------------------------------------------

    def handle(self, stage: str, obj: dict[str, Any], create: Callable[[dict[str, Any]], Any | None]) -> None:
        stripe_id = obj["id"]
        if self.mapped(stripe_id) is not None:
            self.count(stage, "unchanged")
            return
        try:
            if self.run.dry_run:
                create(obj)  # the dry-run creators check and write nothing
                self.count(stage, "would_create")
                return
            with transaction.atomic():
                created = create(obj)
                if created is None:
                    self.count(stage, "skipped")
                    return
                self.record(stage, stripe_id, created)
            self.count(stage, "created")
        except (Unmappable, DomainError, ValidationError, GatewayError) as error:
            self.report(stage, stripe_id, error)

    # --- creators (each returns the Tarif object, None when there is nothing to create) ---

    def product(self, obj: dict[str, Any]) -> Product | None:
        data = mapping.product_data(obj)
        return None if self.run.dry_run else product_create(data=data, livemode=self.run.livemode)

    def price(self, obj: dict[str, Any]) -> Price | None:
        data = mapping.price_data(obj)
        product_id = mapping.stripe_id(obj.get("product"))
        if self.run.dry_run:
            if product_id in self.unmapped_ids():
                raise Unmappable("product", _("Its product %(id)s is not mapped.") % {"id": product_id})
            return None
        product = self.target(Product, product_id)
        if product is None:
            raise Unmappable("product", _("Its product %(id)s is not mapped.") % {"id": product_id})
        return price_create(data={**data, "product": product})

    def coupon(self, obj: dict[str, Any]) -> Coupon | None:
        data = mapping.coupon_data(obj)
        if self.run.dry_run:
            return None
        products = []
        for product_id in mapping.coupon_product_ids(obj):
            product = self.target(Product, product_id)
            if product is None:
                raise Unmappable("product", _("Its product %(id)s is not mapped.") % {"id": product_id})
            products.append(product)
        return coupon_create(data=data, applies_to=products, livemode=self.run.livemode)

    def customer(self, obj: dict[str, Any]) -> Customer | None:
        tax_ids = self.source.tax_ids(obj)
        data = mapping.customer_data(
            obj,
            tax_ids=tax_ids,
            default_country=settings.TARIF_STRIPE_IMPORT_DEFAULT_COUNTRY,
            default_currency=self.run.default_currency,
        )
        if self.run.dry_run:
            self.customer_currencies[obj["id"]] = {data["currency"]}
            return None
        if self.run.test_clock_id is not None:
            data["test_clock"] = self.run.test_clock
        return customer_create(data=data, livemode=self.run.livemode)

    def promotion_code(self, obj: dict[str, Any]) -> PromotionCode | None:
        data = mapping.promotion_code_data(obj)
        coupon_id = mapping.promotion_coupon_id(obj)
        customer_id = mapping.stripe_id(obj.get("customer"))
        if self.run.dry_run:
            if coupon_id in self.unmapped_ids():
                raise Unmappable("coupon", _("Its coupon %(id)s is not mapped.") % {"id": coupon_id})
            return None
        coupon = self.target(Coupon, coupon_id)
        if coupon is None:
            raise Unmappable("coupon", _("Its coupon %(id)s is not mapped.") % {"id": coupon_id})
        customer = self.target(Customer, customer_id) if customer_id else None
        if customer_id and customer is None:
            raise Unmappable("customer", _("Its customer %(id)s is not mapped.") % {"id": customer_id})
        return promotion_code_create(data={**data, "coupon": coupon, "customer": customer})

    def subscription(self, obj: dict[str, Any]) -> Subscription | None:
        if obj.get("status") in mapping.ENDED_STATUSES:
            return None  # ended at Stripe: nothing left to bill
        shape = mapping.subscription_shape(obj)
        if self.run.dry_run:
            unmapped = self.unmapped_ids()
            for price_id, _quantity in shape.items:
                if price_id in unmapped:
                    raise Unmappable("price", _("Its price %(id)s is not mapped.") % {"id": price_id})
            currencies = self.customer_currencies.setdefault(shape.customer, set())
            currencies.add(shape.currency)
            if len(currencies) > 1:
                raise Unmappable(
                    "customer_currency",
                    _("Its customer is billed in several currencies (%(currencies)s); Tarif bills one per customer.")
                    % {"currencies": ", ".join(sorted(currencies))},
                )
            return None
        customer = self.target(Customer, shape.customer)
        if customer is None:
            raise Unmappable("customer", _("Its customer %(id)s is not mapped.") % {"id": shape.customer})
        items = []
        for price_id, quantity in shape.items:
            price = self.target(Price, price_id)
            if price is None:
                raise Unmappable("price", _("Its price %(id)s is not mapped.") % {"id": price_id})
            items.append(ItemSpec(price=price, quantity=quantity))
        coupon = None
        applied = 0
        if shape.coupon:
            coupon = self.target(Coupon, shape.coupon)
            if coupon is None:
                raise Unmappable("coupon", _("Its coupon %(id)s is not mapped.") % {"id": shape.coupon})
            cycle = CycleSpec.from_dict(items[0].price.cycle or {})
            if coupon.duration == Coupon.Duration.REPEATING and (cycle.unit, cycle.count) != ("month", 1):
                raise Unmappable(
                    "coupon_months",
                    _("A coupon repeating for months on a cycle other than monthly (Tarif counts periods)."),
                )
            applied = discount_periods_applied(
                cycle=cycle,
                anchor=shape.billing_cycle_anchor,
                discount_start=shape.discount_start or shape.current_period_start,
                current_period_start=shape.current_period_start,
                trialing=shape.trial_end is not None,
            )
        return subscription_adopt(
            customer=customer,
            items=items,
            status=shape.status,
            current_period_start=shape.current_period_start,
            current_period_end=shape.current_period_end,
            billing_cycle_anchor=shape.billing_cycle_anchor,
            trial_start=shape.trial_start,
            trial_end=shape.trial_end,
            coupon=coupon,
            coupon_redeemed_at=shape.discount_start,
            discount_periods_applied=applied,
            collection_method=shape.collection_method,
            days_until_due=shape.days_until_due,
            cancel_at_period_end=shape.cancel_at_period_end,
            metadata=shape.metadata,
        )

    def invoice(self, obj: dict[str, Any]) -> Any:
        amount = int(obj.get("amount_remaining") or 0)
        if amount <= 0:
            return None
        if self.run.open_invoices == "report" or self.run.dry_run:
            raise Unmappable(
                "open_invoice",
                _("Open invoice %(number)s (%(amount)s %(currency)s minor units) is left at Stripe: collect it there.")
                % {"number": obj.get("number") or obj["id"], "amount": amount, "currency": obj.get("currency")},
            )
        customer = self.target(Customer, mapping.stripe_id(obj.get("customer")))
        if customer is None:
            raise Unmappable("customer", _("Its customer is not mapped."))
        return invoice_item_create(
            customer=customer,
            description=_("Open Stripe invoice %(number)s") % {"number": obj.get("number") or obj["id"]},
            amount=amount,
            currency=str(obj.get("currency") or "").upper(),
            discountable=False,
        )

    # --- payment methods: per imported customer, references only ----------------------

    def payment_methods(self) -> None:
        stage = "payment_methods"
        gateway_name = default_gateway_name(livemode=self.run.livemode)
        rows = StripeImportMapping.objects.filter(
            account_id=self.run.account_id, livemode=self.run.livemode, stripe_type="customers"
        ).order_by("stripe_id")
        cursor = self.run.cursors.get(stage)
        if cursor:
            rows = rows.filter(stripe_id__gt=cursor)
        if self.run.dry_run or gateway_name != "stripe":
            if not self.run.dry_run and rows.exists():
                self.report(
                    stage,
                    "payment_methods",
                    Unmappable(
                        "gateway",
                        _("Payment methods stay at Stripe: Tarif's payment gateway for this mode is not Stripe."),
                    ),
                )
            return
        gateway: Any = gateway_for(gateway_name, livemode=self.run.livemode)  # the Stripe gateway (customer_adopt)
        for row in rows:
            customer = Customer.objects.get(pk=row.object_id)
            try:
                gateway.customer_adopt(customer_reference=str(customer.pk), stripe_customer_id=row.stripe_id)
                stripe_customer = self.source.payment_methods(row.stripe_id)
            except (GatewayError, StripeReadError) as error:
                self.report(stage, row.stripe_id, error)
                self.save_progress(stage, row.stripe_id)
                continue
            for method in stripe_customer:
                self.payment_method(customer, method)
            self.save_progress(stage, row.stripe_id)

    def payment_method(self, customer: Customer, method: dict[str, Any]) -> None:
        stage = "payment_methods"
        if self.mapped(method["id"]) is not None:
            self.count(stage, "unchanged")
            return
        try:
            existing = PaymentMethod.objects.filter(customer=customer, token=method["id"], active=True).first()
            # A crash between attaching and mapping leaves the method: map it, do not attach twice.
            created = existing or payment_method_attach(
                customer=customer, source={"payment_method": method["id"]}, make_default=False
            )
            with transaction.atomic():
                self.record(stage, method["id"], created)
            self.count(stage, "created")
        except (DomainError, ValidationError, GatewayError) as error:
            self.report(stage, method["id"], error)

    def unmapped_ids(self) -> set[str]:
        return {row["id"] for row in self.run.report}


def discount_periods_applied(
    *, cycle: CycleSpec, anchor: datetime, discount_start: datetime, current_period_start: datetime, trialing: bool
) -> int:
    """How many invoiced periods a Stripe discount has already discounted.

    Stripe applies a discount to the invoices created from its start: a period that began at
    or after the discount's start (a discount added mid-period waits for the next invoice). A
    trial's zero invoice does not count.
    """
    if trialing or discount_start > current_period_start:
        return 0
    period = period_containing(cycle, anchor=anchor, tz="UTC", at=discount_start)
    first = period.start if period.start == discount_start else period.end
    applied = 0
    boundary = first
    while boundary <= current_period_start and applied < 10_000:
        applied += 1
        boundary = next_boundary(cycle, anchor=anchor, tz="UTC", after=boundary)
    return max(applied, 1) if discount_start <= current_period_start else 0


def stripe_import_run(*, run: StripeImportRun, on_progress: Callable[[StripeImportRun], None] | None = None) -> None:
    """Read every stage not done yet and recreate its objects; resumable after any failure."""
    if run.status == StripeImportRun.Status.DONE:
        return
    if run.status == StripeImportRun.Status.FAILED:  # a task retry resumes the run
        run.status = StripeImportRun.Status.RUNNING
        run.last_error = ""
        run.save(update_fields=["status", "last_error"])
    source = StripeSource(api_key=run.api_key, api_base=run.api_base)
    importer = _Importer(run, source)
    creators: dict[str, Callable[[dict[str, Any]], Any]] = {
        "products": importer.product,
        "prices": importer.price,
        "coupons": importer.coupon,
        "customers": importer.customer,
        "promotion_codes": importer.promotion_code,
        "subscriptions": importer.subscription,
        "invoices": importer.invoice,
    }
    try:
        for stage in STRIPE_IMPORT_STAGES:
            if stage in run.stages_done:
                continue
            run.stage = stage
            run.save(update_fields=["stage"])
            if stage == "payment_methods":
                importer.payment_methods()
            else:
                for obj in source.objects(stage, starting_after=run.cursors.get(stage)):
                    importer.handle(stage, obj, creators[stage])
                    importer.save_progress(stage, obj["id"])
                    if on_progress is not None:
                        on_progress(run)
            run.stages_done = [*run.stages_done, stage]
            run.save(update_fields=["stages_done", "counts", "report"])
            if on_progress is not None:
                on_progress(run)
    except Exception as error:
        run.status = StripeImportRun.Status.FAILED
        # Only our own messages or the SDK's (neither contains the key).
        run.last_error = f"{type(error).__name__}: {_message(error)}"[:2000]
        run.save(update_fields=["status", "last_error", "counts", "report"])
        raise
    run.status = StripeImportRun.Status.DONE
    run.stage = ""
    run.api_key = ""  # not needed any more: never kept longer than the run
    run.finished_at = clock.system_now()
    run.save(update_fields=["status", "stage", "api_key", "finished_at"])
    if on_progress is not None:
        on_progress(run)
