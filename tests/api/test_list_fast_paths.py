"""Issue 20: the invoice list's cheaper paths answer exactly what the general ones did.

- a list request without filter parameters skips django-filter's FilterSet
  (config.api.filters.filterset_reads_nothing);
- the API key is read with a cursor and `ApiKey.from_db` instead of `raw()`;
- the invoice list clones a `.values()` query set up once per process;
- the unfiltered first page of the invoice list runs SQL compiled once (config.api.first_page).
"""

from __future__ import annotations

import django_filters
import pytest
from django.test import RequestFactory
from rest_framework.request import Request

from config.api import filters as api_filters
from config.api.authentication import _key_by_hash
from config.api.pagination import ApiCursorPagination
from config.models import ApiKey, api_key_hash
from invoices import apis as invoice_apis
from invoices.apis import InvoiceFilter, InvoiceViewSet
from invoices.models import Invoice
from tests.api.conftest import assert_problem
from tests.api.test_invoices import draft_for, subscribe

pytestmark = pytest.mark.django_db

# Lists with a FilterSet class and lists with `filterset_fields` (django-filter builds a class per call).
LISTS = [
    "/api/v1/invoices",
    "/api/v1/invoices?limit=1",
    "/api/v1/invoices?expand=customer",
    "/api/v1/customers?limit=5",
    "/api/v1/subscriptions",
    "/api/v1/credit_notes",
    "/api/v1/brands",
    "/api/v1/products",
]


@pytest.fixture
def invoices(api, billing_world, customer_factory):
    customer, price = billing_world
    subscribe(api, customer, price)
    draft_for(customer, amount=1234)
    draft_for(customer_factory(legal_name="Other SAS"), amount=99)
    return list(Invoice.objects.order_by("-pk"))


@pytest.mark.parametrize("url", LISTS)
def test_a_list_without_filters_answers_byte_for_byte_what_the_filterset_gave(api, invoices, url, monkeypatch):
    # given the same list read with the FilterSet skipped (now) and built (before)
    skipped = api.get(url)
    monkeypatch.setattr(api_filters, "filterset_reads_nothing", lambda *args: False)
    built = api.get(url)

    # then the answers are the same bytes
    assert skipped.status_code == built.status_code == 200, skipped.content
    assert skipped.content == built.content


def test_each_page_followed_by_its_cursor_is_the_same_with_and_without_the_filterset(api, invoices, monkeypatch):
    def pages() -> list[bytes]:
        seen, url = [], "/api/v1/invoices?limit=1"
        while url:
            response = api.get(url)
            assert response.status_code == 200
            seen.append(response.content)
            url = response.json()["next"]
        return seen

    skipped = pages()
    monkeypatch.setattr(api_filters, "filterset_reads_nothing", lambda *args: False)
    assert pages() == skipped and len(skipped) == len(invoices)


def test_filters_still_apply_next_to_pagination_parameters(api, invoices):
    customer_id = invoices[-1].customer_id
    drafts = api.get("/api/v1/invoices", {"status": "draft", "limit": 10}).json()["data"]
    mine = api.get("/api/v1/invoices", {"customer": f"cus_{customer_id}", "limit": 10}).json()["data"]
    other = api.get("/api/v1/invoices", {"currency": "usd"}).json()["data"]

    assert {row["status"] for row in drafts} == {"draft"} and len(drafts) == 2
    assert {row["customer"] for row in mine} == {f"cus_{customer_id}"} and len(mine) == 2
    assert other == []


def test_bad_filter_values_are_still_refused(api, invoices):
    assert_problem(api.get("/api/v1/invoices", {"customer": "sub_1", "limit": 2}), 400, "invalid_id")
    assert api.get("/api/v1/invoices", {"created_after": "yesterday"}).status_code == 400
    assert_problem(api.get("/api/v1/invoices", {"limit": 2, "bogus": "1"}), 400, "unknown_parameter")


def test_another_modes_invoices_stay_out_of_the_unfiltered_list(sandbox_api, invoices):
    assert sandbox_api.get("/api/v1/invoices").json()["data"] == []


def _view_for(query: str) -> tuple[Request, InvoiceViewSet]:
    view = InvoiceViewSet()
    view.action = "list"
    request = Request(RequestFactory().get(f"/api/v1/invoices{query}"))
    view.request = view._request = request  # type: ignore[attr-defined]
    view.format_kwarg = None
    return request, view


@pytest.mark.parametrize(
    ("query", "reads_nothing"),
    [
        ("", True),
        ("?limit=5", True),
        ("?limit=5&cursor=abc&expand=customer", True),
        ("?status=open", False),
        ("?limit=5&created_after=2026-01-01T00:00:00Z", False),
        ("?customer=cus_1", False),
    ],
)
def test_the_filterset_is_skipped_only_when_no_parameter_could_reach_it(query, reads_nothing):
    request, view = _view_for(query)
    assert api_filters.filterset_reads_nothing(request, view, InvoiceFilter) is reads_nothing


