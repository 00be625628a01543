"""The one base of every domain error: a stable code, an HTTP status and a message for people.

A leaf module: it imports nothing from the apps, so every app's errors can subclass
`DomainError` and the API's exception handler and the console can map that one base
without importing any domain module. Anything else reaching a user is a bug (a 500).

Statuses: 409 for a state conflict (a transition the object's state does not allow, a
frozen document, a period already billed), 422 for a well-formed request a business rule
refuses, 400 for a value that is out of bounds or malformed, 403 for a missing approval.
Never 404: "not found" is the API's own answer for an id the caller cannot see.

Some app errors also subclass Django's `ValidationError` so forms keep showing them;
`message_text()` gives the same text in both cases.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class DomainError(Exception):
    code: str = "domain_error"
    http_status: int = 422
    default_message: Any = _("The request was refused.")

    def __init__(self, message: Any = None, *args: Any, code: str | None = None, params: Any = None) -> None:
        if message is None:
            message = self.default_message
        if isinstance(self, ValidationError):  # a form-compatible domain error keeps ValidationError's shape
            ValidationError.__init__(self, message, code=code, params=params)
        else:
            super().__init__(message, *args)
            self.message = message
            self.params = params
        if code is not None:
            self.code = code

    @property
    def problem_code(self) -> str:
        """The instance's code when it names the refusal, else the class's."""
        instance_code = self.__dict__.get("code")
        if isinstance(instance_code, str) and instance_code and instance_code != "invalid":
            return instance_code
        return type(self).code

    def message_text(self) -> str:
        """The text for the person who made the request (the console and the API show it as is)."""
        if isinstance(self, ValidationError):
            return " ".join(str(message) for message in self.messages)
        if len(self.args) == 1:
            return str(self.args[0])
        return str(self) or str(self.default_message)


class DomainConflict(DomainError):
    """A request the object's current state does not allow (HTTP 409)."""

    code = "conflict"
    http_status = 409


class DomainBoundsError(DomainError):
    """A value outside the documented bounds (amount, quantity, total): HTTP 400."""

    code = "out_of_bounds"
    http_status = 400


def translate(message: str) -> str:
    """The translator of domain messages (Django's gettext), for pure modules that may not
    import Django themselves (the pure-modules import contract): `raise AmountError(translate(...))`."""
    return gettext(message)


class DomainValidationError(DomainError, ValidationError):  # type: ignore[misc]  # both define `code`: the class code wins, as for every form-compatible domain error
    """A domain error that forms also show as a field error (it is a ValidationError too)."""
