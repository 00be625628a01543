"""Console: import a Stripe account (start it, follow its progress, read its report)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from billing.models import StripeImportRun, TestClock
from billing.services.stripe_import import StripeImportError, stripe_import_start
from billing.stripe_import_models import STRIPE_IMPORT_STAGES
from config.console import ReadOnlyAdminMixin, StyledAdmin, render_tool_form
from config.jobs import enqueue


def import_progress(run: StripeImportRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "status": run.status,
        "status_label": str(run.get_status_display()),
        "stage": run.stage,
        "processed": len(run.stages_done),
        "total": len(STRIPE_IMPORT_STAGES),
        "percent": run.progress_percent,
        "stage_count": len(STRIPE_IMPORT_STAGES),  # for the template: "total" reads as money there
        "objects": run.processed,
        "not_mapped": len(run.report),
    }


class StripeImportForm(forms.Form):
    api_key = forms.CharField(
        label=_("Stripe secret key"),
        widget=forms.PasswordInput(render_value=False),
        help_text=_(
            "sk_test_… imports into test mode, sk_live_… into live mode. A restricted key with read access "
            "is enough. Kept encrypted until the import is done, then erased."
        ),
    )
    dry_run = forms.BooleanField(label=_("Dry run (report only, create nothing)"), required=False, initial=True)
    open_invoices = forms.ChoiceField(
        label=_("Open invoices"),
        choices=[
            ("report", _("Leave them at Stripe and list them")),
            ("carry", _("Bill what remains due on Tarif's next invoice")),
        ],
    )
    test_clock = forms.ModelChoiceField(
        label=_("Test clock (test mode only)"), queryset=TestClock.objects.all(), required=False
    )


@admin.register(StripeImportRun)
class StripeImportRunAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("started_at", "account_id", "mode", "dry_run", "status", "stage", "processed", "not_mapped")
    list_filter = ("status", "livemode", "dry_run")
    fields = (
        "status",
        "account_id",
        "livemode",
        "dry_run",
        "key_hint",
        "open_invoices",
        "test_clock",
        "stage",
        "processed",
        "summary",
        "not_mapped_list",
        "last_error",
        "started_by",
        "started_at",
        "heartbeat_at",
        "finished_at",
    )
    readonly_fields = fields
    change_list_template = "admin/billing/stripeimportrun/change_list.html"
    change_form_template = "admin/billing/stripeimportrun/change_form.html"

    @property
    def media(self) -> forms.Media:
        return super().media + forms.Media(js=("tarif/admin/billing_run_progress.js",))

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path("start/", self.admin_site.admin_view(self.start_view), name="{}_{}_start".format(*info)),
            path(
                "<path:object_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="{}_{}_progress".format(*info),
            ),
            *super().get_urls(),
        ]

    def can_start(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.add_{self.opts.model_name}")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_start": self.can_start(request)}
        return super().changelist_view(request, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        run = StripeImportRun.objects.filter(pk=object_id).first()
        if run is not None:
            extra_context = {**(extra_context or {}), "progress": import_progress(run)}
        return super().change_view(request, object_id, form_url, extra_context)

    def progress_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(import_progress(get_object_or_404(StripeImportRun, pk=object_id)))

    def start_view(self, request: HttpRequest) -> HttpResponse:
        if not self.can_start(request):
            raise PermissionDenied
        form = StripeImportForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                run = stripe_import_start(
                    api_key=data["api_key"],
                    dry_run=data["dry_run"],
                    open_invoices=data["open_invoices"],
                    test_clock=data["test_clock"],
                    acting_user=request.user,
                )
            except StripeImportError as error:
                form.add_error(None, error.message_text())
            else:
                # The run row is the durable hand-off: a lost task is restarted by starting again (it resumes).
                transaction.on_commit(lambda: enqueue("billing.stripe_import_run", args=[run.pk]))
                self.message_user(request, gettext("Stripe import started."), messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:billing_stripeimportrun_change", args=[run.pk]))
        return render_tool_form(
            self,
            request,
            title=gettext("Import from Stripe"),
            form=form,
            submit_label=gettext("Start the import"),
            intro=gettext(
                "Reads products, prices, coupons, promotion codes, customers, payment methods (references only), "
                "subscriptions and open invoices from a Stripe account and recreates them here, so the next "
                "renewals are billed by Tarif on Stripe's dates and amounts. Safe to run again: what was imported "
                "is left alone, and an interrupted import resumes. Start with a dry run."
            ),
        )

    @admin.display(description=_("mode"))
    def mode(self, run: StripeImportRun) -> str:
        return gettext("live") if run.livemode else gettext("test")

    @admin.display(description=_("not mapped"))
    def not_mapped(self, run: StripeImportRun) -> int:
        return len(run.report)

    @admin.display(description=_("summary"))
    def summary(self, run: StripeImportRun) -> str:
        rows = [
            (stage, ", ".join(f"{outcome}: {number}" for outcome, number in sorted(counts.items())))
            for stage, counts in run.counts.items()
            if counts
        ]
        return format_html("<dl>{}</dl>", format_html_join("", "<dt>{}</dt><dd>{}</dd>", rows))

    @admin.display(description=_("objects not mapped"))
    def not_mapped_list(self, run: StripeImportRun) -> str:
        if not run.report:
            return gettext("none")
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li><code>{}</code> {} ({}): {}</li>",
                ((r["id"], r["type"], r["code"], r["reason"]) for r in run.report),
            ),
        )
