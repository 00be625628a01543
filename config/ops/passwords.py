"""Password rules from OWASP ASVS 4.0 level 2 that Django does not ship (V2.1.2, V2.1.7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth.password_validation import CommonPasswordValidator
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext


class MaximumLengthValidator:
    """ASVS 2.1.2: passwords of up to 128 characters are allowed, longer ones refused
    (hashing megabytes of input is a denial-of-service lever)."""

    def __init__(self, max_length: int = 128):
        self.max_length = max_length

    def validate(self, password: str, user: Any = None) -> None:
        if len(password) > self.max_length:
            raise ValidationError(
                ngettext(
                    "This password is too long. It must contain at most %(max_length)d character.",
                    "This password is too long. It must contain at most %(max_length)d characters.",
                    self.max_length,
                ),
                code="password_too_long",
                params={"max_length": self.max_length},
            )

    def get_help_text(self) -> str:
        return ngettext(
            "Your password can contain at most %(max_length)d character.",
            "Your password can contain at most %(max_length)d characters.",
            self.max_length,
        ) % {"max_length": self.max_length}


class BreachedPasswordValidator(CommonPasswordValidator):
    """ASVS 2.1.7: refuse passwords known from breaches.

    Offline by design (no password, not even a hash prefix, leaves the server): Django's
    list of 20,000 common passwords, plus an operator-supplied file of breached passwords
    (one a line, optionally gzipped) set with TARIF_BREACHED_PASSWORDS_FILE.
    """

    def __init__(self, password_list_path: str | Path | None = None):
        super().__init__()
        if password_list_path:
            extra = CommonPasswordValidator(password_list_path=password_list_path).passwords
            self.passwords = self.passwords | {password.lower() for password in extra}

    def validate(self, password: str, user: Any = None) -> None:
        if password.lower().strip() in self.passwords:
            raise ValidationError(
                _("This password appears in lists of breached or common passwords. Choose another one."),
                code="password_too_common",
            )
