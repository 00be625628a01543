"""The public survey page: opened from the email without signing in, once, in time, by its customer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from config.events.models import DomainEvent
from customers.models import CustomerUser
from feedback.models import Invitation, Question, SurveyResponse
from tests.feedback.conftest import T0, questions

pytestmark = pytest.mark.django_db


def url(token: str) -> str:
    return f"/feedback/s/{token}/"


def answer(client, sent, token, **overrides):
    by_kind = questions(sent.survey)
    data = {f"q_{by_kind[Question.Kind.NPS].pk}": "9", f"q_{by_kind[Question.Kind.TEXT].pk}": "Très bon outil"}
    data.update(overrides)
    return client.post(url(token), data)


def test_the_email_is_branded_in_the_customers_language_with_html_and_text(sent_invitation):
    invitation, token, customer = sent_invitation()

    message = mail.outbox[-1]
    html = message.alternatives[0][0]
    assert message.to == [customer.email]
    assert "Votre avis compte" in message.subject and customer.brand.name in message.subject
    assert "Répondre à l'enquête" in message.body and url(token) in message.body
    assert customer.brand.primary_colour in html and url(token) in html and '<html lang="fr">' in html
    assert customer.brand.legal_name in html


def test_an_english_customer_gets_the_english_texts(sent_invitation, make_customer):
    invitation, token, _customer = sent_invitation(customer=make_customer(preferred_language="en"))

    assert "Your opinion matters" in mail.outbox[-1].subject
    page = _client_get(token)
    assert "Recommend us? (en)" in page and '<html lang="en">' in page


def _client_get(token: str) -> str:
    from django.test import Client

    response = Client().get(url(token))
    assert response.status_code == 200
    return response.content.decode()


def test_the_link_works_without_signing_in_and_records_the_answers_once(client, sent_invitation):
    invitation, token, customer = sent_invitation()

    page = client.get(url(token))
    assert page.status_code == 200
    assert "Recommend us? (fr)" in page.content.decode() and "<fieldset" in page.content.decode()

    response = answer(client, invitation, token)

    assert response.status_code == 200 and "Merci" in response.content.decode()
    saved = SurveyResponse.objects.get()
    assert saved.customer == customer and saved.invitation == invitation
    assert {a.question.kind: (a.score, a.text) for a in saved.answers.all()} == {
        Question.Kind.NPS: (9, ""),
        Question.Kind.TEXT: (None, "Très bon outil"),
    }
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.ANSWERED and invitation.answered_at == T0
    event = DomainEvent.objects.get(type="feedback.response_received")
    assert event.customer_id == customer.pk and event.data["invitation"] == invitation.pk


def test_a_reused_link_is_refused_clearly_and_nothing_is_recorded_twice(client, sent_invitation):
    invitation, token, _customer = sent_invitation()
    answer(client, invitation, token)

    again = answer(client, invitation, token, **{f"q_{questions(invitation.survey)['nps'].pk}": "0"})
    opened = client.get(url(token))

    assert again.status_code == 410 and opened.status_code == 410
    assert "déjà" in again.content.decode()  # "Cette enquête a déjà reçu une réponse..."
    assert SurveyResponse.objects.count() == 1
    assert SurveyResponse.objects.get().answers.get(score__isnull=False).score == 9


def test_a_tampered_link_is_refused(client, sent_invitation):
    invitation, token, _customer = sent_invitation()
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")

    for candidate in (tampered, token[:-3], token + "x", "not-a-token"):
        response = client.get(url(candidate), HTTP_ACCEPT_LANGUAGE="fr")
        assert response.status_code == 404, candidate
        assert "pas valide" in response.content.decode()
    assert answer(client, invitation, tampered).status_code == 404
    assert SurveyResponse.objects.count() == 0


def test_an_expired_link_is_refused(client, sent_invitation, now):
    invitation, token, _customer = sent_invitation()
    assert invitation.expires_at == T0 + timedelta(days=14)

    now.move_to(T0 + timedelta(days=14, seconds=1))
    response = client.get(url(token))
    posted = answer(client, invitation, token)

    assert response.status_code == 410 and posted.status_code == 410
    assert "expiré" in response.content.decode()
    assert SurveyResponse.objects.count() == 0


def test_another_customers_portal_user_cannot_use_the_link(client, sent_invitation, make_customer, user_factory):
    invitation, token, owner = sent_invitation()
    stranger = make_customer()
    portal_user = user_factory(username="autre")
    CustomerUser.objects.create(user=portal_user, customer=stranger)
    client.force_login(portal_user)

    opened = client.get(url(token))
    posted = answer(client, invitation, token)

    assert opened.status_code == 403 and posted.status_code == 403
    assert "autre compte client" in opened.content.decode()
    assert SurveyResponse.objects.count() == 0
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.SENT  # still usable by its owner


def test_one_customers_link_never_answers_for_another(client, sent_invitation, make_customer):
    first, first_token, first_customer = sent_invitation()
    second, second_token, second_customer = sent_invitation(customer=make_customer())

    answer(client, second, second_token, customer=str(first_customer.pk), invitation=str(first.pk))

    assert list(SurveyResponse.objects.values_list("customer_id", flat=True)) == [second_customer.pk]
    first.refresh_from_db()
    assert first.status == Invitation.Status.SENT


def test_the_owners_portal_session_may_use_its_own_link(client, sent_invitation, user_factory):
    invitation, token, owner = sent_invitation()
    portal_user = user_factory(username="proprio")
    CustomerUser.objects.create(user=portal_user, customer=owner)
    client.force_login(portal_user)

    assert answer(client, invitation, token).status_code == 200
    assert SurveyResponse.objects.get().acting_user == portal_user


def test_invalid_answers_redisplay_the_form_with_errors_in_the_survey_language(client, sent_invitation):
    invitation, token, _customer = sent_invitation()
    nps = questions(invitation.survey)[Question.Kind.NPS]

    response = client.post(url(token), {f"q_{nps.pk}": "11"})

    page = response.content.decode()
    assert response.status_code == 400
    assert 'role="alert"' in page and "Sélectionnez un choix valide" in page
    assert SurveyResponse.objects.count() == 0
    assert answer(client, invitation, token).status_code == 200  # the link still works


def test_a_survey_switched_off_after_sending_is_closed(client, sent_invitation):
    invitation, token, _customer = sent_invitation()
    invitation.survey.active = False
    invitation.survey.save()

    assert client.get(url(token)).status_code == 410


def test_the_page_can_switch_language(client, sent_invitation):
    invitation, token, _customer = sent_invitation()

    page = client.get(url(token) + "?lang=en").content.decode()

    assert "Recommend us? (en)" in page and "Send my answers" in page


def test_an_empty_submission_says_which_answers_are_missing(client, sent_invitation):
    invitation, token, _customer = sent_invitation()

    response = client.post(url(token), {})

    page = response.content.decode()
    assert response.status_code == 400
    assert 'role="alert"' in page and "Ce champ est obligatoire." in page
    assert SurveyResponse.objects.count() == 0
