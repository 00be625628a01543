"""The price-in-use and coupon freezes have one home each, and the database's copy agrees.

billing/services/catalog.py owns "a used price keeps its terms" (PRICE_TERM_FIELDS and the
price_uses predicate) and billing/services/coupons.py owns "a redeemed coupon keeps its
terms" (COUPON_TERMS, coupon_is_redeemed); the console, imports and the API all go through
them. On PostgreSQL the triggers of billing/migrations/0012 refuse the same changes: these
tests read the triggers back from pg_catalog and compare them with the services' lists,
so a term added on one side only fails here.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection

from billing.models import Coupon, Price
from billing.services.catalog import PRICE_TERM_FIELDS, price_uses
from billing.services.coupons import COUPON_TERMS

pytestmark = pytest.mark.postgres

_CHANGED = re.compile(r"OLD\.(\w+) IS DISTINCT FROM NEW\.\1")
_USED_BY = re.compile(r"FROM (\w+) WHERE price_id = OLD\.id")


def function_sql(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_functiondef(%s::regproc)", [name])
        return cursor.fetchone()[0]


def triggers_on(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal", [table])
        return {row[0] for row in cursor.fetchall()}


def columns(model, field_names) -> set[str]:
    return {model._meta.get_field(name).column for name in field_names}


def disagreement(*, database: set[str], service: set[str]) -> dict[str, set[str]]:
    """What one side freezes and the other does not (empty when they agree)."""
    return {
        name: found
        for name, found in (("database only", database - service), ("service only", service - database))
        if found
    }


def price_frozen_in_database() -> set[str]:
    return set(_CHANGED.findall(function_sql("tarif_price_frozen")))


def coupon_frozen_in_database() -> set[str]:
    return set(_CHANGED.findall(function_sql("tarif_coupon_frozen")))


def coupon_service_columns() -> set[str]:
    # applies_to is many-to-many: its own trigger guards the link table (checked below).
    return columns(Coupon, [name for name in COUPON_TERMS if not Coupon._meta.get_field(name).many_to_many])


def test_the_price_trigger_freezes_the_catalog_services_terms(postgres_only):
    frozen = price_frozen_in_database()
    assert frozen, "the trigger's column list could not be read"
    assert disagreement(database=frozen, service=columns(Price, PRICE_TERM_FIELDS)) == {}


def test_the_price_trigger_and_the_service_agree_on_what_uses_a_price(postgres_only):
    in_database = set(_USED_BY.findall(function_sql("tarif_price_frozen")))
    in_service = {use.query.model._meta.db_table for use in price_uses()}
    assert in_database
    assert disagreement(database=in_database, service=in_service) == {}


def test_the_coupon_triggers_freeze_the_coupon_services_terms(postgres_only):
    frozen = coupon_frozen_in_database()
    assert frozen, "the trigger's column list could not be read"
    assert disagreement(database=frozen, service=coupon_service_columns()) == {}
    link_table = Coupon._meta.get_field("applies_to").remote_field.through._meta.db_table
    assert ("applies_to" in COUPON_TERMS) == ("tarif_coupon_products_frozen" in triggers_on(link_table))
    # and "redeemed" means the same: a redemption counted, or a subscription holding the coupon
    redeemed = function_sql("tarif_coupon_is_redeemed")
    assert "times_redeemed > 0" in redeemed and "FROM billing_subscription WHERE coupon_id" in redeemed


def test_negative_control_a_term_dropped_from_the_trigger_is_caught(postgres_only):
    # given the price trigger without tax_behavior (inside the test's transaction, rolled back)
    sql = function_sql("tarif_price_frozen")
    weakened = sql.replace(" OR OLD.tax_behavior IS DISTINCT FROM NEW.tax_behavior", "")
    assert weakened != sql
    with connection.cursor() as cursor:
        cursor.execute(weakened)

    # then the comparison names the term only the service freezes
    assert disagreement(database=price_frozen_in_database(), service=columns(Price, PRICE_TERM_FIELDS)) == {
        "service only": {"tax_behavior"}
    }


def test_negative_control_a_term_added_to_the_service_only_is_caught(postgres_only):
    with_nickname = (*PRICE_TERM_FIELDS, "nickname")
    assert disagreement(database=price_frozen_in_database(), service=columns(Price, with_nickname)) == {
        "service only": {"nickname"}
    }
    assert disagreement(database=coupon_frozen_in_database(), service=coupon_service_columns() | {"name"}) == {
        "service only": {"name"}
    }
