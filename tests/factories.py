"""factory-boy factories, exposed as fixtures in tests/conftest.py."""

from __future__ import annotations

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from billing.models import Meter, Price, Product
from customers.models import Customer
from invoices.models import Brand, TaxRate


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class StaffFactory(UserFactory):
    is_staff = True


class BrandFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Brand
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"brand-{n}")
    name = "Atelier Nuage"
    legal_name = "Atelier Nuage SAS"
    legal_form = "SAS"
    address_line1 = "42 rue de la Paix"
    postal_code = "75002"
    city = "Paris"
    country = "FR"
    siren = "552100554"
    siret = "55210055400013"
    vat_number = "FR03552100554"
    share_capital = "50 000 €"
    rcs = "RCS Paris 552 100 554"
    # Invoice numbers are unique across brands: each factory brand gets its own prefix.
    invoice_number_format = factory.Sequence(lambda n: f"F{n}-{{year}}-{{seq:06d}}")
    credit_note_number_format = factory.Sequence(lambda n: f"AV{n}-{{year}}-{{seq:06d}}")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    legal_name = factory.Sequence(lambda n: f"Client {n} SARL")
    email = factory.Sequence(lambda n: f"billing{n}@client.example")
    country = "FR"
    currency = "EUR"
    preferred_language = "fr"
    timezone = "Europe/Paris"
    address_line1 = "1 place du Capitole"
    postal_code = "31000"
    city = "Toulouse"
    # Customers share one brand (and so one number series) unless a test says otherwise.
    brand = factory.SubFactory(BrandFactory, slug="atelier-nuage")


class TaxRateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TaxRate
        django_get_or_create = ("country", "is_standard", "active")

    country = "FR"
    name = "TVA"
    percentage = Decimal("20")
    is_standard = True
    active = True


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    name = factory.Sequence(lambda n: f"Plan {n}")


class MeterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Meter

    key = factory.Sequence(lambda n: f"meter_{n}")
    name = factory.Sequence(lambda n: f"Meter {n}")
    aggregation = Meter.Aggregation.SUM


class PriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Price

    product = factory.SubFactory(ProductFactory)
    currency = "EUR"
    type = Price.Type.RECURRING
    scheme = Price.Scheme.PER_UNIT
    unit_amount = Decimal(2900)
    cycle = factory.LazyFunction(lambda: {"kind": "interval", "unit": "month", "count": 1})


# --- Issue 16, item 11: tax codes ---


class TaxCodeFactory(factory.django.DjangoModelFactory):
    """A tax code; the seeded ones (migration invoices 0008) come back by their code."""

    class Meta:
        model = "invoices.TaxCode"
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"code-{n}")
    name = factory.LazyAttribute(lambda code: code.code)
    category = "reduced"


class TaxCodeRateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "invoices.TaxCodeRate"
        django_get_or_create = ("tax_code", "country")

    tax_code = factory.SubFactory(TaxCodeFactory)
    country = "FR"
    percentage = Decimal("5.5")


# -- issue 16, discounts helper ---------------------------------------------------------


class CouponFactory(factory.django.DjangoModelFactory):
    """A percent-off coupon by default; pass amount_off and currency for an amount off."""

    class Meta:
        model = "billing.Coupon"

    name = factory.Sequence(lambda n: f"Coupon {n}")
    percent_off = Decimal(10)
    duration = "forever"
