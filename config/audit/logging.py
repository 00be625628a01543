"""Logging filters: the request id on every record, and secrets and personal data scrubbed out.

Both are installed in LOGGING (config/settings/base.py) on the console handler, so every
logger, including Django's and Celery's, goes through them.
"""

from __future__ import annotations

import logging
import re

from config.audit.context import current_request_id


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


_REDACTED = "[redacted]"
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?i)\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + _REDACTED),
    # key=value / "key": "value" pairs whose key names a secret
    (
        re.compile(
            r"(?i)(\"?(?:password|passwd|secret|token|api[_-]?key|authorization|cookie|sessionid|csrftoken|otp_token"
            r"|iban|tax_id|card_number|cvc)\"?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,&;]+)"
        ),
        r"\1" + _REDACTED,
    ),
    # Fernet tokens and Stripe-style secret keys
    (re.compile(r"\bgAAAAA[A-Za-z0-9_=-]{20,}"), _REDACTED),
    (re.compile(r"\b(?:sk|rk|whsec)_(?:test_|live_)?[A-Za-z0-9]{16,}"), _REDACTED),
    # IBANs (2 letters, 2 digits, 11-30 alphanumerics, spaces allowed in groups of 4)
    (re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b"), "[iban]"),
    # card-like numbers: 13 to 19 digits, optionally grouped by spaces or dashes
    (re.compile(r"\b(?:\d[ -]?){12,18}\d\b"), "[card]"),
    (re.compile(r"(?i)\b[A-Z0-9._%+-]+@[A-Z0-9.-]+\.[A-Z]{2,}\b"), "[email]"),
]


def scrub(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class ScrubbingFilter(logging.Filter):
    """Rewrites the rendered message (and exception text) with secrets and personal data masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it for the handler to report
            return True
        scrubbed = scrub(message)
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True
