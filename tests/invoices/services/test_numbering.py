from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invoices.errors import NumberingError
from invoices.models import Invoice, NumberSequence
from invoices.services.credit_notes import credit_note_create
from invoices.services.finalize import invoice_finalize
from invoices.services.lifecycle import invoice_void
from invoices.services.numbering import number_sequence_reserve
from tests.factories import BrandFactory, CustomerFactory, TaxRateFactory
from tests.invoices.helpers import ISSUED_AT, create_draft, issue, sequence_number

pytestmark = pytest.mark.django_db


def test_first_invoice_of_a_brand_is_number_one_in_its_format(brand_factory, customer_factory, fr_vat):
    # given a brand numbering INV-{year}-{seq:06d}
    brand = brand_factory(invoice_number_format="INV-{year}-{seq:06d}")
    customer = customer_factory(brand=brand)

    # when its first invoice is finalized in March 2026
    invoice = issue(customer)

    # then it is INV-2026-000001
    assert invoice.number == "INV-2026-000001"


def test_numbers_follow_each_other_without_gaps(customer, fr_vat):
    # given / when three invoices of one brand
    numbers = [issue(customer).number for _ in range(3)]

    # then they are 1, 2, 3 of the series
    assert numbers == ["F-2026-000001", "F-2026-000002", "F-2026-000003"]


def test_yearly_series_restarts_on_new_year_in_the_brand_time_zone(customer, fr_vat):
    # given an invoice on 31 December 2026 at 23:00 in Paris (22:00 UTC)
    december = issue(customer, at=datetime(2026, 12, 31, 22, 0, tzinfo=UTC))

    # when the next is issued at 00:30 on 1 January in Paris (still 31 December in UTC)
    january = issue(customer, at=datetime(2026, 12, 31, 23, 30, tzinfo=UTC))
    next_january = issue(customer, at=datetime(2027, 1, 2, tzinfo=UTC))

    # then the 2027 series starts at 1
    assert december.number == "F-2026-000001"
    assert (january.number, next_january.number) == ("F-2027-000001", "F-2027-000002")


def test_monthly_format_restarts_every_month(brand_factory, customer_factory, fr_vat):
    # given a format with the month
    brand = brand_factory(invoice_number_format="M{year}{month:02d}-{seq:04d}")
    customer = customer_factory(brand=brand)

    # when invoices are issued in March, March, April
    numbers = [
        issue(customer, at=at).number
        for at in (ISSUED_AT, ISSUED_AT, datetime(2026, 4, 1, 8, tzinfo=UTC))  # 10:00 in Paris
    ]

    # then April starts again at 1
    assert numbers == ["M202603-0001", "M202603-0002", "M202604-0001"]


def test_format_without_year_is_one_continuous_series(brand_factory, customer_factory, fr_vat):
    # given a format without {year}
    brand = brand_factory(invoice_number_format="N{seq:05d}")
    customer = customer_factory(brand=brand)

    # when invoices are issued in two years
    numbers = [issue(customer, at=at).number for at in (ISSUED_AT, datetime(2027, 6, 1, tzinfo=UTC))]

    # then the counter goes on
    assert numbers == ["N00001", "N00002"]


def test_two_brands_have_independent_series(brand_factory, customer_factory, fr_vat):
    # given two brands with their own prefixes
    first = customer_factory(brand=brand_factory(invoice_number_format="A-{year}-{seq:04d}"))
    second = customer_factory(brand=brand_factory(invoice_number_format="B-{year}-{seq:04d}"))

    # when their invoices interleave
    numbers = [issue(first).number, issue(second).number, issue(first).number, issue(second).number]

    # then each brand counts on its own
    assert numbers == ["A-2026-0001", "B-2026-0001", "A-2026-0002", "B-2026-0002"]


def test_two_brands_sharing_a_number_format_are_refused(brand_factory, customer_factory, fr_vat):
    # given two brands with the same format
    brand_factory(invoice_number_format="SAME-{seq}")
    customer = customer_factory(brand=brand_factory(invoice_number_format="SAME-{seq}"))

    # when one of them finalizes an invoice
    draft = create_draft(customer)
    with pytest.raises(NumberingError, match="share the number format"), transaction.atomic():
        invoice_finalize(invoice=draft, at=ISSUED_AT)

    # then nothing is numbered
    draft.refresh_from_db()
    assert draft.number is None


def test_credit_notes_have_their_own_series(customer, fr_vat):
    # given two invoices
    first, second = issue(customer), issue(customer)

    # when each gets a credit note
    notes = [
        credit_note_create(invoice=invoice, amount=100, reason="other", at=ISSUED_AT) for invoice in (first, second)
    ]

    # then credit notes count from 1 in their series, invoices carry on in theirs
    assert [note.number for note in notes] == ["AV-2026-000001", "AV-2026-000002"]
    assert issue(customer).number == "F-2026-000003"


