"""A task really travels through the broker to a worker process and back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery.result import allow_join_result

ROOT = Path(__file__).resolve().parents[2]
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")

pytestmark = pytest.mark.skipif(
    not BROKER_URL, reason="CELERY_BROKER_URL is not set: no real broker to round-trip through (.ci/run sets it)"
)


@pytest.fixture
def worker():
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-Q",
            "tarif-broker-test",
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def test_a_task_round_trips_through_the_real_broker(worker, settings):
    from config.celery import app, ping

    app.conf.task_always_eager = False
    app.conf.broker_url = BROKER_URL
    app.conf.result_backend = os.environ.get("CELERY_RESULT_BACKEND", BROKER_URL)
    try:
        result = ping.apply_async(queue="tarif-broker-test")
        # Eager tasks run on several threads earlier in the suite can leave Celery's
        # process-global "inside a task" flag set (denied_join_result is not
        # thread-safe); this test is not inside a task, so it says so.
        with allow_join_result():
            assert result.get(timeout=60) == "pong"
    finally:
        app.conf.task_always_eager = True
    assert worker.poll() is None, "the worker died: " + (worker.stdout.read() if worker.stdout else "")


def test_readyz_sees_the_real_broker(client, db, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = BROKER_URL

    body = client.get("/readyz").json()

    assert body["checks"]["broker"] == {**body["checks"]["broker"], "ok": True, "mode": "broker"}


def test_a_task_enqueued_by_name_round_trips_through_the_real_broker(worker):
    from config.celery import app
    from config.jobs import enqueue

    app.conf.task_always_eager = False
    app.conf.broker_url = BROKER_URL
    app.conf.result_backend = os.environ.get("CELERY_RESULT_BACKEND", BROKER_URL)
    try:
        result = enqueue("tarif.ping", queue="tarif-broker-test")
        with allow_join_result():
            assert result.get(timeout=60) == "pong"
    finally:
        app.conf.task_always_eager = True
