"""The customer hub (the console's customer page) and its actions.

The change page shows the hub (customers/hub.py: header figures, then tabs) above the
customer's details form. Each action is a small console form calling an existing service:
a one-off charge (billing invoice_item_create), a credit or debit of the balance
(invoices balance_adjust, with a fresh TOTP), a portal invitation, the choice of an invoice
to credit (then the invoice's credit-note page), and the internal notes. Actions that move
money show a confirmation page stating the consequence before anything is written.

Every view loads the customer through the admin's queryset, so another mode's customer
(live/test switch) is "not found"; each checks the permission of what it writes.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format, number_format
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from unfold.widgets import (
    UnfoldAdminEmailInputWidget,
    UnfoldAdminRadioSelectWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
    UnfoldBooleanSwitchWidget,
)

from billing.limits import MAX_AMOUNT
from billing.models import Subscription
from billing.services.invoice_items import invoice_item_create
from config import mfa
from config.console import MajorAmountField, error_text, format_money, format_period, major_to_money
from config.errors import DomainError
from customers.hub import CustomerHub, customer_hub
from customers.models import Customer
from customers.services import customer_invite_portal_user, customer_update
from invoices.models import Invoice
from invoices.selectors import customer_balance
from invoices.services.balance import balance_adjust


def _amount_widget() -> UnfoldAdminTextInputWidget:
    return UnfoldAdminTextInputWidget(attrs={"inputmode": "decimal", "autocomplete": "off"})


class OneOffChargeForm(forms.Form):
    description = forms.CharField(
        label=_("Description"),
        max_length=300,
        widget=UnfoldAdminTextInputWidget,
        help_text=_("The customer reads it on the invoice."),
    )
    amount = MajorAmountField(label=_("Amount"), widget=_amount_widget())
    subscription = forms.ModelChoiceField(
        label=_("Subscription"),
        queryset=Subscription.objects.none(),
        required=False,
        widget=UnfoldAdminSelectWidget,
        empty_label=_("None: the customer's next invoice"),
        help_text=_("Bill it with this subscription's next invoice."),
    )
    invoice_now = forms.BooleanField(
        label=_("Invoice it now"),
        required=False,
        widget=UnfoldBooleanSwitchWidget,
        help_text=_("Issue and finalize an invoice for this charge alone, and collect it at once."),
    )

    def __init__(self, *args: Any, customer: Customer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.customer = customer
        self.fields["amount"].help_text = gettext("In %(currency)s, the customer's currency, tax excluded.") % {
            "currency": customer.currency
        }
        self.fields["subscription"].queryset = Subscription.objects.filter(customer=customer).exclude(
            status=Subscription.Status.CANCELED
        )
        self.money: int | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.errors:
            money = major_to_money(self, "amount", self.customer.currency, minimum=1, maximum=MAX_AMOUNT)
            self.money = money.amount if money is not None else None
        return data


class BalanceForm(forms.Form):
    CREDIT, DEBIT = "credit", "debit"

    direction = forms.ChoiceField(
        label=_("Adjustment"),
        choices=[
            (CREDIT, _("Credit: the customer gets this amount off its next invoices")),
            (DEBIT, _("Debit: take back credit the customer holds")),
        ],
        initial=CREDIT,
        widget=UnfoldAdminRadioSelectWidget,
    )
    amount = MajorAmountField(label=_("Amount"), widget=_amount_widget())
    reason = forms.CharField(
        label=_("Reason"),
        max_length=300,
        widget=UnfoldAdminTextInputWidget,
        help_text=_("Shown to the customer in its balance history, and kept in the event log."),
    )
    otp_token = forms.CharField(
        label=_("Verification code"),
        required=False,
        max_length=16,
        widget=UnfoldAdminTextInputWidget(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text=_("A code from your authenticator app: balance credit is money. Not needed again for a few minutes."),
    )

    def __init__(self, *args: Any, customer: Customer, balance: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.customer = customer
        self.balance = balance
        self.fields["amount"].help_text = gettext("In %(currency)s. The customer holds %(balance)s of credit.") % {
            "currency": customer.currency,
            "balance": format_money(balance, customer.currency),
        }
        self.signed_amount: int | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        if not (data.get("reason") or "").strip():
            self.add_error("reason", gettext("Say why the balance is adjusted."))
            return data
        money = major_to_money(self, "amount", self.customer.currency, minimum=1, maximum=MAX_AMOUNT)
        if money is None:
            return data
        amount = money.amount if data["direction"] == self.CREDIT else -money.amount
        if amount < 0 and self.balance + amount < 0:
            self.add_error(
                "amount",
                gettext("The customer holds %(balance)s of credit: a debit cannot take more.")
                % {"balance": format_money(self.balance, self.customer.currency)},
            )
            return data
        self.signed_amount = amount
        return data


class InvitationForm(forms.Form):
    email = forms.EmailField(
        label=_("Email"),
        widget=UnfoldAdminEmailInputWidget,
        help_text=_("The person there gets a link to set a password and sign in to the billing portal."),
    )


class CreditNoteInvoiceForm(forms.Form):
    invoice = forms.ModelChoiceField(
        label=_("Invoice to credit"), queryset=Invoice.objects.none(), widget=UnfoldAdminSelectWidget
    )

    def __init__(self, *args: Any, customer: Customer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        invoices = Invoice.objects.filter(
            customer=customer, status__in=(Invoice.Status.OPEN, Invoice.Status.PAID)
        ).order_by("-finalized_at", "-pk")
        field = self.fields["invoice"]
        field.queryset = invoices
        field.label_from_instance = lambda invoice: "{} · {} · {} · {}".format(  # type: ignore[attr-defined]
            invoice.number,
            date_format(timezone.localtime(invoice.finalized_at), "SHORT_DATE_FORMAT") if invoice.finalized_at else "",
            format_money(invoice.total, invoice.currency),
            invoice.get_status_display(),
        )


class NotesForm(forms.Form):
    notes = forms.CharField(
        label=_("Internal notes"),
        required=False,
        max_length=5000,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 6}),
        help_text=_("For your team only: never shown to the customer, never on an invoice."),
    )


# -- the hub's tables ------------------------------------------------------------------------------------------


def _link(url_name: str, pk: Any, label: Any) -> str:
    return format_html(
        '<a href="{}" class="text-primary-600 dark:text-primary-500">{}</a>', reverse(url_name, args=[pk]), label
    )


def _money(amount: int | None, currency: str | None) -> str:
    return format_html('<span class="tarif-money">{}</span>', format_money(amount, currency))


def _date(moment: Any) -> str:
    if not moment:
        return "—"
    return date_format(timezone.localtime(moment), "DATE_FORMAT")


def _datetime(moment: Any) -> str:
    if not moment:
        return "—"
    return date_format(timezone.localtime(moment), "DATETIME_FORMAT")


def _plan(subscription: Subscription) -> str:
    return ", ".join(
        f"{item.price.nickname or item.price.product.name}" + (f" × {item.quantity}" if item.quantity != 1 else "")
        for item in subscription.items.all()
    )


def hub_tables(hub: CustomerHub, *, can_credit: bool) -> dict[str, dict[str, Any]]:
    """Unfold table components ({"headers": [...], "rows": [[cell, ...]]}) for each tab."""
    customer = hub.customer
    subscriptions = {
        "headers": [_("Subscription"), _("Plan"), _("Status"), _("MRR"), _("Current period"), _("Renews / ends")],
        "rows": [
            [
                _link("admin:billing_subscription_change", s.pk, f"#{s.pk}"),
                _plan(s) or "—",
                s.get_status_display(),
                _money(hub.mrr_by_subscription.get(s.pk), s.currency) if s.pk in hub.mrr_by_subscription else "—",
                format_period(s.current_period_start, s.current_period_end),
                (gettext("ends %(date)s") % {"date": _date(s.current_period_end)})
                if s.cancel_at_period_end
                else _date(s.ended_at or s.current_period_end),
            ]
            for s in hub.subscriptions
        ],
    }
    invoice_rows = []
    for invoice in hub.invoices:
        credit = "—"
        if can_credit and invoice.status in (Invoice.Status.OPEN, Invoice.Status.PAID):
            credit = _link("admin:invoices_invoice_credit_note", invoice.pk, gettext("Credit note"))
        invoice_rows.append(
            [
                _link(
                    "admin:invoices_invoice_change",
                    invoice.pk,
                    invoice.number or gettext("Draft #%(id)s") % {"id": invoice.pk},
                ),
                invoice.get_status_display(),
                _money(invoice.total, invoice.currency),
                _money(invoice.amount_remaining, invoice.currency),
                _date(invoice.finalized_at),
                _date(invoice.due_at),
                credit,
            ]
        )
    invoices = {
        "headers": [_("Invoice"), _("Status"), _("Total"), _("Remaining"), _("Issued"), _("Due"), ""],
        "rows": invoice_rows,
    }
    credit_notes = {
        "headers": [_("Credit note"), _("Invoice"), _("Total"), _("Refunded"), _("To balance"), _("Issued")],
        "rows": [
            [
                _link("admin:invoices_creditnote_change", note.pk, note.number),
                _link("admin:invoices_invoice_change", note.invoice_id, note.invoice.number or note.invoice_id),
                _money(note.total, note.currency),
                _money(note.refunded, note.currency),
                _money(note.credited_to_balance, note.currency),
                _date(note.issued_at),
            ]
            for note in hub.credit_notes
        ],
    }
    payments = {
        "headers": [_("Payment"), _("Date"), _("Amount"), _("Refunded"), _("Status"), _("Method"), _("Invoice")],
        "rows": [
            [
                _link("admin:billing_payment_change", payment.pk, f"#{payment.pk}"),
                _date(payment.settled_at or payment.attempted_at),
                _money(payment.amount, payment.currency),
                _money(payment.amount_refunded, payment.currency) if payment.amount_refunded else "—",
                payment.get_status_display(),
                str(payment.payment_method) if payment.payment_method else payment.get_method_display(),
                _link(
                    "admin:invoices_invoice_change", payment.invoice_id, payment.invoice.number or payment.invoice_id
                ),
            ]
            for payment in hub.payments
        ],
    }
    refunds = {
        "headers": [_("Refund"), _("Requested"), _("Amount"), _("Status"), _("Invoice")],
        "rows": [
            [
                _link("admin:billing_refund_change", refund.pk, f"#{refund.pk}"),
                _date(refund.requested_at),
                _money(refund.amount, refund.currency),
                refund.get_status_display(),
                _link("admin:invoices_invoice_change", refund.invoice_id, refund.invoice.number or refund.invoice_id),
            ]
            for refund in hub.refunds
        ],
    }
    pending = {
        "headers": [_("Pending charge"), _("Amount"), _("Added")],
        "rows": [
            [
                _link("admin:billing_invoiceitem_change", item.pk, item.description),
                _money(item.amount, item.currency),
                _date(item.created_at),
            ]
            for item in hub.pending_items
        ],
    }
    ledger = {
        "headers": [_("Date"), _("Kind"), _("Description"), _("Amount")],
        "rows": [
            [
                _date(entry.created_at),
                entry.get_kind_display(),
                entry.description or "—",
                _money(entry.amount, entry.currency),
            ]
            for entry in hub.balance_ledger
        ],
    }
    entitlements = {
        "headers": [_("Feature"), _("Lookup key"), _("Limit"), _("Unit")],
        "rows": [
            [
                entry.name,
                entry.lookup_key,
                _("on") if entry.quantity is None else number_format(entry.quantity, force_grouping=True),
                entry.unit_label or "—",
            ]
            for entry in hub.entitlements
        ],
    }
    credit_grants = {
        "headers": [_("Credit grant"), _("Category"), _("Status"), _("Amount"), _("Remaining"), _("Expires")],
        "rows": [
            [
                _link("admin:wallets_creditgrant_change", grant.pk, str(grant)),
                grant.get_category_display(),
                grant.get_status_display(),
                _money(grant.amount, grant.currency),
                _money(grant.remaining, grant.currency),
                _date(grant.expires_at) if grant.expires_at else "—",
            ]
            for grant in hub.credit_grants
        ],
    }
    usage = {
        "headers": [_("Meter"), _("Usage so far"), _("Events"), _("Since")],
        "rows": [[row.meter, f"{row.total.normalize():f}", row.events, _date(row.since)] for row in hub.usage],
    }
    timeline_labels = {"event": gettext("Event"), "email": gettext("Email"), "survey": gettext("Survey answer")}
    timeline_links = {
        "event": "admin:events_domainevent_change",
        "email": "admin:customers_notificationlog_change",
        "survey": "admin:feedback_surveyresponse_change",
    }
    timeline_rows = []
    for row in hub.timeline:
        try:
            summary = _link(timeline_links[row.source], row.obj.pk, row.summary)
        except NoReverseMatch:  # a model without a console page: the text alone
            summary = row.summary
        timeline_rows.append([_datetime(row.at), timeline_labels[row.source], summary, row.detail or "—"])
    timeline = {"headers": [_("When"), _("What"), _("Summary"), _("Details")], "rows": timeline_rows}
    portal_users = {
        "headers": [_("Email"), _("Invited"), _("Last sign-in"), _("Active")],
        "rows": [
            [
                link.user.email,
                _date(link.invited_at),
                _datetime(link.user.last_login),
                gettext("yes")
                if link.user.is_active and link.user.has_usable_password()
                else gettext("invitation pending"),
            ]
            for link in hub.portal_users
        ],
    }
    upcoming = []
    for entry in hub.upcoming:
        title = gettext("Subscription #%(id)s") % {"id": entry.subscription.pk}
        if entry.preview is None:
            upcoming.append({"title": title, "refusal": entry.refusal})
            continue
        preview = entry.preview
        currency = preview.currency
        upcoming.append(
            {
                "title": title,
                "url": reverse("admin:billing_subscription_change", args=[entry.subscription.pk]),
                "date": _date(entry.at),
                "amount_due": format_money(preview.amount_due, currency),
                "figures": [
                    (gettext("Subtotal"), format_money(preview.subtotal, currency)),
                    (gettext("Discounts"), format_money(-preview.totals.discount_total, currency)),
                    (gettext("Tax"), format_money(preview.totals.tax_total, currency)),
                    (gettext("Total"), format_money(preview.total, currency)),
                    (gettext("Credit applied"), format_money(-preview.balance_applied, currency)),
                    (gettext("Amount due"), format_money(preview.amount_due, currency)),
                ],
                "lines": {
                    "headers": [_("Line"), _("Period"), _("Amount")],
                    "rows": [
                        [
                            line.draft.description,
                            format_period(line.draft.period_start, line.draft.period_end),
                            _money(line.draft.amount, currency),
                        ]
                        for line in preview.lines
                    ],
                },
            }
        )
    del customer
    return {
        "upcoming": upcoming,
        "recent_invoices": {"headers": invoices["headers"], "rows": invoice_rows[:5]},
        "subscriptions": subscriptions,
        "invoices": invoices,
        "credit_notes": credit_notes,
        "payments": payments,
        "refunds": refunds,
        "pending": pending,
        "ledger": ledger,
        "credit_grants": credit_grants,
        "usage": usage,
        "entitlements": entitlements,
        "timeline": timeline,
        "portal_users": portal_users,
    }


HUB_TABS = (
    ("overview", _("Overview")),
    ("subscriptions", _("Subscriptions")),
    ("invoices", _("Invoices")),
    ("payments", _("Payments")),
    ("upcoming", _("Upcoming")),
    ("usage", _("Usage")),
    ("timeline", _("Timeline")),
    ("portal", _("Portal users")),
    ("notes", _("Notes")),
    ("general", _("Details")),
)


# -- the admin mixin -------------------------------------------------------------------------------------------


class CustomerHubMixin:
    """The hub on the customer's change page, and its action pages (for CustomerAdmin)."""

    opts: Any
    admin_site: Any
    model: Any

    # -- permissions of the actions (what each one writes) --

    def can_charge(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.add_invoiceitem")

    def can_adjust_balance(self, request: HttpRequest) -> bool:
        return request.user.has_perm("invoices.add_balancetransaction")

    def can_credit(self, request: HttpRequest) -> bool:
        return request.user.has_perm("invoices.add_creditnote")

    def can_subscribe(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.add_subscription")

    def hub_actions(self, request: HttpRequest, customer: Customer) -> list[dict[str, str]]:
        erased = bool((customer.metadata or {}).get("erased_at"))
        actions = []
        if self.can_subscribe(request) and not erased:
            actions.append(
                {
                    "label": gettext("New subscription"),
                    "url": reverse("admin:billing_subscription_add") + f"?customer={customer.pk}",
                    "icon": "autorenew",
                }
            )
        if self.can_charge(request) and not erased:
            actions.append(
                {"label": gettext("One-off charge"), "url": self._url("charge", customer), "icon": "add_card"}
            )
        if self.can_adjust_balance(request):
            actions.append(
                {"label": gettext("Credit / debit balance"), "url": self._url("balance", customer), "icon": "savings"}
            )
        if request.user.has_perm("wallets.add_creditgrant") and not erased:
            actions.append(
                {
                    "label": gettext("Grant credits"),
                    "url": reverse("admin:wallets_creditgrant_add") + f"?customer={customer.pk}",
                    "icon": "account_balance_wallet",
                }
            )
        if self.can_credit(request):
            actions.append(
                {
                    "label": gettext("Issue a credit note"),
                    "url": self._url("credit_note", customer),
                    "icon": "receipt_long",
                }
            )
        if self.has_change_permission(request, customer) and not erased:  # type: ignore[attr-defined]
            actions.append(
                {"label": gettext("Send portal invitation"), "url": self._url("invite", customer), "icon": "mail"}
            )
        return actions

    def _url(self, action: str, customer: Customer) -> str:
        return reverse(f"admin:customers_customer_{action}", args=[customer.pk])

    def get_urls(self) -> list[URLPattern]:
        views = [
            ("charge", self.charge_view),
            ("balance", self.balance_view),
            ("invite", self.invite_view),
            ("credit-note", self.credit_note_view),
            ("notes", self.notes_view),
        ]
        return [
            path(
                f"<path:object_id>/{slug}/",
                self.admin_site.admin_view(view),
                name=f"customers_customer_{slug.replace('-', '_')}",
            )
            for slug, view in views
        ] + super().get_urls()  # type: ignore[misc]

    def _customer(self, request: HttpRequest, object_id: str) -> Customer:
        customer = self.get_object(request, object_id)  # mode-scoped queryset
        if customer is None or not self.has_view_permission(request, customer):  # type: ignore[attr-defined]
            raise Http404(gettext("No such customer."))
        return customer

    def _back(self, customer: Customer, tab: str = "") -> HttpResponseRedirect:
        url = reverse("admin:customers_customer_change", args=[customer.pk])
        return HttpResponseRedirect(url + (f"#{tab}" if tab else ""))

    def _render(
        self,
        request: HttpRequest,
        customer: Customer,
        *,
        title: str,
        form: forms.Form,
        submit_label: str,
        intro: str = "",
        confirm: str = "",
        danger: bool = False,
        method: str = "post",
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": customer,
            "customer": customer,
            "title": title,
            "subtitle": str(customer),
            "form": form,
            "submit_label": submit_label,
            "intro": intro,
            "confirm": confirm,
            "danger": danger,
            "method": method,
            "hub_url": reverse("admin:customers_customer_change", args=[customer.pk]),
            "has_view_permission": True,
            "media": self.media + form.media,  # type: ignore[attr-defined]
        }
        return TemplateResponse(request, "admin/customers/customer/action_form.html", context)

    # -- the hub itself --

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        """The customer once per request: the hub reads it before the change form does."""
        cache = request.__dict__.setdefault("_tarif_hub_objects", {})
        key = (object_id, from_field)
        if key not in cache:
            cache[key] = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        return cache[key]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        customer = self.get_object(request, object_id) if request.method == "GET" else None
        if customer is not None and self.has_view_permission(request, customer):  # type: ignore[attr-defined]
            hub = customer_hub(customer=customer)
            extra_context.update(
                hub=hub,
                hub_tables=hub_tables(hub, can_credit=self.can_credit(request)),
                hub_actions=self.hub_actions(request, customer),
                hub_tabs=HUB_TABS,
                notes_form=NotesForm(initial={"notes": customer.notes}),
                can_edit_notes=self.has_change_permission(request, customer),  # type: ignore[attr-defined]
                balance_display=format_money(hub.summary.balance, hub.summary.currency),
                mrr_display=format_money(hub.summary.mrr, hub.summary.currency),
                ltv_display=format_money(hub.summary.lifetime_value, hub.summary.currency),
                overdue_display=format_money(hub.summary.overdue_amount, hub.summary.currency),
            )
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]

    # -- actions --

    def charge_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        customer = self._customer(request, object_id)
        if not self.can_charge(request):
            raise PermissionDenied
        form = OneOffChargeForm(request.POST or None, customer=customer)
        title = gettext("One-off charge")
        if request.method == "POST" and form.is_valid() and form.money is not None:
            data = form.cleaned_data
            amount = format_money(form.money, customer.currency)
            if data["invoice_now"]:
                consequence = gettext(
                    "An invoice of %(amount)s (plus tax) for “%(description)s” will be issued to %(customer)s now, "
                    "with its number, and collected at once."
                )
            elif data["subscription"] is not None:
                consequence = gettext(
                    "%(amount)s (plus tax) for “%(description)s” will be added to the next invoice of subscription "
                    "#%(subscription)s of %(customer)s."
                )
            else:
                consequence = gettext(
                    "%(amount)s (plus tax) for “%(description)s” will be added to the next invoice of %(customer)s."
                )
            consequence %= {
                "amount": amount,
                "description": data["description"],
                "customer": customer,
                "subscription": getattr(data["subscription"], "pk", ""),
            }
            if request.POST.get("confirmed") != "yes":
                return self._render(
                    request,
                    customer,
                    title=title,
                    form=form,
                    submit_label=gettext("Yes, add the charge"),
                    confirm=consequence,
                )
            try:
                with transaction.atomic():
                    item = invoice_item_create(
                        customer=customer,
                        description=data["description"],
                        amount=form.money,
                        subscription=data["subscription"],
                        invoice_now=data["invoice_now"],
                        acting_user=request.user,
                    )
            except (DomainError, ValidationError) as error:
                form.add_error(None, error_text(error))
            else:
                if item.invoice_id:
                    text = gettext("Invoice %(number)s issued for %(amount)s.") % {
                        "number": item.invoice.number if item.invoice else "",
                        "amount": amount,
                    }
                else:
                    text = gettext("%(amount)s will be on the next invoice.") % {"amount": amount}
                self.message_user(request, text, messages.SUCCESS)  # type: ignore[attr-defined]
                return self._back(customer, "invoices" if item.invoice_id else "upcoming")
        return self._render(
            request,
            customer,
            title=title,
            form=form,
            submit_label=gettext("Continue"),
            intro=gettext("A charge outside the plan (set-up fee, extra work…), billed once."),
        )

    def balance_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        customer = self._customer(request, object_id)
        if not self.can_adjust_balance(request):
            raise PermissionDenied
        balance = customer_balance(customer_id=customer.pk, currency=customer.currency)
        form = BalanceForm(request.POST or None, customer=customer, balance=balance)
        title = gettext("Credit or debit the balance")
        if request.method == "POST" and form.is_valid() and form.signed_amount is not None:
            amount = form.signed_amount
            after = format_money(balance + amount, customer.currency)
            if amount > 0:
                consequence = gettext(
                    "%(customer)s gets %(amount)s of credit; its next invoices use it first. Balance after: %(after)s."
                )
            else:
                consequence = gettext("%(amount)s of credit is taken back from %(customer)s. Balance after: %(after)s.")
            consequence %= {
                "customer": customer,
                "amount": format_money(abs(amount), customer.currency),
                "after": after,
            }
            verified_at, refused = mfa.step_up(request, form.cleaned_data["otp_token"])
            if refused is not None and not refused.ok:
                form.add_error("otp_token", mfa.refusal_message(refused))
            elif not mfa.is_fresh(verified_at):
                form.add_error("otp_token", gettext("Type a code from your authenticator app to confirm it is you."))
            elif request.POST.get("confirmed") != "yes":
                return self._render(
                    request,
                    customer,
                    title=title,
                    form=form,
                    submit_label=gettext("Yes, credit the balance")
                    if amount > 0
                    else gettext("Yes, debit the balance"),
                    confirm=consequence,
                    danger=amount < 0,
                )
            else:
                try:
                    with transaction.atomic():
                        balance_adjust(
                            customer=customer,
                            currency=customer.currency,
                            amount=amount,
                            description=form.cleaned_data["reason"],
                            at=timezone.now(),
                            acting_user=request.user,
                        )
                except (DomainError, ValidationError) as error:
                    form.add_error(None, error_text(error))
                else:
                    self.message_user(  # type: ignore[attr-defined]
                        request,
                        gettext("Balance adjusted: %(customer)s now holds %(after)s of credit.")
                        % {"customer": customer, "after": after},
                        messages.SUCCESS,
                    )
                    return self._back(customer, "payments")
        return self._render(
            request,
            customer,
            title=title,
            form=form,
            submit_label=gettext("Continue"),
            intro=gettext(
                "Credit is money the customer can spend on its next invoices (a goodwill gesture, a correction). "
                "To correct an issued invoice, issue a credit note instead."
            ),
        )

    def invite_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        customer = self._customer(request, object_id)
        if not self.has_change_permission(request, customer):  # type: ignore[attr-defined]
            raise PermissionDenied
        if (customer.metadata or {}).get("erased_at"):
            raise PermissionDenied
        form = InvitationForm(request.POST or None, initial={"email": customer.invoice_recipient})
        if request.method == "POST" and form.is_valid():
            email = form.cleaned_data["email"]
            try:
                with transaction.atomic():
                    customer_invite_portal_user(
                        customer=customer, email=email, base_url=_base_url(), acting_user=request.user
                    )
            except (DomainError, ValidationError) as error:
                form.add_error("email", error_text(error))
            else:
                self.message_user(  # type: ignore[attr-defined]
                    request, gettext("Invitation sent to %(email)s.") % {"email": email}, messages.SUCCESS
                )
                return self._back(customer, "portal")
        return self._render(
            request,
            customer,
            title=gettext("Send a portal invitation"),
            form=form,
            submit_label=gettext("Send the invitation"),
            intro=gettext("Portal users see this customer's invoices, payment methods and subscriptions."),
        )

    def credit_note_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        customer = self._customer(request, object_id)
        if not self.can_credit(request):
            raise PermissionDenied
        form = CreditNoteInvoiceForm(request.GET if "invoice" in request.GET else None, customer=customer)
        if form.is_bound and form.is_valid():
            invoice = form.cleaned_data["invoice"]
            return HttpResponseRedirect(reverse("admin:invoices_invoice_credit_note", args=[invoice.pk]))
        intro = gettext("Choose the invoice to correct; the next page asks what to credit and where the money goes.")
        if not form.fields["invoice"].queryset.exists():  # type: ignore[attr-defined]
            intro = gettext("This customer has no issued invoice to credit.")
        return self._render(
            request,
            customer,
            title=gettext("Issue a credit note"),
            form=form,
            submit_label=gettext("Continue"),
            intro=intro,
            method="get",
        )

    def notes_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        customer = self._customer(request, object_id)
        if not self.has_change_permission(request, customer):  # type: ignore[attr-defined]
            raise PermissionDenied
        form = NotesForm(request.POST or None, initial={"notes": customer.notes})
        if request.method == "POST" and form.is_valid():
            try:
                with transaction.atomic():
                    customer_update(
                        customer=customer, data={"notes": form.cleaned_data["notes"]}, acting_user=request.user
                    )
            except (DomainError, ValidationError) as error:
                form.add_error("notes", error_text(error))
            else:
                self.message_user(request, gettext("Notes saved."), messages.SUCCESS)  # type: ignore[attr-defined]
                return self._back(customer, "notes")
        return self._render(
            request, customer, title=gettext("Internal notes"), form=form, submit_label=gettext("Save notes")
        )


def _base_url() -> str:
    return settings.TARIF_BASE_URL
