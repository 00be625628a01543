"""Checkout sessions: create, preview, submit the buyer's details, complete (once), expire.

Completion follows the project's rule "no external call under a lock" in three steps:

1. under the session's row lock: the session must be open and not past its expiry; the
   attempt is recorded (`processing_started_at`) and committed;
2. outside any transaction: the gateway hands over the card the buyer entered on its hosted
   page, and the card is verified (a declining card stops here: nothing is created);
3. under the session's row lock again: a session found `complete` is returned as it is (a
   second tab, a double submit, a replayed return URL or webhook); otherwise the customer,
   its payment method, the subscription (or the paid-at-once invoice) are created, the
   portal invitation is sent and `checkout.session.completed` is recorded, in one transaction.

The first invoice is charged by the normal collection hand-off after that commit
(invoices' `collection_enqueue`): the same path, idempotency key and dunning as every invoice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db import transaction
from django.utils.translation import gettext as _

from billing.checkout.errors import CheckoutError, CheckoutPaymentDeclined, CheckoutSessionClosed
from billing.checkout.locks import checkout_session_qs_for_update
from billing.checkout.models import CheckoutSession, CheckoutSessionLineItem, new_public_id
from billing.limits import MAX_QUANTITY
from billing.locks import coupon_qs_for_update, promotion_code_qs_for_update
from billing.models import Coupon, InvoiceItem, Price, PromotionCode, Subscription
from billing.payments.gateway import GatewayError, PaymentMethodDetails
from billing.payments.registry import default_gateway_name, gateway_for
from billing.selectors import price_amount_for
from billing.services.coupons import coupon_validate, promotion_code_resolve
from billing.services.invoice_items import invoice_item_create
from billing.services.payments import payment_method_store
from billing.services.subscriptions.common import MAX_TRIAL_DAYS, ItemSpec, invoice_issue
from billing.services.subscriptions.create import subscription_create, subscription_preview_create
from billing.services.upcoming import pending_item_line
from config import clock
from config.errors import DomainError
from config.events.log import event_record
from config.types import ActingUser, JsonMapping
from customers.models import Customer
from customers.services import customer_create, customer_invite_portal_user
from invoices.models import Brand
from invoices.services.drafts import invoice_build
from invoices.types import DraftInvoice, InvoicePreview

logger = logging.getLogger(__name__)

MAX_LINE_ITEMS = 20
MAX_METADATA_KEYS = 50

# The buyer's details the page collects, as Customer fields.
DETAIL_FIELDS = (
    "is_business",
    "legal_name",
    "email",
    "country",
    "tax_id",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "preferred_language",
)


def session_ttl() -> timedelta:
    """TARIF_CHECKOUT_SESSION_TTL_SECONDS: how long a session stays usable (Stripe: 24 h)."""
    return timedelta(seconds=int(getattr(settings, "TARIF_CHECKOUT_SESSION_TTL_SECONDS", 24 * 3600)))


def _text(error: Exception) -> str:
    text = getattr(error, "message_text", None)
    return text() if callable(text) else str(error)


def _refuse(message: str, code: str, *, field: str | None = None) -> CheckoutError:
    error = CheckoutError(message, code=code)
    if field:
        error.field = field  # type: ignore[attr-defined]  # read by the API's problem handler
    return error


def _check_url(value: str, *, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 2000:
        raise _refuse(_("%(field)s must be an absolute URL.") % {"field": field}, "invalid_url", field=field)
    try:
        URLValidator(schemes=["http", "https"])(value.replace("{CHECKOUT_SESSION_ID}", "cs_x"))
    except ValidationError:
        raise _refuse(
            _("%(field)s must be an absolute http(s) URL.") % {"field": field}, "invalid_url", field=field
        ) from None
    return value


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or len(metadata) > MAX_METADATA_KEYS:
        raise _refuse(_("Metadata is an object of at most 50 keys."), "invalid_metadata", field="metadata")
    for key, value in metadata.items():
        if not isinstance(key, str) or len(key) > 40 or not isinstance(value, str) or len(value) > 500:
            raise _refuse(
                _("Metadata keys are strings of up to 40 characters, values strings of up to 500."),
                "invalid_metadata",
                field="metadata",
            )
    return dict(metadata)


def _effective_brand_id(customer: Customer) -> int | None:
    if customer.brand_id is not None:
        return customer.brand_id
    return Brand.objects.filter(is_default=True).values_list("pk", flat=True).first()


MethodType = CheckoutSession.PaymentMethodType


def default_payment_method_types() -> list[str]:
    """What a session offers when its creator does not say (`TARIF_CHECKOUT_PAYMENT_METHOD_TYPES`)."""
    return list(getattr(settings, "TARIF_CHECKOUT_PAYMENT_METHOD_TYPES", (MethodType.CARD,)))


def bank_transfer_days_until_due() -> int:
    return int(getattr(settings, "TARIF_CHECKOUT_BANK_TRANSFER_DAYS_UNTIL_DUE", 30))


def payment_method_types_check(types: Sequence[str], *, mode: str, currency: str, brand: Brand) -> list[str]:
    """The payment method types a session may offer, in the order given, or CheckoutError (422).

    A card always; a SEPA mandate for euro amounts; a bank transfer for invoices only (not in
    setup mode), when the configuration allows it (`TARIF_CHECKOUT_ALLOW_BANK_TRANSFER`) and the
    brand has the bank details its invoices print.
    """
    field = "payment_method_types"
    if isinstance(types, str) or not types:
        raise _refuse(_("payment_method_types lists at least one payment method type."), "invalid_types", field=field)
    checked: list[str] = []
    for kind in types:
        if kind not in MethodType.values:
            raise _refuse(
                _("Unknown payment method type %(type)s: one of %(types)s.")
                % {"type": kind, "types": ", ".join(MethodType.values)},
                "invalid_payment_method_type",
                field=field,
            )
        if kind in checked:
            raise _refuse(_("%(type)s appears twice.") % {"type": kind}, "duplicate_payment_method_type", field=field)
        checked.append(kind)
    if MethodType.SEPA_DEBIT in checked and currency.upper() != "EUR":
        raise _refuse(_("SEPA Direct Debit takes euro amounts only."), "sepa_requires_eur", field=field)
    if MethodType.BANK_TRANSFER in checked:
        if mode == CheckoutSession.Mode.SETUP:
            raise _refuse(
                _("A bank transfer pays invoices: it cannot be saved in setup mode."),
                "bank_transfer_in_setup",
                field=field,
            )
        if not getattr(settings, "TARIF_CHECKOUT_ALLOW_BANK_TRANSFER", True) or not brand.iban:
            raise _refuse(
                _("Bank transfer is not available: the brand has no bank details to print on its invoices."),
                "bank_transfer_unavailable",
                field=field,
            )
    return checked


def _type_available(kind: str, *, mode: str, currency: str, brand: Brand) -> bool:
    try:
        payment_method_types_check([kind], mode=mode, currency=currency, brand=brand)
    except CheckoutError:
        return False
    return True


def offered_payment_method_types(session: CheckoutSession) -> list[str]:
    """What the page offers (sessions created before the choice existed offer a card)."""
    return list(session.payment_method_types or [MethodType.CARD])


def sepa_mandate_on_page(session: CheckoutSession) -> bool:
    """True when the page collects the IBAN and the mandate itself (the sandbox); False when the
    gateway's hosted page does (Stripe Checkout shows the mandate and takes the IBAN)."""
    gateway = gateway_for(default_gateway_name(livemode=session.livemode), livemode=session.livemode)
    return MethodType.SEPA_DEBIT not in tuple(gateway.hosted_setup_types())


