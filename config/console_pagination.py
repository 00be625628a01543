"""The console lists' paginator: no exact COUNT(*) of a large table (issue 20).

The admin changelist asks its paginator for the number of rows on every page view; on a
table of millions of rows (invoices, usage events, the event log) that COUNT(*) costs
more than the page itself. On PostgreSQL this paginator first asks the planner for its
estimate of the list's rows (EXPLAIN, a few milliseconds, filters included): above
`ESTIMATE_ABOVE` rows it uses that estimate (kept fresh by autovacuum's ANALYZE), below
it counts exactly, which is cheap there. SQLite (the embedded default, small data)
always counts. With `show_full_result_count = False` (StyledAdmin) the changelist makes
no second count of the unfiltered table either.
"""

from __future__ import annotations

import json

from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

ESTIMATE_ABOVE = 50_000

__all__ = ["ESTIMATE_ABOVE", "EstimatedCountPaginator", "estimated_count"]


def estimated_count(queryset: QuerySet) -> int | None:
    """The planner's estimate of the queryset's rows on PostgreSQL; None elsewhere."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    try:
        sql, params = queryset.order_by().values("pk").query.sql_with_params()
    except EmptyResultSet:  # `.none()` or a filter that matches nothing by construction
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        (plan,) = cursor.fetchone()
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """A Paginator whose count is the planner's estimate for large lists (see above)."""

    @cached_property
    def count(self) -> int:
        if isinstance(self.object_list, QuerySet):
            estimate = estimated_count(self.object_list)
            if estimate is not None and estimate > ESTIMATE_ABOVE:
                return estimate
        return super().count
