"""Hypothesis (issue 16): wallet consumption never makes a line, an invoice, a grant or a wallet
negative; what invoices consumed is exactly what the grants lost; expired credits are never used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.wallets.allocation import AFTER_TAX, BEFORE_TAX, GrantState, LineCapacity, allocate
from billing.wallets.models import CreditGrant, WalletTransaction
from billing.wallets.services import GrantRequest, credit_grant_create
from tests.invoices.helpers import ISSUED_AT, issue

AT = datetime(2026, 3, 10, tzinfo=UTC)

lines_st = st.lists(
    st.builds(
        lambda key, kind, net, tax, price: LineCapacity(key=key, kind=kind, net=net, exclusive_tax=tax, price_id=price),
        key=st.just(0),
        kind=st.sampled_from(["subscription", "usage", "proration", "one_off"]),
        net=st.integers(-50_000, 50_000),
        tax=st.integers(0, 10_000),
        price=st.sampled_from([None, 1, 2]),
    ),
    max_size=6,
).map(lambda lines: [LineCapacity(**{**_fields(line), "key": index}) for index, line in enumerate(lines)])


def _fields(line: LineCapacity) -> dict:
    return {name: getattr(line, name) for name in LineCapacity.__slots__}


grants_st = st.lists(
    st.builds(
        lambda gid, remaining, priority, created, effective, expires, active, applies, prices: GrantState(
            grant_id=gid,
            remaining=remaining,
            priority=priority,
            created_at=AT - timedelta(days=created),
            effective_at=AT + timedelta(days=effective),
            expires_at=None if expires is None else AT + timedelta(days=expires),
            active=active,
            applies_to=applies,
            price_ids=frozenset(prices),
        ),
        gid=st.integers(1, 10**6),
        remaining=st.integers(0, 60_000),
        priority=st.integers(0, 3),
        created=st.integers(0, 30),
        effective=st.integers(-10, 2),
        expires=st.one_of(st.none(), st.integers(-5, 30)),
        active=st.booleans(),
        applies=st.sampled_from(["all", "usage", "prices"]),
        prices=st.sets(st.sampled_from([1, 2]), max_size=2),
    ),
    max_size=6,
    unique_by=lambda grant: grant.grant_id,
)


@given(lines=lines_st, grants=grants_st, mode=st.sampled_from([AFTER_TAX, BEFORE_TAX]))
@settings(max_examples=400, deadline=None)
def test_allocation_never_goes_negative_and_uses_only_usable_eligible_credits(lines, grants, mode):
    total = sum(line.net + line.exclusive_tax for line in lines)
    allocation = allocate(lines=lines, invoice_total=total, grants=grants, at=AT, mode=mode)
    by_id = {grant.grant_id: grant for grant in grants}
    # the invoice is never taken below zero, nor any line below zero
    assert 0 <= allocation.total <= max(total, 0)
    for line in lines:
        assert 0 <= allocation.by_line.get(line.key, 0) <= line.capacity(mode)
    # no grant gives more than it has; expired, future or inactive grants give nothing
    for grant_id, used in allocation.by_grant.items():
        grant = by_id[grant_id]
        assert 0 < used <= grant.remaining
        assert grant.usable_at(AT)
    # what the lines received is what the grants gave
    assert sum(allocation.by_line.values()) == allocation.total


def test_negative_control_a_broken_cap_is_caught():
    # A grant of 100 against an invoice of 30 must stop at 30: the property above would catch 100.
    lines = [LineCapacity(key=0, kind="one_off", net=30, exclusive_tax=0)]
    grants = [GrantState(grant_id=1, remaining=100, priority=0, created_at=AT, effective_at=AT, expires_at=None)]
    assert allocate(lines=lines, invoice_total=30, grants=grants, at=AT).total == 30


amounts_st = st.lists(st.integers(-5_000, 20_000), min_size=1, max_size=3)


@pytest.mark.django_db
@given(
    grants=st.lists(
        st.tuples(st.integers(1, 30_000), st.integers(0, 3), st.one_of(st.none(), st.integers(-3, 10))),
        min_size=1,
        max_size=4,
    ),
    invoices=st.lists(amounts_st, min_size=1, max_size=3),
)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_finalizing_invoices_against_random_grants_keeps_the_ledger_exact(
    customer_factory, brand_factory, tax_rate_factory, grants, invoices
):
    tax_rate_factory(country="FR")
    brand = brand_factory(slug="prop-brand", invoice_number_format="P-{year}-{seq:06d}")
    # a new customer per example (each finalization is its own transaction, as in production)
    customer = customer_factory(brand=brand)
    made = []
    granted_at = ISSUED_AT - timedelta(days=5)
    for amount, priority, expires in grants:
        expires_at = None if expires is None else ISSUED_AT + timedelta(days=expires, hours=1)
        if expires_at is not None and expires_at <= granted_at:
            expires_at = granted_at + timedelta(hours=1)
        made.append(
            credit_grant_create(
                customer=customer,
                request=GrantRequest(amount=amount, currency="EUR", priority=priority, expires_at=expires_at),
                at=granted_at,
            )
        )
    usable_before = sum(grant.amount for grant in made if grant.expires_at is None or grant.expires_at > ISSUED_AT)
    issued = [issue(customer, amounts) for amounts in invoices]
    consumed = sum(invoice.credits_applied for invoice in issued)
    for invoice in issued:
        assert 0 <= invoice.credits_applied <= max(invoice.total, 0)
        assert invoice.amount_due >= 0 or invoice.total < 0
    lost = 0
    for grant in CreditGrant.objects.filter(customer=customer):
        ledger = sum(WalletTransaction.objects.filter(grant=grant).values_list("amount", flat=True))
        assert 0 <= grant.remaining == ledger <= grant.amount
        lost += grant.amount - grant.remaining
        if grant.expires_at is not None and grant.expires_at <= ISSUED_AT:
            assert grant.remaining == grant.amount  # expired credits are never consumed
    assert lost == consumed <= usable_before
    assert consumed == -sum(
        WalletTransaction.objects.filter(kind="consumption", invoice__in=issued).values_list("amount", flat=True)
    )
