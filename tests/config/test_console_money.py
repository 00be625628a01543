"""Money on the console's screens is formatted with its currency (150,00 € / €150.00), never
raw minor units ("15000"): a rendered-template audit (every money-named variable a console
template prints is a formatted string, not a number) and rendered pages with a known amount."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from django.template import Context, Variable, VariableDoesNotExist
from django.template.base import VariableNode
from django.template.defaulttags import ForNode
from django.test.signals import template_rendered
from django.urls import reverse

from tests.console_pages import console_pages, console_world, role_user, signed_in_client

pytestmark = pytest.mark.django_db

MONEY_NAME = re.compile(
    r"(^|_)(amount|amounts|total|subtotal|balance|remaining|due|refunded|paid|price|mrr|arr|revenue|tax|"
    r"unit_amount|amount_due|amount_paid|amount_remaining|ltv|lifetime_value)$"
)
# Filters that turn minor units into text with the currency.
MONEY_FILTERS = {"money", "format_money", "money_major", "minor_to_major"}
NOT_MONEY = re.compile(r"(count|percent|number|quantity|days|id|pk|processed)$")


def _money_variables(nodelist: Any, loops: dict[str, str]) -> list[tuple[str, dict[str, str], list[str]]]:
    """(variable, enclosing loops, filters) for each `{{ ... }}` of a template, inner loops included."""
    found = []
    for node in nodelist:
        if isinstance(node, VariableNode):
            expression = node.filter_expression
            var = expression.var
            if isinstance(var, Variable) and var.lookups:
                filters = [
                    getattr(func, "_filter_name", getattr(func, "__name__", "")) for func, _ in expression.filters
                ]
                found.append((".".join(var.lookups), dict(loops), filters))
        inner_loops = dict(loops)
        if isinstance(node, ForNode) and isinstance(node.sequence.var, Variable):
            for loopvar in node.loopvars:
                inner_loops[loopvar] = ".".join(node.sequence.var.lookups)
        for attribute in getattr(node, "child_nodelists", ()):
            found.extend(_money_variables(getattr(node, attribute, None) or [], inner_loops))
    return found


def _resolve(path: str, loops: dict[str, str], context: Context) -> Any:
    """The value a template variable takes, a loop variable read from the loop's first item."""
    head, _, rest = path.partition(".")
    if head in loops:
        sequence = _resolve(loops[head], loops, context)
        first = next(iter(sequence), None) if sequence else None
        if first is None or not rest:
            return first
        return Variable(rest).resolve(first) if not isinstance(first, tuple | list) else None
    return Variable(path).resolve(context)


def raw_amounts_in(template: Any, context: Context) -> list[str]:
    """Money-named variables the template prints as bare numbers (no money filter)."""
    problems = []
    for path, loops, filters in _money_variables(template.nodelist, {}):
        name = path.rsplit(".", 1)[-1]
        if not MONEY_NAME.search(name) or NOT_MONEY.search(name) or MONEY_FILTERS & set(filters):
            continue
        try:
            value = _resolve(path, loops, context)
        except (VariableDoesNotExist, TypeError, AttributeError, KeyError, IndexError, ValueError):
            continue
        if isinstance(value, int | Decimal | float) and not isinstance(value, bool) and value != 0:
            problems.append(f"{template.origin.template_name}: {{{{ {path} }}}} prints {value!r}")
    return problems


@pytest.fixture
def world(settings):
    settings.TARIF_RENDER_DOCUMENTS = False
    return console_world()


@pytest.fixture
def finance(world):
    return signed_in_client(role_user("Finance"), language="fr")


def test_no_console_template_prints_a_raw_amount(finance):
    problems: list[str] = []

    def audit(sender: Any, template: Any, context: Context, **kwargs: Any) -> None:
        name = getattr(template.origin, "template_name", "") or ""
        if name.startswith(("admin/", "unfold/")) and "templates/admin" in str(template.origin.name):
            problems.extend(raw_amounts_in(template, context))

    money_apps = ("billing", "invoices", "customers", "reports")
    pages = [page for page in console_pages(include_plumbing=False) if page.app_label in money_apps]
    template_rendered.connect(audit)
    try:
        for page in pages:
            finance.get(page.url)
    finally:
        template_rendered.disconnect(audit)

    assert not sorted(set(problems)), "\n".join(sorted(set(problems)))


def test_the_audit_catches_a_raw_amount():
    """Negative control: a template printing an integer amount is caught, a formatted one is not."""
    from django.template import engines

    engine = engines["django"]
    raw = engine.from_string("{% for row in rows %}{{ row.amount }}{% endfor %}{{ total }}").template
    formatted = engine.from_string('{% load portal %}{{ total|money:"EUR" }}{{ label }}').template

    assert len(raw_amounts_in(raw, Context({"rows": [{"amount": 15000}], "total": 15000}))) == 2
    assert raw_amounts_in(formatted, Context({"total": 15000, "label": "x"})) == []


# The money pages of the world, with the amount (minor units of EUR) each must show formatted:
# the refund and the bank line of 150,00 €, the invoice's line of 150,00 € and its total with
# VAT (180,00 €), the transfer that paid the invoice (None: the payment's own amount).
MONEY_PAGES = [
    ("admin:billing_refund_changelist", None, 15000),
    ("admin:billing_refund_change", "refund", 15000),
    ("admin:billing_payment_changelist", None, None),
    ("admin:billing_payment_change", "payment", None),
    ("admin:invoices_invoice_changelist", None, 18000),
    ("admin:invoices_invoice_change", "invoice", 15000),
    ("admin:billing_bankstatementline_changelist", None, 15000),
    ("admin:billing_bankstatement_change", "statement", 15000),
]
FORMATS = {
    "fr": lambda minor: f"{minor // 100},{minor % 100:02d}\xa0€",
    "en": lambda minor: f"€{minor // 100}.{minor % 100:02d}",
}


def raw_minor_units(amount: int) -> re.Pattern[str]:
    """15000 as a bare number ("15000", "15 000"), not inside another number or a word."""
    head, tail = divmod(amount, 1000)
    return re.compile(rf"(?<![\d.,\w-]){head}[\s\u202f\xa0]?{tail:03d}(?![\d.,])")


@pytest.mark.parametrize("language", ["fr", "en"])
def test_money_pages_show_known_amounts_formatted_never_in_minor_units(world, language):
    client = signed_in_client(role_user("Finance"), language=language)
    failures = []

    for url_name, key, known in MONEY_PAGES:
        amount = known if known is not None else world["payment"].amount
        url = reverse(url_name, args=[world[key].pk]) if key else reverse(url_name)
        html = client.get(url).content.decode()
        text = re.sub(r"<script\b.*?</script>|<[^>]+>", " ", html, flags=re.DOTALL)
        text = re.sub(r"&nbsp;|&#160;", "\xa0", text).replace("\u202f", "\xa0")
        formatted = FORMATS[language](amount)
        if formatted not in text:
            failures.append(f"{url}: no {formatted!r}")
        raw = raw_minor_units(amount).search(text)
        if raw:
            failures.append(f"{url}: raw minor units {raw.group(0)!r}")

    assert not failures, "\n".join(failures)


def test_the_raw_amount_pattern_finds_minor_units_only():
    """Negative control of the rendered-page check."""
    pattern = raw_minor_units(15000)

    assert pattern.search("Remboursement 15000 EUR") and pattern.search("15 000")
    assert not pattern.search("150,00 €") and not pattern.search("€150.00") and not pattern.search("F-2026-150000")