def test_a_filterset_with_a_required_filter_or_its_own_filtering_is_never_skipped():
    request, view = _view_for("?limit=5")

    class Required(InvoiceFilter):
        status = django_filters.CharFilter(required=True)

    class OwnFiltering(InvoiceFilter):
        def filter_queryset(self, queryset):
            return queryset.filter(status="paid")

    assert api_filters.filterset_reads_nothing(request, view, InvoiceFilter)
    assert not api_filters.filterset_reads_nothing(request, view, Required)
    assert not api_filters.filterset_reads_nothing(request, view, OwnFiltering)


def test_the_key_lookup_loads_the_key_as_the_orm_does(make_key):
    key, raw = make_key(scope="read", mode="test")
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=key.created_at)

    found = _key_by_hash(api_key_hash(raw))
    expected = ApiKey.objects.get(pk=key.pk)

    assert found is not None and not found._state.adding and found._state.db == expected._state.db
    for field in ApiKey._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    assert found.created_at.tzinfo is not None and found.last_used_at == expected.last_used_at
    assert found.created_by == expected.created_by
    assert _key_by_hash(api_key_hash(raw + "x")) is None


FIRST_PAGES = [
    "/api/v1/invoices",
    "/api/v1/invoices?limit=1",
    "/api/v1/invoices?limit=2",
    "/api/v1/invoices?limit=3",
    "/api/v1/invoices?limit=100",
]


@pytest.fixture
def first_page_reads(monkeypatch) -> list[int]:
    """The page sizes the precompiled first page was asked for (proves the fast path ran)."""
    sizes: list[int] = []
    compiled_rows = invoice_apis._INVOICE_FIRST_PAGE.rows

    def spy(*, livemode: bool, size: int) -> list[dict]:
        sizes.append(size)
        return compiled_rows(livemode=livemode, size=size)

    monkeypatch.setattr(invoice_apis._INVOICE_FIRST_PAGE, "rows", spy)
    return sizes


@pytest.mark.parametrize("url", FIRST_PAGES)
def test_the_first_page_from_precompiled_sql_is_byte_for_byte_the_general_paths(
    api, invoices, url, monkeypatch, first_page_reads
):
    # given the first page read from the SQL compiled once (now) and through the paginator's queryset (before)
    compiled = api.get(url)
    assert first_page_reads, "the precompiled first page did not run"
    monkeypatch.setattr(ApiCursorPagination, "paginate_first_page", lambda *args, **kwargs: None)
    general = api.get(url)

    # then the answers are the same bytes: rows, has_more and the next link
    assert compiled.status_code == general.status_code == 200, compiled.content
    assert compiled.content == general.content
    assert compiled.json()["has_more"] is (len(invoices) > int(url.partition("limit=")[2] or 20))


def test_the_precompiled_first_page_keeps_each_mode_to_its_own_invoices(
    api, sandbox_api, invoices, customer_factory, first_page_reads
):
    # given a test-mode customer with an invoice next to the live ones
    sandbox_customer = customer_factory(legal_name="Sandbox SAS", livemode=False)
    sandbox_invoice = draft_for(sandbox_customer, amount=77)

    # when each key reads its first page (the statement is compiled per mode)
    live = api.get("/api/v1/invoices?limit=100").json()["data"]
    test = sandbox_api.get("/api/v1/invoices?limit=100").json()["data"]
    live_again = api.get("/api/v1/invoices?limit=100").json()["data"]

    # then each sees its own mode only, whichever compiled first
    assert len(first_page_reads) == 3
    assert (
        [row["id"] for row in live] == [f"in_{invoice.pk}" for invoice in invoices] == [row["id"] for row in live_again]
    )
    assert [row["id"] for row in test] == [f"in_{sandbox_invoice.pk}"]


def test_the_precompiled_first_page_reads_the_rows_of_the_moment(api, invoices, customer_factory, first_page_reads):
    # the SQL is kept, never the rows: a new invoice is on the next answer
    before = api.get("/api/v1/invoices?limit=1").json()
    newest = draft_for(customer_factory(legal_name="Newest SAS"), amount=5)
    after = api.get("/api/v1/invoices?limit=1").json()

    assert before["data"][0]["id"] == f"in_{invoices[0].pk}"
    assert after["data"][0]["id"] == f"in_{newest.pk}" and after["has_more"] is True
    assert first_page_reads == [2, 2]


@pytest.mark.parametrize(
    "query",
    [{"limit": 1, "cursor": "cD0x"}, {"status": "draft"}, {"limit": 5, "expand": "customer"}, {"limit": 0}],
)
def test_a_cursor_a_filter_expand_or_a_bad_limit_never_reads_the_precompiled_page(
    api, invoices, query, first_page_reads
):
    response = api.get("/api/v1/invoices", query)

    assert first_page_reads == []
    if query.get("limit") == 0:
        assert_problem(response, 400, "invalid_limit")
    else:
        assert response.status_code == 200
