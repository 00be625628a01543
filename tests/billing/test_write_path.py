"""Frozen catalog terms hold on every write path: console, spreadsheet import, API, and the database.

A redeemed coupon keeps its discount (percent or amount, duration, products); a used
price keeps what it charges. The rule is one function in each service; the console,
the import and the API call it, and on PostgreSQL a trigger refuses raw UPDATEs too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import tablib
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from billing.cycles import CycleSpec
from billing.models import Coupon, Price, Subscription, SubscriptionItem
from billing.resources import CouponResource, PriceResource
from billing.services.catalog import PriceInUse, price_update
from billing.services.coupons import CouponInUse, coupon_delete, coupon_update
from tests.admin_forms import change_form_data
from tests.api.conftest import assert_problem, client_for

pytestmark = pytest.mark.django_db

MONTHLY = {"kind": "interval", "unit": "month", "count": 1}
FROZEN = "archive it and create a new one"


def _subscription(customer, *, price: Price | None = None, coupon: Coupon | None = None) -> Subscription:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    subscription = Subscription.objects.create(
        customer=customer,
        status=Subscription.Status.ACTIVE,
        currency="EUR",
        cycle=MONTHLY,
        billing_cycle_anchor=start,
        current_period_start=start,
        current_period_end=datetime(2026, 2, 1, tzinfo=UTC),
        coupon=coupon,
    )
    if price is not None:
        SubscriptionItem.objects.create(subscription=subscription, price=price, quantity=1)
    return subscription


def _upload(dataset: tablib.Dataset, name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, dataset.export("csv").encode(), content_type="text/csv")


@pytest.fixture
def api(staff_factory):
    """An integrator's read-write API key (the same as tests/api's fixture)."""
    from config.api.keys import api_key_create

    _key, raw = api_key_create(
        name="test key", scope="read_write", mode="live", created_by=staff_factory(username="integrations")
    )
    return client_for(raw)


@pytest.fixture
def redeemed_coupon(customer) -> Coupon:
    coupon = Coupon.objects.create(name="Bienvenue", percent_off=Decimal(10), duration=Coupon.Duration.FOREVER)
    _subscription(customer, coupon=coupon)
    Coupon.objects.filter(pk=coupon.pk).update(times_redeemed=1)
    coupon.refresh_from_db()
    return coupon


# -- coupons -------------------------------------------------------------------------


COUPON_HEADERS = ["id", "name", "percent_off", "amount_off", "currency", "duration", "duration_in_periods"]


def test_an_import_cannot_change_a_redeemed_coupons_percent(console, redeemed_coupon):
    # given a spreadsheet that raises the discount of a coupon customers already hold
    dataset = tablib.Dataset(headers=COUPON_HEADERS)
    dataset.append([redeemed_coupon.pk, "Bienvenue", "50", "", "", "forever", ""])

    # when it is imported in the console
    response = console.post(
        "/admin/billing/coupon/import/",
        {"import_file": _upload(dataset, "coupons.csv"), "format": "0", "resource": "0"},
    )

    # then the row is refused with the reason, there is nothing to confirm, and the coupon is as sold
    page = response.content.decode()
    assert response.status_code == 200
    assert "has been redeemed" in page and "percent_off" in page
    assert 'name="import_file_name"' not in page
    redeemed_coupon.refresh_from_db()
    assert redeemed_coupon.percent_off == Decimal(10)


def test_an_import_may_still_rename_a_redeemed_coupon_and_change_an_unredeemed_one(redeemed_coupon):
    # given a redeemed coupon and one nobody used yet
    fresh = Coupon.objects.create(name="Printemps", percent_off=Decimal(5))
    dataset = tablib.Dataset(headers=COUPON_HEADERS)
    dataset.append([redeemed_coupon.pk, "Bienvenue (2026)", "10", "", "", "forever", ""])
    dataset.append([fresh.pk, "Printemps", "15", "", "", "once", ""])

    # when the spreadsheet is imported
    result = CouponResource().import_data(dataset, dry_run=False)

    # then the name of the first and the terms of the second changed
    assert not result.has_errors() and not result.has_validation_errors()
    redeemed_coupon.refresh_from_db()
    fresh.refresh_from_db()
    assert redeemed_coupon.name == "Bienvenue (2026)" and redeemed_coupon.percent_off == Decimal(10)
    assert fresh.percent_off == Decimal(15)


def test_an_import_cannot_limit_a_redeemed_coupon_to_other_products(redeemed_coupon, product_factory):
    # given a product the coupon was never limited to
    product_factory(name="Nuage Pro")
    dataset = tablib.Dataset(headers=["id", "name", "percent_off", "duration", "applies_to"])
    dataset.append([redeemed_coupon.pk, "Bienvenue", "10", "forever", "Nuage Pro"])

    # when a spreadsheet limits the coupon to it
    result = CouponResource().import_data(dataset, dry_run=False)

    # then the row is refused and the coupon still applies to everything
    assert result.has_validation_errors()
    assert not redeemed_coupon.applies_to.exists()


def test_the_coupon_service_keeps_a_redeemed_coupons_terms(redeemed_coupon):
    # when the terms change through the service, then it refuses; the name and the limits may change
    with pytest.raises(CouponInUse, match="has been redeemed"), transaction.atomic():
        coupon_update(coupon=redeemed_coupon, changes={"percent_off": Decimal(50)})
    coupon_update(coupon=redeemed_coupon, changes={"name": "Bienvenue (2026)", "max_redemptions": 100})

    redeemed_coupon.refresh_from_db()
    assert redeemed_coupon.percent_off == Decimal(10)
    assert (redeemed_coupon.name, redeemed_coupon.max_redemptions) == ("Bienvenue (2026)", 100)


def test_a_coupon_redeemed_while_its_console_page_was_open_keeps_its_terms(console, customer):
    # given a staff member who opened an unredeemed coupon's page
    coupon = Coupon.objects.create(name="Été", percent_off=Decimal(10))
    url = reverse("admin:billing_coupon_change", args=[coupon.pk])
    page = console.get(url)
    # and a customer who redeems it meanwhile
    _subscription(customer, coupon=coupon)

    # when the staff member saves a bigger discount
    response = console.post(url, change_form_data(page, percent_off="50"))

    # then the form says why and the coupon is as sold
    assert response.status_code == 200
    assert "has been redeemed" in response.content.decode()
    coupon.refresh_from_db()
    assert coupon.percent_off == Decimal(10)


def test_the_api_changes_a_coupons_name_but_not_its_terms_once_redeemed(api, redeemed_coupon):
    renamed = api.patch(f"/api/v1/coupons/coupon_{redeemed_coupon.pk}", {"name": "Merci"}, format="json")
    refused = api.patch(f"/api/v1/coupons/coupon_{redeemed_coupon.pk}", {"percent_off": "50"}, format="json")

    assert renamed.status_code == 200, renamed.content
    assert "has been redeemed" in assert_problem(refused, 422)["detail"]
    redeemed_coupon.refresh_from_db()
    assert (redeemed_coupon.name, redeemed_coupon.percent_off) == ("Merci", Decimal(10))


def test_the_database_refuses_to_change_a_redeemed_coupons_terms(postgres_only, redeemed_coupon, product_factory):
    # when raw SQL changes the percent, or limits the coupon to a product
    with pytest.raises(DatabaseError, match="redeemed"), transaction.atomic():
        Coupon.objects.filter(pk=redeemed_coupon.pk).update(percent_off=Decimal(50))
    with pytest.raises(DatabaseError, match="redeemed"), transaction.atomic():
        redeemed_coupon.applies_to.add(product_factory())

    # then the terms stayed; the name and the redemption counter still move
    Coupon.objects.filter(pk=redeemed_coupon.pk).update(name="Bienvenue (2026)", times_redeemed=2)
    redeemed_coupon.refresh_from_db()
    assert redeemed_coupon.percent_off == Decimal(10) and redeemed_coupon.times_redeemed == 2


def test_the_database_lets_an_unredeemed_coupon_change(postgres_only):
    coupon = Coupon.objects.create(name="Été", percent_off=Decimal(10))

    Coupon.objects.filter(pk=coupon.pk).update(percent_off=Decimal(20))

    coupon.refresh_from_db()
    assert coupon.percent_off == Decimal(20)


# -- prices --------------------------------------------------------------------------


@pytest.fixture
def make_used(customer):
    return lambda price: _subscription(customer, price=price)


def _console_write(console, price: Price, use, **changes) -> str:
    """Save the price's console page, opened before `use` (so its terms were still editable)."""
    url = reverse("admin:billing_price_change", args=[price.pk])
    page = console.get(url)
    use(price)
    if "unit_amount" in changes:  # the console's form is typed in major units (euros), the others in cents
        changes["unit_amount"] = format(Decimal(changes["unit_amount"]).scaleb(-2), "f")
    response = console.post(url, change_form_data(page, **changes))
    if response.status_code == 302:
        return ""
    form = response.context["adminform"].form
    return " ".join([*form.non_field_errors(), *(str(errors) for errors in form.errors.values())])


