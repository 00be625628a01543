from __future__ import annotations

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model
from django.utils.translation import gettext as _

from config import clock
from config.events.log import event_record
from config.modes import default_livemode
from config.types import ActingUser
from customers.models import Customer, CustomerUser, NotificationKind


@transaction.atomic
def customer_invite_portal_user(
    *, customer: Customer, email: str, base_url: str, acting_user: ActingUser = None
) -> CustomerUser:
    """Create a portal login for `email` acting for `customer` and email it a set-password link.

    Signup is closed: this is how customers get portal access, and the only way a login
    gets linked to a customer (the console's portal-user page cannot add or re-point
    links). Following the link proves the address, so allauth marks it verified when
    the password is set. A new link is recorded as `customer.portal_user.invited`.
    """
    email = email.strip().lower()
    user_model = get_user_model()
    user = user_model.objects.filter(email__iexact=email).first()
    if user is not None:
        link = CustomerUser.objects.filter(user=user).select_related("customer").first()
        if link is not None and link.customer_id != customer.pk:
            raise ValidationError(_("This email already has portal access for another customer."))
        if user.is_staff:
            raise ValidationError(_("Staff accounts cannot be portal users."))
    else:
        user = user_model.objects.create_user(username=email[:150], email=email)
        user.set_unusable_password()
        user.save(update_fields=["password"])
    EmailAddress.objects.get_or_create(user=user, email=email, defaults={"primary": True, "verified": False})
    link, created = CustomerUser.objects.get_or_create(user=user, defaults={"customer": customer})
    if created:
        _customer_event(customer, "customer.portal_user.invited", [], acting_user, extra={"email": email})

    # Durable (DESIGN.md, hand-offs): the email is a notification row committed with the login,
    # sent after the commit and swept if that send is lost; its link is made when it is sent.
    from customers.notifications.services import notification_queue  # deferred: notifications import billing

    notification_queue(
        customer=customer,
        kind=NotificationKind.PORTAL_INVITATION,
        dedupe_key=f"portal_invitation:{user.pk}:{clock.now().isoformat()}",
        data={"user": user.pk, "base_url": base_url},
        recipient=email,
    )
    return link


CUSTOMER_EDITABLE_FIELDS = (
    "legal_name",
    "email",
    "country",
    "preferred_language",
    "currency",
    "timezone",
    "is_business",
    "tax_id",
    "siren",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "region",
    "delivery_address",
    "invoice_email",
    "einvoice_syntax",
    "test_clock",
    "metadata",
    "notes",
)


def _customer_event(
    customer: Customer, type: str, changed: list[str], acting_user: ActingUser, extra: dict | None = None
) -> None:
    event_record(
        type=type,
        object_type="customer",
        object_id=customer.pk,
        customer_id=customer.pk,
        occurred_at=clock.now(customer=customer),
        data={"changed": changed, **(extra or {})},
        acting_user=acting_user,
    )


def _test_clock_check(customer: Customer, test_clock: object) -> None:
    """Only test-mode customers live on a test clock."""
    if test_clock is not None and customer.livemode:
        raise ValidationError(
            {"test_clock": _("Only a test-mode customer can be attached to a test clock.")}, code="livemode_mismatch"
        )


def customer_has_billing_history(customer: Customer) -> bool:
    """Invoices, payments or payment methods: what ties a customer to the time it lives at."""
    return (
        customer.invoices.exists()
        or customer.payments.exists()
        or customer.payment_methods.exists()
        or customer.subscriptions.exists()
    )


def customer_create(
    *, data: dict, acting_user: ActingUser = None, livemode: bool | None = None, brand: Model | None = None
) -> Customer:
    """A new customer from `data` (the editable fields); model validation errors are raised as they are.

    The customer is in `livemode` (default: the mode of the running request -- a sandbox API
    key, the console's "Test data" switch -- else live). Only a test-mode customer may start
    on a test clock. Validation runs before the transaction opens, so a refusal leaves the
    caller's transaction usable. `brand`: the brand that invoices it (a checkout session's; the
    default brand when None).
    """
    unknown = set(data) - set(CUSTOMER_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(_("Unknown customer fields: %(f)s.") % {"f": ", ".join(sorted(unknown))})
    customer = Customer(**data)
    if brand is not None:
        customer.brand_id = brand.pk
    customer.livemode = default_livemode() if livemode is None else livemode
    _test_clock_check(customer, customer.test_clock)
    customer.full_clean()
    with transaction.atomic(savepoint=False):
        customer.save()
        _customer_event(customer, "customer.created", sorted(data), acting_user)
    return customer


def customer_update_validate(*, customer: Customer, data: dict) -> None:
    """Raise the ValidationError `customer_update` would raise before writing (forms ask it early).

    `customer` is the row as stored: a console form or an import passes the stored row, not
    the one it has already filled with the new values. A test clock attaches only to a
    test-mode customer, and a customer with a billing history (subscriptions, invoices,
    payments, payment methods) never moves onto or off a test clock: its documents belong to
    the time they were made at.
    """
    unknown = set(data) - set(CUSTOMER_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(_("Unknown customer fields: %(f)s.") % {"f": ", ".join(sorted(unknown))})
    if "test_clock" in data:
        new_clock = data["test_clock"]
        new_clock_id = getattr(new_clock, "pk", new_clock)
        if new_clock_id != customer.test_clock_id:
            _test_clock_check(customer, new_clock)
            if customer_has_billing_history(customer):
                raise ValidationError(
                    {
                        "test_clock": _(
                            "This customer has subscriptions, invoices, payments or payment methods: "
                            "it can no longer move onto or off a test clock."
                        )
                    },
                    code="test_clock_locked",
                )
    if "currency" in data and data["currency"] != customer.currency and customer.subscriptions.exists():
        raise ValidationError(
            {"currency": _("This customer has subscriptions: its currency can no longer change.")},
        )


def customer_update(*, customer: Customer, data: dict, acting_user: ActingUser = None) -> Customer:
    """Change a customer (API, console form, import) and record `customer.updated` with what changed."""
    customer_update_validate(customer=customer, data=data)
    for name, value in data.items():
        setattr(customer, name, value)
    customer.full_clean()
    with transaction.atomic(savepoint=False):
        customer.save()
        _customer_event(customer, "customer.updated", sorted(data), acting_user)
    return customer


def customer_user_revoke(*, link: CustomerUser, acting_user: ActingUser = None) -> None:
    """Take portal access away from a login: the link goes, the login stays (it may be invited again).

    Recorded as `customer.portal_user.revoked` (who lost access, to which customer, by whom).
    """
    customer, email = link.customer, link.user.email
    with transaction.atomic(savepoint=False):
        CustomerUser.objects.filter(pk=link.pk).delete()
        _customer_event(customer, "customer.portal_user.revoked", [], acting_user, extra={"email": email})


def customer_delete(*, customer: Customer, acting_user: ActingUser = None) -> None:
    """Delete a customer entered by mistake; one with any billing history is refused by the database
    (PROTECT: subscriptions, invoices, payments...). Recorded as `customer.deleted`, which keeps the
    customer's id after the row is gone (events outlive their customer)."""
    with transaction.atomic(savepoint=False):
        _customer_event(customer, "customer.deleted", [], acting_user, extra={"email": customer.email})
        customer.delete()
