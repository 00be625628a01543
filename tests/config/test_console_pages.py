"""Every console page (from the admin registry and the URL conf), opened by each role:
Finance gets 200 everywhere config/roles.py lets it look; Support and Read-only get what
their role grants (200 or 403, never a 500) and no button to act where they cannot.
The browser checks of the same pages (overflow, console errors, French) are in
tests/browser/test_console_pages.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.test import RequestFactory

from tests.console_pages import (
    NOT_GET_PAGES,
    ROLES,
    ConsolePage,
    console_pages,
    console_world,
    navigation_models,
    role_grants,
    role_user,
    signed_in_client,
)
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

_SUBMIT = re.compile(r"<(?:button|input)\b[^>]*type=[\"']submit[\"'][^>]*>", re.IGNORECASE)
_POST_FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.IGNORECASE | re.DOTALL)
# The frame's own forms are not actions on the page's object: sign out, language, live/test switch.
_CHROME_ACTIONS = ("logout", "/i18n/setlang/", "/test-data/")
# Forms that only read: the portal seen as the customer (read-only, recorded in the event log).
_READING_FORMS = ("/portal/view-as/",)


_ACTION_OPTION = re.compile(r'<select[^>]*name="action".*?</select>', re.DOTALL)
_OPTION_VALUE = re.compile(r'<option value="([^"]*)"')
# Bulk actions that only read (exports, PDF downloads): a viewer may have them.
_READING_ACTIONS = ("export", "download", "pdf")
# Buttons that only read: a PDF preview of the brand, the portal seen as the customer (logged).
_READING_BUTTONS = ("/preview/", "viewsitelink")


def action_buttons(html: str) -> list[str]:
    """Submit buttons of POST forms that act on something: the frame's forms, a changelist
    whose only bulk actions are exports, and read-only previews are left out."""
    found = []
    for attributes, body in _POST_FORM.findall(html):
        if 'method="post"' not in attributes.lower() or any(
            chrome in attributes for chrome in _CHROME_ACTIONS + _READING_FORMS
        ):
            continue
        select = _ACTION_OPTION.search(body)
        if select is not None:
            actions = [value for value in _OPTION_VALUE.findall(select.group(0)) if value]
            if all(any(word in action for word in _READING_ACTIONS) for action in actions):
                body = _ACTION_OPTION.sub("", body).replace('title="Run the selected action"', "")
                body = re.sub(r"<button[^>]*x-show=\"action\"[^>]*>", "", body)
        found.extend(button for button in _SUBMIT.findall(body) if not any(r in button for r in _READING_BUTTONS))
    return found


@pytest.fixture
def world(settings):
    settings.TARIF_RENDER_DOCUMENTS = False  # PDFs are not what these pages are about
    return console_world()


def addable(page: ConsolePage) -> bool:
    """Whether the console lets anyone add this model (a superuser asks the admin itself)."""
    model = apps.get_model(page.model)
    request = RequestFactory().get(page.url)
    request.user = StaffFactory.build(is_superuser=True)
    request.session = {}
    return admin.site._registry[model].has_add_permission(request)


def expected_status(page: ConsolePage, role: str) -> set[int]:
    if page.kind == "site":
        return {200}
    if page.name in NOT_GET_PAGES:
        answers = set(NOT_GET_PAGES[page.name][0])
        return answers if role in ("Superuser", "Finance") else answers | {403}
    if role == "Superuser":
        return {200, 403} if page.kind == "add" else {200}
    if not role_grants(role, page.app_label, "view"):
        return {403}
    if page.kind == "add":
        return {200} if addable(page) and role_grants(role, page.app_label, "add") else {403}
    if page.kind == "custom" and role != "Finance":
        return {200, 403}  # a custom page may be for those who act only; never a 500
    return {200}


def test_the_world_covers_every_model_of_the_navigation(world):
    changes = {page.model for page in console_pages() if page.kind == "change"}

    missing = navigation_models() - changes

    assert len(navigation_models()) > 25
    assert missing == set(), "console_world() should make one object of these models"


@pytest.mark.parametrize("role", ["Superuser", *ROLES])
def test_each_role_gets_what_its_role_grants_on_every_console_page(world, role):
    client = signed_in_client(role_user(role))
    client.raise_request_exception = False
    failures = []
    pages = console_pages()
    assert len(pages) > 100, "the enumeration should find every registered model's pages"
    # Plumbing is for superusers (a role's 403 there is checked below on samples); the
    # superuser's walk covers the plumbing and the site's pages, Finance covers the rest.
    if role == "Superuser":
        pages = [page for page in pages if page.plumbing or page.kind == "site"]
    else:
        pages = [page for page in pages if not page.plumbing]

    for page in pages:
        if page.test_data:
            client.post("/admin/test-data/", {"test_data": "on"})
        response = client.get(page.url)
        if page.test_data:
            client.post("/admin/test-data/", {"test_data": "off"})
        status = response.status_code
        expected = expected_status(page, role)
        if status not in expected:
            failures.append(f"{page.url}: {status}, expected {sorted(expected)}")
            continue
        if status != 200 or role in ("Superuser", "Finance") or "text/html" not in response.get("Content-Type", ""):
            continue
        if page.name.endswith("_export"):
            continue  # an export form reads: choosing columns and a format is not acting
        html = response.content.decode()
        can_act = role_grants(role, page.app_label, "change") or role_grants(role, page.app_label, "add")
        if not can_act and action_buttons(html):
            failures.append(f"{page.url}: {role} cannot act here but sees {action_buttons(html)[:2]}")
        if page.kind == "changelist" and not role_grants(role, page.app_label, "add"):
            add_url = page.url + "add/"
            if f'href="{add_url}"' in html:
                failures.append(f"{page.url}: {role} cannot add but sees the add link")

    assert not failures, f"{role}: {len(failures)} page(s) of {len(pages)}:\n" + "\n".join(failures)


@pytest.mark.parametrize("role", ROLES)
def test_plumbing_is_closed_to_every_role(world, role):
    client = signed_in_client(role_user(role))

    for url in ("/admin/auth/user/", "/admin/djstripe/customer/", "/admin/axes/accesslog/"):
        assert client.get(url).status_code == 403, url


def test_the_french_catalogue_has_no_untranslated_or_fuzzy_message():
    with open(Path(settings.BASE_DIR) / "config/locale/fr/LC_MESSAGES/django.po", "rb") as po:
        catalogue = read_po(po, locale="fr")
    messages = [message for message in catalogue if message.id]

    def translated(message) -> bool:
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        return all(strings)

    untranslated = [message.id for message in messages if not translated(message)]
    fuzzy = [message.id for message in messages if message.fuzzy]

    assert not untranslated, f"{len(untranslated)} untranslated: {untranslated[:20]}"
    assert not fuzzy, f"{len(fuzzy)} fuzzy: {fuzzy[:20]}"
