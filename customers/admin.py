from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from import_export import resources
from import_export.admin import ImportExportModelAdmin

from customers.models import Customer, CustomerUser, NotificationLog
from customers.privacy_admin import erase_personal_data, export_personal_data
from customers.services import customer_invite_portal_user


class CustomerResource(resources.ModelResource):
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


class CustomerUserInline(admin.TabularInline):
    model = CustomerUser
    extra = 0
    readonly_fields = ("user", "invited_at")
    can_delete = True


@admin.register(Customer)
class CustomerAdmin(ImportExportModelAdmin):
    resource_classes = [CustomerResource]
    list_display = ("legal_name", "email", "country", "currency", "preferred_language", "is_business", "created_at")
    list_filter = ("country", "currency", "preferred_language", "is_business")
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

    @admin.action(description=_("Invite the billing email to the customer portal"), permissions=["change"])
    def invite_to_portal(self, request: HttpRequest, queryset: QuerySet[Customer]) -> None:
        invited = 0
        for customer in queryset:
            try:
                customer_invite_portal_user(customer=customer, email=customer.email, base_url=settings.TARIF_BASE_URL)
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
class CustomerUserAdmin(admin.ModelAdmin):
    list_display = ("user", "customer", "invited_at")
    search_fields = ("user__email", "customer__legal_name")
    autocomplete_fields = ("customer",)
    raw_id_fields = ("user",)


@admin.register(NotificationLog)
class NotificationLogAdmin(admin.ModelAdmin):
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
