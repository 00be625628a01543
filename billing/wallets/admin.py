"""Console pages of the prepaid credits: grants (grant with a reason, void), wallets, the ledger.

Every write calls billing.wallets.services (one write path); granting needs the finance
role's add permission on credit grants.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from billing.limits import MAX_AMOUNT
from billing.wallets.errors import WalletError
from billing.wallets.models import CreditGrant, Wallet, WalletTransaction
from billing.wallets.services import GrantRequest, credit_grant_create, credit_grant_void
from config.console import (
    MajorAmountField,
    ReadOnlyAdminMixin,
    StyledAdmin,
    admin_link,
    autocomplete,
    call_service,
    format_money,
    major_to_money,
    render_tool_form,
)
from customers.models import Customer


class CreditGrantForm(forms.Form):
    customer = forms.ModelChoiceField(label=_("Customer"), queryset=Customer.objects.all())
    amount = MajorAmountField(label=_("Amount"), help_text=_("In the customer's currency, major units (e.g. 50.00)."))
    category = forms.ChoiceField(
        label=_("Category"), choices=CreditGrant.Category.choices, initial=CreditGrant.Category.PROMOTIONAL
    )
    name = forms.CharField(label=_("Name"), max_length=100, required=False)
    expires_at = forms.DateTimeField(label=_("Expires"), required=False)
    priority = forms.IntegerField(label=_("Priority"), min_value=0, max_value=100, initial=50)
    applies_to = forms.ChoiceField(
        label=_("Applies to"),
        choices=[
            (CreditGrant.AppliesTo.ALL, CreditGrant.AppliesTo.ALL.label),
            (CreditGrant.AppliesTo.USAGE, CreditGrant.AppliesTo.USAGE.label),
        ],
        initial=CreditGrant.AppliesTo.ALL,
    )
    reason = forms.CharField(label=_("Reason"), max_length=300, help_text=_("Kept with the grant and its event."))

    def __init__(self, *args: Any, admin_site: admin.AdminSite, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        autocomplete(self.fields["customer"], CreditGrant._meta.get_field("customer"), admin_site)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        customer = cleaned.get("customer")
        if customer is not None:
            money = major_to_money(self, "amount", customer.currency, minimum=1, maximum=MAX_AMOUNT)
            if money is not None:
                cleaned["amount_minor"], cleaned["currency"] = money.amount, money.currency
        return cleaned


@admin.register(CreditGrant)
class CreditGrantAdmin(StyledAdmin):
    list_display = ("__str__", "customer", "category", "status", "money", "left", "priority", "expires_at")
    list_filter = ("status", "category", "applies_to", "currency")
    search_fields = ("name", "reason", "customer__legal_name", "customer__email")
    list_select_related = ("customer",)
    readonly_fields = (
        "customer",
        "name",
        "category",
        "status",
        "money",
        "left",
        "priority",
        "effective_at",
        "expires_at",
        "applies_to",
        "price_ids",
        "product_ids",
        "invoice",
        "automatic_top_up",
        "reason",
        "voided_at",
        "created_at",
    )
    fields = readonly_fields
    actions = ("void_grants",)

    def has_change_permission(self, request: HttpRequest, obj: CreditGrant | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CreditGrant | None = None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """Grant credits (credit_grant_create): free credits at once, paid ones through a purchase invoice."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        initial = {"customer": request.GET.get("customer")} if request.GET.get("customer") else None
        form = CreditGrantForm(request.POST or None, initial=initial, admin_site=self.admin_site)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            grant = call_service(
                form,
                lambda: credit_grant_create(
                    customer=data["customer"],
                    request=GrantRequest(
                        amount=data["amount_minor"],
                        currency=data["currency"],
                        category=data["category"],
                        name=data["name"],
                        priority=data["priority"],
                        expires_at=data["expires_at"],
                        applies_to=data["applies_to"],
                        reason=data["reason"],
                    ),
                    acting_user=request.user,
                ),
                errors=(WalletError,),
            )
            if grant is not None:
                self.log_addition(request, grant, [{"added": {}}])
                self.message_user(
                    request,
                    gettext("%(amount)s of credits granted to %(customer)s.")
                    % {"amount": format_money(grant.amount, grant.currency), "customer": grant.customer},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:wallets_creditgrant_changelist"))
        return render_tool_form(
            self,
            request,
            title=gettext("Grant prepaid credits"),
            form=form,
            submit_label=gettext("Grant"),
            intro=gettext(
                "Promotional credits are available at once; paid credits are invoiced and available once paid."
            ),
        )

    @admin.action(description=_("Void the selected grants"), permissions=["add"])
    def void_grants(self, request: HttpRequest, queryset: QuerySet[CreditGrant]) -> None:
        done = 0
        for grant in queryset.order_by("pk"):
            try:
                credit_grant_void(grant=grant, reason=gettext("voided in the console"), acting_user=request.user)
                done += 1
            except WalletError as error:
                self.message_user(request, f"{grant}: {error.message_text()}", messages.WARNING)
        if done:
            self.message_user(request, gettext("%(count)d grants voided.") % {"count": done}, messages.SUCCESS)

    @admin.display(description=_("amount"), ordering="amount")
    def money(self, grant: CreditGrant) -> str:
        return format_money(grant.amount, grant.currency)

    @admin.display(description=_("remaining"), ordering="remaining")
    def left(self, grant: CreditGrant) -> str:
        return format_money(grant.remaining, grant.currency)

    @admin.display(description=_("purchase invoice"))
    def invoice(self, grant: CreditGrant) -> str:
        return admin_link(grant.purchase_invoice)


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("customer", "currency", "balance", "low_balance", "top_up")
    search_fields = ("customer__legal_name", "customer__email")
    list_select_related = ("customer",)
    list_filter = ("currency",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Wallet]:
        active = CreditGrant.Status.ACTIVE
        return (
            super()
            .get_queryset(request)
            .annotate(balance_total=Sum("grants__remaining", filter=Q(grants__status=active)))
        )

    @admin.display(description=_("balance"))
    def balance(self, wallet: Wallet) -> str:
        return format_money(int(getattr(wallet, "balance_total", 0) or 0), wallet.currency)

    @admin.display(description=_("low balance alert"))
    def low_balance(self, wallet: Wallet) -> str:
        if wallet.low_balance_threshold is None:
            return "—"
        return format_money(wallet.low_balance_threshold, wallet.currency)

    @admin.display(description=_("automatic top-up"))
    def top_up(self, wallet: Wallet) -> str:
        if wallet.top_up_threshold is None or wallet.top_up_amount is None:
            return "—"
        return gettext("%(amount)s under %(threshold)s") % {
            "amount": format_money(wallet.top_up_amount, wallet.currency),
            "threshold": format_money(wallet.top_up_threshold, wallet.currency),
        }


@admin.register(WalletTransaction)
class WalletTransactionAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("created_at", "wallet", "kind", "money", "grant", "invoice")
    list_filter = ("kind",)
    search_fields = ("wallet__customer__legal_name", "invoice__number")
    list_select_related = ("wallet", "wallet__customer", "grant", "invoice")

    @admin.display(description=_("amount"), ordering="amount")
    def money(self, row: WalletTransaction) -> str:
        return format_money(row.amount, row.wallet.currency)
