from __future__ import annotations

import os

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from pytest_factoryboy import register

from tests import factories
from tests.ci_require import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401 (hooks)
from tests.scheduling import pytest_collection_modifyitems  # noqa: F401 (hook)

register(factories.UserFactory, "user")
register(factories.StaffFactory, "staff")
register(factories.BrandFactory, "brand")
register(factories.CustomerFactory, "customer")
register(factories.TaxRateFactory, "tax_rate")
register(factories.ProductFactory, "product")
register(factories.MeterFactory, "meter")
register(factories.PriceFactory, "price")


def pytest_report_header(config: pytest.Config) -> list[str]:
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    broker = os.environ.get("CELERY_BROKER_URL") or "none (eager tasks)"
    return [f"tarif: database={engine} broker={broker}"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings, django_db_blocker, django_db_createdb, request):
    """Under xdist, each worker's PostgreSQL test database is a copy of one migrated template
    instead of a migration run of its own (tests/db_template.py)."""
    worker = getattr(request.config, "workerinput", None)
    if worker is not None:
        from tests.db_template import prepare_template

        with django_db_blocker.unblock():
            prepare_template(run_id=worker["testrunuid"], createdb=django_db_createdb)


@pytest.fixture(scope="session", autouse=True)
def _flush_keeps_migrated_rows():
    """A transactional test's flush puts back the content types, permissions and role groups
    post_migrate would re-create, in one INSERT per table, instead of running post_migrate
    (~375 queries) after every transactional test (tests/flush.py)."""
    from tests.flush import installed  # deferred: Django's models are loaded once pytest-django set it up

    with installed():
        yield


def current_totp(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


@pytest.fixture(autouse=True)
def _lock_order_checked():
    """Fail a test whose code took a lock against the written order (config/locking.py),
    even when the code under test caught the LockOrderViolation it raised."""
    from config import locking

    seen = len(locking.violations)
    yield
    new = locking.violations[seen:]
    del locking.violations[seen:]
    if new:
        pytest.fail("lock order violated:\n" + "\n".join(new), pytrace=False)


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts in the default language: a request made with `Accept-Language: fr`
    leaves French active in the thread, which would leak into the next test's messages."""
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture
def staff_with_totp(db, staff_factory):
    user = staff_factory(username="camille", is_superuser=True)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user, device


@pytest.fixture
def postgres_only(db):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL; CI runs it through .ci/run)")


@pytest.fixture
def console(client, staff_with_totp):
    """A client signed in to the operator console through the real password + TOTP flow."""
    user, device = staff_with_totp
    client.post("/admin/login/", {"username": user.username, "password": "correct horse battery staple"})
    verified = client.post("/admin/otp/verify/", {"otp_token": current_totp(device)})
    assert verified.status_code == 302, "the TOTP step should let the staff user in"
    client.user = user
    return client


@pytest.fixture(autouse=True)
def _task_joins_allowed():
    """Each test starts with Celery's process-wide "a task is running here" flag cleared. Celery sets
    it for good in a process that once initialised a prefork pool child, after which any eager
    `.delay().get()` refuses ("Never call result.get() within a task"); under pytest-xdist one test
    process runs many files, so a test must not inherit it from whichever file ran before."""
    from celery.result import _set_task_join_will_block

    _set_task_join_will_block(False)
    yield