def checkout_session_create(
    *,
    brand: Brand,
    livemode: bool,
    mode: str,
    line_items: list[tuple[Price, int]],
    success_url: str,
    cancel_url: str,
    customer: Customer | None = None,
    customer_email: str = "",
    trial_period_days: int | None = None,
    coupon: Coupon | None = None,
    allow_promotion_codes: bool = False,
    tax_id_collection: bool = True,
    billing_address_collection: str = "auto",
    origin: str = "api",
    origin_id: str = "",
    metadata: dict | None = None,
    payment_method_types: Sequence[str] | None = None,
    acting_user: ActingUser = None,
) -> CheckoutSession:
    """A new open checkout session: the hosted page's URL is `checkout_session_url(session)`.

    Refuses (CheckoutError, 422) what could never complete: an unknown mode, no item (or items
    in setup mode), an archived price, a price of the other mode or in another currency, a
    one-time price in a subscription without a recurring one, a recurring price in a payment,
    a customer of another brand or mode or currency, a trial outside a subscription, a coupon
    that cannot be redeemed, both a coupon and promotion codes, a relative or non-http URL,
    a payment method type the session cannot take (`payment_method_types_check`).
    """
    if mode not in CheckoutSession.Mode.values:
        raise _refuse(
            _("The mode is one of %(modes)s.") % {"modes": ", ".join(CheckoutSession.Mode.values)},
            "invalid_mode",
            field="mode",
        )
    if billing_address_collection not in CheckoutSession.AddressCollection.values:
        raise _refuse(
            _("billing_address_collection is auto or required."),
            "invalid_address_collection",
            field="billing_address_collection",
        )
    if origin not in CheckoutSession.Origin.values:
        raise _refuse(_("Unknown origin %(origin)s.") % {"origin": origin}, "invalid_origin", field="origin")
    _check_url(success_url, field="success_url")
    _check_url(cancel_url, field="cancel_url")
    if customer_email:
        try:
            EmailValidator()(customer_email)
        except ValidationError:
            raise _refuse(
                _("customer_email is not an email address."), "invalid_email", field="customer_email"
            ) from None
    if customer is not None and customer_email:
        raise _refuse(_("Give a customer or a customer email, not both."), "customer_and_email", field="customer_email")
    metadata = _check_metadata(metadata)

    items = list(line_items)
    if mode == CheckoutSession.Mode.SETUP:
        if items:
            raise _refuse(_("A setup session has no line items."), "setup_with_items", field="line_items")
    elif not items:
        raise _refuse(_("A checkout session needs at least one line item."), "no_line_items", field="line_items")
    if len(items) > MAX_LINE_ITEMS:
        raise _refuse(_("A checkout session has at most 20 line items."), "too_many_items", field="line_items")
    seen: set[int] = set()
    for price, quantity in items:
        label = price.nickname or price.product.name
        if price.pk in seen:
            raise _refuse(
                _("The price %(price)s appears twice.") % {"price": label}, "duplicate_price", field="line_items"
            )
        seen.add(price.pk)
        if price.livemode != livemode:
            # Named like an unknown id: a test key never learns about live prices.
            raise _refuse(
                _("No such price: %(price)s.") % {"price": f"price_{price.pk}"}, "no_such_price", field="line_items"
            )
        if not price.active:
            raise _refuse(
                _("The price %(price)s is archived.") % {"price": label}, "archived_price", field="line_items"
            )
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
            raise _refuse(
                _("The quantity of %(price)s is a whole number from 1 to %(max)s.")
                % {"price": label, "max": MAX_QUANTITY},
                "invalid_quantity",
                field="line_items",
            )
        if mode == CheckoutSession.Mode.PAYMENT and price.type != Price.Type.ONE_TIME:
            raise _refuse(
                _("%(price)s is a recurring price: use mode subscription.") % {"price": label},
                "recurring_price_in_payment",
                field="line_items",
            )
        if price.usage_type == Price.UsageType.METERED and mode == CheckoutSession.Mode.PAYMENT:
            raise _refuse(_("A metered price cannot be paid at once."), "metered_price", field="line_items")
    if mode == CheckoutSession.Mode.SUBSCRIPTION and not any(price.type == Price.Type.RECURRING for price, _q in items):
        raise _refuse(
            _("A subscription session needs at least one recurring price."), "no_recurring_price", field="line_items"
        )
    currencies = {price.currency for price, _q in items}
    if len(currencies) > 1:
        raise _refuse(
            _("All prices of a checkout session are in one currency; these are in %(c)s.")
            % {"c": ", ".join(sorted(currencies))},
            "mixed_currencies",
            field="line_items",
        )
    if customer is not None:
        if customer.livemode != livemode:
            raise _refuse(_("No such customer."), "no_such_customer", field="customer")
        if _effective_brand_id(customer) != brand.pk:
            raise _refuse(_("This customer is invoiced by another brand."), "customer_brand", field="customer")
    currency = currencies.pop() if currencies else (customer.currency if customer is not None else "EUR")
    if customer is not None and customer.currency != currency:
        raise _refuse(
            _("The customer is billed in %(customer)s; these prices are in %(prices)s.")
            % {"customer": customer.currency, "prices": currency},
            "customer_currency",
            field="customer",
        )
    if trial_period_days is not None:
        if mode != CheckoutSession.Mode.SUBSCRIPTION:
            raise _refuse(
                _("Only a subscription has a trial."), "trial_outside_subscription", field="trial_period_days"
            )
        if (
            isinstance(trial_period_days, bool)
            or not isinstance(trial_period_days, int)
            or not (1 <= trial_period_days <= MAX_TRIAL_DAYS)
        ):
            raise _refuse(
                _("A trial lasts from 1 to %(max)s days.") % {"max": MAX_TRIAL_DAYS},
                "invalid_trial",
                field="trial_period_days",
            )
    if mode == CheckoutSession.Mode.PAYMENT and (coupon is not None or allow_promotion_codes):
        raise _refuse(
            _("Coupons and promotion codes apply to subscription sessions only."),
            "discount_in_payment",
            field="coupon" if coupon is not None else "allow_promotion_codes",
        )
    if coupon is not None:
        if allow_promotion_codes:
            raise _refuse(
                _("Give a coupon or allow promotion codes, not both."), "coupon_and_promotion_codes", field="coupon"
            )
        if coupon.livemode != livemode:
            raise _refuse(_("No such coupon."), "no_such_coupon", field="coupon")
        if mode == CheckoutSession.Mode.SETUP:
            raise _refuse(_("A setup session takes no coupon."), "coupon_in_setup", field="coupon")
        try:
            coupon_validate(
                coupon=coupon, at=clock.now(), currency=currency, product_ids={p.product_id for p, _q in items}
            )
        except DomainError as error:
            raise _refuse(_text(error), "coupon_invalid", field="coupon") from error
    if allow_promotion_codes and mode == CheckoutSession.Mode.SETUP:
        raise _refuse(
            _("A setup session takes no promotion code."), "promotion_codes_in_setup", field="allow_promotion_codes"
        )

    if payment_method_types is None:
        # The configured default, less what this session cannot take (SEPA for dollars...).
        method_types = [
            kind
            for kind in default_payment_method_types()
            if _type_available(kind, mode=mode, currency=currency, brand=brand)
        ] or [str(MethodType.CARD)]
    else:
        method_types = payment_method_types_check(payment_method_types, mode=mode, currency=currency, brand=brand)

    now = clock.now()
    with transaction.atomic(savepoint=False):
        session = CheckoutSession.objects.create(
            public_id=new_public_id(livemode=livemode),
            brand=brand,
            livemode=livemode,
            mode=mode,
            currency=currency,
            trial_period_days=trial_period_days,
            coupon=coupon,
            allow_promotion_codes=allow_promotion_codes,
            success_url=success_url,
            cancel_url=cancel_url,
            customer=customer,
            customer_email=customer_email.strip().lower(),
            tax_id_collection=tax_id_collection,
            billing_address_collection=billing_address_collection,
            origin=origin,
            origin_id=origin_id[:64],
            metadata=metadata,
            payment_method_types=method_types,
            expires_at=now + session_ttl(),
            created_by=acting_user if getattr(acting_user, "is_authenticated", False) else None,
        )
        CheckoutSessionLineItem.objects.bulk_create(
            [
                CheckoutSessionLineItem(session=session, price=price, quantity=quantity, position=position)
                for position, (price, quantity) in enumerate(items)
            ]
        )
        _event(session, "checkout.session.created", at=now, acting_user=acting_user)
    return session


