"""Domain errors reach people (API problem+json, console messages, commands finance staff run), so
their text goes through gettext with named placeholders and money through format_money: no
`raise SomeDomainError(f"...")`. A programmer error (an impossible state, a naive datetime from code)
may stay in English when its raise says why with a `# untranslated: <why>` comment."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import translation

from billing.cycles import CycleSpec, CycleSpecError
from invoices.vat import VatNumberError, validate_vat_number

ROOT = Path(settings.BASE_DIR)
APPS = ("billing", "invoices", "customers", "reports", "feedback", "config")
# The bases every domain error descends from (config/errors.py), and Django's command error: the
# output of a management command is read as it is.
BASES = frozenset({"DomainError", "DomainConflict", "DomainBoundsError", "DomainValidationError", "CommandError"})
MARKER = "# untranslated:"


def _sources() -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        if "migrations" not in path.parts
    }


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def domain_error_names(sources: dict[str, str]) -> set[str]:
    """Names of the classes that descend from a domain error base, across all the sources (by name:
    subclasses live in other modules than their bases)."""
    classes = [
        (node.name, {_base_name(base) for base in node.bases})
        for source in sources.values()
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ClassDef)
    ]
    names = set(BASES)
    grown = True
    while grown:
        grown = False
        for name, bases in classes:
            if name not in names and bases & names:
                names.add(name)
                grown = True
    return names


def english_fstring_raises(sources: dict[str, str], error_names: set[str]) -> list[str]:
    """`path:line` of each `raise <domain error>(f"...")` without an `# untranslated:` reason."""
    found = []
    for path, source in sources.items():
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            if _base_name(node.exc.func) not in error_names:
                continue
            messages = [*node.exc.args[:1], *(kw.value for kw in node.exc.keywords if kw.arg == "message")]
            if not any(isinstance(message, ast.JoinedStr) for message in messages):
                continue
            statement = lines[node.lineno - 1 : node.end_lineno]
            if any(re.search(re.escape(MARKER) + r" \S", line) for line in statement):
                continue
            found.append(f"{path}:{node.lineno}")
    return found


SYNTHETIC = {
    "shop/errors.py": "from config.errors import DomainConflict\n\nclass ShopError(DomainConflict):\n    code = 'x'\n",
    "shop/services.py": (
        "from django.utils.translation import gettext\n"
        "from shop.errors import ShopError\n\n"
        "class BasketError(ShopError):\n    pass\n\n"
        "def refuse(total):\n"
        '    raise BasketError(f"The basket holds {total}.")\n\n'  # line 8: flagged
        "def refuse_translated(total):\n"
        '    raise BasketError(gettext("The basket holds %(total)s.") % {"total": total})\n\n'
        "def refuse_marked(at):\n"
        "    raise BasketError(  # untranslated: programmer error\n"
        '        f"naive {at}"\n    )\n\n'
        "def refuse_marked_without_reason(at):\n"
        '    raise BasketError(f"naive {at}")  # untranslated:\n\n'  # line 19: flagged (no reason)
        "def other(value):\n"
        '    raise ValueError(f"bad {value}")\n'
    ),
}


def test_the_check_flags_an_english_fstring_domain_error_and_nothing_else():
    # Negative control: a subclass of a subclass two modules away is found, and only the raises
    # without gettext and without a reasoned marker are flagged.
    names = domain_error_names(SYNTHETIC)

    assert {"ShopError", "BasketError"} <= names and "ValueError" not in names
    assert english_fstring_raises(SYNTHETIC, names) == ["shop/services.py:8", "shop/services.py:19"]


def test_no_domain_error_is_raised_with_an_english_fstring():
    sources = _sources()
    names = domain_error_names(sources)
    assert {"InvoiceError", "CreditNoteError", "CycleSpecError", "VatNumberError", "GatewayError"} <= names

    assert english_fstring_raises(sources, names) == [], (
        "translate these: gettext('... %(name)s ...') % {...}, money through config.formatting.format_money; "
        "a programmer error may keep English with '# untranslated: <why>' on the raise"
    )


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "--at: 'next tuesday' is not an ISO 8601 date-time"),
        ("fr", "--at\u00a0: «\u00a0next tuesday\u00a0» n’est pas une date et heure ISO 8601"),
    ],
)
def test_a_command_error_reads_in_the_operators_language(language, expected):
    with translation.override(language), pytest.raises(CommandError) as refused:
        call_command("bill", "--at", "next tuesday")

    assert str(refused.value).startswith(expected)
    assert refused.value.returncode == 2


def test_pure_modules_translate_their_refusals_when_raised():
    # The message is translated at raise time, in the language active then.
    with translation.override("fr"), pytest.raises(CycleSpecError) as french:
        CycleSpec.from_dict({"kind": "fortnightly"})
    with pytest.raises(CycleSpecError) as english:
        CycleSpec.from_dict({"kind": "fortnightly"})

    assert french.value.message_text().startswith("kind\u00a0: 'fortnightly' ne fait pas partie de")
    assert english.value.message_text().startswith("kind: 'fortnightly' is not one of")
    assert french.value.problem_code == english.value.problem_code == "invalid_cycle"


def test_a_vat_number_refusal_names_the_reason_in_french():
    with translation.override("fr"), pytest.raises(VatNumberError) as refused:
        validate_vat_number("FR00123456788")

    assert refused.value.message_text() == (
        "'FR00123456788' n’est pas un numéro de TVA intracommunautaire valide\u00a0: "
        "sa clé de contrôle ne correspond pas"
    )
