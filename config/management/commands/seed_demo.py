"""Load the demo: a French brand, customers, a catalog, a finance user with TOTP.

Idempotent: running it again changes nothing that exists and prints fresh login help, as one
framed block. `make run` seeds with `--no-logins`, starts the server, and once it answers
prints the block with `--logins-only` (a current TOTP code, after the startup noise).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from allauth.account.models import EmailAddress
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing.entitlements.models import Feature, ProductFeature
from billing.entitlements.services import feature_create, product_feature_attach
from billing.models import Coupon, Meter, Price, Product, Subscription, TestClock
from billing.quotes.demo import quotes_demo_seed
from billing.services.changes import subscription_change
from billing.services.payments import payment_method_attach
from billing.services.subscriptions import ItemSpec, subscription_cancel, subscription_create
from billing.services.test_clocks import test_clock_advance
from billing.services.usage import UsageEventInput, usage_events_record
from billing.storefront.demo import storefront_demo_seed
from billing.wallets.models import CreditGrant
from billing.wallets.services import GrantRequest, credit_grant_create
from config import clock, mfa
from config.admin_site import issue_recovery_codes
from customers.models import Customer, CustomerUser
from feedback.demo import feedback_demo_seed
from invoices.demo_documents import demo_brand_texts
from invoices.einvoicing.demo import einvoicing_demo_seed
from invoices.models import Brand, Invoice, TaxRate

DEMO_USERNAME = "finance"
DEMO_PASSWORD = "tarif-demo-finance"  # a local demo account, printed on purpose
DEMO_PORTAL_EMAIL = "client@boulangerie-martin.example"
DEMO_PORTAL_PASSWORD = "tarif-demo-client"  # the demo customer's portal login, printed on purpose

MONTHLY = {"kind": "interval", "unit": "month", "count": 1}
YEARLY = {"kind": "interval", "unit": "year", "count": 1}

CUSTOMERS = [
    {
        "legal_name": "Boulangerie Martin SARL",
        "email": "compta@boulangerie-martin.example",
        "country": "FR",
        "preferred_language": "fr",
        "city": "Lyon",
        "postal_code": "69002",
        "address_line1": "12 rue Mercière",
        "siren": "732829320",
        "tax_id": "FR44732829320",
    },
    {
        "legal_name": "Atelier Dupont",
        "email": "factures@atelier-dupont.example",
        "country": "FR",
        "preferred_language": "fr",
        "city": "Nantes",
        "postal_code": "44000",
        "address_line1": "3 quai de la Fosse",
    },
    {
        "legal_name": "Nordlicht GmbH",
        "email": "billing@nordlicht.example",
        "country": "DE",
        "preferred_language": "en",
        "city": "Hamburg",
        "postal_code": "20095",
        "address_line1": "Mönckebergstraße 7",
        "tax_id": "DE136695976",
    },
    {
        "legal_name": "Maple Analytics Inc.",
        "email": "ap@maple-analytics.example",
        "country": "CA",
        "preferred_language": "en",
        "city": "Montréal",
        "postal_code": "H2Y 1C6",
        "address_line1": "100 rue Notre-Dame",
        "currency": "EUR",
    },
]


class Command(BaseCommand):
    help = "Load idempotent demo data and print how to sign in to the operator console."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-logins", action="store_true", help="Seed only; print no login block.")
        parser.add_argument("--logins-only", action="store_true", help="Print the login block only (no seeding).")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Where the demo server answers.")

    def handle(self, *args: Any, **options: Any) -> None:
        base_url = options["url"].rstrip("/")
        if options["logins_only"]:
            with transaction.atomic():
                user, device, recovery_code = self._staff_user()
            self._print_logins(base_url, user, device, recovery_code)
            return
        # Each step is idempotent on its own; payments open their own (durable)
        # transactions, so the seed cannot run inside a single one.
        with transaction.atomic():
            brand = self._brand()
            demo_brand_texts(brand=brand)  # issue 17: the brand's texts in French and English
            self._tax_rates()
            catalog = self._catalog()
        for data in CUSTOMERS:
            customer, created = Customer.objects.get_or_create(
                email=data["email"], defaults={**data, "brand": brand, "currency": data.get("currency", "EUR")}
            )
            if created:
                self._sandbox_card(customer)
        history = self._year_of_history(brand, catalog)

        feedback_demo_seed(customers=list(Customer.objects.filter(test_clock__isnull=True).order_by("pk")))
        with transaction.atomic():
            user, device, recovery_code = self._staff_user()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: brand '{brand.name}', {Customer.objects.count()} customers, "
                f"{len(catalog)} prices, {history} invoices of history on a test clock."
            )
        )
        self._portal_user(catalog)
        self._features_and_credits(catalog)
        storefront_demo_seed(brand=brand, catalog=catalog)  # issue 17: a pricing table and a payment link
        quotes_demo_seed()  # issue 17 item 4: an open quote (billing/quotes/demo.py)
        einvoicing_demo_seed(base_url=base_url)  # issue 18: the simulated PA when TARIF_PA_SIMULATOR=1
        if not options["no_logins"]:
            self._print_logins(base_url, user, device, recovery_code)

    def _brand(self) -> Brand:
        brand, _ = Brand.objects.get_or_create(
            slug="atelier-nuage",
            defaults={
                "name": "Atelier Nuage",
                "legal_name": "Atelier Nuage SAS",
                "legal_form": "SAS",
                "address_line1": "42 rue de la Paix",
                "postal_code": "75002",
                "city": "Paris",
                "country": "FR",
                "siren": "552100554",
                "siret": "55210055400013",
                "vat_number": "FR03552100554",
                "share_capital": "50 000 €",
                "rcs": "RCS Paris 552 100 554",
                "email": "facturation@atelier-nuage.example",
                "website": "https://atelier-nuage.example",
                "iban": "FR7630006000011234567890189",
                "bic": "AGRIFRPP",
                "payment_instructions": "Virement sur le compte ci-dessous en rappelant la référence.",
                "footer_text": "Atelier Nuage SAS · logiciel de planification pour artisans",
                "is_default": True,
            },
        )
        return brand

    def _tax_rates(self) -> None:
        for country, rate in (("FR", "20"), ("DE", "19"), ("BE", "21"), ("ES", "21"), ("IT", "22"), ("NL", "21")):
            TaxRate.objects.get_or_create(
                country=country,
                is_standard=True,
                active=True,
                defaults={"name": "TVA" if country == "FR" else "VAT", "percentage": Decimal(rate)},
            )

    def _catalog(self, *, livemode: bool = True) -> list[Price]:
        """The demo catalog, in live mode or as its test-mode copy (live and test never mix)."""
        starter, _ = Product.objects.get_or_create(
            name="Nuage Starter", livemode=livemode, defaults={"unit_label": "siège"}
        )
        pro, _ = Product.objects.get_or_create(name="Nuage Pro", livemode=livemode, defaults={"unit_label": "siège"})
        api, _ = Product.objects.get_or_create(name="Nuage API", livemode=livemode, defaults={"unit_label": "appel"})
        meter, _ = Meter.objects.get_or_create(
            key="api_calls", defaults={"name": "API calls", "aggregation": Meter.Aggregation.SUM}
        )
        specs = [
            (
                starter,
                "starter-monthly",
                {"scheme": "per_unit", "unit_amount": Decimal(1900), "cycle": MONTHLY, "trial_days": 14},
            ),
            (pro, "pro-monthly", {"scheme": "per_unit", "unit_amount": Decimal(4900), "cycle": MONTHLY}),
            (pro, "pro-yearly", {"scheme": "per_unit", "unit_amount": Decimal(49000), "cycle": YEARLY}),
            (
                pro,
                "pro-seats-tiered",
                {
                    "scheme": "tiered_graduated",
                    "cycle": MONTHLY,
                    "tiers": [
                        {"up_to": 5, "unit_amount": "1500", "flat_amount": 0},
                        {"up_to": 20, "unit_amount": "1200", "flat_amount": 0},
                        {"up_to": None, "unit_amount": "900", "flat_amount": 0},
                    ],
                },
            ),
            (
                api,
                "api-metered",
                {
                    "scheme": "per_unit",
                    "unit_amount": Decimal("0.5"),
                    "cycle": MONTHLY,
                    "usage_type": "metered",
                    "meter": meter,
                },
            ),
        ]
        prices = []
        for product, lookup_key, fields in specs:
            price, _ = Price.objects.get_or_create(
                lookup_key=lookup_key,
                active=True,
                livemode=livemode,
                defaults={"product": product, "currency": "EUR", **fields},
            )
            prices.append(price)
        return prices

    def _year_of_history(self, brand: Brand, catalog: list[Price]) -> int:
        """A test clock that lived through a year: subscriptions, usage, an upgrade, a
        cancellation, and the invoices the billing run issued month after month."""
        name = "Démo : une année"
        clock = TestClock.objects.filter(name=name).first()
        if clock is not None:
            return Invoice.objects.filter(customer__test_clock=clock).count()
        now = timezone.now()
        start = datetime(now.year - 1, now.month, 1, 9, 0, tzinfo=UTC)
        clock = TestClock.objects.create(name=name, frozen_time=start)
        # The clock's customers are test mode: they subscribe to the test-mode copy of the catalog.
        with transaction.atomic():
            catalog = self._catalog(livemode=False)
        prices = {price.lookup_key: price for price in catalog}
        welcome, _ = Coupon.objects.get_or_create(
            name="Bienvenue -20 % (3 mois)",
            livemode=False,
            defaults={"percent_off": Decimal(20), "duration": Coupon.Duration.REPEATING, "duration_in_periods": 3},
        )
        people = [
            ("Fromagerie Lenoir", "FR", "fr", "", [("starter-monthly", 3)], None),
            ("Studio Kalm", "FR", "fr", "", [("pro-seats-tiered", 8), ("api-metered", 1)], welcome),
            ("Nordwind Logistik GmbH", "DE", "en", "DE136695976", [("pro-yearly", 1)], None),
            ("Brasserie du Port", "FR", "fr", "", [("pro-monthly", 1)], None),
        ]
        subscriptions = []
        for legal_name, country, language, vat, items, coupon in people:
            customer = Customer.objects.create(
                legal_name=legal_name,
                email=f"facturation@{legal_name.split()[0].lower()}.example",
                country=country,
                preferred_language=language,
                tax_id=vat,
                brand=brand,
                test_clock=clock,
                livemode=False,
                city="Paris" if country == "FR" else "Bremen",
                postal_code="75011" if country == "FR" else "28195",
                address_line1="1 rue de la Démo" if country == "FR" else "Hafenstraße 1",
            )
            self._sandbox_card(customer)
            subscriptions.append(
                subscription_create(
                    customer=customer,
                    items=[ItemSpec(price=prices[key], quantity=qty) for key, qty in items],
                    coupon=coupon,
                    trial_days=0,
                )
            )
        studio, brasserie = subscriptions[1], subscriptions[3]
        for month in range(1, 13):
            moment = start + relativedelta(months=month - 1, days=12)
            usage_events_record(
                events=[
                    UsageEventInput(
                        customer_id=studio.customer_id,
                        meter_key="api_calls",
                        external_id=f"demo-{month}",
                        value=Decimal(20_000 + 1_500 * month),
                        timestamp=moment,
                    )
                ]
            )
            if month == 4:  # the studio grows: more seats, billed pro rata at once
                studio.refresh_from_db()
                subscription_change(
                    subscription=studio,
                    at=moment,
                    items=[
                        ItemSpec(price=prices["pro-seats-tiered"], quantity=14),
                        ItemSpec(price=prices["api-metered"]),
                    ],
                    proration="always_invoice",
                )
            if month == 9:  # the brasserie leaves at the end of its period
                brasserie.refresh_from_db()
                subscription_cancel(subscription=brasserie, at=moment, at_period_end=True, reason="Fermeture")
            test_clock_advance(clock=clock, to=min(start + relativedelta(months=month), now))
        return Invoice.objects.filter(customer__test_clock=clock).count()

    def _sandbox_card(self, customer: Customer) -> None:
        """The sandbox gateway's always-successful test card, as the default payment method."""
        payment_method_attach(
            customer=customer, source={"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}}
        )

    def _staff_user(self) -> tuple[Any, TOTPDevice, str]:
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=DEMO_USERNAME,
            defaults={"email": "finance@atelier-nuage.example", "is_staff": True, "first_name": "Camille"},
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        user.groups.add(Group.objects.get(name="Finance"))
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="demo authenticator", confirmed=True)
        recovery_code = issue_recovery_codes(user=user)[0]
        return user, device, recovery_code

    def _print_logins(self, base_url: str, user: Any, device: TOTPDevice, recovery_code: str) -> None:
        """One framed block with every demo login, so it stands out from the server's log lines."""
        engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"
        customer = Customer.objects.filter(email=CUSTOMERS[0]["email"]).first()
        portal_user = get_user_model().objects.filter(username=DEMO_PORTAL_EMAIL).first()
        staff_password = DEMO_PASSWORD if user.check_password(DEMO_PASSWORD) else "(changed by you)"
        portal_password = (
            DEMO_PORTAL_PASSWORD
            if portal_user is not None and portal_user.check_password(DEMO_PORTAL_PASSWORD)
            else "(changed by you)"
        )
        rule = "=" * 78
        lines = [
            rule,
            f"  Tarif demo: {base_url}/",
            "",
            f"  Operator console   {base_url}/admin/   (finance role)",
            f"    username:        {user.username}",
            f"    password:        {staff_password}",
            f"    current TOTP code: {code} (valid ~30 s; run `manage.py seed_demo --logins-only` for a new one)",
            f"    TOTP secret:     {mfa.base32_secret(device)} (add it to an authenticator app)",
            f"    TOTP URI:        {device.config_url}",
            f"    one-time recovery code: {recovery_code}",
            "",
            f"  Customer portal    {base_url}/portal/   ({customer.legal_name if customer else '-'})",
            f"    email:           {DEMO_PORTAL_EMAIL}",
            f"    password:        {portal_password}",
            "    sensitive actions ask for a code sent by email (printed on the server's console)",
            "",
            f"  Settings: {settings.SETTINGS_MODULE}, database: {engine}",
            rule,
        ]
        self.stdout.write("\n" + "\n".join(lines) + "\n")

    def _portal_user(self, catalog: list[Price]) -> None:
        """A portal login for the first demo customer, on a monthly plan (docs/portal.md)."""
        customer = Customer.objects.get(email=CUSTOMERS[0]["email"])
        user, created = get_user_model().objects.get_or_create(
            username=DEMO_PORTAL_EMAIL, defaults={"email": DEMO_PORTAL_EMAIL}
        )
        if created:
            user.set_password(DEMO_PORTAL_PASSWORD)
            user.save(update_fields=["password"])
        EmailAddress.objects.get_or_create(
            user=user, email=DEMO_PORTAL_EMAIL, defaults={"primary": True, "verified": True}
        )
        CustomerUser.objects.get_or_create(user=user, defaults={"customer": customer})
        if not Subscription.objects.filter(customer=customer).exclude(status="canceled").exists():
            starter = next(price for price in catalog if price.lookup_key == "starter-monthly")
            subscription_create(customer=customer, items=[ItemSpec(starter, 3)], trial_days=0)

    def _features_and_credits(self, catalog: list[Price]) -> None:
        """Issue 16 in the demo: features the plans grant (entitlements) and a welcome credit for the
        portal customer (prepaid credits). Idempotent, through the services."""
        products = {price.lookup_key: price.product for price in catalog}
        wanted = [
            ("tableaux-de-bord", "Tableaux de bord", Feature.Kind.BOOLEAN, ""),
            ("sso", "Authentification unique (SSO)", Feature.Kind.BOOLEAN, ""),
            ("projets", "Projets", Feature.Kind.QUANTITY, "projet"),
        ]
        features = {}
        for key, name, kind, unit in wanted:
            feature = Feature.objects.filter(livemode=True, lookup_key=key).first()
            features[key] = feature or feature_create(
                data={"lookup_key": key, "name": name, "kind": kind, "unit_label": unit}, livemode=True
            )
        grants = [
            (products["starter-monthly"], "tableaux-de-bord", None, False),
            (products["starter-monthly"], "projets", 3, False),
            (products["pro-monthly"], "tableaux-de-bord", None, False),
            (products["pro-monthly"], "sso", None, False),
            (products["pro-monthly"], "projets", 10, True),
        ]
        for product, key, quantity, per_unit in grants:
            if not ProductFeature.objects.filter(product=product, feature=features[key]).exists():
                product_feature_attach(product=product, feature=features[key], quantity=quantity, per_unit=per_unit)
        customer = Customer.objects.get(email=CUSTOMERS[0]["email"])
        if not CreditGrant.objects.filter(customer=customer).exists():
            credit_grant_create(
                customer=customer,
                request=GrantRequest(amount=5000, currency="EUR", name="Crédit de bienvenue"),
                at=clock.now(customer=customer),
            )
