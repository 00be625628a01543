"""`__any_of`: the `__in` lookup with one array parameter on PostgreSQL, same results."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Customer

pytestmark = pytest.mark.django_db


def test_any_of_matches_what_in_matches(customer_factory):
    # given three customers
    customers = [customer_factory() for _ in range(3)]
    ids = [customers[0].pk, customers[2].pk, customers[0].pk, None, 10**12]

    # when filtered by a list with a duplicate, None and an unknown id, by pk and by a text column
    by_any = set(Customer.objects.filter(pk__any_of=ids).values_list("pk", flat=True))
    by_in = set(Customer.objects.filter(pk__in=ids).values_list("pk", flat=True))
    emails = [customers[1].email, "nobody@example.com"]

    # then the same rows as `__in`, and nothing for an empty list
    assert by_any == by_in == {customers[0].pk, customers[2].pk}
    assert list(Customer.objects.filter(email__any_of=emails).values_list("pk", flat=True)) == [customers[1].pk]
    assert not Customer.objects.filter(pk__any_of=[]).exists()
    assert not Customer.objects.filter(pk__any_of=[None]).exists()


def test_any_of_sends_one_parameter_whatever_the_count(postgres_only, customer_factory):
    # given a customer
    customer = customer_factory()

    # when filtered among 1,000 ids
    with CaptureQueriesContext(connection) as queries:
        found = list(Customer.objects.filter(pk__any_of=[customer.pk, *range(10**9, 10**9 + 999)]))

    # then it is found, and the statement holds one array, not 1,000 placeholders
    assert found == [customer]
    assert "= ANY(" in queries[0]["sql"] and " IN (" not in queries[0]["sql"]


def test_any_of_on_a_foreign_key_column(customer_factory, brand_factory):
    # given customers of two brands
    first, second = brand_factory(), brand_factory()
    mine = customer_factory(brand=first)
    customer_factory(brand=second)

    # when filtered by the foreign key's column
    found = list(Customer.objects.filter(brand_id__any_of=[first.pk]).values_list("pk", flat=True))

    # then only the first brand's customer
    assert found == [mine.pk]
