"""Console pages for subscriptions, their changes and scheduled changes."""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext, ngettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportModelAdmin

from billing.models import (
    Coupon,
    Price,
    ScheduledChange,
    Subscription,
    SubscriptionChange,
    SubscriptionItem,
)
from billing.resources import (
    SubscriptionResource,
    cycle_display,
    items_from_text,
)
from billing.services.subscriptions import (
    ItemSpec,
    scheduled_change_cancel,
    subscription_cancel,
    subscription_cancel_undo,
    subscription_create,
    subscription_pause,
    subscription_resume,
)
from billing.services.upcoming import NoUpcomingInvoice, upcoming_invoice
from billing.states import InvalidTransition
from config.console import (
    ImportExportPermissions,
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    StyledAdmin,
    TabularInline,
    autocomplete,
    call_service,
    error_text,
    format_money,
    format_period,
    render_tool_form,
    run_each,
)
from config.errors import DomainError
from customers.models import Customer
from invoices.errors import InvoiceError

logger = logging.getLogger(__name__)


def items_label(items: list[SubscriptionItem]) -> str:
    return ", ".join(f"{item.price.lookup_key or item.price} × {item.quantity}" for item in items) or "—"


class SubscriptionItemInline(TabularInline):
    model = SubscriptionItem
    extra = 0
    fields = ("price", "quantity", "created_at")
    readonly_fields = ("created_at",)
    autocomplete_fields = ("price",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SubscriptionChangeInline(ReadOnlyInline):
    model = SubscriptionChange
    fields = ("kind", "effective_at", "mrr_change", "proration", "acting_user")
    readonly_fields = fields
    ordering = ("-effective_at", "-pk")
    verbose_name_plural = _("history")

    @admin.display(description=_("MRR"))
    def mrr_change(self, change: SubscriptionChange) -> str:
        currency = change.subscription.currency
        return f"{format_money(change.mrr_before, currency)} → {format_money(change.mrr_after, currency)}"

    @admin.display(description=_("prorated amount"))
    def proration(self, change: SubscriptionChange) -> str:
        return format_money(change.proration_amount, change.subscription.currency)


class ScheduledChangeInline(ReadOnlyInline):
    model = ScheduledChange
    fields = ("effective_at", "status", "items")
    readonly_fields = fields


class ItemsField(forms.CharField):
    """Subscription items typed as price lookup keys and quantities: "pro-monthly:3; api-metered"."""

    def to_python(self, value: Any) -> list[tuple[Price, int]]:
        text = super().to_python(value)
        try:
            return items_from_text(text)
        except ValueError as error:
            raise ValidationError(str(error)) from error


class SubscriptionCreateForm(forms.Form):
    customer = forms.ModelChoiceField(label=_("Customer"), queryset=Customer.objects.all())
    items = ItemsField(
        label=_("Items"),
        widget=forms.TextInput(attrs={"size": 60, "placeholder": "pro-monthly:3; api-metered"}),
        help_text=_("Price lookup keys (or ids) with quantities, separated by semicolons."),
    )
    trial_days = forms.IntegerField(
        label=_("Trial days"), required=False, min_value=0, help_text=_("Empty: the longest trial of the prices.")
    )
    coupon = forms.ModelChoiceField(label=_("Coupon"), queryset=Coupon.objects.filter(active=True), required=False)
    promotion_code = forms.CharField(label=_("Promotion code"), required=False, max_length=50)
    collection_method = forms.ChoiceField(
        label=_("Collection method"),
        choices=Subscription.CollectionMethod.choices,
        initial=Subscription.CollectionMethod.CHARGE_AUTOMATICALLY,
    )
    days_until_due = forms.IntegerField(
        label=_("Days until due"),
        required=False,
        min_value=0,
        help_text=_("Payment terms when the invoice is sent (default 30 days)."),
    )

    def __init__(self, *args: Any, admin_site: admin.AdminSite, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        autocomplete(self.fields["customer"], Subscription._meta.get_field("customer"), admin_site)


class CancelForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), required=False, max_length=200)
    prorate = forms.BooleanField(
        label=_("Credit the unused part of the period to the customer's balance"), required=False, initial=False
    )


