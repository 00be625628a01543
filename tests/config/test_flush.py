"""The transactional tests' flush keeps post_migrate's rows without letting a test's writes
through (tests/flush.py)."""

from __future__ import annotations

import hashlib
import inspect

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.commands import flush as flush_command
from django.test import TransactionTestCase

from tests import flush

# sha256 of the sources tests/flush.py stands in for (Django 5.2.19). When one changes, read the
# new code: the replacement must still flush what Django's does, with the same exceptions
# (available_apps, serialized_rollback), then update the hash.
DJANGO_FIXTURE_TEARDOWN = "c274615fd69186e1b9616e9d0cc0144f5643ae4a820ea62194d7a333e3fe3da1"
DJANGO_FLUSH_HANDLE = "48df92aa04334d829d392c63369f2d68f567403b8413d469ca4b3371c4f2bca9"

LEAKED_GROUP = "Flush test: leaked group"


def natural_keys() -> dict[str, list[tuple[object, ...]]]:
    """The four tables by natural key (ids differ between two post_migrate runs)."""
    return {
        "content types": sorted(ContentType.objects.values_list("app_label", "model")),
        "permissions": sorted(
            Permission.objects.values_list("content_type__app_label", "content_type__model", "codename", "name")
        ),
        "groups": sorted(Group.objects.values_list("name")),
        "group links": sorted(
            Group.permissions.through.objects.values_list(
                "group__name",
                "permission__content_type__app_label",
                "permission__content_type__model",
                "permission__codename",
            )
        ),
    }


def write_to_the_kept_tables() -> None:
    """What a test may do to the four tables: add to each, remove a role link, rename rows."""
    content_type = ContentType.objects.create(app_label="flushtest", model="leak")
    permission = Permission.objects.create(content_type=content_type, codename="leak_it", name="Can leak")
    Group.objects.create(name=LEAKED_GROUP).permissions.add(permission)
    Group.objects.get(name="Finance").permissions.add(permission)
    support = Group.objects.get(name="Support")
    support.permissions.remove(support.permissions.order_by("codename").first())
    Group.objects.filter(name="Read-only").update(name="Read-only (renamed by a test)")
    Permission.objects.filter(codename="view_customer").update(name="Renamed by a test")


def leaks(keys: dict[str, list[tuple[object, ...]]], expected: dict[str, list[tuple[object, ...]]]) -> list[str]:
    return [
        f"{table}: {sorted(set(keys[table]) ^ set(expected[table]))[:5]}"
        for table in keys
        if keys[table] != expected[table]
    ]


def ensure_snapshot() -> None:
    if "default" not in flush.snapshots:
        flush.flush_keeping_migrated_rows(using="default")  # the first one runs post_migrate and snapshots


def test_djangos_teardown_and_flush_are_the_ones_tests_flush_replaces():
    assert hashlib.sha256(inspect.getsource(flush._django_fixture_teardown).encode()).hexdigest() == (
        DJANGO_FIXTURE_TEARDOWN
    ), "TransactionTestCase._fixture_teardown changed: check tests/flush.py against it"
    assert hashlib.sha256(inspect.getsource(flush_command.Command.handle).encode()).hexdigest() == (
        DJANGO_FLUSH_HANDLE
    ), "the flush command changed: check tests/flush.py against it"
    assert TransactionTestCase._fixture_teardown is flush._fixture_teardown, "tests/conftest.py installs it"


@pytest.mark.django_db(transaction=True)
def test_the_restored_rows_are_the_ones_a_flush_with_post_migrate_creates():
    ensure_snapshot()
    flush.flush_keeping_migrated_rows(using="default")
    restored = natural_keys()

    flush.flush_with_post_migrate(using="default")  # what every transactional teardown used to do
    migrated = natural_keys()

    assert restored == migrated
    assert {name for (name,) in migrated["groups"]} == {"Finance", "Support", "Read-only"}
    counts = {table: len(rows) for table, rows in migrated.items()}
    assert min(counts.values()) > 0, counts
    # One content type per installed model and Django's four default permissions each (plus the
    # custom ones: `billing.approve_refund`…), as post_migrate creates them from the app registry.
    from django.apps import apps  # deferred: only this test reads the app registry

    models = {(model._meta.app_label, model._meta.model_name) for model in apps.get_models()}
    assert models <= set(migrated["content types"])
    assert {
        (model._meta.app_label, model._meta.model_name, f"{action}_{model._meta.model_name}")
        for model in apps.get_models()
        for action in model._meta.default_permissions
    } <= {row[:3] for row in migrated["permissions"]}


@pytest.mark.django_db(transaction=True)
def test_a_tests_writes_to_the_kept_tables_do_not_survive_the_flush():
    ensure_snapshot()
    flush.flush_keeping_migrated_rows(using="default")
    clean = natural_keys()
    write_to_the_kept_tables()
    assert leaks(natural_keys(), clean)  # the writes show

    flush.flush_keeping_migrated_rows(using="default")

    assert leaks(natural_keys(), clean) == []
    assert not Group.objects.filter(name=LEAKED_GROUP).exists()
    assert not ContentType.objects.filter(app_label="flushtest").exists()
    assert ContentType.objects.get_for_model(Group).model == "group"  # the cache points at live rows


@pytest.mark.django_db(transaction=True)
def test_negative_control_without_the_restore_a_tests_writes_leak():
    ensure_snapshot()
    flush.flush_keeping_migrated_rows(using="default")
    clean = natural_keys()
    write_to_the_kept_tables()

    flush.flush_keeping_migrated_rows(using="default", restore=False)  # the four tables kept as they are

    found = leaks(natural_keys(), clean)
    assert len(found) == 4, found  # every table shows the test's writes
    assert Group.objects.filter(name=LEAKED_GROUP).exists()
    # The rest is emptied as before.
    from customers.models import Customer  # deferred: only this check needs it

    assert not Customer.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_flush_empties_every_other_table():
    from django.db import connection  # deferred: only this test lists the tables

    from tests import factories  # deferred: only this test writes business rows

    ensure_snapshot()
    customer = factories.CustomerFactory()
    staff = factories.StaffFactory()
    staff.user_permissions.add(
        Permission.objects.get(content_type__app_label="customers", codename="view_customer")
    )  # references a kept row
    staff.groups.add(Group.objects.get(name="Finance"))
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    written = set(flush.tables_with_rows(using="default", tables=tables))
    assert {customer._meta.db_table, "auth_user_user_permissions", "auth_user_groups"} <= written

    flush.flush_keeping_migrated_rows(using="default")

    assert set(flush.tables_with_rows(using="default", tables=tables)) == set(flush.kept_tables())


# Two tests in this order (`-p no:randomly`; CI's xdist runs a file in one worker): the first writes
# and leaves it to its teardown, the second finds the four tables as post_migrate leaves them.
ordered: dict[str, int] = {}


@pytest.mark.django_db(transaction=True)
def test_ordered_1_a_transactional_test_leaves_writes_to_its_teardown():
    write_to_the_kept_tables()
    ordered["teardowns before"] = flush.teardowns["default"]


@pytest.mark.django_db(transaction=True)
def test_ordered_2_the_next_transactional_test_does_not_see_them():
    if "teardowns before" not in ordered:
        pytest.skip("runs after test_ordered_1 only (random order put it first)")
    assert flush.teardowns["default"] == ordered["teardowns before"] + 1, "pytest-django's teardown reached ours"
    ensure_snapshot()
    expected = natural_keys()
    flush.flush_with_post_migrate(using="default")

    assert natural_keys() == expected
    assert not Group.objects.filter(name=LEAKED_GROUP).exists()