def _event(session: CheckoutSession, type: str, *, at: datetime, acting_user: ActingUser = None, **data: Any) -> None:
    event_record(
        type=type,
        object_type="checkout.session",
        object_id=session.public_id,
        customer_id=session.customer_id,
        occurred_at=at,
        livemode=session.livemode,
        data={
            "id": session.public_id,
            "mode": session.mode,
            "status": session.status,
            "origin": session.origin,
            "origin_id": session.origin_id,
            "currency": session.currency,
            "amount_total": session.amount_total,
            "customer": f"cus_{session.customer_id}" if session.customer_id else None,
            "subscription": f"sub_{session.subscription_id}" if session.subscription_id else None,
            "invoice": f"in_{session.invoice_id}" if session.invoice_id else None,
            "metadata": session.metadata,
            **data,
        },
        acting_user=acting_user,
    )


# -- the buyer and the preview ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckoutPreview:
    """What the page shows: the first invoice as the invoice engine computes it."""

    currency: str
    invoice: InvoicePreview | None  # None in setup mode
    amount_due_now: int
    trial_end: datetime | None
    next_invoice_at: datetime | None
    reverse_charge: bool
    vat_mention_key: str | None
    promotion_code: PromotionCode | None
    promotion_error: str  # "" when no code was typed or it applies