def _import_write(price: Price, use, **changes) -> str:
    use(price)
    row = {
        "id": price.pk,
        "product": price.product.name,
        "nickname": price.nickname,
        "lookup_key": price.lookup_key,
        "currency": price.currency,
        "type": price.type,
        "scheme": price.scheme,
        "unit_amount": price.unit_amount,
        "cycle": "every month",
    }
    row.update(changes)
    dataset = tablib.Dataset(headers=list(row))
    dataset.append(list(row.values()))
    result = PriceResource().import_data(dataset, dry_run=False)
    return " ".join(message for invalid in result.invalid_rows for message in invalid.error.messages)


def _api_write(api, price: Price, use, **changes) -> str:
    use(price)
    response = api.patch(f"/api/v1/prices/price_{price.pk}", changes, format="json")
    return "" if response.status_code == 200 else response.json()["detail"]


@pytest.fixture(params=["console", "import", "api"])
def write_price(request, console, api):
    """Write a price through one entry point; `use` runs before the write (after the console page opened)."""
    writers = {
        "console": lambda price, use, **changes: _console_write(console, price, use, **changes),
        "import": lambda price, use, **changes: _import_write(price, use, **changes),
        "api": lambda price, use, **changes: _api_write(api, price, use, **changes),
    }
    return writers[request.param]


