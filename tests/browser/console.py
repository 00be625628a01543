"""Helpers for the console's browser tests: a signed-in context without typing the sign-in
each time (the session cookie of a real password + TOTP sign-in), a page that collects
console errors, page errors and CSP violations, and the French-page check."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from playwright.sync_api import Browser, BrowserContext, Page

from tests.console_pages import signed_in_client

WIDTH, HEIGHT = 1366, 768
LOCALES = {"fr": "fr-FR", "en": "en-US"}

# Words of the console's English that a French page must not show (case-sensitive, whole
# words): what an untranslated msgid looks like on screen. Words French shares with
# English (Actions, Total, Date, Description, Note, Message, Type, Options, Coupons, Balance) are left out.
ENGLISH_WORDS = (
    "Save", "Delete", "Search", "Filter", "Filters", "Add", "Change", "History", "Home", "Dashboard",
    "Customer", "Customers", "Invoice", "Invoices", "Subscription", "Subscriptions", "Payment", "Payments",
    "Refund", "Refunds", "Settings", "Reports", "Amount", "Status", "Created", "Updated", "Name", "Apply",
    "Clear", "Previous", "Next", "Show", "Hide", "Close", "Cancel", "Submit", "Yes", "Paid", "Draft", "Due",
    "Select all", "results", "Run", "Back", "View", "Edit", "Upcoming", "Overdue", "Live data", "Test data",
    "Sign out", "Log out", "Welcome", "Unknown", "None", "True", "False", "Loading", "Export", "Import",
    "every month", "every year", "per month", "Credit note", "Credit notes", "Price", "Prices",
    "Product", "Products", "Quantity", "Period", "Total due", "Open", "Void",
)  # fmt: skip
# Whole words; a dotted identifier ("customer.subscription.created", an event type) is data.
_ENGLISH = re.compile(r"(?<![\w.-])(" + "|".join(re.escape(word) for word in ENGLISH_WORDS) + r")(?![\w-]|\.\w)")
# French that reads like a machine: "Modification de abonnement" (no elision before a vowel).
_NO_ELISION = re.compile(r"(?<![\w-])[Dd]e (?=[aeiouéèêâîôh][a-zéèêàç]+\b)(\w+)")
_ELISION_EXCEPTIONS = {"haut", "hauteur", "huit", "hausse"}


# Data, not interface: a font's name, and what to type quoted as « … » (the billing-cycle field
# reads English keywords such as « every month », explained in French next to them).
_DATA = re.compile(r"Open Sans|«[^»]*»")


def english_on_french_page(text: str) -> list[str]:
    """The English words and the missing elisions a French page shows (empty when clean)."""
    text = _DATA.sub(" ", text)
    found = sorted(set(_ENGLISH.findall(text)))
    found += sorted({f"de {word}" for word in _NO_ELISION.findall(text) if word not in _ELISION_EXCEPTIONS})
    return found


@contextmanager
def signed_in_context(browser: Browser, base_url: str, user: Any, *, language: str = "fr") -> Iterator[BrowserContext]:
    """A browser context at 1366 px holding the session of a real sign-in (password + TOTP)."""
    client = signed_in_client(user, language=language)
    context = browser.new_context(
        viewport={"width": WIDTH, "height": HEIGHT}, locale=LOCALES[language], base_url=base_url
    )
    cookies = [{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value}]
    cookies.append({"name": settings.LANGUAGE_COOKIE_NAME, "value": language})
    context.add_cookies([{**cookie, "url": base_url} for cookie in cookies])
    context.django_client = client  # type: ignore[attr-defined]  # toggles the session's test-data switch
    try:
        yield context
    finally:
        context.close()


def watch_errors(page: Page) -> list[str]:
    """Console errors (CSP violations included: Chromium reports them there) and page errors."""
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            errors.append(f"{message.text} ({message.location.get('url', '')})") if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error} ({page.url}) {(error.stack or '')[:300]}"))
    return errors


def horizontal_overflow(page: Page) -> int:
    """How many pixels the page scrolls sideways (0 when it fits)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))
