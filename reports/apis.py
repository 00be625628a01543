"""The reports over the API: GET /api/v1/reports/ (the list) and /api/v1/reports/<name>/.

Authentication and base permissions are the project's REST_FRAMEWORK defaults; on top,
a signed-in user needs `reports.view_dashboards` (Finance, Read-only), like the console.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from config import clock
from config.admin_site import console_livemode
from config.api.exceptions import ApiError
from config.api.strict import StrictParametersMixin
from config.models import ApiKey
from customers.models import Customer
from reports.exports import to_json
from reports.filters import ReportFilterForm
from reports.registry import LIVE, REPORTS, AsOf

PAGE_ROWS, MAX_PAGE_ROWS = 1_000, 10_000
_STARTING_AFTER = re.compile(r"([1-9][0-9]{0,17})-([1-9][0-9]{0,17})")


def _page_parameters(request: Request) -> tuple[int, tuple[int, int] | None]:
    """`limit` (1 to MAX_PAGE_ROWS) and `starting_after` ("<meter id>-<customer id>", as
    `next_starting_after` gave it); anything else is a 400 naming the parameter."""
    raw_limit = request.query_params.get("limit")
    if raw_limit is None:
        limit = PAGE_ROWS
    elif raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= MAX_PAGE_ROWS:
        limit = int(raw_limit)
    else:
        raise ApiError(
            _("limit is a whole number from 1 to %(max)s.") % {"max": MAX_PAGE_ROWS},
            code="invalid_limit",
            status_code=400,
            field="limit",
        )
    raw_after = request.query_params.get("starting_after")
    if raw_after is None:
        return limit, None
    match = _STARTING_AFTER.fullmatch(raw_after)
    if match is None:
        raise ApiError(
            _("starting_after is the next_starting_after of a previous page."),
            code="invalid_cursor",
            status_code=400,
            field="starting_after",
        )
    return limit, (int(match[1]), int(match[2]))


class CanViewReports(BasePermission):
    """A signed-in user needs `reports.view_dashboards` (Finance, Read-only), however they
    authenticated. A caller authenticated without a user (e.g. an API key that sets only
    `request.auth`) is left to the default permission classes. Anonymous: refused."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ApiKey):
            return True  # scopes and rate limits: the default classes
        user = request.user
        if user is not None and user.is_authenticated:
            return bool(user.has_perm("reports.view_dashboards"))
        return request.auth is not None


def _viewer_livemode(request: Request) -> bool:
    """A sandbox key sees test-mode figures, staff those of the console's current mode."""
    if isinstance(request.auth, ApiKey):
        return request.auth.mode != ApiKey.Mode.TEST

    return console_livemode(request._request)


class ReportListApi(StrictParametersMixin, APIView):
    permission_classes = [*api_settings.DEFAULT_PERMISSION_CLASSES, CanViewReports]

    class ReportListOutputSerializer(serializers.Serializer):
        reports = serializers.ListField(child=serializers.DictField())

    @extend_schema(operation_id="reports_list", responses=ReportListOutputSerializer, summary="List the reports")
    def get(self, request: Request) -> Response:
        """The reports this server computes (MRR, churn, cohorts, AR aging...), each with its URL."""
        return Response(
            {
                "reports": [
                    {
                        "name": report.name,
                        "title": str(report.title),
                        "description": str(report.description),
                        "url": request.build_absolute_uri(f"{report.name}/"),
                    }
                    for report in REPORTS.values()
                ]
            }
        )


