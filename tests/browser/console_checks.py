"""Checks every console page can reuse (issue 15): no English left on a French page, no console
error or CSP violation. Plain functions, usable from Playwright tests (a `page`) and from
Django test-client tests (the response's HTML).

    text = french_page_text(page)                # Playwright: what the operator reads
    text = visible_text(response.content.decode())  # test client: the same from the HTML
    assert english_words(text) == []
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from playwright.sync_api import ConsoleMessage, Page

# Words and phrases of Django's admin, django-unfold and Tarif that a French page never shows
# once translated. Whole words, case-sensitive (data such as "Nordlicht GmbH" never matches).
ENGLISH_ON_FRENCH_PAGES = (
    "Add",
    "Change",
    "Save",
    "Search",
    "Delete",
    "Filter",
    "Filters",
    "Apply Filters",
    "Reset filters",
    "Type to search",
    "Select action",
    "Select all",
    "Select format",
    "Submit",
    "Export",
    "Import",
    "History",
    "Cancel",
    "Previous",
    "Next",
    "Go back",
    "Dashboard",
    "Live data",
    "Test data",
    "Operator console",
    "every month",
    "every year",
    "per month",
    "No results found",
    "No data",
    "Welcome back to",
    "Run",
    "View",
    "Yes",
    "Show all",
    "Clear all filters",
    "Recent actions",
    "More actions",
)

_PATTERNS = [(word, re.compile(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])")) for word in ENGLISH_ON_FRENCH_PAGES]


def english_words(text: str, *, allowed: tuple[str, ...] = ()) -> list[str]:
    """The known English words found in `text` (sorted), minus those a page may legitimately
    show (`allowed`, e.g. a customer named "Export Partners")."""
    return sorted(word for word, pattern in _PATTERNS if word not in allowed and pattern.search(text))


class _TextParser(HTMLParser):
    SKIP = {"script", "style", "template", "svg"}
    ATTRIBUTES = ("placeholder", "title", "aria-label", "alt")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        if tag == "input" and dict(attrs).get("type") in ("submit", "button"):
            self.parts.append(dict(attrs).get("value") or "")
        self.parts.extend(value for name, value in attrs if name in self.ATTRIBUTES and value)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def visible_text(html: str) -> str:
    """The text of a page as the operator meets it: body text (scripts and styles aside), button
    values, placeholders, titles and accessible labels, one per line."""
    parser = _TextParser()
    parser.feed(html)
    return "\n".join(part.strip() for part in parser.parts if part.strip())


def french_page_text(page: Page) -> str:
    """What a Playwright page shows, with the same attributes as visible_text."""
    return page.evaluate(
        """() => [document.body.innerText,
                  ...[...document.querySelectorAll('[placeholder],[title],[aria-label],img[alt]')]
                     .map(e => [e.placeholder, e.title, e.getAttribute('aria-label'), e.alt]
                                 .filter(Boolean).join('\\n'))
                 ].join('\\n')"""
    )


def horizontal_overflow(page: Page) -> list[str]:
    """What scrolls sideways on the page: the document itself, or a box whose content is wider
    than the box (unfold's table wrappers scroll on their own, so the document alone says
    nothing about a table running past the screen). Empty when everything fits."""
    return page.evaluate(
        """() => {
            const found = [];
            const root = document.documentElement;
            if (root.scrollWidth > innerWidth) found.push(`document ${root.scrollWidth}px > ${innerWidth}px`);
            const boxes = document.querySelectorAll('.simplebar-content-wrapper, .overflow-x-auto, [data-simplebar]');
            for (const box of boxes) {
                if (box.offsetParent !== null && box.scrollWidth > box.clientWidth + 1) {
                    const what = box.querySelector('table') ? `table #${box.querySelector('table').id}` : box.className;
                    found.push(`${what}: ${box.scrollWidth}px in ${box.clientWidth}px`);
                }
            }
            return [...new Set(found)];
        }"""
    )


def watch_console_errors(page: Page) -> list[str]:
    """A list that fills with the page's console errors, uncaught exceptions and CSP violations
    (Chromium reports a blocked inline script as a console error)."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # the browser's own favicon probe is no page's doing (nothing serves /favicon.ico yet)
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            errors.append(f"{message.text} ({message.location.get('url', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def sign_in_console(page: Page, base_url: str, user: object, device: object) -> None:
    """Password, then the TOTP code (tests.conftest.staff_with_totp gives user and device)."""
    from tests.conftest import current_totp

    page.goto(f"{base_url}/admin/login/")
    page.fill("input[name=username]", user.username)  # type: ignore[attr-defined]
    page.fill("input[name=password]", "correct horse battery staple")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.fill("input[name=otp_token]", current_totp(device))
    with page.expect_navigation():
        page.keyboard.press("Enter")