def _line_specs(session: CheckoutSession) -> list[ItemSpec]:
    return [ItemSpec(price=item.price, quantity=item.quantity) for item in session.line_items.all()]


def checkout_buyer(*, session: CheckoutSession, details: JsonMapping, for_preview: bool = False) -> Customer:
    """The customer the session would create from `details` (unsaved), or the session's own customer.

    Validated like any customer (`full_clean`: the VAT number's format and check digits with
    python-stdnum, and that it belongs to the country): a ValidationError names the field.
    `for_preview`: the live total, computed before the address is typed (not asked for yet).
    """
    if session.customer is not None:
        return session.customer
    data = {name: details[name] for name in DETAIL_FIELDS if name in details}
    data["email"] = (data.get("email") or session.customer_email or "").strip().lower()
    data.setdefault("preferred_language", session.brand.default_language)
    data["tax_id"] = (data.get("tax_id") or "").strip() if session.tax_id_collection else ""
    if not data.get("is_business"):
        data["tax_id"] = ""
    customer = Customer(**data, currency=session.currency, livemode=session.livemode)
    customer.brand = session.brand
    customer.full_clean(exclude=["brand", "test_clock"])
    missing = [
        name
        for name in ("address_line1", "postal_code", "city")
        if session.billing_address_collection == CheckoutSession.AddressCollection.REQUIRED
        and not for_preview
        and not data.get(name)
    ]
    if missing:
        raise ValidationError({name: _("This field is required.") for name in missing})
    return customer