def _unused(price: Price) -> None:
    pass


def test_every_write_path_refuses_to_change_what_a_used_price_charges(write_price, price_factory, make_used):
    price = price_factory(lookup_key="pro-monthly", nickname="Pro", unit_amount=Decimal(2900))

    error = write_price(price, make_used, unit_amount="3900")

    assert FROZEN in error and "unit_amount" in error
    price.refresh_from_db()
    assert price.unit_amount == Decimal(2900)


def test_every_write_path_renames_a_used_price_when_its_terms_are_sent_unchanged(write_price, price_factory, make_used):
    # The API used to refuse any PATCH naming a term, even with its current value.
    price = price_factory(lookup_key="pro-monthly", nickname="Pro", unit_amount=Decimal(2900))

    error = write_price(price, make_used, nickname="Pro (legacy)", unit_amount="2900", currency="EUR")

    assert error == ""
    price.refresh_from_db()
    assert (price.nickname, price.unit_amount) == ("Pro (legacy)", Decimal(2900))


def test_every_write_path_changes_an_unused_price(write_price, price_factory):
    price = price_factory(lookup_key="starter", nickname="Starter", unit_amount=Decimal(1900))

    error = write_price(price, _unused, unit_amount="2500")

    assert error == ""
    price.refresh_from_db()
    assert price.unit_amount == Decimal(2500)


@pytest.fixture
def used_price(price_factory, make_used) -> Price:
    price = price_factory(lookup_key="pro-monthly", nickname="Pro", unit_amount=Decimal(2900))
    make_used(price)
    return price


