"""GDPR: what Tarif holds about a customer (access, art. 15 / portability, art. 20) and erasure (art. 17).

Erasure anonymizes the customer and its portal logins but keeps invoices, credit notes,
payments and the ledger: accounting documents must be kept (10 years in France, Code de
commerce L123-22; 6 years for tax, LPF L102 B), which GDPR art. 17(3)(b) allows. Issued
invoices keep the buyer details frozen in `issued_snapshot` at issue, as the law requires
of an issued invoice; they are only used for that legal purpose from then on.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime
from typing import Any

from allauth.account.models import EmailAddress
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils.translation import gettext

from billing.models import Payment, PaymentMethod, Subscription
from config.errors import DomainConflict
from config.events.log import event_record
from config.events.models import DomainEvent
from customers.locks import customer_qs_for_update
from customers.models import Customer
from invoices.models import BalanceTransaction, CreditNote, Document, Invoice
from invoices.selectors import customer_balances_by_currency

ERASED_DOMAIN = "erased.invalid"


class ErasureRefused(DomainConflict):
    code = "erasure_refused"


def _rows(queryset, *, exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [
        {key: value for key, value in model_to_dict(obj).items() if key not in exclude} | {"id": obj.pk}
        for obj in queryset
    ]


def customer_data_export(*, customer: Customer) -> dict[str, Any]:
    """Everything held about the customer, as plain data (decrypted: it is the customer's own)."""
    users = [
        {
            "email": link.user.email,
            "username": link.user.get_username(),
            "first_name": link.user.first_name,
            "last_name": link.user.last_name,
            "date_joined": link.user.date_joined,
            "last_login": link.user.last_login,
            "invited_at": link.invited_at,
        }
        for link in customer.portal_users.select_related("user")
    ]
    return json.loads(
        json.dumps(
            {
                "customer": model_to_dict(customer) | {"id": customer.pk, "created_at": customer.created_at},
                "portal_users": users,
                "subscriptions": _rows(Subscription.objects.filter(customer=customer)),
                "invoices": _rows(Invoice.objects.filter(customer=customer).exclude(status="draft")),
                "credit_notes": _rows(CreditNote.objects.filter(customer=customer)),
                "payments": _rows(Payment.objects.filter(customer=customer)),
                "payment_methods": _rows(PaymentMethod.objects.filter(customer=customer), exclude=("token",)),
                "balance_transactions": _rows(BalanceTransaction.objects.filter(customer=customer)),
                "events": _rows(DomainEvent.objects.filter(customer=customer)),
            },
            cls=DjangoJSONEncoder,
            default=str,
        )
    )


def customer_data_export_zip(*, customer: Customer) -> bytes:
    """The export as a ZIP: data.json plus the PDF of every issued invoice and credit note."""
    data = customer_data_export(customer=customer)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.json", json.dumps(data, indent=2, ensure_ascii=False))
        documents = Document.objects.filter(invoice__customer=customer) | Document.objects.filter(
            credit_note__customer=customer
        )
        for document in documents.order_by("pk"):
            try:
                with document.file.open("rb") as stored:
                    archive.writestr(f"documents/{document.file.name.rsplit('/', 1)[-1]}", stored.read())
            except FileNotFoundError:
                archive.writestr(f"documents/MISSING-{document.pk}.txt", "The stored PDF is missing; ask support.")
    return buffer.getvalue()


@transaction.atomic(durable=True)
def customer_erase(*, customer: Customer, at: datetime, acting_user: Any = None) -> Customer:
    """Anonymize a customer and its portal logins; invoices and payments stay (see module doc).

    Refused while the customer still has a live subscription or money owed either way:
    those are contracts and claims that still need the identity.
    """
    customer = customer_qs_for_update().get(pk=customer.pk)
    if customer.metadata.get("erased_at"):
        return customer  # idempotent
    live = Subscription.objects.filter(customer=customer).exclude(status=Subscription.Status.CANCELED)
    if live.exists():
        raise ErasureRefused(gettext("The customer still has a live subscription: cancel it first."))
    if Invoice.objects.filter(customer=customer, status="open", amount_remaining__gt=0).exists():
        raise ErasureRefused(gettext("The customer still owes money on open invoices: settle or write them off first."))
    if any(customer_balances_by_currency(customer_ids=[customer.pk]).values()):
        raise ErasureRefused(gettext("The customer has a non-zero balance: refund or clear it first."))

    label = f"Erased customer {customer.pk}"
    customer.legal_name = label
    customer.email = f"customer-{customer.pk}@{ERASED_DOMAIN}"
    customer.invoice_email = ""
    customer.tax_id = ""
    customer.siren = ""
    customer.address_line1 = customer.address_line2 = customer.region = customer.delivery_address = ""
    customer.postal_code = customer.city = ""
    customer.notes = ""  # staff notes about a person are personal data too
    customer.metadata = {"erased_at": at.isoformat()}
    customer.save()

    PaymentMethod.objects.filter(customer=customer).update(token="", mandate_reference="", last4="", iban_last4="")
    for link in customer.portal_users.select_related("user"):
        user = link.user
        EmailAddress.objects.filter(user=user).delete()
        user.email = f"user-{user.pk}@{ERASED_DOMAIN}"
        user.username = f"erased-{user.pk}"
        user.first_name = user.last_name = ""
        user.is_active = False
        user.set_unusable_password()
        user.save()
    event_record(
        type="customer.erased",
        object_type="customer",
        object_id=customer.pk,
        customer_id=customer.pk,
        occurred_at=at,
        acting_user=acting_user,
    )
    return customer