def checkout_session_preview(
    *, session: CheckoutSession, buyer: Customer, promotion_code: str = "", at: datetime | None = None
) -> CheckoutPreview:
    """The first invoice for `buyer` (the one `checkout_session_complete` would issue): the same
    engine as every invoice (`subscription_preview_create` / `invoice_build`), tax decided by
    the invoices' VAT rules from the buyer's country and VAT number. Writes nothing.

    A promotion code that cannot be used is reported in `promotion_error` (the total is then
    computed without it) rather than raised: the page shows it next to the field.
    """
    at = at or clock.now()
    code_text = promotion_code.strip() if session.allow_promotion_codes else ""
    promotion: PromotionCode | None = None
    promotion_error = ""
    if code_text:
        try:
            promotion = promotion_code_resolve(code=code_text, customer=buyer, at=at)
        except DomainError as error:
            promotion_error = _text(error)
    if session.mode == CheckoutSession.Mode.SETUP:
        return CheckoutPreview(
            currency=session.currency,
            invoice=None,
            amount_due_now=0,
            trial_end=None,
            next_invoice_at=None,
            reverse_charge=False,
            vat_mention_key=None,
            promotion_code=None,
            promotion_error="",
        )
    trial_end = next_at = None
    if session.mode == CheckoutSession.Mode.SUBSCRIPTION:
        try:
            preview = subscription_preview_create(
                customer=buyer,
                items=_line_specs(session),
                at=at,
                trial_days=session.trial_period_days,
                coupon=session.coupon,
                promotion_code=promotion.code if promotion is not None else None,
            )
        except DomainError as error:
            if promotion is None:
                raise
            promotion, promotion_error = None, _text(error)
            preview = subscription_preview_create(
                customer=buyer,
                items=_line_specs(session),
                at=at,
                trial_days=session.trial_period_days,
                coupon=session.coupon,
            )
        invoice, trial_end, next_at = preview.first_invoice, preview.trial_end, preview.current_period_end
    else:
        invoice = invoice_build(customer=buyer, draft=_payment_draft(session=session, buyer=buyer))
    return CheckoutPreview(
        currency=session.currency,
        invoice=invoice,
        amount_due_now=invoice.amount_due,
        trial_end=trial_end,
        next_invoice_at=next_at,
        reverse_charge=invoice.vat_category == "AE",
        vat_mention_key=invoice.vat_mention_key,
        promotion_code=promotion,
        promotion_error=promotion_error,
    )


def _payment_draft(
    *, session: CheckoutSession, buyer: Customer, items: Sequence[InvoiceItem] | None = None
) -> DraftInvoice:
    if items is None:  # the preview: the items the completion will create, unsaved
        items = [
            InvoiceItem(
                customer=buyer,
                price=line.price,
                description=line.price.nickname or line.price.product.name,
                quantity=line.quantity,
                amount=_one_time_amount(line.price, line.quantity),
                currency=line.price.currency,
                tax_behavior=line.price.tax_behavior,
            )
            for line in session.line_items.select_related("price__product")
        ]
    return DraftInvoice(
        customer_id=buyer.pk,
        currency=session.currency,
        billing_reason="manual",
        lines=tuple(pending_item_line(item) for item in items),
    )


def _one_time_amount(price: Price, quantity: int) -> int:
    return price_amount_for(price=price, quantity=quantity)  # what invoice_item_create charges


# -- the page's submission and the completion -----------------------------------------------


@dataclass(frozen=True, slots=True)
class SepaMandate:
    """A SEPA mandate signed on the checkout page (when the gateway's hosted page does not take one)."""

    account_holder: str
    iban: str
    accepted: bool


