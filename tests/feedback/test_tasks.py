"""The beat entry and its task; the invitation email's brand logo."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.core.files.base import ContentFile

from feedback.models import Invitation, Question, Trigger
from feedback.services import feedback_feature_event_record
from feedback.tasks import feedback_process_triggers
from tests.feedback.conftest import add_question
from tests.invoices.rendering.conftest import png_bytes

pytestmark = pytest.mark.django_db


def test_beat_runs_the_feedback_task_every_five_minutes():
    entry = django_settings.CELERY_BEAT_SCHEDULE["feedback-process-triggers"]
    assert entry["task"] == feedback_process_triggers.name == "feedback.process_triggers"
    assert entry["schedule"].minute == set(range(0, 60, 5))


def test_the_task_reads_events_and_sends_what_is_due(make_customer, make_survey, now):
    customer = make_customer()
    survey = make_survey(Trigger.FEATURE_USED, feature="export")
    add_question(survey, Question.Kind.NPS, "Recommend us?")
    feedback_feature_event_record(customer=customer, feature="export")

    result = feedback_process_triggers.delay().get()

    assert result == {"events_read": 1, "scheduled": 1, "sent": 1, "throttled": 0, "skipped": 0, "failed": 0}
    assert Invitation.objects.get().status == Invitation.Status.SENT


def test_the_brand_logo_travels_inline_with_the_email(sent_invitation, make_customer, billing_brand):
    billing_brand.logo.save("logo.png", ContentFile(png_bytes()), save=True)

    sent_invitation(customer=make_customer(brand=billing_brand))

    message = mail.outbox[-1]
    html = message.alternatives[0][0]
    assert 'src="cid:brand-logo"' in html
    inline = [part for part in message.attachments if not isinstance(part, tuple)]
    assert inline and inline[0]["Content-ID"] == "<brand-logo>"