def test_a_price_used_while_its_console_page_was_open_keeps_its_terms(console, customer, price_factory):
    # given a staff member who opened an unused price's page, and a subscription to it made meanwhile
    price = price_factory(lookup_key="pro", nickname="Pro", unit_amount=Decimal(2900))
    url = reverse("admin:billing_price_change", args=[price.pk])
    page = console.get(url)
    _subscription(customer, price=price)

    # when the staff member saves a new amount
    response = console.post(url, change_form_data(page, unit_amount="3900"))

    # then the form says why and the price still charges what the subscriber signed for
    assert response.status_code == 200
    assert FROZEN in response.content.decode()
    price.refresh_from_db()
    assert price.unit_amount == Decimal(2900)


def test_the_price_service_compares_values_not_field_names(used_price):
    # The same cycle written differently, and the same amount with more decimals, change nothing.
    price_update(
        price=used_price, changes={"cycle": CycleSpec.every(1, "month").to_dict(), "unit_amount": Decimal("2900.00")}
    )
    with pytest.raises(PriceInUse, match="currency"):
        price_update(price=used_price, changes={"currency": "USD"})


def test_the_database_refuses_to_change_a_used_prices_terms(postgres_only, used_price):
    with pytest.raises(DatabaseError, match="is used"), transaction.atomic():
        Price.objects.filter(pk=used_price.pk).update(unit_amount=Decimal(1))
    with pytest.raises(DatabaseError, match="is used"), transaction.atomic():
        Price.objects.filter(pk=used_price.pk).update(cycle={"kind": "interval", "unit": "year", "count": 1})

    Price.objects.filter(pk=used_price.pk).update(nickname="Pro (legacy)", active=False)
    used_price.refresh_from_db()
    assert used_price.unit_amount == Decimal(2900) and used_price.nickname == "Pro (legacy)"


def test_the_database_lets_an_unused_price_change(postgres_only, price_factory):
    price = price_factory(unit_amount=Decimal(2900))

    Price.objects.filter(pk=price.pk).update(unit_amount=Decimal(3900))

    with connection.cursor() as cursor:
        cursor.execute("SELECT unit_amount FROM billing_price WHERE id = %s", [price.pk])
        assert cursor.fetchone()[0] == Decimal(3900)


def test_the_console_deletes_an_unused_coupon_but_never_a_redeemed_one(console, redeemed_coupon):
    # given a coupon nobody used next to the redeemed one
    unused = Coupon.objects.create(name="Jamais", percent_off=Decimal(5))
    changelist = reverse("admin:billing_coupon_changelist")

    # when both are selected for deletion, then the unused one alone
    both = console.post(
        changelist, {"action": "delete_selected", "_selected_action": [unused.pk, redeemed_coupon.pk], "post": "yes"}
    )
    alone = console.post(changelist, {"action": "delete_selected", "_selected_action": [unused.pk], "post": "yes"})

    # then the redeemed coupon was never deleted (the page says so), the unused one was
    assert both.status_code == 200 and "Cannot delete" in both.content.decode()
    assert alone.status_code == 302
    assert not Coupon.objects.filter(pk=unused.pk).exists()
    assert Coupon.objects.filter(pk=redeemed_coupon.pk).exists()
    with pytest.raises(CouponInUse), transaction.atomic():
        coupon_delete(coupon=redeemed_coupon)


def test_a_product_a_redeemed_coupon_is_limited_to_is_not_deleted(console, customer, product_factory):
    # given a coupon limited to a product (no price yet), then redeemed
    product = product_factory(name="Nuage Pro")
    coupon = Coupon.objects.create(name="Pro -10 %", percent_off=Decimal(10))
    coupon.applies_to.add(product)
    _subscription(customer, coupon=coupon)

    # when the product is deleted in the console
    response = console.post(reverse("admin:billing_product_delete", args=[product.pk]), {"post": "yes"})

    # then the console refuses (no server error) and the coupon keeps its product
    assert response.status_code == 403
    assert list(coupon.applies_to.all()) == [product]