class ReportApi(StrictParametersMixin, APIView):
    """Query: start, end (YYYY-MM), brand, currency, plan (price id), country, customer."""

    query_parameters = {"get": (*ReportFilterForm.base_fields, "limit", "starting_after")}

    permission_classes = [*api_settings.DEFAULT_PERMISSION_CLASSES, CanViewReports]

    class ReportOutputSerializer(serializers.Serializer):
        name = serializers.CharField()
        title = serializers.CharField()
        filters = serializers.DictField()
        as_of = serializers.DateTimeField(help_text="the instant the figures describe (UTC)")
        as_of_source = serializers.ChoiceField(
            choices=["summary", "live"],
            help_text="summary: the MRR summary's last refresh (later invoice changes not yet in); "
            "live: computed from the source rows at this request",
        )
        next_refresh = serializers.DateTimeField(allow_null=True, help_text="summary only: its next scheduled refresh")
        columns = serializers.ListField(child=serializers.DictField())
        rows = serializers.ListField(child=serializers.DictField())
        has_more = serializers.BooleanField(
            help_text="paged reports (usage): more rows after this page (pass next_starting_after); "
            "always false for the others"
        )
        next_starting_after = serializers.CharField(
            allow_null=True, help_text="paged reports: the starting_after of the next page; null on the last"
        )

    @extend_schema(
        operation_id="reports_retrieve",
        summary="Compute a report",
        responses=ReportOutputSerializer,
        parameters=[
            OpenApiParameter("start", str, description="first month, YYYY-MM"),
            OpenApiParameter("end", str, description="last month, YYYY-MM"),
            OpenApiParameter("brand", int),
            OpenApiParameter("currency", str),
            OpenApiParameter("plan", int, description="price id"),
            OpenApiParameter("country", str),
            OpenApiParameter("customer", int),
            OpenApiParameter("min_changes", int, description="plan-change timeline: at least this many changes"),
            OpenApiParameter(
                "limit", int, description=f"paged reports (usage): rows per page, 1 to {MAX_PAGE_ROWS} ({PAGE_ROWS})"
            ),
            OpenApiParameter(
                "starting_after", str, description="paged reports: the previous page's next_starting_after"
            ),
        ],
    )
    def get(self, request: Request, name: str) -> Response:
        """One report's columns and rows for the period and filters given, in the calling key's mode.
        Money columns are integers in minor units of the report's currency."""
        report = REPORTS.get(name)
        if report is None:
            detail = _("No such report. Known reports: %(names)s") % {"names": ", ".join(REPORTS)}
            raise ApiError(detail, code="unknown_report", status_code=404, field="name")
        form = ReportFilterForm(request.query_params)
        if not form.is_valid():
            raise serializers.ValidationError({field: list(messages) for field, messages in form.errors.items()})
        filters = replace(form.filters(), livemode=_viewer_livemode(request))
        if filters.customer and not Customer.objects.filter(pk=filters.customer, livemode=filters.livemode).exists():
            # Another mode's customer does not exist for this viewer.
            raise ApiError(
                _("No such customer: %(id)s.") % {"id": filters.customer},
                code="resource_missing",
                status_code=404,
                field="customer",
            )
        if report.needs_customer and not filters.customer:
            detail = _("This report needs a customer (customer=<id>).")
            raise ApiError(detail, code="validation_error", status_code=400, field="customer")
        table = report.build(filters)
        paging: dict[str, Any] = {}
        if table.full_list is not None:
            # Issue 20: every customer's row, a page at a time (keyset: each page reads only the rows after it).
            limit, after = _page_parameters(request)
            rows = table.full_list.page(after, limit + 1)
            has_more = len(rows) > limit
            rows = rows[:limit]
            last = table.full_list.key(rows[-1]) if rows and has_more else None
            # The full list is read at this request (the page's digest, if any, is not).
            live = replace(table, as_of=AsOf(at=clock.system_now(), source=LIVE))
            paging = {
                **to_json(live, rows=rows),
                "has_more": has_more,
                "next_starting_after": f"{last[0]}-{last[1]}" if last else None,
            }
        elif request.query_params.keys() & {"limit", "starting_after"}:
            raise ApiError(
                _("This report is not paged: it has no limit or starting_after."),
                code="unknown_parameter",
                status_code=400,
                field="limit" if "limit" in request.query_params else "starting_after",
            )
        return Response(
            {
                "name": report.name,
                "title": str(report.title),
                "filters": {
                    "start": f"{filters.start:%Y-%m}",
                    "end": f"{filters.end:%Y-%m}",
                    "brand": filters.brand,
                    "currency": filters.currency,
                    "plan": filters.plan,
                    "country": filters.country,
                    "customer": filters.customer,
                },
                **(paging or {**to_json(table), "has_more": False, "next_starting_after": None}),
            }
        )
