from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from import_export import resources
from import_export.admin import ImportExportModelAdmin

from config.console import CountryFilter, StyledAdmin, TabularInline
from config.write_path import ServiceAdminMixin, ServiceResourceMixin
from customers.models import Customer, CustomerUser, NotificationLog
from customers.privacy_admin import erase_personal_data, export_personal_data
from customers.services import (
    customer_create,
    customer_delete,
    customer_invite_portal_user,
    customer_update,
    customer_update_validate,
    customer_user_revoke,
)


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


class CustomerUserInline(TabularInline):
    """Who can sign in to the portal for this customer (added by invitation, revoked from the portal users page)."""

    model = CustomerUser
    extra = 0
    fields = readonly_fields = ("user", "invited_at")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Customer)
class CustomerAdmin(ServiceAdminMixin, StyledAdmin, ImportExportModelAdmin):
    resource_classes = [CustomerResource]
    list_display = ("legal_name", "email", "country", "currency", "preferred_language", "is_business", "created_at")
    list_filter = (CountryFilter, "currency", "preferred_language", "is_business")
    search_fields = ("legal_name", "email", "siren", "city")
    readonly_fields = ("created_at", "updated_at")
    inlines = [CustomerUserInline]
    actions = ["invite_to_portal", export_personal_data, erase_personal_data]
    fieldsets = (
        (None, {"fields": ("legal_name", "email", "invoice_email", "is_business", "tax_id", "siren")}),
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
        (_("Other"), {"fields": ("metadata", "created_at", "updated_at"), "classes": ("collapse",)}),
    )

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
