"""Domain errors of the feedback app."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from config.errors import DomainError


class FeedbackError(DomainError):
    code = "feedback_refused"


class InvitationLinkError(FeedbackError):
    """A survey link that cannot be used; `code` says why, `message` says it to the customer."""

    MESSAGES = {
        "invalid": _("This survey link is not valid. Check that you copied the whole address from the email."),
        "expired": _("This survey link has expired. Thank you all the same."),
        "used": _("This survey has already been answered with this link. Thank you, we have your answers."),
        "other_customer": _(
            "This survey link was sent to another customer account. Sign out of the portal or open the link "
            "from the email you received."
        ),
        "closed": _("This survey is closed. Thank you all the same."),
    }
    STATUS = {"invalid": 404, "expired": 410, "used": 410, "other_customer": 403, "closed": 410}

    def __init__(self, code: str, *, language: str = "") -> None:
        self.code = code
        self.language = language  # the invitation's, when the link was recognised
        self.status = self.STATUS[code]
        super().__init__(str(self.MESSAGES[code]))
