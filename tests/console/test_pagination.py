"""Issue 20: console lists ask PostgreSQL's planner for the size of a large list instead of
counting it (config/console_pagination.py)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config import console_pagination
from config.console_pagination import EstimatedCountPaginator

pytestmark = pytest.mark.django_db


def _customers(customer_factory, count: int):
    from customers.models import Customer

    for _ in range(count):
        customer_factory()
    return Customer.objects.order_by("pk")


def test_a_small_list_is_counted_exactly(customer_factory):
    queryset = _customers(customer_factory, 3)

    assert EstimatedCountPaginator(queryset, 2).count == 3


def test_a_large_list_takes_the_planners_estimate_without_counting(customer_factory, postgres_only, monkeypatch):
    queryset = _customers(customer_factory, 3)
    monkeypatch.setattr(console_pagination, "ESTIMATE_ABOVE", 0)

    with CaptureQueriesContext(connection) as captured:
        count = EstimatedCountPaginator(queryset.filter(legal_name__startswith="x"), 2).count

    sql = " ".join(query["sql"] for query in captured.captured_queries)
    assert "EXPLAIN" in sql and "COUNT(" not in sql.upper()
    assert count >= 1  # the planner never estimates fewer than one row


def test_the_estimate_is_used_only_above_the_threshold(customer_factory, postgres_only):
    queryset = _customers(customer_factory, 3)

    with CaptureQueriesContext(connection) as captured:
        assert EstimatedCountPaginator(queryset, 2).count == 3

    assert any("COUNT(" in query["sql"].upper() for query in captured.captured_queries)
