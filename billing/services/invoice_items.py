"""One-off charges (and credits): pending for the next invoice, or invoiced at once.

A pending item on a subscription goes on that subscription's next invoice; one
without a subscription goes on the next invoice of any of the customer's
subscriptions in its currency (or on an invoice issued for it alone).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils.translation import gettext as _

from billing.limits import check_amount, check_quantity
from billing.models import InvoiceItem, Price, Subscription
from billing.selectors import price_amount_for
from billing.services.modes import modes_check
from billing.services.subscriptions import (
    CustomerCurrencyMismatch,
    SubscriptionError,
    instant,
    invoice_issue,
    subscription_lock,
)
from billing.services.upcoming import pending_item_line
from config.events.log import event_record
from config.money import CurrencyError, validate_currency
from config.types import ActingUser
from customers.models import Customer
from invoices.types import DraftInvoice


class InvoiceItemError(SubscriptionError):
    pass


@transaction.atomic(savepoint=False)
def invoice_item_create(
    *,
    customer: Customer,
    description: str = "",
    amount: int | None = None,
    price: Price | None = None,
    quantity: int = 1,
    currency: str | None = None,
    subscription: Subscription | None = None,
    invoice_now: bool = False,
    discountable: bool = True,
    at: datetime | None = None,
    acting_user: ActingUser = None,
) -> InvoiceItem:
    """Add a one-off charge: `amount` (minor units; negative for a credit) or a one-time
    `price` x `quantity`. With `invoice_now`, an invoice for this item alone is created
    and finalized at once; otherwise it waits for the next invoice.

    The currency defaults to the price's, else the subscription's, else the customer's;
    an item on a subscription must be in the subscription's currency.
    """
    if (amount is None) == (price is None):
        raise InvoiceItemError(_("Give an amount or a price, not both."), code="amount_or_price")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise InvoiceItemError(_("The quantity is a whole number of at least 1."), code="invalid_quantity")
    modes_check(livemode=customer.livemode, objects=[price, subscription])
    check_quantity(quantity, field="quantity")
    if amount is not None:
        check_amount(amount, field="amount", allow_negative=True)
    if subscription is not None:
        subscription = subscription_lock(subscription)
        if subscription.customer_id != customer.pk:
            raise InvoiceItemError(_("The subscription belongs to another customer."), code="wrong_customer")
        if subscription.status == Subscription.Status.CANCELED:
            raise InvoiceItemError(_("The subscription is canceled."), code="subscription_canceled")
    at = instant(at=at, customer=customer)
    tax_behavior: str = Price.TaxBehavior.EXCLUSIVE
    if price is not None:
        if price.type != Price.Type.ONE_TIME or not price.active:
            raise InvoiceItemError(_("Only an active one-time price can be a one-off charge."), code="price")
        amount = price_amount_for(price=price, quantity=quantity)
        if currency is not None and currency != price.currency:
            raise InvoiceItemError(
                _("The price is in %(price)s, not %(currency)s.") % {"price": price.currency, "currency": currency},
                code="currency",
            )
        currency = price.currency
        tax_behavior = price.tax_behavior
        description = description or price.nickname or price.product.name
    elif isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
        raise InvoiceItemError(_("The amount is a non-zero whole number of minor units."), code="invalid_amount")
    currency = currency or (subscription.currency if subscription is not None else customer.currency)
    try:
        currency = validate_currency(currency)
    except CurrencyError as error:
        raise InvoiceItemError(str(error), code="currency") from error
    check_amount(amount, field="amount", allow_negative=True)  # a price x quantity stays a line's amount too
    if subscription is not None and currency != subscription.currency:
        raise InvoiceItemError(
            _("The subscription bills in %(subscription)s; this item is in %(currency)s.")
            % {"subscription": subscription.currency, "currency": currency},
            code="currency",
        )
    if currency != customer.currency:
        raise CustomerCurrencyMismatch(
            _("%(customer)s is billed in %(customer_currency)s; this item is in %(currency)s.")
            % {"customer": customer, "customer_currency": customer.currency, "currency": currency},
            code="customer_currency",
        )
    if not description.strip():
        raise InvoiceItemError(_("Describe the charge: the customer reads it on the invoice."), code="description")

    item = InvoiceItem.objects.create(
        customer=customer,
        subscription=subscription,
        price=price,
        description=description.strip()[:300],
        quantity=quantity,
        amount=amount,
        currency=currency,
        discountable=discountable,
        tax_behavior=tax_behavior,
    )
    event_record(
        type="invoiceitem.created",
        object_type="invoice_item",
        object_id=item.pk,
        customer_id=customer.pk,
        occurred_at=at,
        data={"amount": amount, "currency": currency, "subscription": item.subscription_id, "invoice_now": invoice_now},
        acting_user=acting_user,
    )
    if invoice_now:
        draft = DraftInvoice(
            customer_id=customer.pk,
            currency=currency,
            billing_reason="manual",
            lines=(pending_item_line(item),),
            subscription_id=item.subscription_id,
            collection_method=subscription.collection_method if subscription else "charge_automatically",
            days_until_due=subscription.days_until_due if subscription else None,
        )
        invoice_issue(draft=draft, customer=customer, at=at, acting_user=acting_user)
        item.refresh_from_db(fields=["invoice"])
    return item