def checkout_session_details_submit(
    *,
    session: CheckoutSession,
    details: JsonMapping,
    promotion_code: str = "",
    return_url: str,
    payment_method_type: str = "card",
    sepa: SepaMandate | None = None,
) -> str:
    """The buyer confirmed their details and chose how to pay: store them, then go on.

    Returns the URL to send the browser to. A card (or a SEPA mandate the gateway's hosted page
    takes) opens the gateway's page, which returns to `return_url` with `?session_id=<gateway
    session>`; `checkout_session_complete` takes it from there. A SEPA mandate signed on this
    page, or a bank transfer, completes the session at once (`checkout_session_complete_direct`)
    and returns the success URL.
    """
    _expire_if_overdue(session)
    if payment_method_type not in offered_payment_method_types(session):
        raise _refuse(
            _("This payment method is not offered here."), "payment_method_not_offered", field="payment_method_type"
        )
    sepa_here = payment_method_type == MethodType.SEPA_DEBIT and sepa_mandate_on_page(session)
    if sepa_here:
        if sepa is None or not sepa.iban.strip():
            raise _refuse(_("Enter the IBAN of the account to debit."), "iban_required", field="iban")
        if not sepa.account_holder.strip():
            raise _refuse(_("Enter the account holder's name."), "account_holder_required", field="account_holder")
        if not sepa.accepted:
            raise _refuse(
                _("Accept the SEPA Direct Debit mandate to pay this way."),
                "mandate_not_accepted",
                field="accept_mandate",
            )
    buyer = checkout_buyer(session=session, details=details)
    preview = checkout_session_preview(session=session, buyer=buyer, promotion_code=promotion_code)
    if promotion_code.strip() and preview.promotion_error:
        raise _refuse(preview.promotion_error, "promotion_code_invalid", field="promotion_code")
    with transaction.atomic():
        locked = _lock_open(session)
        locked.details = {name: details.get(name) for name in DETAIL_FIELDS if name in details}
        if sepa_here and sepa is not None:
            # The mandate's evidence (who signed, when); the IBAN itself lives at the gateway only.
            locked.details["sepa_mandate"] = {
                "account_holder": sepa.account_holder.strip()[:140],
                "accepted_at": clock.now().isoformat(),
            }
        locked.payment_method_type = payment_method_type
        locked.promotion_code = preview.promotion_code
        locked.amount_subtotal = preview.invoice.subtotal if preview.invoice else 0
        locked.amount_tax = preview.invoice.totals.tax_total if preview.invoice else 0
        locked.amount_total = preview.invoice.total if preview.invoice else 0
        locked.decline_message = ""
        locked.save(
            update_fields=[
                "details",
                "promotion_code",
                "amount_subtotal",
                "amount_tax",
                "amount_total",
                "decline_message",
                "payment_method_type",
                "updated_at",
            ]
        )
    if payment_method_type == MethodType.BANK_TRANSFER or sepa_here:
        completed = checkout_session_complete_direct(
            session=session, source={"iban": sepa.iban} if sepa_here and sepa is not None else None
        )
        return success_redirect_url(completed)
    # The gateway's page is opened after the commit: never an outside call under the lock.
    gateway_name = default_gateway_name(livemode=session.livemode)
    gateway = gateway_for(gateway_name, livemode=session.livemode)
    try:
        setup = gateway.start_setup_session(
            customer_reference=session.public_id,
            return_url=return_url,
            cancel_url=session.cancel_url,
            payment_method_types=(payment_method_type,),
        )
    except GatewayError as error:
        raise CheckoutError(_text(error), code="gateway_refused") from error
    CheckoutSession.objects.filter(pk=session.pk, status=CheckoutSession.Status.OPEN).update(
        gateway=gateway.name, gateway_session_id=setup.id
    )
    return setup.url


def _expired_error() -> CheckoutSessionClosed:
    return CheckoutSessionClosed(_("This checkout session has expired."), code="checkout_session_expired")


def _expire_if_overdue(session: CheckoutSession) -> None:
    """An open session past its expiry is expired now, in its own committed transaction, and refused."""
    if session.status != CheckoutSession.Status.OPEN or session.expires_at > clock.now():
        return
    with transaction.atomic():
        locked = checkout_session_qs_for_update().get(pk=session.pk)
        at = clock.now()
        if locked.status == CheckoutSession.Status.OPEN and locked.expires_at <= at:
            _expire_locked(locked, at=at)
    raise _expired_error()


def _lock_open(session: CheckoutSession, *, at: datetime | None = None) -> CheckoutSession:
    """The session locked; CheckoutSessionClosed if complete or expired."""
    locked = checkout_session_qs_for_update().get(pk=session.pk)
    if locked.status == CheckoutSession.Status.EXPIRED or locked.expires_at <= (at or clock.now()):
        raise _expired_error()
    if locked.status != CheckoutSession.Status.OPEN:
        raise CheckoutSessionClosed()
    return locked


def _expire_locked(locked: CheckoutSession, *, at: datetime, acting_user: ActingUser = None) -> None:
    locked.status = CheckoutSession.Status.EXPIRED
    locked.save(update_fields=["status", "updated_at"])
    _event(locked, "checkout.session.expired", at=at, acting_user=acting_user)


# Plain words for the gateways' decline codes (the page shows them; never the raw code alone).
DECLINE_MESSAGES = {
    "generic_decline": _("Your card was declined by your bank. Try another card."),
    "card_declined": _("Your card was declined by your bank. Try another card."),
    "insufficient_funds": _("Your card has insufficient funds. Try another card."),
    "authentication_required": _("Your bank asks for an authentication this page cannot do. Try another card."),
    "expired_card": _("Your card has expired. Try another card."),
    "incorrect_cvc": _("The security code (CVC) is incorrect."),
}


def decline_message(code: str) -> str:
    message = DECLINE_MESSAGES.get(code)
    return str(message) if message else _("Your card was refused (%(code)s). Try another card.") % {"code": code}


