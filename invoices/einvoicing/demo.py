"""Demo data of e-invoicing (seed_demo): with TARIF_PA_SIMULATOR=1, the default brand's live
account points at the local simulator (scripts/run-demo starts it), idempotent."""

from __future__ import annotations

import logging
import secrets

import requests
from django.conf import settings
from django.urls import reverse

from customers.models import Customer
from customers.selectors import customer_siren
from invoices.einvoicing.models import PlatformAccount
from invoices.einvoicing.services import platform_account_create
from invoices.models import Brand

logger = logging.getLogger(__name__)


def einvoicing_demo_seed(*, base_url: str) -> PlatformAccount | None:
    if not settings.TARIF_PA_SIMULATOR:
        return None
    brand = Brand.objects.filter(is_default=True).first()
    if brand is None:
        return None
    simulator = settings.TARIF_PA_SIMULATOR_URL.rstrip("/")
    account = PlatformAccount.objects.filter(brand=brand, livemode=True).first()
    if account is None:
        account = platform_account_create(
            brand_id=brand.pk,
            livemode=True,
            data={
                "name": "Simulated PA",
                "kind": PlatformAccount.Kind.SIMULATOR,
                "base_url": simulator,
                "token_url": f"{simulator}/oauth/token",
                "client_id": "tarif-demo",
                "client_secret": secrets.token_urlsafe(16),
                "webhook_secret": secrets.token_urlsafe(24),
            },
        )
    # Tell the simulator where to push statuses and which French customers are registered.
    webhook = f"{base_url.rstrip('/')}{reverse('einvoicing:status_webhook', args=[account.pk])}"
    try:
        requests.post(
            f"{simulator}/_sim/webhook", json={"url": webhook, "secret": account.webhook_secret}, timeout=5
        ).raise_for_status()
        for customer in Customer.objects.filter(livemode=True, country="FR", is_business=True):
            siren = customer_siren(customer=customer)
            if siren:
                requests.post(
                    f"{simulator}/_sim/directory",
                    json={"siren": siren, "routing_address": f"0225:{siren}", "name": customer.legal_name},
                    timeout=5,
                ).raise_for_status()
    except requests.RequestException as error:
        logger.warning("the PA simulator at %s did not answer: %s", simulator, error)
    return account
