"""Money on the catalog and settings pages (issue 15): prices, tiers and coupons are typed in
major units and shown as money in French and English; exports add display columns; balance
transactions read as money. Refusals are form errors next to the field."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import Coupon, Price, Subscription, SubscriptionItem
from invoices.models import BalanceTransaction

pytestmark = pytest.mark.django_db


def visible_text(response) -> str:
    """The page as a reader sees it: no scripts, styles, tags or attributes (tooltips hold raw ids)."""
    body = response.content.decode()
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def price_post(price: Price | None, product_id: int, **changes: str) -> dict[str, str]:
    data = {
        "product": str(product_id),
        "lookup_key": price.lookup_key if price else "new-price",
        "active": "on",
        "currency": "EUR",
        "type": "recurring",
        "scheme": "per_unit",
        "unit_amount": "",
        "tiers": "",
        "package_size": "1",
        "package_rounding": "up",
        "cycle": "every month",
        "usage_type": "licensed",
        "tax_behavior": "exclusive",
        "trial_days": "0",
        "metadata": "{}",
    }
    return {**data, **changes}


@pytest.mark.parametrize(
    ("language", "typed", "stored"),
    [
        ("fr", "1 234,56", Decimal("123456")),
        ("en", "1,234.56", Decimal("123456")),
        ("fr", "49", Decimal("4900")),
        ("fr", "0,005", Decimal("0.5")),  # half a cent a unit: metered prices
    ],
)
def test_a_price_is_typed_in_major_units(console, product, language, typed, stored):
    response = console.post(
        reverse("admin:billing_price_add"),
        price_post(None, product.pk, unit_amount=typed),
        HTTP_ACCEPT_LANGUAGE=language,
    )

    assert response.status_code == 302, visible_text(response)[-1500:]
    assert Price.objects.get(lookup_key="new-price").unit_amount == stored


def test_a_yen_price_has_no_decimals(console, product):
    response = console.post(
        reverse("admin:billing_price_add"), price_post(None, product.pk, currency="JPY", unit_amount="1500")
    )

    assert response.status_code == 302
    assert Price.objects.get(lookup_key="new-price").unit_amount == Decimal(1500)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("-5", "cannot be negative"),
        ("0.000000001", "more decimals"),
        ("99999999999999", "at most"),
        ("douze", "is not an amount"),
    ],
)
def test_a_price_refuses_what_is_not_a_unit_price(console, product, typed, message):
    response = console.post(
        reverse("admin:billing_price_add"), price_post(None, product.pk, unit_amount=typed), HTTP_ACCEPT_LANGUAGE="en"
    )

    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors.get("unit_amount", []))
    assert not Price.objects.filter(lookup_key="new-price").exists()


def test_tiers_are_typed_one_per_line_in_major_units_and_shown_back_the_same_way(console, product):
    tiers = "10 | 5,00 | 0\n∞ | 4,00 | 12,50"

    response = console.post(
        reverse("admin:billing_price_add"),
        price_post(None, product.pk, scheme="tiered_graduated", tiers=tiers),
        HTTP_ACCEPT_LANGUAGE="fr",
    )

    assert response.status_code == 302, visible_text(response)[-1500:]
    price = Price.objects.get(lookup_key="new-price")
    assert price.tiers == [
        {"up_to": 10, "unit_amount": "500", "flat_amount": 0},
        {"up_to": None, "unit_amount": "400", "flat_amount": 1250},
    ]
    page = console.get(reverse("admin:billing_price_change", args=[price.pk]), HTTP_ACCEPT_LANGUAGE="fr")
    assert page.context["adminform"].form["tiers"].value() == "10 | 5,00 | 0,00\n∞ | 4,00 | 12,50"


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ("10 ; 5.00", "up to | unit price | flat fee"),
        ("ten | 5.00 | 0", "is not a quantity"),
        ("10 | 5.00 | 0.001\n∞ | 4", "more decimals"),
        ("10 | -5 | 0\n∞ | 4", "cannot be negative"),
    ],
)
def test_tiers_refuse_a_bad_line_and_say_which(console, product, tiers, message):
    response = console.post(
        reverse("admin:billing_price_add"),
        price_post(None, product.pk, scheme="tiered_graduated", tiers=tiers),
        HTTP_ACCEPT_LANGUAGE="en",
    )

    errors = " ".join(response.context["adminform"].form.errors.get("tiers", []))
    assert response.status_code == 200 and "Tier 1" in errors and message in errors
    assert not Price.objects.filter(lookup_key="new-price").exists()


@pytest.fixture
def used_price(customer_factory, price_factory):
    price = price_factory(
        lookup_key="seats",
        scheme=Price.Scheme.TIERED_VOLUME,
        unit_amount=None,
        tiers=[{"up_to": 10, "unit_amount": "1234", "flat_amount": 0}, {"up_to": None, "unit_amount": "987"}],
    )
    now = timezone.now()
    subscription = Subscription.objects.create(
        customer=customer_factory(),
        status=Subscription.Status.ACTIVE,
        currency="EUR",
        cycle={"kind": "interval", "unit": "month", "count": 1},
        billing_cycle_anchor=now,
        current_period_start=now,
        current_period_end=now + timedelta(days=30),
    )
    SubscriptionItem.objects.create(subscription=subscription, price=price, quantity=1)
    return price


@pytest.mark.parametrize(
    ("language", "first", "beyond"),
    [("fr", "12,34\xa0€", "9,87\xa0€"), ("en", "€12.34", "€9.87")],
)
def test_a_used_prices_frozen_tiers_read_as_money(console, used_price, language, first, beyond):
    page = console.get(reverse("admin:billing_price_change", args=[used_price.pk]), HTTP_ACCEPT_LANGUAGE=language)

    text = visible_text(page)
    assert page.status_code == 200 and 'name="tiers"' not in page.content.decode()
    assert first in text and beyond in text
    assert "1234" not in text and "987" not in text


@pytest.mark.parametrize(("language", "shown"), [("fr", "10,50\xa0€"), ("en", "€10.50")])
def test_an_amount_off_coupon_is_typed_in_major_units_and_listed_as_money(console, language, shown):
    response = console.post(
        reverse("admin:billing_coupon_add"),
        {"name": "Dix", "amount_off": "10,50" if language == "fr" else "10.50", "currency": "EUR", "duration": "once"},
        HTTP_ACCEPT_LANGUAGE=language,
    )

    assert response.status_code == 302, visible_text(response)[-1500:]
    coupon = Coupon.objects.get(name="Dix")
    assert coupon.amount_off == 1050
    listing = visible_text(console.get(reverse("admin:billing_coupon_changelist"), HTTP_ACCEPT_LANGUAGE=language))
    change = console.get(reverse("admin:billing_coupon_change", args=[coupon.pk]), HTTP_ACCEPT_LANGUAGE=language)
    assert shown in listing and "1050" not in listing
    assert change.context["adminform"].form["amount_off"].value() in ("10,50", "10.50")


@pytest.mark.parametrize(
    ("language", "typed", "currency", "message"),
    [
        ("fr", "12,345", "EUR", "12,345"),  # French: 12.345 EUR, one decimal too many (the message quotes it)
        ("en", "12.345", "EUR", "more decimals"),
        ("en", "-3", "EUR", "more than zero"),
        ("en", "0", "EUR", "more than zero"),
        ("en", "1e9", "EUR", "is not an amount"),
        ("en", "999999999999", "EUR", "at most"),
        ("en", "12.5", "JPY", "more decimals"),
        ("en", "10", "", "needs a currency"),
    ],
)
def test_a_coupon_refuses_an_amount_off_it_cannot_hold(console, language, typed, currency, message):
    response = console.post(
        reverse("admin:billing_coupon_add"),
        {"name": "Refusé", "amount_off": typed, "currency": currency, "duration": "once"},
        HTTP_ACCEPT_LANGUAGE=language,
    )

    form = response.context["adminform"].form
    assert response.status_code == 200
    assert message in " ".join(form.errors.get("amount_off", []) + form.errors.get("currency", []))
    assert not Coupon.objects.filter(name="Refusé").exists()


def test_exports_keep_minor_units_for_machines_and_add_a_display_column(console, price_factory):
    price_factory(lookup_key="pro", unit_amount=Decimal(4900))
    Coupon.objects.create(name="Dix", amount_off=1050, currency="EUR")

    prices = console.post(
        "/admin/billing/price/export/",
        {
            "format": "0",
            "resource": "0",
            "priceresource_lookup_key": "on",
            "priceresource_unit_amount": "on",
            "priceresource_unit_price_display": "on",
        },
        HTTP_ACCEPT_LANGUAGE="en",
    ).content.decode()
    coupons = console.post(
        "/admin/billing/coupon/export/",
        {"format": "0", "resource": "0", "couponresource_amount_off": "on", "couponresource_amount_off_display": "on"},
        HTTP_ACCEPT_LANGUAGE="en",
    ).content.decode()

    assert "unit_amount" in prices and ",4900.000000," in prices and prices.rstrip().endswith(",€49.00")
    assert coupons.splitlines()[:2] == ["amount_off,amount_off_display", "1050,€10.50"]


@pytest.mark.parametrize(("language", "shown"), [("fr", "-123,45\xa0€"), ("en", "-€123.45")])
def test_balance_transactions_read_as_money(console, customer, language, shown):
    entry = BalanceTransaction.objects.create(
        customer=customer,
        currency="EUR",
        amount=-12345,
        kind=BalanceTransaction.Kind.ADJUSTMENT,
        description="geste commercial",
        created_at=timezone.now(),
    )

    listing = console.get(reverse("admin:invoices_balancetransaction_changelist"), HTTP_ACCEPT_LANGUAGE=language)
    change = console.get(
        reverse("admin:invoices_balancetransaction_change", args=[entry.pk]), HTTP_ACCEPT_LANGUAGE=language
    )

    for page in (listing, change):
        text = visible_text(page)
        assert page.status_code == 200 and shown in text and "12345" not in text


def test_percentage_fees_are_typed_in_major_units_and_shown_back_the_same_way(console, product, meter):
    """Issue 16's percentage pricing: €0.25 per transaction is typed "0,25", not "25" (cents)."""
    response = console.post(
        reverse("admin:billing_price_add"),
        price_post(
            None,
            product.pk,
            scheme="percentage",
            usage_type="metered",
            meter=str(meter.pk),
            percentage_rate="1.2",
            fixed_amount="0,25",
            free_amount="1 000",
            per_transaction_min_amount="0,10",
            per_transaction_max_amount="",
        ),
        HTTP_ACCEPT_LANGUAGE="fr",
    )

    assert response.status_code == 302, visible_text(response)[-1500:]
    price = Price.objects.get(lookup_key="new-price")
    assert (price.fixed_amount, price.free_amount) == (Decimal(25), Decimal(100000))
    assert (price.per_transaction_min_amount, price.per_transaction_max_amount) == (Decimal(10), None)
    form = (
        console.get(reverse("admin:billing_price_change", args=[price.pk]), HTTP_ACCEPT_LANGUAGE="fr")
        .context["adminform"]
        .form
    )
    assert form["fixed_amount"].value() == "0,25"
    assert form["per_transaction_max_amount"].value() in (None, "")


def test_a_negative_percentage_fee_is_a_form_error(console, product, meter):
    response = console.post(
        reverse("admin:billing_price_add"),
        price_post(
            None,
            product.pk,
            scheme="percentage",
            usage_type="metered",
            meter=str(meter.pk),
            percentage_rate="1.2",
            fixed_amount="-1",
        ),
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 200
    assert "cannot be negative" in " ".join(response.context["adminform"].form.errors.get("fixed_amount", []))
    assert not Price.objects.filter(lookup_key="new-price").exists()
