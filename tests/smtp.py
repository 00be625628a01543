"""A real SMTP server for the tests that follow an email end to end (aiosmtpd on loopback).

`smtp_inbox(settings)` starts one on a free port, points Django's SMTP backend at it and yields
its `Inbox`; `free_port()` is also how a test finds a port where nothing listens."""

from __future__ import annotations

import email
import socket
import time
from collections.abc import Iterator
from email import policy
from typing import Any

from aiosmtpd.controller import Controller


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"

    def wait_for(self, recipient: str, timeout: float = 15.0) -> email.message.EmailMessage:
        """The first message to `recipient`, waiting for it to arrive (the server runs in a thread)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages:
                if recipient in str(message["To"]):
                    return message
            time.sleep(0.2)
        raise AssertionError(f"no email to {recipient}; got {[str(m['To']) for m in self.messages]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def smtp_inbox(settings: Any) -> Iterator[Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    try:
        yield inbox
    finally:
        controller.stop()
