"""Console pages for billing runs (progress, failures, retries) and test clocks."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format, number_format
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from billing.models import (
    BillingRun,
    BillingRunFailure,
    TestClock,
)
from billing.services.billing_run import billing_run_retry_failures, billing_run_start
from billing.services.test_clocks import test_clock_advance, test_clock_create
from config import clock
from config.console import (
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    StyledAdmin,
    UtcDateTimeField,
    admin_link,
    error_text,
    render_tool_form,
)

logger = logging.getLogger(__name__)


def run_rate(run: BillingRun) -> float:
    """Invoices issued per second of the run's wall-clock time so far."""
    end = run.finished_at or clock.system_now()
    seconds = (end - run.started_at).total_seconds()
    if seconds <= 0:
        return 0.0
    return run.invoices_created / seconds


def run_progress(run: BillingRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "status": run.status,
        "status_label": str(run.get_status_display()),
        "processed": run.processed,
        "total": run.total,
        "percent": run.progress_percent,
        "invoices_created": run.invoices_created,
        "failures": run.failures,
        "invoices_per_second": round(run_rate(run), 1),
        "invoices_per_second_label": number_format(run_rate(run), 1),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


class RunBillingForm(forms.Form):
    as_of = UtcDateTimeField(
        label=_("Bill periods ending by"),
        help_text=_("Every subscription whose period ended by this time is invoiced (time zone: %(tz)s)."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["as_of"].help_text = self.fields["as_of"].help_text % {"tz": timezone.get_current_timezone_name()}


class BillingRunFailureInline(ReadOnlyInline):
    """The subscriptions a run could not invoice, with the reason; the next run retries them."""

    model = BillingRunFailure
    fk_name = "run"
    show_change_link = False
    fields = ("subscription_link", "period_start", "code", "message", "attempts", "last_attempt_at", "state")
    readonly_fields = fields
    verbose_name_plural = _("subscriptions not invoiced")

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("subscription", "subscription__customer")

    @admin.display(description=_("subscription"))
    def subscription_link(self, failure: BillingRunFailure) -> str:
        return admin_link(failure.subscription)

    @admin.display(description=_("state"))
    def state(self, failure: BillingRunFailure) -> str:
        if failure.resolved_at is None:
            return gettext("open: retried by the next run")
        resolved = date_format(timezone.localtime(failure.resolved_at), "SHORT_DATETIME_FORMAT")
        return f"{failure.get_resolution_display()} ({resolved})"


@admin.register(BillingRun)
class BillingRunAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("started_at", "as_of", "status", "progress", "invoices_created", "rate", "failures")
    list_filter = ("status", ("test_clock", admin.EmptyFieldListFilter))
    list_select_related = ("test_clock",)
    date_hierarchy = "started_at"
    fields = (
        "status",
        "as_of",
        "scope",
        "test_clock",
        "processed",
        "total",
        "invoices_created",
        "rate",
        "failures",
        "last_error",
        "started_at",
        "heartbeat_at",
        "finished_at",
    )
    readonly_fields = fields
    inlines = (BillingRunFailureInline,)
    change_list_template = "admin/billing/billingrun/change_list.html"
    change_form_template = "admin/billing/billingrun/change_form.html"

    @property
    def media(self) -> forms.Media:
        return super().media + forms.Media(js=("tarif/admin/billing_run_progress.js",))

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path("run/", self.admin_site.admin_view(self.run_now_view), name="{}_{}_run".format(*info)),
            path(
                "<path:object_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="{}_{}_progress".format(*info),
            ),
            path(
                "<path:object_id>/retry-failures/",
                self.admin_site.admin_view(self.retry_failures_view),
                name="{}_{}_retry_failures".format(*info),
            ),
            *super().get_urls(),
        ]

    def can_start_runs(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.add_{self.opts.model_name}")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_start_runs": self.can_start_runs(request)}
        return super().changelist_view(request, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        run = BillingRun.objects.filter(pk=object_id).first()
        if run is not None:
            progress = run_progress(run)
            progress["max"] = max(run.total, 1)
            progress["value"] = run.processed if run.total else int(run.status == BillingRun.Status.DONE)
            open_failures = run.failed_subscriptions.filter(resolved_at__isnull=True).count()
            extra_context = {
                **(extra_context or {}),
                "progress": progress,
                "open_failures": open_failures,
                "can_retry_failures": open_failures > 0 and self.can_start_runs(request),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def progress_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = get_object_or_404(BillingRun, pk=object_id)
        return JsonResponse(run_progress(run))

    def retry_failures_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.can_start_runs(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:billing_billingrun_change", args=[object_id]))

        run = get_object_or_404(BillingRun, pk=object_id)
        try:
            retry = billing_run_retry_failures(run=run, acting_user=request.user)
        except ValidationError as error:  # nothing to retry, or a run is already running
            self.message_user(request, error_text(error), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:billing_billingrun_change", args=[run.pk]))
        self.message_user(
            request,
            gettext("Retry started: %(total)d failed subscription(s) billed again.") % {"total": retry.total},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:billing_billingrun_change", args=[retry.pk]))

    def run_now_view(self, request: HttpRequest) -> HttpResponse:
        if not self.can_start_runs(request):
            raise PermissionDenied

        form = RunBillingForm(request.POST or None, initial={"as_of": timezone.localtime().replace(microsecond=0)})
        if request.method == "POST" and form.is_valid():
            try:
                run = billing_run_start(as_of=form.cleaned_data["as_of"], acting_user=request.user)
            except ValidationError as error:
                form.add_error(None, error)
            except Exception as error:
                # The run records its failure (failures, last error) on its row; say so and show the list.
                logger.exception("billing run started from the console failed")
                self.message_user(
                    request,
                    gettext("The billing run stopped with an error: %(error)s") % {"error": error},
                    messages.ERROR,
                )
                return HttpResponseRedirect(reverse("admin:billing_billingrun_changelist"))
            else:
                self.message_user(
                    request,
                    gettext("Billing run started: %(total)d subscription-periods due.") % {"total": run.total},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:billing_billingrun_change", args=[run.pk]))
        return render_tool_form(
            self,
            request,
            title=gettext("Run billing now"),
            form=form,
            submit_label=gettext("Start the billing run"),
            intro=gettext(
                "Invoices every subscription-period that has ended by the chosen time, exactly once: periods "
                "already billed are skipped. Customers on test clocks are billed by advancing their clock instead."
            ),
        )

    @admin.display(description=_("progress"))
    def progress(self, run: BillingRun) -> str:
        url = reverse("admin:billing_billingrun_progress", args=[run.pk])
        done = run.processed if run.total else (1 if run.status == BillingRun.Status.DONE else 0)
        return format_html(
            '<div class="tarif-progress" data-billing-run-progress data-url="{}" data-status="{}">'
            '<progress max="{}" value="{}">{} %</progress> '
            '<span class="tarif-progress__label"><span data-field="processed">{}</span> / '
            '<span data-field="total">{}</span> (<span data-field="percent">{}</span> %)</span></div>',
            url,
            run.status,
            max(run.total, 1),
            done,
            run.progress_percent,
            run.processed,
            run.total,
            run.progress_percent,
        )

    @admin.display(description=_("invoices/s"))
    def rate(self, run: BillingRun) -> str:
        return number_format(run_rate(run), 1)


class AdvanceClockForm(forms.Form):
    to = UtcDateTimeField(label=_("New time"))

    def __init__(self, *args: Any, clocks: list[TestClock], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clocks = clocks
        self.fields["to"].help_text = gettext(
            "The clocks move forward to this time and bill their customers up to it (time zone: %(tz)s)."
        ) % {"tz": timezone.get_current_timezone_name()}

    def clean_to(self) -> datetime:
        to = self.cleaned_data["to"]
        behind = [test_clock for test_clock in self.clocks if to <= test_clock.frozen_time]
        if behind:
            raise ValidationError(
                _("A test clock only moves forward; %(clocks)s already show a later time."),
                params={"clocks": ", ".join(str(test_clock) for test_clock in behind)},
            )
        return to


@admin.register(TestClock)
class TestClockAdmin(StyledAdmin):
    list_display = ("name", "frozen_time", "status", "customer_count", "created_at")
    list_filter = ("status",)
    search_fields = ("name",)
    actions = ["advance_clock"]
    change_form_template = "admin/billing/testclock/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[TestClock]:
        return super().get_queryset(request).annotate(customer_total=Count("customers"))

    def get_readonly_fields(self, request: HttpRequest, obj: TestClock | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("status", "created_at")
        return ("frozen_time", "status", "created_at")

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path("advance/", self.admin_site.admin_view(self.advance_view), name="{}_{}_advance".format(*info)),
            *super().get_urls(),
        ]

    def save_model(self, request: HttpRequest, obj: TestClock, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return

        created = test_clock_create(name=obj.name, frozen_time=obj.frozen_time)
        obj.pk, obj.status, obj.created_at = created.pk, created.status, created.created_at

    @admin.display(description=_("customers"), ordering="customer_total")
    def customer_count(self, test_clock: TestClock) -> int:
        return test_clock.customer_total

    @admin.action(description=_("Advance clock…"), permissions=["change"])
    def advance_clock(self, request: HttpRequest, queryset: QuerySet[TestClock]) -> HttpResponse:
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(f"{reverse('admin:billing_testclock_advance')}?ids={ids}")

    def advance_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied

        ids = [int(pk) for pk in request.GET.get("ids", "").split(",") if pk.strip().isdigit()]
        clocks = list(TestClock.objects.filter(pk__in=ids).order_by("pk"))
        if not clocks:
            self.message_user(request, gettext("Choose at least one test clock to advance."), messages.WARNING)
            return HttpResponseRedirect(reverse("admin:billing_testclock_changelist"))
        form = AdvanceClockForm(request.POST or None, clocks=clocks)
        if request.method == "POST" and form.is_valid():
            for test_clock in clocks:
                try:
                    run = test_clock_advance(clock=test_clock, to=form.cleaned_data["to"], acting_user=request.user)
                except ValidationError as error:
                    self.message_user(request, f"{test_clock.name}: {error_text(error)}", messages.ERROR)
                else:
                    self.message_user(
                        request,
                        format_html(
                            "{} {}",
                            gettext("%(clock)s advanced to %(time)s: %(invoices)d invoices issued.")
                            % {
                                "clock": test_clock.name,
                                "time": date_format(timezone.localtime(test_clock.frozen_time), "DATETIME_FORMAT"),
                                "invoices": run.invoices_created,
                            },
                            admin_link(run, gettext("See the billing run.")),
                        ),
                        messages.SUCCESS,
                    )
            return HttpResponseRedirect(reverse("admin:billing_testclock_changelist"))
        latest = max(test_clock.frozen_time for test_clock in clocks)
        if not form.is_bound:
            form.initial["to"] = timezone.localtime(latest).replace(microsecond=0)
        return render_tool_form(
            self,
            request,
            title=gettext("Advance test clocks"),
            form=form,
            submit_label=gettext("Advance"),
            intro=gettext(
                "Moving a test clock forward bills its customers period by period, as if the time had really "
                "passed. It cannot be moved back."
            ),
            objects=[
                gettext("%(clock)s, now at %(time)s")
                % {
                    "clock": test_clock.name,
                    "time": date_format(timezone.localtime(test_clock.frozen_time), "DATETIME_FORMAT"),
                }
                for test_clock in clocks
            ],
        )