def test_a_voided_invoice_keeps_its_number_and_the_series_goes_on(customer, fr_vat):
    # given an issued invoice
    invoice = issue(customer)

    # when it is voided and another one is issued
    invoice_void(invoice=invoice, at=ISSUED_AT, reason="duplicate")
    following = issue(customer)

    # then the voided one still has number 1 and the next is 2
    invoice.refresh_from_db()
    assert (invoice.status, invoice.number) == ("void", "F-2026-000001")
    assert following.number == "F-2026-000002"


def test_drafts_never_get_a_number(customer, fr_vat):
    # given drafts, one of them deleted
    kept = create_draft(customer)
    create_draft(customer).delete()

    # when another invoice is finalized
    issued = issue(customer)

    # then the drafts have no number and the deleted one used none
    kept.refresh_from_db()
    assert kept.number is None
    assert issued.number == "F-2026-000001"


def test_reserving_a_thousand_numbers_takes_as_many_queries_as_one(brand, fr_vat):
    # given a series already in use this year
    number_sequence_reserve(brand=brand, kind=NumberSequence.Kind.INVOICE, at=ISSUED_AT)

    # when one number, then a thousand, are reserved
    with CaptureQueriesContext(connection) as one:
        number_sequence_reserve(brand=brand, kind=NumberSequence.Kind.INVOICE, at=ISSUED_AT)
    with CaptureQueriesContext(connection) as thousand:
        numbers = number_sequence_reserve(brand=brand, kind=NumberSequence.Kind.INVOICE, at=ISSUED_AT, count=1000)

    # then the numbers are consecutive, with the same query count
    assert (numbers[0], numbers[-1]) == ("F-2026-000003", "F-2026-001002")
    assert len(thousand.captured_queries) == len(one.captured_queries) <= 3


def test_reserving_needs_an_aware_date_and_a_positive_count(brand):
    with pytest.raises(NumberingError, match="aware"), transaction.atomic():
        number_sequence_reserve(brand=brand, kind="invoice", at=datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(NumberingError, match="at least one"), transaction.atomic():
        number_sequence_reserve(brand=brand, kind="invoice", at=ISSUED_AT, count=0)


# -- property: any interleaving keeps every series gapless --------------------------------

YEARS = (datetime(2026, 5, 1, 12, tzinfo=UTC), datetime(2027, 5, 1, 12, tzinfo=UTC))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("issue"), st.integers(0, 1), st.integers(0, 1)),  # brand, year
        st.tuples(st.just("draft"), st.integers(0, 1), st.integers(0, 1)),
        st.tuples(st.just("void"), st.integers(0, 30), st.just(0)),  # which issued invoice
        st.tuples(st.just("credit"), st.integers(0, 30), st.just(0)),
    ),
    min_size=1,
    max_size=14,
)
example_counter = iter(range(10**6))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=operations)
def test_any_interleaving_of_issue_void_and_credit_keeps_series_gapless(steps):
    # given two fresh brands (own prefixes) with a customer each
    TaxRateFactory(country="FR")
    run = next(example_counter)
    customers = [
        CustomerFactory(
            brand=BrandFactory(
                invoice_number_format=f"P{run}X{index}-{{year}}-{{seq:04d}}",
                credit_note_number_format=f"C{run}X{index}-{{year}}-{{seq:04d}}",
            )
        )
        for index in range(2)
    ]
    issued: list[Invoice] = []

    # when the steps run in order
    for action, target, year in steps:
        if action == "issue":
            issued.append(issue(customers[target], at=YEARS[year]))
        elif action == "draft":
            create_draft(customers[target], at=YEARS[year])
        elif issued:
            invoice = issued[target % len(issued)]
            invoice.refresh_from_db()
            if action == "void" and invoice.status == "open" and not invoice.credit_notes.exists():
                invoice_void(invoice=invoice, at=YEARS[1])
            elif action == "credit" and invoice.status in ("open", "paid") and not invoice.credit_notes.exists():
                credit_note_create(invoice=invoice, amount=100, reason="other", at=invoice.finalized_at)

    # then every series (brand x kind x year) counts 1..n in issue order
    for customer in customers:
        for year in (2026, 2027):
            invoice_numbers = list(
                Invoice.objects.filter(brand=customer.brand, finalized_at__year=year)
                .order_by("finalized_at", "pk")
                .values_list("number", flat=True)
            )
            assert [sequence_number(number) for number in invoice_numbers] == list(range(1, len(invoice_numbers) + 1))
            note_numbers = list(
                customer.brand.credit_notes.filter(issued_at__year=year).order_by("pk").values_list("number", flat=True)
            )
            assert [sequence_number(number) for number in note_numbers] == list(range(1, len(note_numbers) + 1))
    assert not Invoice.objects.filter(brand__in=[c.brand for c in customers], status="draft", number__isnull=False)
