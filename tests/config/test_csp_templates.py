"""No template the site renders carries an inline script, an inline event handler or a
`javascript:` URL (issue 15, item 11): the Content-Security-Policy blocks them, so a page that
relies on one silently loses its behaviour. Checked on the template that wins for each name
(Tarif's templates/ first, then the apps in INSTALLED_APPS order), so third-party templates we
override are judged by our copy."""

from __future__ import annotations

import re
from pathlib import Path

import import_export
from django.template import engines
from django.template.utils import get_app_template_dirs

SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)
DATA_SCRIPT = re.compile(r"""type\s*=\s*["'](application/(ld\+)?json|text/template)["']""", re.I)
HANDLER = re.compile(r"""<[a-zA-Z][^<>]*?\s(on[a-z]+)\s*=""", re.S)
JAVASCRIPT_URL = re.compile(r"""(?:href|src|action|formaction)\s*=\s*["']\s*javascript:""", re.I)

# Third-party templates that carry inline code and that the console never renders, or renders
# only in a form where the inline code is harmless; each with the reason.
NOT_RENDERED = {
    # drf-spectacular: /api/docs/ is SpectacularSwaggerSplitView, which loads its script from a URL
    # (the template's inline branch runs only for the non-split view, not routed); redoc is not routed.
    "drf_spectacular/swagger_ui.html",
    "drf_spectacular/redoc.html",
    # unfold's crispy-forms layout: crispy_forms is not installed.
    "unfold_crispy/layout/table_inline_formset.html",
    # dj-stripe's own admin actions (superusers only, plumbing): the inline code only shows a
    # spinner while the form submits; the form and the links work without it.
    "djstripe/admin/confirm_action.html",
    "djstripe/admin/webhook_endpoint/delete_confirmation.html",
}


def template_dirs() -> list[Path]:
    engine = engines["django"].engine
    return [Path(directory) for directory in [*engine.dirs, *get_app_template_dirs("templates")]]


def winning_templates() -> dict[str, Path]:
    """Each template name the site can render, with the file the loaders pick for it."""
    winners: dict[str, Path] = {}
    for directory in template_dirs():
        for path in sorted(directory.rglob("*")):
            if path.suffix in (".html", ".txt", ".xml") and path.is_file():
                winners.setdefault(path.relative_to(directory).as_posix(), path)
    return winners


def inline_code(source: str) -> list[str]:
    """What in a template the CSP would block: inline scripts, on* attributes, javascript: URLs."""
    found = []
    for match in SCRIPT.finditer(source):
        attributes, body = match.group(1), match.group(2)
        if DATA_SCRIPT.search(attributes) or ("src=" in attributes and not body.strip()):
            continue
        found.append("inline <script>")
    found.extend(f"{match.group(1)}= handler" for match in HANDLER.finditer(source))
    if JAVASCRIPT_URL.search(source):
        found.append("javascript: URL")
    return found


def test_no_rendered_template_has_inline_code():
    offenders = {
        name: inline_code(path.read_text(encoding="utf-8"))
        for name, path in winning_templates().items()
        if name not in NOT_RENDERED
    }

    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_check_catches_inline_code_and_lets_static_scripts_through():
    assert inline_code("<script>alert(1)</script>") == ["inline <script>"]
    assert inline_code('<input type="checkbox" onchange="toggle(event)">') == ["onchange= handler"]
    assert inline_code('<a href="javascript:void(0)">x</a>') == ["javascript: URL"]
    assert inline_code('<script src="/static/tarif/admin/export.js" defer></script>') == []
    assert inline_code('<script id="data" type="application/json">{"a": 1}</script>') == []
    assert inline_code('<button data-confirm="Sure?" x-on:click="open = true">') == []


def test_import_exports_inline_select_all_is_overridden_by_ours():
    winners = winning_templates()
    upstream = Path(import_export.__file__).parent / "templates/admin/import_export/export.html"

    assert inline_code(upstream.read_text(encoding="utf-8"))  # upstream: onchange="onSelectToggleChange(event)"
    assert winners["admin/import_export/export.html"].is_relative_to(Path(engines["django"].engine.dirs[0]))
    assert "tarif/admin/export.js" in winners["admin/import_export/export.html"].read_text(encoding="utf-8")
