"""A Celery worker killed (SIGKILL) in the middle of a billing chunk loses nothing:
the message was not acknowledged, the broker hands it to the next worker, the chunk runs
once and every subscription is invoiced exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.db import connection

from billing.models import BillingRun
from invoices.models import Invoice

ROOT = Path(__file__).resolve().parents[2]
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
QUEUE = "tarif-killed-worker-test"
START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
RENEWAL = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)

pytestmark = [
    pytest.mark.skipif(not BROKER_URL, reason="CELERY_BROKER_URL is not set: needs a real broker"),
    pytest.mark.broker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def start_worker() -> subprocess.Popen:
    database = connection.settings_dict
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "TARIF_CELERY_VISIBILITY_TIMEOUT": "2",
        "TARIF_RENDER_DOCUMENTS": "false",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--include",
            "tests.ops.slow_tasks",
            "-Q",
            QUEUE,
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the test kills parent and child at once
    )


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass


def test_a_worker_killed_mid_chunk_loses_nothing(postgres_only, customer_factory, price, tax_rate, tmp_path):
    from billing.services.subscriptions import ItemSpec, subscription_create
    from config.celery import app
    from tests.ops.slow_tasks import slow_billing_chunk

    subscriptions = [
        subscription_create(
            customer=customer,
            items=[ItemSpec(price=price, quantity=1)],
            at=START,
            collection_method="send_invoice",
            days_until_due=30,
        )
        for customer in customer_factory.create_batch(5)
    ]
    run = BillingRun.objects.create(as_of=RENEWAL, total=len(subscriptions))
    marker = tmp_path / "started"
    first = start_worker()
    app.conf.task_always_eager = False
    app.conf.broker_url = BROKER_URL
    app.conf.broker_transport_options = {"visibility_timeout": 2}
    try:
        slow_billing_chunk.apply_async(args=[run.pk, [s.pk for s in subscriptions], str(marker), 3.0], queue=QUEUE)
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the first worker never started the task"

        stop(first, signal.SIGKILL)  # mid-task: nothing committed yet
        renewals = Invoice.objects.filter(billing_reason="subscription_cycle")
        assert renewals.count() == 0

        # The broker hands an unacknowledged message to another worker once it has been
        # invisible for the visibility timeout (2 s here), and a starting worker looks for
        # such messages once, then only every ~100 s (kombu): start it after the timeout.
        time.sleep(3)
        second = start_worker()
        try:
            deadline = time.monotonic() + 90
            while renewals.count() < len(subscriptions) and time.monotonic() < deadline:
                time.sleep(0.25)
            time.sleep(1)  # a duplicate delivery, if any, would land now
        finally:
            stop(second)
    finally:
        app.conf.task_always_eager = True
        stop(first, signal.SIGKILL)

    assert renewals.count() == len(subscriptions)
    assert sorted(renewals.values_list("subscription_id", flat=True)) == sorted(s.pk for s in subscriptions)
    from config.ops.integrity import integrity_verify

    assert not any(integrity_verify(checks=["numbering", "duplicates", "totals"]).values())
