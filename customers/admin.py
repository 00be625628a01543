from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import BigIntegerField, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from import_export import resources
from import_export.admin import ImportExportModelAdmin
from unfold.decorators import display
from unfold.widgets import UnfoldAdminTextInputWidget

from billing.models import Price, Subscription
from config.admin_site import console_livemode
from config.console import CountryFilter, StyledAdmin, format_money
from config.write_path import ServiceAdminMixin, ServiceResourceMixin
from customers.hub import LIVE_STATUSES
from customers.hub_admin import CustomerHubMixin
from customers.models import Customer, CustomerUser, NotificationLog
from customers.privacy_admin import erase_personal_data, export_personal_data
from customers.selectors import customer_countries_in_use
from customers.services import (
    customer_create,
    customer_delete,
    customer_invite_portal_user,
    customer_update,
    customer_update_validate,
    customer_user_revoke,
)
from invoices.models import BalanceTransaction, Invoice


class CustomerResource(ServiceResourceMixin, resources.ModelResource):
    """Rows are written by customer_create / customer_update: same checks and events as the API."""

    class Meta:
        model = Customer
        fields = (
            "id",
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
            "invoice_email",
        )
        # Spreadsheets rarely carry our ids: the billing email identifies a customer on re-import.
        import_id_fields = ("email",)
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True
        use_transactions = True

    def service_create(self, *, data: dict, user: Any) -> Customer:
        return customer_create(data=data, acting_user=user)

    def service_update(self, *, obj: Customer, changes: dict, user: Any) -> Customer:
        return customer_update(customer=obj, data=changes, acting_user=user)


class CustomerCountryFilter(CountryFilter):
    """The countries in use read with a loose index scan, not a DISTINCT over every customer (issue 20)."""

    def codes_in_use(self, request: HttpRequest, model_admin: Any) -> list[str]:
        return customer_countries_in_use(livemode=console_livemode(request))


class CatalogCurrencyFilter(admin.SimpleListFilter):
    """Currency, offered from the catalog's prices (a small table) rather than a DISTINCT over
    every customer (issue 20); keeps Django's `currency__exact` parameter."""

    title = _("currency")
    parameter_name = "currency__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        currencies = Price.objects.order_by("currency").values_list("currency", flat=True).distinct()
        return [(code, code) for code in currencies]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Customer]) -> QuerySet[Customer]:
        return queryset.filter(currency=self.value()) if self.value() else queryset


def customer_changelist(base: Any) -> Any:
    """The customer list's changelist, which reads each shown customer's status (overdue,
    live subscription) for the page's rows only, in two queries: as EXISTS subqueries over
    the list, PostgreSQL hashed every open invoice and live subscription of the table for
    each page (0.4 s at 100,000 customers, growing with the table; issue 20)."""

    class CustomerChangeList(base):
        def get_results(self, request: HttpRequest) -> None:
            super().get_results(request)
            customers: list[Any] = list(self.result_list)  # type: ignore[has-type]
            ids = [customer.pk for customer in customers]
            overdue = set(
                Invoice.objects.filter(
                    customer_id__in=ids,
                    status=Invoice.Status.OPEN,
                    amount_remaining__gt=0,
                    due_at__lt=timezone.now(),
                ).values_list("customer_id", flat=True)
            )
            live = set(
                Subscription.objects.filter(customer_id__in=ids, status__in=LIVE_STATUSES).values_list(
                    "customer_id", flat=True
                )
            )
            for customer in customers:
                customer.has_overdue = customer.pk in overdue
                customer.has_live_subscription = customer.pk in live
            self.result_list = customers

    return CustomerChangeList


