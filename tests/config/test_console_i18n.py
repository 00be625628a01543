"""The console reads in French end to end (issue 15, item 8): every msgid the code and templates
use has a French translation in the catalogue, the compiled catalogue matches it, labels built
in code follow the operator's language, and rendered pages show no English words."""

from __future__ import annotations

import gettext
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from django.apps import apps
from django.conf import settings
from django.utils import translation

from billing.resources import cycle_display
from reports.filters import ReportFilterForm
from tests.browser.console_checks import english_words, visible_text

ROOT = Path(settings.BASE_DIR)
FRENCH_PO = ROOT / "config/locale/fr/LC_MESSAGES/django.po"
FRENCH_MO = ROOT / "config/locale/fr/LC_MESSAGES/django.mo"
PROBE = "A sentence nobody has translated yet (catalogue check's own control)"


def untranslated(catalog: Catalog) -> list[str]:
    """Msgids with an empty or fuzzy French translation (any plural form)."""
    missing = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple | list) else (message.string,)
        if message.fuzzy or not all(strings):
            missing.append(message.id if isinstance(message.id, str) else message.id[0])
    return sorted(missing)


def extracted_french_catalogue(workdir: Path, *, extra_source: str = "") -> Catalog:
    """Run `makemessages -l fr` (as `make messages` does) on a copy of the project's code and
    templates, merged into the committed French catalogue, and return the result: what the
    catalogue would be if someone regenerated it now. The committed files are never touched."""
    project = workdir / "project"
    project.mkdir()
    shutil.copy2(ROOT / "manage.py", project / "manage.py")
    top_level = {
        Path(app.path).relative_to(ROOT).parts[0]
        for app in apps.get_app_configs()
        if Path(app.path).is_relative_to(ROOT)
    }
    for name in sorted(top_level | {"templates"}):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo", "migrations"))
    if extra_source:
        (project / "config" / "i18n_probe.py").write_text(extra_source, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "fr", "--ignore=tests", "--ignore=bench"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    with open(project / "config/locale/fr/LC_MESSAGES/django.po", "rb") as po:
        return read_po(po, locale="fr")


def test_every_msgid_of_the_code_and_templates_has_a_french_translation(tmp_path):
    # The probe proves the check sees a new, untranslated string; nothing else may be missing.
    probe = f"from django.utils.translation import gettext_lazy as _\n\nPROBE = _({PROBE!r})\n"

    catalog = extracted_french_catalogue(tmp_path, extra_source=probe)

    assert untranslated(catalog) == [PROBE], "translate these in config/locale/fr/LC_MESSAGES/django.po"


def test_untranslated_reports_empty_fuzzy_and_half_translated_plurals():
    po = io.BytesIO(
        b'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        b'msgid "done"\nmsgstr "fait"\n\n'
        b'msgid "empty"\nmsgstr ""\n\n'
        b'#, fuzzy\nmsgid "guessed"\nmsgstr "devin\xc3\xa9"\n\n'
        b'msgid "one"\nmsgid_plural "many"\nmsgstr[0] "un"\nmsgstr[1] ""\n'
    )

    assert untranslated(read_po(po, locale="fr")) == ["empty", "guessed", "one"]


def test_the_compiled_french_catalogue_matches_the_po():
    with open(FRENCH_PO, "rb") as po:
        catalog = read_po(po, locale="fr")
    with open(FRENCH_MO, "rb") as mo:
        compiled = gettext.GNUTranslations(mo)

    stale = []
    for message in catalog:
        if not message.id or message.fuzzy or isinstance(message.id, tuple | list):
            continue
        key = f"{message.context}\x04{message.id}" if message.context else message.id
        if compiled._catalog.get(key) != message.string:  # type: ignore[attr-defined]
            stale.append(message.id)

    assert stale == [], "run `make messages` (compilemessages) after editing the .po"


@pytest.mark.parametrize(
    ("language", "cycle", "label"),
    [
        ("fr", {"kind": "interval", "unit": "month", "count": 1}, "tous les mois"),
        ("fr", {"kind": "interval", "unit": "month", "count": 3}, "tous les 3 mois"),
        ("en", {"kind": "interval", "unit": "month", "count": 1}, "every month"),
        ("en", {"kind": "interval", "unit": "year", "count": 2}, "every 2 years"),
        ("fr", {"kind": "twice_monthly", "days": [15, -1]}, "tous les mois, jour 15 et dernier"),
        ("en", {"kind": "twice_monthly", "days": [1, 15]}, "every month on day 1 and 15"),
        ("fr", {"kind": "last_business_day"}, "le dernier jour ouvré du mois"),
    ],
)
def test_billing_cycles_read_in_the_operators_language(language, cycle, label):
    with translation.override(language):
        assert cycle_display(cycle) == label


def test_report_country_names_follow_the_request_language_not_the_import_time_one(db):
    with translation.override("en"):
        english = dict(ReportFilterForm().fields["country"].choices)
    with translation.override("fr"):
        french = dict(ReportFilterForm().fields["country"].choices)

    assert (english["DE"], french["DE"]) == ("Germany", "Allemagne")


def test_the_rendered_page_check_finds_english_words_and_spares_data():
    html = (
        '<div class="sidebar"><a href="/admin/">Dashboard</a></div>'
        '<input placeholder="Type to search"><script>var Add = 1;</script>'
        "<td>tous les mois</td><td>Nordlicht GmbH</td><td>Addison Lee</td>"
        '<input type="submit" value="Save">'
    )

    assert english_words(visible_text(html)) == ["Dashboard", "Save", "Type to search"]
    assert english_words(visible_text(html), allowed=("Dashboard",)) == ["Save", "Type to search"]


@pytest.mark.parametrize("path", ["/admin/customers/customer/", "/admin/invoices/brand/", "/admin/invoices/taxrate/"])
def test_the_pages_with_a_country_filter_render_and_filter(console, path):
    assert console.get(path).status_code == 200
    assert console.get(path, {"country__exact": "DE"}).status_code == 200


def test_the_country_filter_lists_the_countries_in_use_in_the_operators_language(console, customer_factory):
    customer_factory(legal_name="Nordlicht GmbH", country="DE")
    customer_factory(legal_name="Atelier Dupont", country="FR")

    french = console.get("/admin/customers/customer/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    english = console.get("/admin/customers/customer/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    only_germany = console.get("/admin/customers/customer/", {"country__exact": "DE"}).content.decode()

    assert "Allemagne" in french and "Germany" not in french
    assert "Germany" in english and "Allemagne" not in english
    assert "Zimbabwe" not in french  # only the countries of the listed rows, not all 249
    assert "Nordlicht GmbH" in only_germany and "Atelier Dupont" not in only_germany


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/customers/customer/",
        "/admin/customers/customer/add/",
        "/admin/billing/subscription/",
        "/admin/billing/price/",
        "/admin/invoices/invoice/",
        "/admin/customers/customer/export/",
    ],
)
def test_console_pages_in_french_show_no_english_words(console, path, price_factory, customer_factory):
    customer_factory(legal_name="Atelier Dupont")
    price_factory()

    response = console.get(path, HTTP_ACCEPT_LANGUAGE="fr")

    assert response.status_code == 200
    assert english_words(visible_text(response.content.decode())) == []


def test_the_same_pages_in_english_would_fail_the_check(console):
    # the control: the words the check looks for are those the English console shows
    response = console.get("/admin/customers/customer/", HTTP_ACCEPT_LANGUAGE="en")

    assert {"Type to search", "Filters", "Dashboard"} <= set(english_words(visible_text(response.content.decode())))
