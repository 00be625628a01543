"""One lock order (config/locking.py, docs/billing.md "Lock order").

Why no deadlock is possible: a deadlock needs two transactions each waiting for a lock
the other holds. If every transaction takes its locks in one global order (rank, then
primary key), the one holding the greater lock never waits for the smaller one, so no
cycle of waits can form. The tests below check the two halves of that argument:

- every lock in product code is taken by a ranked helper of a `locks.py` (static, AST);
- the runtime checker lets every pair of helpers through in the written order and
  refuses the reverse (so the test suite, which runs with the checker on, fails on any
  code path that takes two locks the other way round).
"""

from __future__ import annotations

import ast
import importlib
import itertools
import re
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps
from django.db import connection, models, transaction
from django.utils import timezone

from config import locking
from config.locking import LOCK_HELPERS, LockOrderViolation, LockRank

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_DIRS = ("billing", "config", "customers", "invoices", "feedback", "reports")
LOCKING_SQL = re.compile(
    r"pg_(try_)?advisory(_xact)?_lock|\bLOCK TABLE\b|\bFOR (NO KEY )?UPDATE\b|\bFOR (KEY )?SHARE\b"
)


# -- static: every lock is in a locks.py, in a ranked helper ------------------------------------


def locks_outside_helpers(source: str, path: str) -> list[str]:
    """Where `source` takes a lock outside a ranked helper of a `locks.py` ("path:line what")."""
    tree = ast.parse(source)
    in_locks_module = Path(path).name == "locks.py"
    problems: list[str] = []

    def is_lock_call(node: ast.AST) -> bool:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            return node.func.attr == "select_for_update"
        return False

    def is_lock_sql(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(LOCKING_SQL.search(node.value))

    def ranked(function: ast.FunctionDef) -> bool:
        for decorator in function.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            name = call.func if call is not None else decorator
            if isinstance(name, ast.Name | ast.Attribute) and (getattr(name, "id", None) or name.attr) == "lock_helper":
                return True
        return False

    def visit(node: ast.AST, function: ast.FunctionDef | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            if is_lock_call(child) or is_lock_sql(child):
                what = "select_for_update()" if is_lock_call(child) else "locking SQL"
                if not in_locks_module:
                    problems.append(f"{path}:{child.lineno} {what} outside a locks.py")
                elif function is None or not ranked(_outermost(function, tree)):
                    problems.append(f"{path}:{child.lineno} {what} in a helper without @lock_helper(rank)")
            visit(child, inner)

    visit(tree, None)
    return problems


def _outermost(function: ast.FunctionDef, tree: ast.Module) -> ast.FunctionDef:
    """The module-level function that contains `function` (a helper's nested code counts as the helper)."""
    for top in tree.body:
        if isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef) and any(node is function for node in ast.walk(top)):
            return top
    return function


def product_sources() -> list[Path]:
    return [
        path
        for directory in PRODUCT_DIRS
        for path in sorted((ROOT / directory).rglob("*.py"))
        if "migrations" not in path.parts and path != ROOT / "config" / "locking.py"
    ]


def test_every_lock_in_product_code_is_a_ranked_helper_of_a_locks_module():
    problems = [
        problem
        for path in product_sources()
        for problem in locks_outside_helpers(path.read_text(), str(path.relative_to(ROOT)))
    ]

    assert problems == []


def test_the_static_check_reports_a_lock_taken_outside_locks_py():
    # Negative control: what the real check must catch.
    service = """
def dunning_step(case_id):
    case = DunningCase.objects.select_for_update().get(pk=case_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [case_id])
        cursor.execute("SELECT * FROM billing_payment WHERE id = %s FOR UPDATE", [case_id])
"""
    helper_without_rank = """
def dunning_case_qs_for_update():
    return DunningCase.objects.order_by("pk").select_for_update()
"""
    ranked_helper = """
@lock_helper(LockRank.DUNNING_CASE)
def dunning_case_qs_for_update():
    return DunningCase.objects.order_by("pk").select_for_update()
"""

    assert [p.split(" ", 1)[1] for p in locks_outside_helpers(service, "billing/services/dunning.py")] == [
        "select_for_update() outside a locks.py",
        "locking SQL outside a locks.py",
        "locking SQL outside a locks.py",
    ]
    assert locks_outside_helpers(helper_without_rank, "billing/locks.py") == [
        "billing/locks.py:3 select_for_update() in a helper without @lock_helper(rank)"
    ]
    assert locks_outside_helpers(ranked_helper, "billing/locks.py") == []


def test_every_locks_module_is_known_to_the_pair_test():
    modules = {
        str(path.relative_to(ROOT).with_suffix("")).replace("/", ".")
        for path in product_sources()
        if path.name == "locks.py"
    }

    assert modules == set(LOCKS_MODULES)


# -- the checker itself ----------------------------------------------------------------------


@pytest.mark.django_db
def test_ranks_taken_upwards_pass_and_downwards_raise():
    with transaction.atomic():
        locking.note_lock(LockRank.SUBSCRIPTION, keys=[5])
        locking.note_lock(LockRank.CUSTOMER, keys=[1, 2])
        locking.note_lock(LockRank.NUMBER_SEQUENCE, keys=[3])
        locking.note_lock(LockRank.CUSTOMER, keys=[2])  # held already: never waits

        with pytest.raises(LockOrderViolation, match="INVOICE locked after NUMBER_SEQUENCE"):
            locking.note_lock(LockRank.INVOICE, keys=[9])
    locking.violations.clear()  # expected here; the suite's guard must not fail this test


@pytest.mark.django_db
def test_rows_of_one_rank_go_up_by_key():
    with transaction.atomic():
        locking.note_lock(LockRank.CUSTOMER, keys=[4])
        locking.note_lock(LockRank.CUSTOMER, keys=[7, 9])
        with pytest.raises(LockOrderViolation, match="keys go up"):
            locking.note_lock(LockRank.CUSTOMER, keys=[5])
    with transaction.atomic(), pytest.raises(LockOrderViolation, match="out of key order"):
        locking.note_lock(LockRank.INVOICE, keys=[3, 2])
    locking.violations.clear()


@pytest.mark.django_db
def test_a_new_transaction_starts_with_nothing_held():
    with transaction.atomic():
        locking.note_lock(LockRank.NUMBER_SEQUENCE, keys=[1])
    with transaction.atomic():
        locking.note_lock(LockRank.CUSTOMER, keys=[1])  # the sequence was released at commit
        with transaction.atomic():  # a savepoint is not a new transaction
            with pytest.raises(LockOrderViolation):
                locking.note_lock(LockRank.SUBSCRIPTION, keys=[1])
    locking.violations.clear()


@pytest.mark.django_db
def test_locks_taken_in_a_savepoint_that_rolled_back_are_released():
    # PostgreSQL releases row locks at a rollback to savepoint; the billing run relies on
    # that when it retries a failed chunk one subscription at a time.
    with transaction.atomic():
        locking.note_lock(LockRank.SUBSCRIPTION, keys=[1])
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            locking.note_lock(LockRank.NUMBER_SEQUENCE, keys=[1])
            1 / 0  # noqa: B018
        locking.note_lock(LockRank.CUSTOMER, keys=[1])

        assert locking.locks_held() == {LockRank.SUBSCRIPTION: {1}, LockRank.CUSTOMER: {1}}
        with transaction.atomic():
            locking.note_lock(LockRank.NUMBER_SEQUENCE, keys=[1])
        with pytest.raises(ZeroDivisionError), transaction.atomic():  # another savepoint at that depth
            1 / 0  # noqa: B018
        with pytest.raises(LockOrderViolation):  # released only by a rollback, not by a release
            locking.note_lock(LockRank.INVOICE, keys=[1])
    locking.violations.clear()


@pytest.mark.django_db
def test_a_helper_queryset_notes_its_rank_and_rows_when_evaluated(customer_factory):
    from customers.locks import customer_qs_for_update
    from invoices.locks import invoice_qs_for_update

    customers = [customer_factory(), customer_factory()]
    with transaction.atomic():
        locked = list(customer_qs_for_update().filter(pk__in=[c.pk for c in customers]))
        list(invoice_qs_for_update().filter(pk=-1))  # no row: no lock

        assert locked == sorted(customers, key=lambda c: c.pk)
        assert locking.locks_held() == {LockRank.CUSTOMER: {c.pk for c in customers}}


@pytest.mark.django_db
def test_the_suite_guard_sees_a_violation_the_code_under_test_swallowed():
    # The billing run, for one, catches a failing subscription's exception and records it.
    seen = len(locking.violations)
    with transaction.atomic():
        locking.note_lock(LockRank.INVOICE, keys=[1])
        try:
            locking.note_lock(LockRank.CUSTOMER, keys=[1])
        except LockOrderViolation:
            pass

    assert len(locking.violations) == seen + 1
    locking.violations.clear()


# -- every pair of helpers, both orders ------------------------------------------------------

LOCKS_MODULES = (
    "billing.locks",
    "billing.checkout.locks",
    "billing.quotes.locks",
    "billing.wallets.locks",
    "config.events.locks",
    "config.ops.locks",
    "customers.locks",
    "feedback.locks",
    "invoices.locks",
    "invoices.einvoicing.locks",
    "invoices.ereporting.locks",
    "invoices.archive.locks",
    "invoices.ledger.locks",
    "reports.locks",
)


def _value(field: models.Field, counter: itertools.count):
    n = next(counter)
    if field.choices:
        return field.choices[0][0]
    if isinstance(field, models.EmailField):
        return f"row{n}@example.com"
    if isinstance(field, models.UUIDField):
        return uuid.uuid4()
    if isinstance(field, models.CharField | models.TextField):
        if field.name == "currency":
            return "EUR"
        if field.name == "country":
            return "FR"
        return f"r{n}"[: field.max_length or 50]
    if isinstance(field, models.DecimalField):
        return Decimal(1)
    if isinstance(field, models.BooleanField):
        return False
    if isinstance(field, models.IntegerField):
        return 1
    if isinstance(field, models.DateTimeField):
        return timezone.now()
    if isinstance(field, models.DateField):
        return timezone.now().date()
    if isinstance(field, models.JSONField):
        return {}
    if isinstance(field, models.FileField):
        return ""
    if isinstance(field, models.BinaryField):
        return b""
    raise AssertionError(f"no value for {field!r}")


# Columns a table's check constraints need besides the required ones.
EXTRA_VALUES = {
    "billing.Coupon": {"percent_off": Decimal(10)},
    "ledger.AccountingPeriod": {"month": date(2026, 1, 1)},  # a month is its first day (check constraint)
    "invoices.CreditNote": {"total": 1, "reduced_amount_due": 1, "credited_to_balance": 0, "refunded": 0},
    # A transmission carries exactly one document (issue 18): its invoice, made on demand.
    "einvoicing.Transmission": {
        "invoice": lambda counter, made: _made(apps.get_model("invoices.Invoice"), counter, made)
    },
}


def _made(model: type[models.Model], counter: itertools.count, made: dict) -> models.Model:
    if model not in made:
        made[model] = make_row(model, counter, made)
    return made[model]


def make_row(model: type[models.Model], counter: itertools.count, made: dict) -> models.Model:
    """One row of `model` with every required column filled (related rows made too)."""
    values = {
        name: value(counter, made) if callable(value) else value
        for name, value in EXTRA_VALUES.get(model._meta.label, {}).items()
    }
    for field in model._meta.concrete_fields:
        if (
            field.name in values
            or field.primary_key
            or field.null
            or field.has_default()
            or getattr(field, "auto_now", False)
        ):
            continue
        if getattr(field, "auto_now_add", False):
            continue
        if field.is_relation:
            related = field.related_model
            if related not in made or field.one_to_one:
                made[related] = make_row(related, counter, made)
            values[field.name] = made[related]
        else:
            values[field.name] = _value(field, counter)
    (row,) = model.objects.bulk_create([model(**values)])
    if row.pk is None:
        row = model.objects.order_by("-pk").first()
    return row


def _taker(name: str, func, row):
    """A callable that takes the helper's lock on `row` (None: its lock needs PostgreSQL)."""
    if name == "billing.locks.billing_run_scope_lock":
        if connection.vendor != "postgresql":
            return None

        def take():
            with func(scope="pair-test") as taken:
                assert taken

        return take
    if name == "billing.locks.usage_partitions_lock":
        return (lambda: func(using="default")) if connection.vendor == "postgresql" else None
    if name == "billing.locks.usage_default_partition_lock":
        if connection.vendor != "postgresql":
            return None
        return lambda: func(using="default", table="billing_usageevent_default")
    if name == "customers.locks.customers_lock_balance":
        return lambda: func(customer_ids=[row.pk])
    if name == "config.ops.locks.handoffs_claim_qs":
        from config.ops.models import Handoff

        if not connection.features.has_select_for_update_skip_locked:
            return None
        return lambda: list(func(Handoff.objects.filter(pk=row.pk)))
    if name == "invoices.ledger.locks.revenue_schedules_claim_qs":
        if not connection.features.has_select_for_update_skip_locked:
            return None
        return lambda: list(func(type(row).objects.filter(pk=row.pk)))
    if name == "invoices.ledger.locks.accounting_periods_share":
        if connection.vendor != "postgresql":
            return None
        return lambda: func(brand_id=row.brand_id, livemode=row.livemode, months=[row.month])
    if name == "invoices.ledger.locks.accounting_period_state_share":
        if connection.vendor != "postgresql":
            return None
        return lambda: func(brand_id=row.brand_id, livemode=row.livemode, month=row.month)
    return lambda: list(func().filter(pk=row.pk))


def _model_of(name: str, func):
    if name in (
        "billing.locks.billing_run_scope_lock",
        "billing.locks.usage_partitions_lock",
        "billing.locks.usage_default_partition_lock",
    ):
        return None
    if name == "invoices.ledger.locks.revenue_schedules_claim_qs":
        from invoices.ledger.models import RevenueSchedule

        return RevenueSchedule
    if name in SHARE_MODE_HELPERS:
        from invoices.ledger.models import AccountingPeriod

        return AccountingPeriod
    if name == "customers.locks.customers_lock_balance":
        from customers.models import Customer

        return Customer
    if name == "config.ops.locks.handoffs_claim_qs":
        from config.ops.models import Handoff

        return Handoff
    return func().model


# Share-mode row locks outside the checked order (docs/billing.md, rank 910): only a close's exclusive
# lock conflicts with them, and a close locks nothing a money movement holds, so any order is safe.
SHARE_MODE_HELPERS = {
    "invoices.ledger.locks.accounting_periods_share",
    "invoices.ledger.locks.accounting_period_state_share",
}


@pytest.mark.django_db(transaction=True)
def test_every_pair_of_lock_helpers_passes_in_the_written_order_and_fails_reversed(brand, customer_factory):
    helpers = {}
    for module_name in LOCKS_MODULES:
        module = importlib.import_module(module_name)
        for attribute in vars(module).values():
            name = f"{getattr(attribute, '__module__', '')}.{getattr(attribute, '__qualname__', '')}"
            if name in LOCK_HELPERS and name.startswith(module_name + "."):
                helpers[name] = attribute
    assert set(helpers) == set(LOCK_HELPERS), "every declared helper lives in a known locks module"

    counter, made = itertools.count(1), {type(brand): brand}
    takers, keys = {}, {}
    for name, func in sorted(helpers.items()):
        model = _model_of(name, func)
        row = None
        if model is not None:
            if model._meta.label == "customers.Customer":
                row = customer_factory()
            elif model in made:  # made already for an earlier helper's row (e.g. a grant's wallet)
                row = made[model]
            else:
                row = made[model] = make_row(model, counter, made)
        taker = _taker(name, func, row)
        if taker is not None:
            takers[name] = taker
            keys[name] = row.pk if row is not None else 0
    if connection.vendor == "postgresql":
        assert set(takers) == set(helpers)

    wrong: list[str] = []
    for first, second in itertools.permutations(sorted(takers), 2):
        # The written order: by rank, then (rows of one rank) by primary key.
        rank_first, rank_second = (LOCK_HELPERS[first], keys[first]), (LOCK_HELPERS[second], keys[second])
        try:
            with transaction.atomic():
                takers[first]()
                takers[second]()
        except LockOrderViolation:
            if rank_first <= rank_second or {first, second} & SHARE_MODE_HELPERS:
                wrong.append(f"{first} then {second}: refused, but the written order allows it")
        else:
            if rank_first > rank_second and not {first, second} & SHARE_MODE_HELPERS:
                wrong.append(f"{first} then {second}: allowed, but it goes against the written order")
    locking.violations.clear()

    assert wrong == []
    assert len(takers) >= 20
