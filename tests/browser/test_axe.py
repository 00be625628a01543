"""The accessibility check itself: it passes a page that meets WCAG AA and catches one that does not."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.browser.axe import assert_accessible, axe_violations

pytestmark = pytest.mark.django_db(transaction=True)

ACCESSIBLE = """<!doctype html><html lang="en"><head><title>Sign in</title></head><body>
<header><a href="#main">Skip to content</a></header>
<main id="main"><h1>Sign in</h1>
<form><label for="email">Email</label><input id="email" name="email" type="email" autocomplete="email">
<button type="submit">Sign in</button></form></main></body></html>"""

# Negative control: an unlabeled input, an image without alternative text and grey-on-white text.
INACCESSIBLE = """<!doctype html><html lang="en"><head><title>Sign in</title></head><body><main>
<h1>Sign in</h1><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<form><input name="email" type="email"><button type="submit">Go</button></form>
<p style="color:#bbbbbb;background:#ffffff">Forgot your password?</p></main></body></html>"""


def _serve(page: Page, live_server, html: str) -> None:
    page.route(f"{live_server.url}/axe-fixture", lambda route: route.fulfill(body=html, content_type="text/html"))
    page.goto(f"{live_server.url}/axe-fixture")


def test_a_page_meeting_wcag_aa_passes(live_server, page: Page):
    _serve(page, live_server, ACCESSIBLE)
    assert assert_accessible(page, name="fixture") == []


def test_missing_labels_alt_text_and_low_contrast_are_caught(live_server, page: Page):
    _serve(page, live_server, INACCESSIBLE)
    with pytest.raises(AssertionError) as caught:
        assert_accessible(page, name="fixture")
    message = str(caught.value)
    assert "label" in message
    assert "image-alt" in message
    assert "color-contrast" in message


def test_the_pages_content_security_policy_does_not_stop_the_check(live_server, page: Page):
    """The portal's sign-in page is served with a strict CSP (no inline scripts); axe still runs."""
    response = page.goto(f"{live_server.url}/accounts/login/")
    assert "script-src" in (response.headers.get("content-security-policy") or "")
    assert isinstance(axe_violations(page), list)
