"""What the notification services and the content builders share: the content of one email,
the "nothing to say any more" signal, and absolute portal links. A leaf of the notifications
package, so the builders (content.py) never import the services that call them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.urls import reverse


class NotificationGone(Exception):
    """What the notification was about no longer exists (or no longer applies)."""


@dataclass
class Content:
    subject: str
    paragraphs: list[str]
    rows: list[tuple[str, str]] = field(default_factory=list)
    action: tuple[str, str] | None = None  # (label, absolute URL)
    lines: list[tuple[str, str]] = field(default_factory=list)  # (description, amount): prorations


def portal_url(name: str, *args: Any) -> str:
    return settings.TARIF_BASE_URL.rstrip("/") + reverse(name, args=args)
