import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("tarif")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="tarif.ping")
def ping() -> str:
    """Round-trip probe used by /readyz and the broker test."""
    return "pong"
