"""Console pages for subscriptions, their changes and scheduled changes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.functional import Promise
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportModelAdmin
from unfold.contrib.filters.admin import RangeDateFilter
from unfold.utils import parse_date_str

from billing.admin.subscription_editor import (
    BaseItemFormSet,
    ChangeItemsForm,
    CouponForm,
    ExtendTrialForm,
    PauseForm,
    RemoveDiscountForm,
    SubscriptionCreateForm,
    change_panel,
    create_panel,
    cycle_label,
    invoice_panel,
    item_formset,
    local_date,
    local_midnight,
    local_period,
    picker_prices,
    price_label,
)
from billing.admin.subscription_editor import CancelForm as SubscriptionCancelForm
from billing.models import (
    Price,
    Product,
    ScheduledChange,
    Subscription,
    SubscriptionChange,
    SubscriptionItem,
)
from billing.resources import SubscriptionResource
from billing.selectors import item_snapshot
from billing.services.changes import subscription_change, subscription_preview_change
from billing.services.coupons import (
    coupon_label,
    customer_discount_active,
    customer_discounts_prefetch,
    subscription_discounts_active,
    subscription_discounts_prefetch,
)
from billing.services.subscriptions import (
    scheduled_change_cancel,
    subscription_cancel,
    subscription_cancel_at,
    subscription_cancel_undo,
    subscription_coupon_apply,
    subscription_coupon_remove,
    subscription_create,
    subscription_extend_trial,
    subscription_pause,
    subscription_preview_create,
    subscription_resume,
)
from billing.services.subscriptions.common import mrr_of
from billing.services.upcoming import NoUpcomingInvoice, upcoming_invoice
from billing.states import InvalidTransition
from config.console import (
    ImportExportPermissions,
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    StyledAdmin,
    call_service,
    error_text,
    format_money,
    format_period,
    render_tool_form,
    run_each,
)
from config.errors import DomainError
from config.modes import scope_to_mode
from customers.models import Customer
from invoices.errors import InvoiceError

logger = logging.getLogger(__name__)

# Statuses whose subscriptions count in MRR (the reports' rule: trials, pauses and ends do not).
MRR_STATUSES = (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE, Subscription.Status.UNPAID)
CHANGEABLE = (
    Subscription.Status.ACTIVE,
    Subscription.Status.TRIALING,
    Subscription.Status.PAST_DUE,
    Subscription.Status.UNPAID,
)


@dataclass(frozen=True)
class Operation:
    slug: str
    label: str | Promise
    submit: str | Promise
    done: str | Promise
    danger: bool = False


OPERATIONS = {
    operation.slug: operation
    for operation in (
        Operation("items", _("Change plan or quantity"), _("Apply the change"), _("Subscription changed.")),
        Operation("extend-trial", _("Extend trial"), _("Extend the trial"), _("Trial extended.")),
        Operation("coupon", _("Add coupon"), _("Apply the coupon"), _("Coupon applied from the next invoice.")),
        Operation(
            "remove-coupon", _("Remove coupon"), _("Remove the coupon"), _("Coupon removed from the next invoice.")
        ),
        Operation("pause", _("Pause"), _("Pause billing"), _("Subscription paused.")),
        Operation("resume", _("Resume"), _("Resume and invoice now"), _("Subscription resumed.")),
        Operation("cancel", _("Cancel…"), _("Cancel the subscription"), _("Cancellation recorded."), danger=True),
        Operation("undo-cancel", _("Undo cancellation"), _("Keep the subscription"), _("The subscription will renew.")),
    )
}


class DayRangeFilter(RangeDateFilter):
    """A date range on a datetime column, by calendar day (no naive datetimes in the query)."""

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        filters = {}
        value_from = self.used_parameters.get(f"{self.parameter_name}_from")
        value_to = self.used_parameters.get(f"{self.parameter_name}_to")
        if isinstance(value_from, str) and value_from:
            filters[f"{self.parameter_name}__date__gte"] = parse_date_str(value_from)
        if isinstance(value_to, str) and value_to:
            filters[f"{self.parameter_name}__date__lte"] = parse_date_str(value_to)
        try:
            return queryset.filter(**filters)
        except (ValueError, ValidationError):
            return None


def items_label(items: list[SubscriptionItem]) -> str:
    return ", ".join(f"{item.price.nickname or item.price.product.name} × {item.quantity}" for item in items) or "—"


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
    (_("Discounts"), {"fields": ("discounts_label", "proration_credit_basis")}),
    (_("Other"), {"fields": ("metadata", "created_at", "updated_at")}),
)


class ProductFilter(admin.SimpleListFilter):
    title = _("product")
    parameter_name = "product"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        products = scope_to_mode(Product.objects.filter(prices__type=Price.Type.RECURRING).distinct())
        return [(str(product.pk), product.name) for product in products.order_by("name")[:50]]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> QuerySet[Subscription]:
        if self.value():
            return queryset.filter(items__price__product_id=self.value()).distinct()
        return queryset


class PeriodEndFilter(DayRangeFilter):
    title = _("current period ends")


@admin.register(Subscription)
class SubscriptionAdmin(ImportExportPermissions, StyledAdmin, ImportExportModelAdmin):
    list_display = ("customer_link", "plan", "status_label", "mrr", "period_end", "collection")
    list_display_links = None
    list_filter = (
        "status",
        ProductFilter,
        "collection_method",
        "cancel_at_period_end",
        ("current_period_end", PeriodEndFilter),
        ("created_at", DayRangeFilter),
    )
    search_fields = ("=id", "customer__legal_name", "customer__email")
    list_select_related = ("customer", "coupon")
    inlines = [ScheduledChangeInline, SubscriptionChangeInline]  # the items table is in the page's header
    fieldsets = SUBSCRIPTION_FIELDSETS
    change_form_template = "admin/billing/subscription/change_form.html"
    resource_classes = [SubscriptionResource]
    actions = ["cancel_at_period_end_action", "undo_cancel", "cancel_now", "pause", "resume"]

    class Media:
        js = ("tarif/admin/subscriptions.js",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscription]:
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch("items", queryset=SubscriptionItem.objects.select_related("price__product")),
                # The MRR column's discounts (the subscription's, else its customer's), not queries per row.
                subscription_discounts_prefetch(),
                customer_discounts_prefetch(),
            )
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Subscription | None = None) -> list[str]:
        # Every change to a live subscription goes through a service (proration, events):
        # the form shows the state; the actions change it.
        names = [field for _title, options in SUBSCRIPTION_FIELDSETS for field in options["fields"]]
        return [name for name in names if name != "metadata"]

    def has_delete_permission(self, request: HttpRequest, obj: Subscription | None = None) -> bool:
        return False  # a subscription ends by being canceled; its history and invoices stay

    @admin.display(description=_("discounts, in the order they apply"))
    def discounts_label(self, subscription: Subscription) -> str:
        rows = []
        for discount in subscription_discounts_active(subscription=subscription):
            text = coupon_label(discount.coupon)
            if discount.carry_over_remaining is not None:
                text += " · " + gettext("%(amount)s left") % {
                    "amount": format_money(discount.carry_over_remaining, discount.coupon.currency)
                }
            rows.append(text)
        if not rows:
            customer_discount = customer_discount_active(customer=subscription.customer)
            if customer_discount is not None:
                return gettext("None of its own; the customer's: %(coupon)s") % {
                    "coupon": coupon_label(customer_discount.coupon)
                }
            return "—"
        return " → ".join(rows)

    # -- list columns ---------------------------------------------------------------------

    @admin.display(description=_("customer"), ordering="customer__legal_name")
    def customer_link(self, subscription: Subscription) -> str:
        url = reverse("admin:billing_subscription_change", args=[subscription.pk])
        return format_html(
            '<a href="{}" class="tarif-truncate text-primary-600" title="#{}">{}</a>',
            url,
            subscription.pk,
            subscription.customer,
        )

    @admin.display(description=_("plan"))
    def plan(self, subscription: Subscription) -> str:
        return format_html('<span class="tarif-truncate">{}</span>', items_label(list(subscription.items.all())))

    @admin.display(description=_("status"), ordering="status")
    def status_label(self, subscription: Subscription) -> str:
        label = subscription.get_status_display()
        if subscription.status != Subscription.Status.CANCELED and subscription.cancel_at:
            label = gettext("%(status)s, cancels on %(date)s") % {
                "status": label,
                "date": local_date(subscription.cancel_at, subscription.customer.timezone),
            }
        elif subscription.cancel_at_period_end and subscription.status != Subscription.Status.CANCELED:
            label = gettext("%(status)s, cancels at period end") % {"status": label}
        return label

    @admin.display(description=_("MRR"))
    def mrr(self, subscription: Subscription) -> str:
        if subscription.status not in MRR_STATUSES:
            return "—"
        items = [item_snapshot(price=item.price, quantity=item.quantity) for item in subscription.items.all()]
        return format_html(
            '<span class="tarif-money">{}</span>',
            format_money(mrr_of(subscription=subscription, items=items), subscription.currency),
        )

    @admin.display(description=_("period ends"), ordering="current_period_end")
    def period_end(self, subscription: Subscription) -> str:
        return local_date(subscription.current_period_end, subscription.customer.timezone)

    @admin.display(description=_("collection"), ordering="collection_method")
    def collection(self, subscription: Subscription) -> str:
        if subscription.collection_method == Subscription.CollectionMethod.SEND_INVOICE:
            return gettext("invoice, net %(days)s") % {"days": subscription.days_until_due or 0}
        return gettext("automatic")

    @admin.display(description=_("current period"), ordering="current_period_end")
    def current_period(self, subscription: Subscription) -> str:
        return format_period(subscription.current_period_start, subscription.current_period_end)

    @admin.display(description=_("billing cycle"))
    def cycle_label(self, subscription: Subscription) -> str:
        return cycle_label(subscription.cycle)

    # -- URLs -----------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("add/preview/", wrap(self.create_preview_view), name="billing_subscription_create_preview"),
            path("<int:pk>/items/", wrap(self.change_items_view), name="billing_subscription_change_items"),
            path(
                "<int:pk>/items/preview/",
                wrap(self.change_items_preview_view),
                name="billing_subscription_change_items_preview",
            ),
            path("<int:pk>/do/<slug:operation>/", wrap(self.operation_view), name="billing_subscription_operation"),
            *super().get_urls(),
        ]

    def _page(self, request: HttpRequest, template: str, **context: Any) -> TemplateResponse:
        media = self.media
        for form in context.values():
            if isinstance(form, forms.Form | forms.BaseFormSet):
                media += form.media
        return TemplateResponse(
            request,
            template,
            {**self.admin_site.each_context(request), "opts": self.opts, "media": media, **context},
        )

    def _subscription(self, request: HttpRequest, pk: int) -> Subscription:
        subscription = self.get_queryset(request).select_related("customer", "coupon").filter(pk=pk).first()
        if subscription is None:
            raise Http404
        return subscription

    # -- create -----------------------------------------------------------------------------

    def _create_forms(self, request: HttpRequest, data: Any) -> tuple[SubscriptionCreateForm, BaseItemFormSet]:
        initial: dict[str, Any] = {}
        customer = None
        customer_id = (data or {}).get("customer") or request.GET.get("customer")
        if customer_id and str(customer_id).isdigit():
            customer = scope_to_mode(Customer.objects.all()).filter(pk=customer_id).first()
        if customer is not None:
            initial["customer"] = customer.pk
        form = SubscriptionCreateForm(data, initial=initial, admin_site=self.admin_site, livemode=None)
        prices = picker_prices(currency=customer.currency if customer else None, one_time=True)
        return form, item_formset(data, prices=prices)

    def _create_preview(
        self, form: SubscriptionCreateForm, formset: BaseItemFormSet
    ) -> tuple[dict[str, Any] | None, str]:
        """The preview panel for the create form, or why there is none yet."""
        if not (form.is_valid() and formset.is_valid()):
            errors = [*form.non_field_errors(), *formset.non_form_errors()]
            errors += [
                f"{form.fields[name].label}: {' '.join(messages_)}"
                for name, messages_ in form.errors.items()
                if name != "__all__"
            ]
            for row in formset.forms:
                errors += [" ".join(messages_) for messages_ in row.errors.values()]
            return None, " ".join(str(error) for error in errors) or gettext("Choose a customer and a price.")
        arguments = form.service_arguments(formset.items())
        try:
            preview = subscription_preview_create(**arguments)
        except SUBSCRIPTION_SERVICE_ERRORS as error:
            return None, error_text(error)
        return create_panel(preview, customer=arguments["customer"]), ""

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """A subscription is created by subscription_create: first invoice, trial, coupon and events."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else None
        form, formset = self._create_forms(request, data)
        preview, preview_error = None, ""
        if data is not None and form.is_valid() and formset.is_valid():
            arguments = form.service_arguments(formset.items())
            subscription = call_service(
                form,
                lambda: subscription_create(**arguments, acting_user=request.user),
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
        if data is not None:
            preview, preview_error = self._create_preview(form, formset)
        return self._page(
            request,
            "admin/billing/subscription/create.html",
            title=gettext("New subscription"),
            form=form,
            formset=formset,
            preview=preview,
            preview_error=preview_error,
            preview_url=reverse("admin:billing_subscription_create_preview"),
        )

    def create_preview_view(self, request: HttpRequest) -> HttpResponse:
        """The live preview beside the create form (POST the form; returns the panel)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        form, formset = self._create_forms(request, request.POST)
        preview, error = self._create_preview(form, formset)
        return TemplateResponse(
            request, "admin/billing/subscription/_preview.html", {"preview": preview, "preview_error": error}
        )

    # -- change items ---------------------------------------------------------------------

    def _items_forms(self, subscription: Subscription, data: Any) -> tuple[ChangeItemsForm, BaseItemFormSet]:
        current = list(subscription.items.all())
        prices = picker_prices(currency=subscription.currency, one_time=False, keep=[item.price_id for item in current])
        initial = [{"price": item.price_id, "quantity": item.quantity} for item in current]
        form = ChangeItemsForm(data, initial={"proration_credit_basis": subscription.proration_credit_basis})
        return form, item_formset(data, prices=prices, initial=initial, rows=len(current) + 1)

    def _change_preview(
        self, subscription: Subscription, form: ChangeItemsForm, formset: BaseItemFormSet
    ) -> tuple[dict[str, Any] | None, str]:
        if not (form.is_valid() and formset.is_valid()):
            errors = [*formset.non_form_errors()]
            for row in formset.forms:
                errors += [" ".join(messages_) for messages_ in row.errors.values()]
            return None, " ".join(str(error) for error in errors)
        try:
            preview = subscription_preview_change(
                subscription=subscription,
                items=formset.items(),
                proration=form.cleaned_data["proration"],
                proration_credit_basis=form.cleaned_data.get("proration_credit_basis") or None,
            )
        except SUBSCRIPTION_SERVICE_ERRORS as error:
            return None, error_text(error)
        return change_panel(preview, subscription=subscription), ""

    def change_items_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Change plan or quantities, with the preview of what the change does."""
        subscription = self._subscription(request, pk)
        if not self.has_change_permission(request, subscription):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else None
        form, formset = self._items_forms(subscription, data)
        if data is not None and form.is_valid() and formset.is_valid():
            change = call_service(
                form,
                lambda: subscription_change(
                    subscription=subscription,
                    items=formset.items(),
                    proration=form.cleaned_data["proration"],
                    proration_credit_basis=form.cleaned_data.get("proration_credit_basis") or "",
                    acting_user=request.user,
                ),
                errors=SUBSCRIPTION_SERVICE_ERRORS,
            )
            if change is not None:
                self.log_change(request, subscription, [{"changed": {"fields": ["items"]}}])
                self.message_user(
                    request,
                    gettext("Subscription #%(id)s changed: MRR %(before)s → %(after)s.")
                    % {
                        "id": subscription.pk,
                        "before": format_money(change.mrr_before, subscription.currency),
                        "after": format_money(change.mrr_after, subscription.currency),
                    },
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:billing_subscription_change", args=[subscription.pk]))
        preview, preview_error = (None, "")
        if data is not None:
            preview, preview_error = self._change_preview(subscription, form, formset)
        return self._page(
            request,
            "admin/billing/subscription/change_items.html",
            title=gettext("Change plan or quantity"),
            subtitle=str(subscription),
            subscription=subscription,
            summary=self._summary(subscription),
            form=form,
            formset=formset,
            preview=preview,
            preview_error=preview_error,
            preview_url=reverse("admin:billing_subscription_change_items_preview", args=[subscription.pk]),
        )

    def change_items_preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        subscription = self._subscription(request, pk)
        if not self.has_view_permission(request, subscription):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        form, formset = self._items_forms(subscription, request.POST)
        preview, error = self._change_preview(subscription, form, formset)
        return TemplateResponse(
            request, "admin/billing/subscription/_preview.html", {"preview": preview, "preview_error": error}
        )

    # -- lifecycle operations -------------------------------------------------------------

    def _operations(self, subscription: Subscription) -> list[Operation]:
        """What can be done to this subscription now, in the order the header shows it."""
        status = subscription.status
        Status = Subscription.Status
        found: list[Operation] = []
        if status in CHANGEABLE:
            found.append(OPERATIONS["items"])
        if status == Status.TRIALING:
            found.append(OPERATIONS["extend-trial"])
        if status in CHANGEABLE:
            found.append(OPERATIONS["coupon"])
        if status != Status.CANCELED and subscription_discounts_active(subscription=subscription):
            found.append(OPERATIONS["remove-coupon"])
        if status in (Status.ACTIVE, Status.TRIALING, Status.PAST_DUE):
            found.append(OPERATIONS["pause"])
        if status == Status.PAUSED:
            found.append(OPERATIONS["resume"])
        if (subscription.cancel_at_period_end or subscription.cancel_at) and status != Status.CANCELED:
            found.append(OPERATIONS["undo-cancel"])
        elif status != Status.CANCELED:
            found.append(OPERATIONS["cancel"])
        return found

    def operation_view(self, request: HttpRequest, pk: int, operation: str) -> HttpResponse:
        """One lifecycle operation: a page that states its consequence, then the service call."""
        if operation not in OPERATIONS or operation == "items":
            raise Http404
        subscription = self._subscription(request, pk)
        if not self.has_change_permission(request, subscription):
            raise PermissionDenied
        spec = OPERATIONS[operation]
        data = request.POST if request.method == "POST" else None
        form = self._operation_form(operation, data, subscription=subscription)
        if data is not None and form.is_valid():
            done = call_service(
                form,
                lambda: self._run_operation(operation, subscription, form.cleaned_data, request),
                errors=SUBSCRIPTION_SERVICE_ERRORS,
            )
            if done is not None:
                self.log_change(request, subscription, [{"changed": {"fields": [operation]}}])
                self.message_user(request, str(spec.done), messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:billing_subscription_change", args=[subscription.pk]))
        return self._page(
            request,
            "admin/billing/subscription/operation.html",
            title=str(spec.label),
            subtitle=str(subscription),
            subscription=subscription,
            summary=self._summary(subscription),
            operation=spec,
            consequence=self._consequence(operation, subscription),
            form=form,
        )

    def _operation_form(self, operation: str, data: Any, *, subscription: Subscription) -> forms.Form:
        if operation == "remove-coupon":
            return RemoveDiscountForm(data, subscription=subscription)
        if operation == "cancel":
            return SubscriptionCancelForm(data)
        if operation == "pause":
            return PauseForm(data)
        if operation == "extend-trial":
            return ExtendTrialForm(data)
        if operation == "coupon":
            return CouponForm(data, livemode=None)
        return forms.Form(data)

    def _run_operation(
        self, operation: str, subscription: Subscription, data: dict[str, Any], request: HttpRequest
    ) -> Subscription:
        user = request.user
        tz = subscription.customer.timezone
        if operation == "cancel" and data["when"] == "date":
            return subscription_cancel_at(
                subscription=subscription,
                cancel_at=local_midnight(data["cancel_on"], tz),
                reason=data.get("reason") or "",
                acting_user=user,
            )
        if operation == "cancel":
            return subscription_cancel(
                subscription=subscription,
                at_period_end=data["when"] == "period_end",
                prorate=bool(data.get("prorate")),
                reason=data.get("reason") or "",
                acting_user=user,
            )
        if operation == "undo-cancel":
            return subscription_cancel_undo(subscription=subscription, acting_user=user)
        if operation == "pause":
            resumes_on = data.get("resumes_on")
            return subscription_pause(
                subscription=subscription,
                resumes_at=local_midnight(resumes_on, tz) if resumes_on else None,
                acting_user=user,
            )
        if operation == "resume":
            return subscription_resume(subscription=subscription, acting_user=user)
        if operation == "extend-trial":
            return subscription_extend_trial(
                subscription=subscription, trial_end=local_midnight(data["trial_end"], tz), acting_user=user
            )
        if operation == "coupon":
            return subscription_coupon_apply(
                subscription=subscription,
                coupon=data.get("coupon"),
                promotion_code=data.get("promotion_code") or None,
                acting_user=user,
            )
        if operation == "remove-coupon":
            return subscription_coupon_remove(
                subscription=subscription, discount=data.get("discount"), acting_user=user
            )
        raise Http404

    def _consequence(self, operation: str, subscription: Subscription) -> str:
        tz = subscription.customer.timezone
        period_end = local_date(subscription.current_period_end, tz)
        values = {"date": period_end, "customer": subscription.customer}
        texts = {
            "cancel": gettext(
                "At period end: the subscription stays active until %(date)s, then ends with a final invoice "
                "for usage and pending items; you can undo it until then. On a date: it renews until then and "
                "ends that day, the unused part of its period credited to the customer's balance. Now: it ends "
                "at once, pending items and usage so far are invoiced, and nothing more is billed."
            ),
            "undo-cancel": gettext(
                "The scheduled cancellation is withdrawn: the subscription renews on %(date)s as before."
            ),
            "pause": gettext(
                "Billing stops now, with no credit for the rest of the period. On resume, a new period starts "
                "and is invoiced at once."
            ),
            "resume": gettext(
                "A new period starts now and is invoiced at once to %(customer)s, with the usage and pending "
                "items since the pause."
            ),
            "extend-trial": gettext(
                "The trial, and the free period, run until the new date; the first paid invoice is issued then. "
                "Nothing is invoiced now."
            ),
            "coupon": gettext(
                "The coupon applies from the next invoice (%(date)s) and replaces any coupon the subscription "
                "has; the current period is not re-invoiced. It counts as a redemption."
            ),
            "remove-coupon": gettext(
                "The chosen discount (or every discount) stops from the next invoice (%(date)s); the current "
                "period is not re-invoiced."
            ),
        }
        return texts[operation] % values

    # -- the change page ------------------------------------------------------------------

    def _summary(self, subscription: Subscription) -> dict[str, Any]:
        tz = subscription.customer.timezone
        Status = Subscription.Status
        notes = []
        if subscription.status == Status.TRIALING and subscription.trial_end:
            notes.append(gettext("Trial until %(date)s") % {"date": local_date(subscription.trial_end, tz)})
        if subscription.status != Status.CANCELED and (subscription.cancel_at_period_end or subscription.cancel_at):
            ends = subscription.cancel_at or subscription.current_period_end
            notes.append(gettext("Cancels on %(date)s") % {"date": local_date(ends, tz)})
        if subscription.status == Status.PAUSED:
            notes.append(
                gettext("Paused; resumes on %(date)s") % {"date": local_date(subscription.resumes_at, tz)}
                if subscription.resumes_at
                else gettext("Paused until resumed")
            )
        if subscription.coupon_id and subscription.coupon is not None:
            notes.append(gettext("Coupon: %(name)s") % {"name": subscription.coupon.name})
        if subscription.ended_at:
            notes.append(gettext("Ended on %(date)s") % {"date": local_date(subscription.ended_at, tz)})
        return {
            "status": subscription.get_status_display(),
            "status_code": subscription.status,
            "customer": subscription.customer,
            "customer_url": reverse("admin:customers_customer_change", args=[subscription.customer_id]),
            "period": local_period(subscription.current_period_start, subscription.current_period_end, tz),
            "tz": tz,
            "cycle": cycle_label(subscription.cycle),
            "mrr": format_money(mrr_of(subscription=subscription), subscription.currency)
            if subscription.status in MRR_STATUSES
            else format_money(0, subscription.currency),
            "collection": self.collection(subscription),
            "notes": notes,
        }

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        subscription = (
            self.get_queryset(request).select_related("customer", "coupon").filter(pk=object_id).first()
            if str(object_id).isdigit()
            else None
        )
        context: dict[str, Any] = {}
        if subscription is not None:
            context = {
                "summary": self._summary(subscription),
                "items_table": [
                    {
                        "price": price_label(item.price),
                        "quantity": item.quantity,
                        "amount": format_money(
                            item_snapshot(price=item.price, quantity=item.quantity).full_amount(),
                            subscription.currency,
                        )
                        if item.price.usage_type != Price.UsageType.METERED
                        else gettext("by usage"),
                    }
                    for item in subscription.items.all()
                ],
                "operations": [
                    {
                        "label": operation.label,
                        "url": reverse("admin:billing_subscription_change_items", args=[subscription.pk])
                        if operation.slug == "items"
                        else reverse("admin:billing_subscription_operation", args=[subscription.pk, operation.slug]),
                        "danger": operation.danger,
                    }
                    for operation in self._operations(subscription)
                ]
                if self.has_change_permission(request, subscription)
                else [],
                **self._upcoming_context(subscription),
            }
        # The page only edits metadata: no "save and add another" next to the operations.
        extra_context = {**(extra_context or {}), **context, "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, extra_context)

    def _upcoming_context(self, subscription: Subscription) -> dict[str, Any]:
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
        tz = subscription.customer.timezone
        return {"upcoming": {**(invoice_panel(preview, tz=tz) or {}), "date": local_date(invoiced_on, tz)}}

    # -- bulk actions: each calls one subscription service ---------------------------------------

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
