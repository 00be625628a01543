"""Every console page Finance opens, in Chromium at 1366 px: no horizontal scroll, no console
error (a CSP violation is one), and in French no English left on screen (issue 15).

One browser context per language, signed in once; the pages come from the admin registry
and the URL conf (tests/console_pages.py). Statuses per role are checked without a browser
in tests/config/test_console_pages.py."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Browser

from tests.browser.console import (
    english_on_french_page,
    horizontal_overflow,
    signed_in_context,
    watch_errors,
)
from tests.console_pages import (
    NOT_GET_PAGES,
    ConsolePage,
    console_pages,
    console_world,
    role_grants,
    role_user,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def finance_pages() -> list[ConsolePage]:
    return [
        page
        for page in console_pages(include_plumbing=False)
        if not page.plumbing and page.name not in NOT_GET_PAGES and role_grants("Finance", page.app_label, "view")
    ]


def _walk(context, pages: list[ConsolePage], *, french: bool) -> tuple[list[str], int]:
    tab = context.new_page()
    errors = watch_errors(tab)
    failures: list[str] = []
    opened = 0
    for page in pages:
        if page.test_data:
            context.django_client.post("/admin/test-data/", {"test_data": "on"})
        errors.clear()
        response = tab.goto(page.url, wait_until="load")
        status = response.status if response else 0
        if page.test_data:
            context.django_client.post("/admin/test-data/", {"test_data": "off"})
        if status == 403 and page.kind in ("add", "custom"):
            continue  # not Finance's to open; the client test holds the statuses per role
        opened += 1
        if status != 200:
            failures.append(f"{page.url}: HTTP {status}")
            continue
        tab.wait_for_timeout(50)  # Alpine.js and the charts settle
        overflow = horizontal_overflow(tab)
        if overflow > 0:
            failures.append(f"{page.url}: scrolls sideways by {overflow} px at 1366 px")
        if errors:
            failures.append(f"{page.url}: console errors {errors[:3]}")
        if french:
            # Raw data (an event's JSON payload) is not interface text: leave it out (last check).
            script = "document.querySelectorAll('pre.tarif-json').forEach(e => e.remove()) || document.body.innerText"
            text = tab.evaluate(script)
            english = english_on_french_page(text)
            if english:
                failures.append(f"{page.url}: English on the French page {english[:12]}")
    tab.close()
    return failures, opened


@pytest.fixture
def world(settings):
    settings.TARIF_RENDER_DOCUMENTS = False
    return console_world()


def test_every_finance_page_fits_1366_px_has_no_console_error_and_is_french(live_server, browser: Browser, world):
    pages = finance_pages()
    started = time.monotonic()

    with signed_in_context(browser, live_server.url, role_user("Finance"), language="fr") as context:
        failures, opened = _walk(context, pages, french=True)

    print(f"\n{opened} French console pages checked in {time.monotonic() - started:.1f} s")
    assert opened > 80, "the enumeration should reach every page of the navigation"
    assert not failures, f"{len(failures)} problem(s) on {opened} pages:\n" + "\n".join(failures)


def test_every_list_and_report_fits_1366_px_in_english_too(live_server, browser: Browser, world):
    pages = [page for page in finance_pages() if page.kind in ("changelist", "site") or "report" in page.name]

    with signed_in_context(browser, live_server.url, role_user("Finance"), language="en") as context:
        failures, opened = _walk(context, pages, french=False)

    assert opened > 30
    assert not failures, f"{len(failures)} problem(s) on {opened} pages:\n" + "\n".join(failures)


def test_the_french_check_catches_english_and_missing_elisions():
    """Negative control of the French-page check."""
    assert english_on_french_page("Clients  Factures  Enregistrer  Modification d'abonnement") == []
    assert english_on_french_page("Tableau de bord Save every month") == ["Save", "every month"]
    assert english_on_french_page("Modification de abonnement") == ["de abonnement"]
    assert english_on_french_page("Police : Open Sans ; p. ex. « every month » (tous les mois)") == []
    assert english_on_french_page("Open every month") == ["Open", "every month"]
    assert english_on_french_page("Customer.subscription.created") == []
    assert english_on_french_page("Customer. Customer") == ["Customer"]
