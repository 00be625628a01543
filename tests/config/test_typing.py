"""Issue 14: the services, selectors and pure modules are type-checked, and no public service
takes or returns `Any`.

Two checks, each with a negative control:
- an AST scan of every services module: a public function (module level, no leading
  underscore) whose parameter or return annotation is missing or mentions `Any` fails.
  Data of no finer shape goes through a named alias of `config.types` (`JsonDict`,
  `JsonMapping`), acting users through `ActingUser`.
- mypy, configured in pyproject.toml's `[tool.mypy]`, run on its configured files: a type
  error anywhere in them fails `make test` as well as `make lint`.
"""

from __future__ import annotations

import ast
import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("config", "billing", "customers", "invoices", "reports", "feedback")


def service_modules() -> list[Path]:
    """Every `services.py` and every module of a `services/` package, in every app."""
    found = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            parts = path.relative_to(ROOT).parts
            if "migrations" in parts:
                continue
            if path.name == "services.py" or "services" in parts[:-1]:
                found.append(path)
    return sorted(found)


def _mentions_any(annotation: ast.expr) -> bool:
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name) and node.id == "Any":
            return True
        if isinstance(node, ast.Attribute) and node.attr == "Any":
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a forward reference
            try:
                if _mentions_any(ast.parse(node.value, mode="eval").body):
                    return True
            except SyntaxError:
                return True  # an annotation no one can read is no better than Any
    return False


def any_in_public_signatures(source: str, filename: str = "<source>") -> list[str]:
    """`file:line function(param)` for each public parameter or return typed `Any` or not at all."""
    offences = []
    for node in ast.parse(source, filename).body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name.startswith("_"):
            continue
        arguments = node.args
        params = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        params += [param for param in (arguments.vararg, arguments.kwarg) if param is not None]
        for param in params:
            if param.annotation is None or _mentions_any(param.annotation):
                offences.append(f"{filename}:{node.lineno} {node.name}({param.arg})")
        if node.returns is None or _mentions_any(node.returns):
            offences.append(f"{filename}:{node.lineno} {node.name}() -> return")
    return offences


def test_the_scan_finds_the_services_modules():
    modules = {path.relative_to(ROOT).as_posix() for path in service_modules()}

    assert {
        "billing/services/payments.py",
        "billing/services/subscriptions/lifecycle.py",
        "invoices/services/finalize.py",
        "customers/services.py",
        "config/audit/services.py",
        "feedback/services/triggers.py",
    } <= modules
    assert not any(module.startswith("tests/") for module in modules)


def test_no_public_service_takes_or_returns_any():
    offences = []
    for path in service_modules():
        offences += any_in_public_signatures(path.read_text(), path.relative_to(ROOT).as_posix())

    assert offences == [], "Use a real type (or config.types' JsonDict / ActingUser):\n" + "\n".join(offences)


def test_the_scan_catches_any_in_every_spelling():
    # Negative control: each of these signatures must be reported.
    source = """
import typing
from typing import Any

def customer_touch(*, customer: Any) -> None: ...
def data_read(*, key: str) -> dict[str, Any]: ...
def user_name(*, user: "Any | None") -> str: ...
def legacy(*, thing: typing.Any) -> int: ...
def untyped(*, count) -> int: ...
def no_return(*, count: int): ...
def extra(*, count: int, **data: Any) -> int: ...
async def later(*, when: "list[Any]") -> None: ...
"""

    offences = any_in_public_signatures(source)

    assert [offence.split(" ", 1)[1] for offence in offences] == [
        "customer_touch(customer)",
        "data_read() -> return",
        "user_name(user)",
        "legacy(thing)",
        "untyped(count)",
        "no_return() -> return",
        "extra(data)",
        "later(when)",
    ]


def test_the_scan_allows_the_named_aliases_and_private_helpers():
    source = """
from typing import Any
from config.types import ActingUser, JsonDict

def event_data(*, data: JsonDict, acting_user: ActingUser = None) -> JsonDict: ...
def _helper(thing: Any) -> Any: ...
class Gateway:
    def charge(self, payload: Any) -> Any: ...
"""

    assert any_in_public_signatures(source) == []


def _mypy(*args: str) -> tuple[str, int]:
    api = pytest.importorskip("mypy.api")
    cwd = os.getcwd()
    os.chdir(ROOT)  # the configured `files` globs are relative to the working directory
    try:
        stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), *args])
    finally:
        os.chdir(cwd)
    return stdout + stderr, status


def test_mypy_passes_on_the_services_selectors_and_pure_modules():
    started = time.monotonic()

    output, status = _mypy()

    assert status == 0, output
    assert "Success" in output
    print(f"mypy: {time.monotonic() - started:.1f} s")


def test_mypy_fails_on_a_type_error_in_a_checked_module(tmp_path):
    # Negative control: the same configuration rejects a service that passes a str as Money's amount
    # and leaves a function untyped.
    bad = tmp_path / "bad_services.py"
    bad.write_text(
        "from config.money import Money\n\n\n"
        "def price_make(*, amount: str) -> Money:\n"
        '    return Money(amount, "EUR")\n\n\n'
        "def untyped(value):\n"
        "    return value\n"
    )

    output, status = _mypy(str(bad))

    assert status == 1, output
    assert "[arg-type]" in output and "[no-untyped-def]" in output
