"""Console actions for GDPR requests: export a customer's data, erase (anonymize) customers."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.clock import now as clock_now
from customers.models import Customer
from customers.privacy import ErasureRefused, customer_data_export_zip, customer_erase


@admin.action(description=gettext_lazy("Export personal data (GDPR, ZIP)"), permissions=["view"])
def export_personal_data(modeladmin, request: HttpRequest, queryset: QuerySet[Customer]) -> HttpResponse | None:
    if queryset.count() != 1:
        modeladmin.message_user(request, _("Select exactly one customer to export."), messages.ERROR)
        return None
    customer = queryset.get()
    response = HttpResponse(customer_data_export_zip(customer=customer), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="customer-{customer.pk}-personal-data.zip"'
    return response


@admin.action(description=gettext_lazy("Erase personal data (GDPR)…"), permissions=["delete"])
def erase_personal_data(modeladmin, request: HttpRequest, queryset: QuerySet[Customer]) -> HttpResponse | None:
    if request.POST.get("confirm_erase") != "yes":
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": _("Erase personal data"),
            "customers": queryset,
            "opts": modeladmin.model._meta,
            "action_name": "erase_personal_data",
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
        }
        return TemplateResponse(request, "admin/customers/customer/erase_confirmation.html", context)
    erased = 0
    for customer in queryset:
        try:
            customer_erase(customer=customer, at=clock_now(), acting_user=request.user)
        except ErasureRefused as error:
            modeladmin.message_user(request, f"{customer}: {error}", messages.ERROR)
        else:
            erased += 1
    if erased:
        modeladmin.message_user(
            request,
            _("%(count)d customer(s) anonymized; their invoices are kept.") % {"count": erased},
            messages.SUCCESS,
        )
    return None