def _verify_card(*, session: CheckoutSession, gateway: Any, details: PaymentMethodDetails) -> None:
    """Refuse a card that would decline, before anything exists (CheckoutPaymentDeclined).

    Stripe Checkout in setup mode verifies the card itself when it is attached. The sandbox's
    hosted page only tokenizes: a zero-amount authorization (its own charge, keyed on this
    session) asks it whether the card would pay, as a bank's card check would.
    """
    if gateway.name != "sandbox" or details.kind not in ("card", "wallet"):
        return
    result = gateway.charge(
        token=details.token,
        amount=0,
        currency=session.currency,
        idempotency_key=f"checkout:{session.public_id}:verify:{details.token}",
        customer_reference=session.public_id,
        description="Card check",
    )
    if result.status != "succeeded":
        raise CheckoutPaymentDeclined(decline_message(result.decline_code or "generic_decline"))


def checkout_session_complete(
    *, session: CheckoutSession, gateway_session_id: str, acting_user: ActingUser = None
) -> CheckoutSession:
    """Turn an open session whose buyer entered a card into a customer and a subscription (or a
    paid invoice, or a saved payment method), exactly once. A session already complete is
    returned unchanged, whoever completed it. See the module docstring for the three steps."""
    if session.status == CheckoutSession.Status.COMPLETE:
        return session
    _expire_if_overdue(session)
    with transaction.atomic(durable=True):
        locked = checkout_session_qs_for_update().get(pk=session.pk)
        if locked.status == CheckoutSession.Status.COMPLETE:
            return locked
        locked = _lock_open(locked)
        if not locked.gateway_session_id or locked.gateway_session_id != gateway_session_id:
            raise CheckoutError(_("This card entry does not belong to this checkout session."), code="wrong_setup")
        locked.processing_started_at = clock.now()
        locked.save(update_fields=["processing_started_at", "updated_at"])

    gateway = gateway_for(locked.gateway, livemode=locked.livemode)
    try:
        details = gateway.complete_setup_session(session_id=gateway_session_id, customer_reference=locked.public_id)
        _verify_card(session=locked, gateway=gateway, details=details)
    except (GatewayError, CheckoutPaymentDeclined) as error:
        message = _text(error)
        CheckoutSession.objects.filter(pk=locked.pk, status=CheckoutSession.Status.OPEN).update(
            decline_message=message[:300], gateway_session_id="", processing_started_at=None
        )
        if isinstance(error, CheckoutPaymentDeclined):
            raise
        raise CheckoutPaymentDeclined(message) from error

    with transaction.atomic(durable=True):
        locked = checkout_session_qs_for_update().select_related("brand", "customer").get(pk=session.pk)
        if locked.status == CheckoutSession.Status.COMPLETE:
            return locked  # a concurrent return finished first: same outcome, nothing twice
        locked = _lock_open(locked)
        _complete_locked(locked, gateway_name=gateway.name, details=details, acting_user=acting_user)
    return locked


def checkout_session_complete_direct(
    *, session: CheckoutSession, source: Mapping[str, str] | None, acting_user: ActingUser = None
) -> CheckoutSession:
    """Complete a session paid without the gateway's hosted page, exactly once: a SEPA mandate
    signed on the page (`source` = the IBAN, attached at the gateway first, outside any lock) or
    a bank transfer (`source` None: nothing to attach; the invoice waits for the transfer).
    A session already complete is returned unchanged (a double submit, a second tab)."""
    details: PaymentMethodDetails | None = None
    gateway_name = ""
    if source is not None:
        gateway = gateway_for(default_gateway_name(livemode=session.livemode), livemode=session.livemode)
        try:
            details = gateway.attach_payment_method(customer_reference=session.public_id, source=source)
        except GatewayError as error:
            raise _refuse(_text(error), "payment_method_refused", field="iban") from error
        gateway_name = gateway.name
    with transaction.atomic(durable=True):
        locked = checkout_session_qs_for_update().select_related("brand", "customer").get(pk=session.pk)
        if locked.status == CheckoutSession.Status.COMPLETE:
            return locked  # a concurrent submit finished first: same outcome, nothing twice
        locked = _lock_open(locked)
        _complete_locked(locked, gateway_name=gateway_name, details=details, acting_user=acting_user)
    return locked


