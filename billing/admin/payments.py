"""Console pages for payment methods, payments, refunds (four-eyes, fresh TOTP) and dunning."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RangeDateTimeFilter
from unfold.widgets import UnfoldAdminTextInputWidget

from billing.limits import MAX_TOTAL
from billing.models import (
    DunningCase,
    Payment,
    PaymentMethod,
    Refund,
)
from billing.payments.registry import MANUAL, SANDBOX, STRIPE
from billing.services.dunning import dunning_collect_invoice
from billing.services.payments import (
    MANUAL_METHODS,
    PaymentsError,
    awaiting_payment,
    bank_transfer_reference,
    payment_record_manual,
)
from billing.services.refunds import (
    RefundError,
    approval_threshold,
    refund_approve,
    refund_reject,
    refund_request,
    refundable_amount,
)
from config import mfa
from config.console import (
    MajorAmountField,
    ReadOnlyAdminMixin,
    StyledAdmin,
    admin_link,
    call_service,
    format_money,
    major_to_money,
    render_tool_form,
    status_badge,
    truncated,
)
from config.mfa import OtpField
from invoices.errors import InvoiceError
from invoices.models import CreditNote, Invoice


def _linked(obj: Any, label: Any = None) -> str:
    try:
        return admin_link(obj, label)
    except Exception:  # the model has no admin page (yet): plain text
        return str(label if label is not None else obj)


class RefundRequestForm(forms.Form):
    amount = MajorAmountField(label=_("Amount to refund"))
    reason = forms.ChoiceField(label=_("Reason"))
    memo = forms.CharField(label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    otp_token = OtpField()

    def __init__(self, *args: Any, payment: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.payment = payment
        self.fields["reason"].choices = CreditNote.Reason.choices

        self.fields["amount"].help_text = _(
            "In %(currency)s; at most %(left)s left to refund (refunds awaiting approval and credit-note refunds "
            "included)."
        ) % {"currency": payment.currency, "left": format_money(refundable_amount(payment=payment), payment.currency)}

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("amount"):
            money = major_to_money(self, "amount", self.payment.currency, minimum=1, maximum=MAX_TOTAL)
            if money is not None:
                data["amount"] = money.amount
        return data


class RefundDecisionForm(forms.Form):
    otp_token = OtpField(
        required=True,
        help_text=_("A new code from your authenticator app: the approver confirms with their own second factor."),
        widget=UnfoldAdminTextInputWidget(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
    note = forms.CharField(label=_("Note"), required=False, max_length=300, widget=UnfoldAdminTextInputWidget())


class ManualPaymentForm(forms.Form):
    invoice_number = forms.CharField(label=_("Invoice number"), max_length=50)
    amount = MajorAmountField(label=_("Amount received"))
    method = forms.ChoiceField(label=_("Method"))
    reference = forms.CharField(label=_("Reference"), required=False, max_length=100, help_text=_("Cheque number..."))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["method"].choices = [(value, Payment.Method(value).label) for value in MANUAL_METHODS]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        number = (data.get("invoice_number") or "").strip()
        invoice = Invoice.objects.filter(number=number).first()
        if invoice is None:
            raise ValidationError({"invoice_number": _("No invoice has this number.")})
        data["invoice"] = invoice
        if data.get("amount"):
            money = major_to_money(self, "amount", invoice.currency, minimum=1, maximum=MAX_TOTAL)
            if money is not None:
                data["amount_minor"] = money.amount
        return data


@admin.register(PaymentMethod)
class PaymentMethodAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("customer", "kind", "__str__", "gateway", "is_default", "active", "created_at")
    list_filter = ("kind", "gateway", "is_default", "active", ("created_at", RangeDateTimeFilter))
    search_fields = ("customer__legal_name", "=last4", "=iban_last4", "mandate_reference")
    list_select_related = ("customer",)
    fields = (
        "customer",
        "kind",
        "gateway",
        "brand",
        "last4",
        "exp_month",
        "exp_year",
        "wallet",
        "iban_last4",
        "mandate_reference",
        "transfer_reference",
        "is_default",
        "active",
        "created_at",
        "detached_at",
    )
    readonly_fields = fields

    @admin.display(description=_("bank transfer reference"))
    def transfer_reference(self, method: PaymentMethod) -> str:
        return bank_transfer_reference(customer=method.customer)


class GatewayFilter(admin.SimpleListFilter):
    """The gateways Tarif knows (billing/payments/registry.py), not a DISTINCT over every
    payment (1 s at 100,000 subscriptions, issue 20); keeps Django's `gateway__exact` parameter."""

    title = _("gateway")
    parameter_name = "gateway__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [(SANDBOX, "sandbox"), (STRIPE, "Stripe"), (MANUAL, gettext("manual"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Payment]) -> QuerySet[Payment]:
        return queryset.filter(gateway=self.value()) if self.value() else queryset


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = (
        "attempted_at",
        "invoice_link",
        "customer",
        "amount_label",
        "method",
        "status_badge",
        "attempt",
        "decline_code",
        "refunded_label",
    )
    list_filter = (
        "status",
        "method",
        GatewayFilter,
        ("decline_code", ChoicesDropdownFilter),
        ("attempted_at", RangeDateTimeFilter),
    )
    status_badge = status_badge(
        "status",
        _("status"),
        {"succeeded": "success", "pending": "info", "requires_action": "warning", "failed": "danger"},
    )
    search_fields = ("invoice__number", "customer__legal_name", "=gateway_reference", "reference")
    list_select_related = ("invoice", "customer")
    # No date_hierarchy (issue 20): it reads the first and last dates and the DISTINCT years of
    # every payment on each view (2.8 s at 100,000 subscriptions); the attempted-at range selects dates.
    actions = ["retry_now"]
    change_form_template = "admin/billing/payments/payment_change_form.html"
    change_list_template = "admin/billing/payments/payment_change_list.html"
    fields = (
        "invoice_link",
        "customer",
        "payment_method",
        "method",
        "gateway",
        "status",
        "amount_label",
        "refunded_label",
        "attempt",
        "idempotency_key",
        "gateway_reference_short",
        "decline_code",
        "failure_message",
        "reference",
        "recorded_by",
        "attempted_at",
        "settled_at",
    )
    readonly_fields = fields

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "record-manual/",
                self.admin_site.admin_view(self.record_manual_view),
                name="{}_{}_record_manual".format(*info),
            ),
            path(
                "reconciliation/",
                self.admin_site.admin_view(self.reconciliation_view),
                name="{}_{}_reconciliation".format(*info),
            ),
            path(
                "<int:object_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="{}_{}_refund".format(*info),
            ),
            *super().get_urls(),
        ]

    @admin.display(description=_("invoice"), ordering="invoice__number")
    def invoice_link(self, payment: Payment) -> str:
        return _linked(payment.invoice, payment.invoice.number or f"#{payment.invoice_id}")

    @admin.display(description=_("amount"), ordering="amount")
    def amount_label(self, payment: Payment) -> str:
        return format_money(payment.amount, payment.currency)

    @admin.display(description=_("gateway reference"))
    def gateway_reference_short(self, payment: Payment) -> str:
        return truncated(payment.gateway_reference, 32)

    @admin.display(description=_("refunded"))
    def refunded_label(self, payment: Payment) -> str:
        return format_money(payment.amount_refunded, payment.currency) if payment.amount_refunded else "—"

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.add_refund")

    @admin.action(description=_("Retry now (charge what remains on their invoices)"), permissions=["act"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        if not request.user.has_perm("billing.add_payment"):
            raise PermissionDenied
        invoice_ids = sorted(set(queryset.values_list("invoice_id", flat=True)))
        _retry_invoices(self, request, Invoice.objects.filter(pk__in=invoice_ids).order_by("pk"))

    def reconciliation_view(self, request: HttpRequest) -> HttpResponse:
        """Invoices waiting for money Tarif does not pull (transfers, cheques...), with the
        reference customers quote, to match what arrived and record it."""
        if not self.has_view_permission(request):
            raise PermissionDenied

        query = request.GET.get("q", "").strip()
        rows = [
            {
                "invoice": invoice,
                "reference": bank_transfer_reference(customer=invoice.customer),
                "remaining": format_money(invoice.amount_remaining, invoice.currency),
                "record_url": f"{reverse('admin:billing_payment_record_manual')}?invoice_number={invoice.number}",
            }
            for invoice in awaiting_payment(search=query)[:200]
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Reconciliation: invoices awaiting a payment"),
            "rows": rows,
            "query": query,
            "can_record": request.user.has_perm("billing.add_payment"),
        }
        return TemplateResponse(request, "admin/billing/payments/reconciliation.html", context)

    def record_manual_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("billing.add_payment"):
            raise PermissionDenied

        form = ManualPaymentForm(
            request.POST or None, initial={"invoice_number": request.GET.get("invoice_number", "")}
        )
        if request.method == "POST" and form.is_valid():
            payment = call_service(
                form,
                lambda: payment_record_manual(
                    invoice=form.cleaned_data["invoice"],
                    amount=form.cleaned_data["amount_minor"],
                    method=form.cleaned_data["method"],
                    reference=form.cleaned_data["reference"],
                    acting_user=request.user,
                ),
                errors=(InvoiceError, PaymentsError),
                atomic=False,
            )
            if payment is not None:
                self.message_user(
                    request,
                    gettext("%(amount)s recorded on invoice %(number)s.")
                    % {"amount": format_money(payment.amount, payment.currency), "number": payment.invoice.number},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:billing_payment_changelist"))
        return render_tool_form(
            self,
            request,
            title=gettext("Record a payment received"),
            form=form,
            submit_label=gettext("Record payment"),
            intro=gettext("A transfer, cheque or cash received for an invoice. Partial amounts are fine."),
        )

    def refund_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not self.has_refund_permission(request):
            raise PermissionDenied

        payment = get_object_or_404(Payment.objects.select_related("invoice"), pk=object_id)
        form = RefundRequestForm(request.POST or None, payment=payment)
        if request.method == "POST" and form.is_valid():
            verified_at, refused = mfa.step_up(request, form.cleaned_data["otp_token"])
            if refused is not None and not refused.ok:
                form.add_error(
                    "otp_token",
                    mfa.refusal_message(refused, gettext("Invalid or already used code. Wait for the next code.")),
                )
            else:
                refund = call_service(
                    form,
                    lambda: refund_request(
                        payment=payment,
                        amount=form.cleaned_data["amount"],
                        reason=form.cleaned_data["reason"],
                        memo=form.cleaned_data["memo"],
                        requested_by=request.user,
                        otp_verified_at=verified_at,
                    ),
                    errors=(RefundError, InvoiceError),
                    atomic=False,
                )
                if refund is not None:
                    if refund.status == Refund.Status.REQUESTED:
                        text = gettext("Refund requested: another staff member must approve it.")
                    elif refund.status == Refund.Status.EXECUTED:
                        text = gettext("Refunded; credit note %(number)s issued.") % {
                            "number": refund.credit_note.number
                        }
                    else:
                        text = gettext("The gateway refused the refund: %(message)s") % {
                            "message": refund.failure_text()
                        }
                    level = messages.ERROR if refund.status == Refund.Status.FAILED else messages.SUCCESS
                    self.message_user(request, text, level)
                    return HttpResponseRedirect(reverse("admin:billing_refund_change", args=[refund.pk]))
        return render_tool_form(
            self,
            request,
            title=gettext("Refund a payment"),
            form=form,
            submit_label=gettext("Refund"),
            intro=gettext(
                "Refunds go back through the payment's gateway and issue a credit note. Above %(threshold)s a "
                "second staff member approves, and you confirm with a new two-factor code."
            )
            % {"threshold": format_money(approval_threshold(), payment.currency)},
            objects=[payment, gettext("Invoice %(number)s") % {"number": payment.invoice.number}],
        )


def refund_reason_label(refund: Refund) -> str:
    """The reason as the request form offered it (the stored value is the credit note's reason code)."""
    if refund.reason in CreditNote.Reason.values:
        return str(CreditNote.Reason(refund.reason).label)
    return refund.reason


def _retry_invoices(model_admin: admin.ModelAdmin, request: HttpRequest, invoices: Any) -> None:
    for invoice in invoices:
        payment = dunning_collect_invoice(invoice=invoice, acting_user=request.user)
        if payment is None:
            model_admin.message_user(
                request, gettext("%(number)s: nothing to collect.") % {"number": invoice.number}, messages.INFO
            )
        else:
            level = messages.SUCCESS if payment.status == Payment.Status.SUCCEEDED else messages.WARNING
            model_admin.message_user(
                request,
                gettext("%(number)s: %(status)s %(code)s")
                % {"number": invoice.number, "status": payment.get_status_display(), "code": payment.decline_code},
                level,
            )


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = (
        "requested_at",
        "customer",
        "invoice_number",
        "amount_label",
        "status_badge",
        "needs_approval",
        "requested_by",
        "decided_by",
        "credit_note_link",
    )
    list_filter = ("status", "needs_approval", ("requested_at", RangeDateTimeFilter))
    status_badge = status_badge(
        "status",
        _("status"),
        {"executed": "success", "approved": "info", "requested": "warning", "rejected": "danger", "failed": "danger"},
    )
    search_fields = ("invoice__number", "payment__customer__legal_name", "=gateway_reference")
    list_select_related = ("payment__customer", "invoice", "requested_by", "decided_by", "credit_note")
    change_form_template = "admin/billing/payments/refund_change_form.html"
    fields = (
        "payment",
        "invoice",
        "amount_label",
        "status",
        "reason_label",
        "memo",
        "needs_approval",
        "requested_by",
        "requested_at",
        "decided_by",
        "decided_at",
        "decision_note",
        "credit_note_link",
        "gateway_reference",
        "failure_code",
        "failure_label",
        "executed_at",
    )
    readonly_fields = fields

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<int:object_id>/approve/",
                self.admin_site.admin_view(self.decide_view),
                {"approve": True},
                name="{}_{}_approve".format(*info),
            ),
            path(
                "<int:object_id>/reject/",
                self.admin_site.admin_view(self.decide_view),
                {"approve": False},
                name="{}_{}_reject".format(*info),
            ),
            *super().get_urls(),
        ]

    @admin.display(description=_("amount"), ordering="amount")
    def amount_label(self, refund: Refund) -> str:
        return format_money(refund.amount, refund.currency)

    @admin.display(description=_("reason"))
    def reason_label(self, refund: Refund) -> str:
        return refund_reason_label(refund)

    @admin.display(description=_("customer"), ordering="payment__customer__legal_name")
    def customer(self, refund: Refund) -> str:
        return str(refund.payment.customer)

    @admin.display(description=_("invoice"), ordering="invoice__number")
    def invoice_number(self, refund: Refund) -> str:
        return _linked(refund.invoice, refund.invoice.number or f"#{refund.invoice_id}")

    @admin.display(description=_("credit note"))
    def credit_note_link(self, refund: Refund) -> str:
        return _linked(refund.credit_note, refund.credit_note.number) if refund.credit_note else "—"

    @admin.display(description=_("failure message"))
    def failure_label(self, refund: Refund) -> str:
        return refund.failure_text() or "—"

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.approve_refund")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_decide": self.has_approve_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def decide_view(self, request: HttpRequest, object_id: int, approve: bool) -> HttpResponse:
        if not self.has_approve_permission(request):
            raise PermissionDenied

        refund = get_object_or_404(
            Refund.objects.select_related("payment__customer", "invoice", "requested_by"), pk=object_id
        )
        form = RefundDecisionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            verified_at, refused = mfa.step_up(request, form.cleaned_data["otp_token"])
            if verified_at is None:
                form.add_error(
                    "otp_token",
                    mfa.refusal_message(refused, gettext("Invalid or already used code. Wait for the next code."))
                    if refused is not None
                    else gettext("Invalid or already used code. Wait for the next code."),
                )
            else:
                pending = refund
                decided = call_service(
                    form,
                    (lambda: refund_approve(refund=pending, approver=request.user, otp_verified_at=verified_at))
                    if approve
                    else (lambda: refund_reject(refund=pending, approver=request.user, note=form.cleaned_data["note"])),
                    errors=(RefundError, InvoiceError),
                    atomic=False,
                )
                if decided is not None:
                    refund = decided
                    self.message_user(
                        request,
                        gettext("Refund of %(amount)s: %(status)s.")
                        % {
                            "amount": format_money(refund.amount, refund.currency),
                            "status": refund.get_status_display(),
                        },
                        messages.ERROR if refund.status == Refund.Status.FAILED else messages.SUCCESS,
                    )
                    return HttpResponseRedirect(reverse("admin:billing_refund_change", args=[refund.pk]))
        return self._decision_page(request, refund=refund, form=form, approve=approve)

    def _decision_page(
        self, request: HttpRequest, *, refund: Refund, form: RefundDecisionForm, approve: bool
    ) -> TemplateResponse:
        """Who asked, how much, and what approving (or rejecting) does, before the code."""
        payment, invoice = refund.payment, refund.invoice
        amount = format_money(refund.amount, refund.currency)
        requester = (
            refund.requested_by.get_full_name() or refund.requested_by.get_username() if refund.requested_by else "—"
        )
        facts = {"amount": amount, "customer": payment.customer, "number": invoice.number or f"#{invoice.pk}"}
        if approve:
            consequence = gettext(
                "Approving sends %(amount)s back to %(customer)s through the payment's gateway (%(method)s) and "
                "issues a credit note of %(amount)s on invoice %(number)s. Money sent back cannot be recalled."
            ) % {**facts, "method": payment.get_method_display()}
            question = gettext("Refund %(amount)s to %(customer)s now?") % facts
        else:
            consequence = (
                gettext(
                    "Rejecting closes the request: nothing is refunded and no credit note is issued for %(customer)s. "
                    "Someone can ask for a new refund later."
                )
                % facts
            )
            question = gettext("Reject the refund of %(amount)s to %(customer)s?") % facts
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Approve the refund") if approve else gettext("Reject the refund"),
            "refund": refund,
            "refund_title": str(refund),
            "reason": refund_reason_label(refund),
            "refund_url": reverse("admin:billing_refund_change", args=[refund.pk]),
            "payment": payment,
            "invoice": invoice,
            "amount": amount,
            "payment_amount": format_money(payment.amount, payment.currency),
            "already_refunded": format_money(payment.amount_refunded, payment.currency),
            "invoice_total": format_money(invoice.total, invoice.currency),
            "requested_by": requester,
            "own_request": approve and refund.requested_by_id == request.user.pk,
            "approve": approve,
            "form": form,
            "consequence": consequence,
            "confirm_question": question,
            "submit_label": gettext("Approve and refund %(amount)s") % {"amount": amount}
            if approve
            else gettext("Reject"),
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/billing/refund/decide.html", context)


@admin.register(DunningCase)
class DunningCaseAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = (
        "invoice_link",
        "customer",
        "amount_due",
        "status_badge",
        "retries_done",
        "next_retry_at",
        "final_action",
        "started_at",
    )
    list_filter = ("status", "final_action", ("next_retry_at", RangeDateTimeFilter))
    status_badge = status_badge(
        "status", _("status"), {"recovered": "success", "active": "warning", "exhausted": "danger", "closed": "info"}
    )
    search_fields = ("invoice__number", "customer__legal_name")
    list_select_related = ("invoice", "customer")
    actions = ["retry_now"]
    fields = (
        "invoice_link",
        "customer",
        "amount_due",
        "status",
        "schedule_days",
        "retries_done",
        "started_at",
        "next_retry_at",
        "final_action",
        "closed_at",
    )
    readonly_fields = fields

    @admin.display(description=_("invoice"), ordering="invoice__number")
    def invoice_link(self, case: DunningCase) -> str:
        return _linked(case.invoice, case.invoice.number)

    @admin.display(description=_("amount due"), ordering="invoice__amount_remaining")
    def amount_due(self, case: DunningCase) -> str:
        return format_money(case.invoice.amount_remaining, case.invoice.currency)

    @admin.action(description=_("Retry now (outside the schedule)"), permissions=["act"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[DunningCase]) -> None:
        if not request.user.has_perm("billing.add_payment"):
            raise PermissionDenied
        invoice_ids = sorted(queryset.values_list("invoice_id", flat=True))
        _retry_invoices(self, request, Invoice.objects.filter(pk__in=invoice_ids).order_by("pk"))