SUBSCRIPTION_SERVICE_ERRORS = (DomainError, ValidationError, InvalidTransition, InvoiceError, ValueError)


SUBSCRIPTION_FIELDSETS = (
    (None, {"fields": ("customer", "status", "currency", "collection_method", "days_until_due")}),
    (
        _("Billing cycle"),
        {"fields": ("cycle_label", "billing_cycle_anchor", "current_period_start", "current_period_end")},
    ),
    (_("Trial"), {"fields": ("trial_start", "trial_end", "trial_end_behavior")}),
    (
        _("Cancellation and pause"),
        {
            "fields": (
                "cancel_at_period_end",
                "canceled_at",
                "cancellation_reason",
                "ended_at",
                "paused_at",
                "resumes_at",
            )
        },
    ),
    (_("Discount"), {"fields": ("coupon", "promotion_code", "discount_periods_applied")}),
    (_("Other"), {"fields": ("metadata", "created_at", "updated_at")}),
)


@admin.register(Subscription)
class SubscriptionAdmin(ImportExportPermissions, StyledAdmin, ImportExportModelAdmin):
    list_display = (
        "id",
        "customer",
        "status",
        "plan",
        "current_period",
        "collection_method",
        "currency",
        "cancel_at_period_end",
    )
    list_display_links = ("id", "customer")
    list_filter = ("status", "collection_method", "currency", "cancel_at_period_end")
    search_fields = ("=id", "customer__legal_name", "customer__email")
    list_select_related = ("customer",)
    inlines = [SubscriptionItemInline, ScheduledChangeInline, SubscriptionChangeInline]
    fieldsets = SUBSCRIPTION_FIELDSETS
    change_form_template = "admin/billing/subscription/change_form.html"
    date_hierarchy = "created_at"
    resource_classes = [SubscriptionResource]
    actions = ["cancel_at_period_end_action", "undo_cancel", "cancel_now", "pause", "resume"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscription]:
        return (
            super()
            .get_queryset(request)
            .prefetch_related(Prefetch("items", queryset=SubscriptionItem.objects.select_related("price__product")))
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Subscription | None = None) -> list[str]:
        # Every change to a live subscription goes through a service (proration, events):
        # the form shows the state; the actions change it.
        names = [field for _title, options in SUBSCRIPTION_FIELDSETS for field in options["fields"]]
        return [name for name in names if name != "metadata"]

    def has_delete_permission(self, request: HttpRequest, obj: Subscription | None = None) -> bool:
        return False  # a subscription ends by being canceled; its history and invoices stay

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """A subscription is created by subscription_create: first invoice, trial, coupon and events."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = SubscriptionCreateForm(request.POST or None, admin_site=self.admin_site)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            subscription = call_service(
                form,
                lambda: subscription_create(
                    customer=data["customer"],
                    items=[ItemSpec(price=price, quantity=quantity) for price, quantity in data["items"]],
                    trial_days=data["trial_days"],
                    coupon=data["coupon"],
                    promotion_code=data["promotion_code"] or None,
                    collection_method=data["collection_method"],
                    days_until_due=data["days_until_due"],
                    acting_user=request.user,
                ),
                errors=SUBSCRIPTION_SERVICE_ERRORS,
            )
            if subscription is not None:
                self.log_addition(request, subscription, [{"added": {}}])
                self.message_user(
                    request,
                    gettext("Subscription #%(id)s created for %(customer)s.")
                    % {"id": subscription.pk, "customer": subscription.customer},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:billing_subscription_change", args=[subscription.pk]))
        return render_tool_form(
            self,
            request,
            title=gettext("Add subscription"),
            form=form,
            submit_label=gettext("Create the subscription"),
            intro=gettext(
                "The first invoice (or a zero invoice for a trial) is issued at once, on the customer's clock."
            ),
        )

    # -- actions: each calls one subscription service ---------------------------------------

    def _each(self, request: HttpRequest, queryset: QuerySet[Subscription], operation: Any, *, done: Any) -> None:
        run_each(
            self,
            request,
            queryset.select_related("customer").order_by("pk"),
            operation,
            errors=SUBSCRIPTION_SERVICE_ERRORS,
            done=done,
            label=lambda subscription: f"#{subscription.pk} {subscription.customer}",
        )

    @admin.action(description=_("Cancel at period end"), permissions=["change"])
    def cancel_at_period_end_action(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        self._each(
            request,
            queryset,
            lambda subscription: subscription_cancel(
                subscription=subscription, at_period_end=True, acting_user=request.user
            ),
            done=ngettext_lazy(
                "%(count)d subscription will cancel at the end of its period.",
                "%(count)d subscriptions will cancel at the end of their period.",
                "count",
            ),
        )

    @admin.action(description=_("Keep (undo cancel at period end)"), permissions=["change"])
    def undo_cancel(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        self._each(
            request,
            queryset,
            lambda subscription: subscription_cancel_undo(subscription=subscription, acting_user=request.user),
            done=ngettext_lazy("%(count)d subscription kept.", "%(count)d subscriptions kept.", "count"),
        )

    @admin.action(description=_("Cancel now…"), permissions=["change"])
    def cancel_now(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> HttpResponse | None:
        form = CancelForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            self._each(
                request,
                queryset,
                lambda subscription: subscription_cancel(
                    subscription=subscription,
                    at_period_end=False,
                    prorate=form.cleaned_data["prorate"],
                    reason=form.cleaned_data["reason"],
                    acting_user=request.user,
                ),
                done=ngettext_lazy("%(count)d subscription canceled.", "%(count)d subscriptions canceled.", "count"),
            )
            return None
        subscriptions = list(queryset.select_related("customer").order_by("pk"))
        return render_tool_form(
            self,
            request,
            title=gettext("Cancel subscriptions now"),
            form=form,
            submit_label=gettext("Cancel now"),
            intro=gettext("The subscriptions end now; pending items and usage so far are invoiced in a final invoice."),
            objects=[str(subscription) for subscription in subscriptions],
            hidden=[
                ("action", "cancel_now"),
                ("apply", "1"),
                *((helpers.ACTION_CHECKBOX_NAME, subscription.pk) for subscription in subscriptions),
            ],
        )

    @admin.action(description=_("Pause"), permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        self._each(
            request,
            queryset,
            lambda subscription: subscription_pause(subscription=subscription, acting_user=request.user),
            done=ngettext_lazy("%(count)d subscription paused.", "%(count)d subscriptions paused.", "count"),
        )

    @admin.action(description=_("Resume (invoices a new period at once)"), permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        self._each(
            request,
            queryset,
            lambda subscription: subscription_resume(subscription=subscription, acting_user=request.user),
            done=ngettext_lazy("%(count)d subscription resumed.", "%(count)d subscriptions resumed.", "count"),
        )

    @admin.display(description=_("items"))
    def plan(self, subscription: Subscription) -> str:
        return items_label(list(subscription.items.all()))

    @admin.display(description=_("current period"), ordering="current_period_end")
    def current_period(self, subscription: Subscription) -> str:
        return format_period(subscription.current_period_start, subscription.current_period_end)

    @admin.display(description=_("billing cycle"))
    def cycle_label(self, subscription: Subscription) -> str:
        return cycle_display(subscription.cycle) or "—"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), **self._upcoming_context(object_id)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _upcoming_context(self, object_id: str) -> dict[str, Any]:
        subscription = Subscription.objects.filter(pk=object_id).select_related("customer").first()
        if subscription is None:
            return {}
        try:
            preview = upcoming_invoice(subscription=subscription)
        except NoUpcomingInvoice as error:
            return {"upcoming_unavailable": str(error)}
        except Exception as error:  # a preview must never break the page; the log keeps the traceback
            logger.exception("upcoming invoice preview failed for subscription %s", subscription.pk)
            return {
                "upcoming_unavailable": gettext("The upcoming invoice could not be computed: %(error)s")
                % {"error": error_text(error)}
            }
        invoiced_on = (
            subscription.resumes_at
            if subscription.status == Subscription.Status.PAUSED and subscription.resumes_at
            else subscription.current_period_end
        )
        currency = preview.currency
        return {
            "upcoming": {
                "lines": [
                    {
                        "description": line.draft.description,
                        "period": format_period(line.draft.period_start, line.draft.period_end),
                        "quantity": line.draft.quantity.normalize(),
                        "amount": format_money(line.draft.amount, currency),
                    }
                    for line in preview.lines
                ],
                "subtotal": format_money(preview.totals.subtotal, currency),
                "discount": format_money(preview.totals.discount_total, currency)
                if preview.totals.discount_total
                else None,
                "tax": format_money(preview.totals.tax_total, currency),
                "total": format_money(preview.totals.total, currency),
                "balance_applied": format_money(preview.balance_applied, currency)
                if preview.balance_applied > 0
                else None,
                "amount_due": format_money(preview.amount_due, currency),
                "date": date_format(timezone.localtime(invoiced_on), "DATE_FORMAT"),
            }
        }


@admin.register(SubscriptionChange)
class SubscriptionChangeAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("subscription", "kind", "effective_at", "mrr_change", "proration", "acting_user")
    list_filter = ("kind", "proration_mode")
    search_fields = ("=subscription__id", "subscription__customer__legal_name")
    list_select_related = ("subscription__customer", "acting_user")
    date_hierarchy = "effective_at"

    @admin.display(description=_("MRR"))
    def mrr_change(self, change: SubscriptionChange) -> str:
        currency = change.subscription.currency
        return f"{format_money(change.mrr_before, currency)} → {format_money(change.mrr_after, currency)}"

    @admin.display(description=_("prorated amount"), ordering="proration_amount")
    def proration(self, change: SubscriptionChange) -> str:
        return format_money(change.proration_amount, change.subscription.currency)


@admin.register(ScheduledChange)
class ScheduledChangeAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("subscription", "effective_at", "status", "new_items")
    list_filter = ("status",)
    search_fields = ("=subscription__id", "subscription__customer__legal_name")
    list_select_related = ("subscription__customer",)
    date_hierarchy = "effective_at"
    actions = ["cancel_scheduled"]

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        # The rows are read-only; canceling a pending one is a service call for staff who may change them.
        return admin.ModelAdmin.has_change_permission(self, request)

    @admin.action(description=_("Cancel selected pending changes"), permissions=["cancel"])
    def cancel_scheduled(self, request: HttpRequest, queryset: QuerySet[ScheduledChange]) -> None:
        canceled = 0
        for change in queryset.select_related("subscription").order_by("pk"):
            try:
                with transaction.atomic():
                    scheduled_change_cancel(scheduled_change=change, acting_user=request.user)
            except SUBSCRIPTION_SERVICE_ERRORS as error:
                self.message_user(request, f"{change}: {error_text(error)}", messages.ERROR)
            else:
                canceled += 1
        if canceled:
            self.message_user(
                request,
                ngettext("%(count)d scheduled change canceled.", "%(count)d scheduled changes canceled.", canceled)
                % {"count": canceled},
                messages.SUCCESS,
            )

    @admin.display(description=_("new items"))
    def new_items(self, change: ScheduledChange) -> str:
        items = change.items if isinstance(change.items, list) else []
        prices = Price.objects.in_bulk([item.get("price") for item in items if isinstance(item, dict)])
        return (
            ", ".join(
                f"{prices.get(item.get('price')) or item.get('price')} × {item.get('quantity', 1)}"
                for item in items
                if isinstance(item, dict)
            )
            or "—"
        )