@admin.register(Customer)
class CustomerAdmin(CustomerHubMixin, ServiceAdminMixin, StyledAdmin, ImportExportModelAdmin):
    resource_classes = [CustomerResource]
    list_display = ("legal_name", "email", "country_display", "balance_display", "status_display", "created_at")
    list_filter = (CustomerCountryFilter, CatalogCurrencyFilter, "preferred_language", "is_business")
    search_fields = ("legal_name", "email", "siren", "city")
    readonly_fields = ("created_at", "updated_at")
    actions = ["invite_to_portal", export_personal_data, erase_personal_data]
    fieldsets = (
        (
            None,
            {"fields": ("legal_name", "email", "invoice_email", "is_business", "tax_id", "siren", "einvoice_syntax")},
        ),
        (
            _("Address"),
            {
                "fields": (
                    "address_line1",
                    "address_line2",
                    "postal_code",
                    "city",
                    "region",
                    "country",
                    "delivery_address",
                )
            },
        ),
        (_("Preferences"), {"fields": ("preferred_language", "currency", "timezone")}),
        (_("Internal notes"), {"fields": ("notes",)}),
        (_("Other"), {"fields": ("metadata", "created_at", "updated_at"), "classes": ("collapse",)}),
    )

    class Media:
        js = ("tarif/admin/customer_hub.js",)

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "tax_id":  # an encrypted text column, but a VAT number is one short line
            kwargs["widget"] = UnfoldAdminTextInputWidget(attrs={"autocomplete": "off", "spellcheck": "false"})
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        # The list's balance in the same query as the customers (no query per row).
        balance = (
            BalanceTransaction.objects.filter(customer=OuterRef("pk"), currency=OuterRef("currency"))
            .order_by()
            .values("customer")
            .annotate(total=Sum("amount"))
            .values("total")[:1]
        )
        return (
            super()
            .get_queryset(request)
            .annotate(balance_amount=Coalesce(Subquery(balance, output_field=BigIntegerField()), 0))
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> Any:
        return customer_changelist(super().get_changelist(request, **kwargs))

    @display(description=_("country"), ordering="country")
    def country_display(self, customer: Customer) -> str:
        # The country's name from its code (django-countries' lookup). Listing the field itself
        # makes the admin build and normalise the 250 country choices for every row: 12 ms a
        # row, most of the list's time (issue 20).
        return str(customer.country.name or customer.country.code)

    @display(description=_("balance"), ordering="balance_amount")
    def balance_display(self, customer: Customer) -> str:
        return format_html(
            '<span class="tarif-money">{}</span>', format_money(customer.balance_amount, customer.currency)
        )  # type: ignore[attr-defined]

    @display(
        description=_("status"),
        label={"overdue": "danger", "active": "success", "inactive": "info", "erased": "info"},
    )
    def status_display(self, customer: Customer) -> tuple[str, str]:
        if (customer.metadata or {}).get("erased_at"):
            return "erased", gettext("erased")
        if getattr(customer, "has_overdue", False):
            return "overdue", gettext("overdue")
        if getattr(customer, "has_live_subscription", False):
            return "active", gettext("active")
        return "inactive", gettext("no subscription")

    # The console's form saves through the same services as the API (currency rule, events).
    def service_validate(self, *, obj: Customer | None, changes: dict) -> None:
        if obj is not None:
            customer_update_validate(customer=obj, data=changes)

    def service_create(self, request: HttpRequest, *, data: dict) -> Customer:
        return customer_create(data=data, acting_user=request.user)

    def service_update(self, request: HttpRequest, *, obj: Customer, changes: dict) -> Customer:
        return customer_update(customer=obj, data=changes, acting_user=request.user)

    def delete_model(self, request: HttpRequest, obj: Customer) -> None:
        customer_delete(customer=obj, acting_user=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Customer]) -> None:
        for customer in queryset:
            customer_delete(customer=customer, acting_user=request.user)

    @admin.action(description=_("Invite the billing email to the customer portal"), permissions=["change"])
    def invite_to_portal(self, request: HttpRequest, queryset: QuerySet[Customer]) -> None:
        invited = 0
        for customer in queryset:
            try:
                customer_invite_portal_user(
                    customer=customer, email=customer.email, base_url=settings.TARIF_BASE_URL, acting_user=request.user
                )
            except ValidationError as error:
                self.message_user(request, f"{customer}: {'; '.join(error.messages)}", messages.ERROR)
            else:
                invited += 1
        if invited:
            self.message_user(
                request,
                ngettext("%(count)d invitation sent.", "%(count)d invitations sent.", invited) % {"count": invited},
                messages.SUCCESS,
            )


@admin.register(CustomerUser)
class CustomerUserAdmin(StyledAdmin):
    """Portal logins and the customer each acts for: shown, and revocable, never typed in.

    A login gets linked to a customer only by the customer's "Invite to the portal" action
    (customer_invite_portal_user): the invitation goes to the customer's billing email and
    the person there sets a password. So nobody in the console can hand a login access to
    another customer's invoices, and revoking access goes through customer_user_revoke
    (an event and the audit log say who lost access and who took it away).
    """

    list_display = ("user", "customer", "invited_at")
    search_fields = ("user__email", "customer__legal_name")
    list_select_related = ("user", "customer")
    fields = readonly_fields = ("user", "customer", "invited_at")
    actions = ["revoke_portal_access"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: CustomerUser | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CustomerUser | None = None) -> bool:
        return False  # revoke (the action) instead: it records who lost access

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("customers.delete_customeruser")

    @admin.action(description=_("Revoke portal access of the selected logins"), permissions=["revoke"])
    def revoke_portal_access(self, request: HttpRequest, queryset: QuerySet[CustomerUser]) -> None:
        links = list(queryset.select_related("user", "customer"))
        for link in links:
            customer_user_revoke(link=link, acting_user=request.user)
        self.message_user(
            request,
            ngettext("%(count)d portal login revoked.", "%(count)d portal logins revoked.", len(links))
            % {"count": len(links)},
            messages.SUCCESS,
        )


@admin.register(NotificationLog)
class NotificationLogAdmin(StyledAdmin):
    """What was sent to whom, and what failed (read-only: the log is written by the senders)."""

    list_display = ("created_at", "customer", "kind", "status", "recipient", "subject", "attempts")
    list_filter = ("status", "kind")
    search_fields = ("customer__legal_name", "recipient", "subject", "dedupe_key")
    date_hierarchy = "created_at"
    list_select_related = ("customer",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: NotificationLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: NotificationLog | None = None) -> bool:
        return False