def _complete_locked(
    session: CheckoutSession, *, gateway_name: str, details: PaymentMethodDetails | None, acting_user: ActingUser
) -> None:
    at = clock.now()
    # The lock order (docs/billing.md): the promotion code (rank 110) and the coupon (120) that the
    # redemption inside subscription_create locks come before the customer this completion creates
    # or uses (200), so they are taken first.
    coupon_id = session.coupon_id
    if session.promotion_code_id is not None:
        coupon_id = promotion_code_qs_for_update().get(pk=session.promotion_code_id).coupon_id
    if coupon_id is not None:
        coupon_qs_for_update().get(pk=coupon_id)
    existing = session.customer
    created_customer = existing is None
    customer: Customer
    if existing is None:
        buyer = checkout_buyer(session=session, details=session.details)
        data = {name: getattr(buyer, name) for name in DETAIL_FIELDS}
        data["country"] = str(buyer.country)
        data["currency"] = session.currency
        customer = customer_create(data=data, livemode=session.livemode, brand=session.brand, acting_user=acting_user)
    else:
        customer = existing
    method = None
    if details is not None:
        method = payment_method_store(customer=customer, gateway_name=gateway_name, details=details, make_default=True)
    # A bank transfer: invoices are sent with the brand's bank details and wait for the transfer.
    by_transfer = session.payment_method_type == MethodType.BANK_TRANSFER
    collection_method = str(Subscription.CollectionMethod.CHARGE_AUTOMATICALLY)
    days_until_due = None
    if by_transfer:
        collection_method = str(Subscription.CollectionMethod.SEND_INVOICE)
        days_until_due = bank_transfer_days_until_due()
    subscription = invoice = None
    if session.mode == CheckoutSession.Mode.SUBSCRIPTION:
        subscription = subscription_create(
            customer=customer,
            items=_line_specs(session),
            at=at,
            trial_days=session.trial_period_days,
            coupon=session.coupon,
            promotion_code=session.promotion_code.code if session.promotion_code is not None else None,
            metadata={"checkout_session": session.public_id},
            acting_user=acting_user,
            collection_method=collection_method,
            days_until_due=days_until_due,
        )
        invoice = subscription.invoices.order_by("pk").first()
    elif session.mode == CheckoutSession.Mode.PAYMENT:
        items = [
            invoice_item_create(customer=customer, price=line.price, quantity=line.quantity, at=at)
            for line in session.line_items.select_related("price__product")
        ]
        draft = _payment_draft(session=session, buyer=customer, items=items)
        if by_transfer:
            draft = replace(draft, collection_method=collection_method, days_until_due=days_until_due)
        invoice = invoice_issue(
            draft=draft,
            customer=customer,
            at=at,
            acting_user=acting_user,
        )
    session.status = CheckoutSession.Status.COMPLETE
    session.completed_at = at
    session.customer = customer
    session.payment_method = method
    session.subscription = subscription
    session.invoice = invoice
    if invoice is not None:
        session.amount_subtotal, session.amount_tax, session.amount_total = (
            invoice.subtotal,
            invoice.tax_total,
            invoice.total,
        )
    session.decline_message = ""
    session.save()
    if created_customer:
        try:
            customer_invite_portal_user(
                customer=customer, email=customer.email, base_url=settings.TARIF_BASE_URL, acting_user=acting_user
            )
        except ValidationError:
            # The email already has portal access (another customer's login): no second login is
            # made, and the buyer is not told whether the address is known (docs/checkout.md).
            logger.info("checkout %s: email already has portal access, no invitation", session.public_id)
    _event(session, "checkout.session.completed", at=at, acting_user=acting_user)


def checkout_session_expire(*, session: CheckoutSession, acting_user: ActingUser = None) -> CheckoutSession:
    """Expire an open session now (the API's `expire`, the sweeper); CheckoutSessionClosed if not open."""
    with transaction.atomic(durable=True):
        locked = checkout_session_qs_for_update().get(pk=session.pk)
        if locked.status != CheckoutSession.Status.OPEN:
            raise CheckoutSessionClosed()
        _expire_locked(locked, at=clock.now(), acting_user=acting_user)
    return locked


def checkout_sessions_expire_overdue(*, at: datetime | None = None, limit: int = 500) -> int:
    """The sweeper (Celery beat): expire open sessions past their expiry. Returns how many."""
    at = at or clock.now()
    ids = list(
        CheckoutSession.objects.filter(status=CheckoutSession.Status.OPEN, expires_at__lte=at)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    expired = 0
    for pk in ids:
        with transaction.atomic(durable=True):
            locked = checkout_session_qs_for_update().filter(pk=pk, status=CheckoutSession.Status.OPEN).first()
            if locked is None or locked.expires_at > at:
                continue
            _expire_locked(locked, at=at)
            expired += 1
    return expired


def success_redirect_url(session: CheckoutSession) -> str:
    """The success URL with `{CHECKOUT_SESSION_ID}` replaced (Stripe's convention)."""
    return session.success_url.replace("{CHECKOUT_SESSION_ID}", session.public_id)


__all__ = [
    "CheckoutPreview",
    "checkout_buyer",
    "checkout_session_complete",
    "checkout_session_create",
    "checkout_session_details_submit",
    "checkout_session_expire",
    "checkout_session_preview",
    "checkout_sessions_expire_overdue",
    "success_redirect_url",
]
