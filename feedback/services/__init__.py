"""The feedback app's public API (other apps call these, never the modules' private helpers).

- portal, before confirming a cancellation: `cancellation_survey_for`, then
  `feedback.forms.SurveyResponseForm(survey=..., language=...)`, then `survey_response_record`;
- API, when a customer used a feature: `feedback_feature_event_record`;
- beat: `feedback_events_consume` then `feedback_invitations_send_due`.
"""

from feedback.services.answers import AnswerData, SurveyAnswerError, survey_answers_validate
from feedback.services.invitations import invitation_answer, invitation_for_token, invitation_send
from feedback.services.responses import cancellation_survey_for, survey_language_for, survey_response_record
from feedback.services.triggers import (
    feedback_events_consume,
    feedback_feature_event_record,
    feedback_invitations_send_due,
    survey_invite,
)

__all__ = [
    "AnswerData",
    "SurveyAnswerError",
    "cancellation_survey_for",
    "feedback_events_consume",
    "feedback_feature_event_record",
    "feedback_invitations_send_due",
    "invitation_answer",
    "invitation_for_token",
    "invitation_send",
    "survey_answers_validate",
    "survey_invite",
    "survey_language_for",
    "survey_response_record",
]
