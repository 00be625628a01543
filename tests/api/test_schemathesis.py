"""Property-based contract test: schemathesis drives every operation of the live OpenAPI schema.

Bounded (a few examples per operation, no shrinking) so it runs in CI in well under a
minute. Any 5xx, or a response whose body or content type the schema does not describe,
fails the test.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from config.api.throttling import ApiKeyRateThrottle

MAX_EXAMPLES = 2


def _live_schema():
    from django.core.wsgi import get_wsgi_application

    # The schema is fetched from the running application (no database needed for it).
    return schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


schema = _live_schema()


@pytest.fixture
def _keep_test_connection():
    # The WSGI app closes "old" connections at each request's end, as in production; the
    # test's connection holds the test transaction, so keep it (Django's test client does the same).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(_keep_test_connection, make_key, tax_rate, customer_factory, price_factory, monkeypatch):
    """Some objects for the generated ids to hit, and a sandbox read-write key without rate limit."""
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "100000/second"})
    for _ in range(3):  # test mode, as the key
        customer_factory(livemode=False)
        price_factory(livemode=False, product__livemode=False)
    _key, raw = make_key(mode="test")
    return {"Authorization": f"Bearer {raw}"}


@pytest.mark.slow
@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_honours_its_schema(case, world):
    # Each request in a savepoint: a refused write rolls back to it, as the request's own
    # transaction would in production, and the next example starts clean.
    with transaction.atomic():
        case.call_and_validate(
            headers=world, checks=[not_a_server_error, response_schema_conformance, content_type_conformance]
        )
