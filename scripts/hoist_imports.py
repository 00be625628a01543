#!/usr/bin/env python
"""Move function-level imports of product code to the top of their module (issue 14).

An import hidden in a function used to dodge an import cycle; with the cycles gone
(scripts/import_cycles.py) it only hides a dependency. This script moves every
function-level import to the module's import block, except the ones that must stay in
the function, which it marks `# deferred: <reason>` (the rules below: Django app loading,
heavy or optional dependencies, a cycle still listed as known). Imports already marked
are left alone, so the script can be run again after a merge:

    python scripts/hoist_imports.py            # rewrite the files, then ruff sorts and formats
    python scripts/hoist_imports.py --dry-run  # list what would move and what stays

A hoisted name that clashes with another module-level name, and an import inside an
import cycle not listed as known, are reported and left in place (rename it, break the
cycle). Afterwards run the tests that patch module attributes: a test that patched
`payments.invoice_collect` for a caller that imported it inside a function must now patch
the caller's module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from import_cycles import (  # noqa: E402
    DEFERRED_MARK,
    KNOWN_CYCLES,
    adjacency,
    build_graph,
    function_imports_in_source,
    import_cycles,
    product_files,
)

# Where an import must stay inside its function, and why (first match wins).
APP_LOADING = "app loading: ready() runs once the app registry is ready"
DEFER_BY_FILE = {
    "apps.py": APP_LOADING,
}
DEFER_BY_MODULE = {
    "facturx": "factur-x loads its XSD schemas on import; only building a PDF needs it",
    "weasyprint": "WeasyPrint takes about a second to import; only rendering needs it",
    "invoices.rendering.pdf": "imports WeasyPrint (about a second); only rendering a PDF loads it",
    "openpyxl": "only the XLSX export needs openpyxl",
    "redis": "optional: only a Redis broker is probed",
    "psycopg": "PostgreSQL only (the embedded default runs on SQLite)",
    "django.contrib.postgres": "PostgreSQL only (the embedded default runs on SQLite)",
}


@dataclass
class Planned:
    path: Path
    line: int
    end_line: int
    node: ast.Import | ast.ImportFrom
    reason: str | None  # None: hoist


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported_module(node: ast.Import | ast.ImportFrom, path: Path) -> str:
    if isinstance(node, ast.Import):
        return node.names[0].name
    if node.level:
        base = _module_name(path).split(".")
        if path.name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join([*base, node.module] if node.module else base)
    return node.module or ""


def _reason(node: ast.Import | ast.ImportFrom, path: Path) -> str | None:
    if path.name in DEFER_BY_FILE:
        return DEFER_BY_FILE[path.name]
    imported = _imported_module(node, path)
    for prefix, reason in DEFER_BY_MODULE.items():
        if imported == prefix or imported.startswith(prefix + "."):
            return reason
    here = _module_name(path)
    for cycle in KNOWN_CYCLES:
        targets = {imported} | {f"{imported}.{alias.name}" for alias in getattr(node, "names", [])}
        if here in cycle and targets & (cycle - {here}):
            return f"a known import cycle ({' <-> '.join(sorted(cycle))}) until it is broken"
    return None


def _bound_names(node: ast.Import | ast.ImportFrom) -> dict[str, str]:
    """name bound -> what it refers to (to spot clashes)."""
    bound = {}
    for alias in node.names:
        if isinstance(node, ast.Import):
            name = alias.asname or alias.name.split(".")[0]
            bound[name] = alias.name if alias.asname else alias.name.split(".")[0]
        else:
            bound[alias.asname or alias.name] = f"{'.' * node.level}{node.module or ''}:{alias.name}"
    return bound


def _module_level_names(tree: ast.Module) -> dict[str, str]:
    names: dict[str, str] = {}

    def add(node: ast.stmt) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update(_bound_names(node))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = f"def:{node.name}"
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        names[leaf.id] = f"var:{leaf.id}"
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    add(child)

    for node in tree.body:
        add(node)
    return names


def _function_import_nodes(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, list[ast.stmt]]]:
    """Each function-level import with the statement list that holds it."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for field in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(node, field, None)
            if isinstance(block, list) and in_function:
                for statement in block:
                    if isinstance(statement, ast.Import | ast.ImportFrom):
                        found.append((statement, block))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    visit(tree, False)
    return found


def cycle_members() -> dict[str, frozenset[str]]:
    """module -> the import cycle it is in (hoisting an import inside a cycle would break imports)."""
    members: dict[str, frozenset[str]] = {}
    for cycle in import_cycles(adjacency(build_graph())):
        for module in cycle:
            members[module] = frozenset(cycle)
    return members


def _in_cycle(node: ast.Import | ast.ImportFrom, path: Path, cycles: dict[str, frozenset[str]]) -> bool:
    here = _module_name(path)
    if here not in cycles:
        return False
    imported = _imported_module(node, path)
    targets = {imported} | {f"{imported}.{alias.name}" for alias in node.names}
    return bool(targets & cycles[here])


def plan_file(path: Path, cycles: dict[str, frozenset[str]] | None = None) -> tuple[list[Planned], list[str]]:
    cycles = cycles or {}
    source = path.read_text()
    tree = ast.parse(source)
    marked = {item.line for item in function_imports_in_source(source) if item.deferred}
    module_names = _module_level_names(tree)
    planned: list[Planned] = []
    clashes: list[str] = []
    hoisted: dict[str, str] = {}
    for node, _block in _function_import_nodes(tree):
        if node.lineno in marked:
            continue
        # An import inside `try:` is an optional dependency, handled where it is used.
        reason = _reason(node, path)
        if reason is None and _in_cycle(node, path, cycles):
            # Left in the function, unmarked: scripts/import_cycles.py fails until the cycle is broken.
            clashes.append(f"{path.relative_to(ROOT)}:{node.lineno}: inside an import cycle, break it first")
            continue
        if reason is None:
            for name, target in _bound_names(node).items():
                existing = module_names.get(name) or hoisted.get(name)
                if existing is not None and existing != target:
                    clashes.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name} is also {existing}")
                    reason = "clash"
            if reason == "clash":
                continue
            for name, target in _bound_names(node).items():
                hoisted[name] = target
        planned.append(Planned(path, node.lineno, node.end_lineno or node.lineno, node, reason))
    return planned, clashes


def _insert_at(tree: ast.Module) -> int:
    """The line after which hoisted imports go: after the module's leading import block."""
    last = 0
    for index, node in enumerate(tree.body):
        if isinstance(node, ast.Import | ast.ImportFrom):
            last = node.end_lineno or node.lineno
        elif index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            last = node.end_lineno or node.lineno  # the docstring
        elif isinstance(node, ast.If) and last:  # `if TYPE_CHECKING:` inside the import block
            continue
        else:
            break
    return last


def rewrite(path: Path, planned: list[Planned]) -> None:
    source = path.read_text()
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    remove: set[int] = set()  # 0-based line indexes
    statements: list[str] = []
    seen: set[str] = set()
    for item in planned:
        if item.reason is not None:
            first = lines[item.line - 1].rstrip("\n")
            indent = first[: len(first) - len(first.lstrip())]
            if len(first) + len(DEFERRED_MARK) + len(item.reason) + 3 <= 120 and item.line == item.end_line:
                lines[item.line - 1] = f"{first}  {DEFERRED_MARK} {item.reason}\n"
            else:
                lines[item.line - 1] = f"{indent}{DEFERRED_MARK} {item.reason}\n{lines[item.line - 1]}"
            continue
        remove.update(range(item.line - 1, item.end_line))
        text = ast.unparse(item.node)
        if text not in seen:
            seen.add(text)
            statements.append(text)
    # Drop the blank line that separated a removed import block from the function's code,
    # when nothing else of the function stands before it.
    for item in planned:
        if item.reason is not None:
            continue
        after = item.end_line  # 0-based index of the next line
        if after < len(lines) and not lines[after].strip() and after not in remove:
            before = item.line - 2
            while before >= 0 and before in remove:
                before -= 1
            previous = lines[before].strip() if before >= 0 else ""
            if previous.endswith(":") or previous.endswith('"""'):
                remove.add(after)
    insert_after = _insert_at(tree)
    out = []
    for index, line in enumerate(lines):
        if index in remove:
            continue
        out.append(line)
        if index == insert_after - 1 and statements:
            out.extend(statement + "\n" for statement in statements)
    if insert_after == 0 and statements:
        out[0:0] = [statement + "\n" for statement in statements]
    path.write_text("".join(out))


def main(argv: list[str]) -> int:
    dry_run = "--dry-run" in argv
    by_file: dict[Path, list[Planned]] = defaultdict(list)
    clashes: list[str] = []
    cycles = cycle_members()
    for path in product_files(ROOT):
        planned, file_clashes = plan_file(path, cycles)
        clashes += file_clashes
        if planned:
            by_file[path] = planned
    hoisted = sum(1 for items in by_file.values() for item in items if item.reason is None)
    deferred = sum(1 for items in by_file.values() for item in items if item.reason is not None)
    for path, items in sorted(by_file.items()):
        for item in items:
            action = f"defer ({item.reason})" if item.reason else "hoist"
            if dry_run or item.reason:
                print(f"{path.relative_to(ROOT)}:{item.line}: {action}: {ast.unparse(item.node)}")
    for clash in clashes:
        print(f"left in place: {clash}")
    print(f"{hoisted} to hoist, {deferred} to mark deferred, {len(clashes)} clashes, in {len(by_file)} files")
    if dry_run or not by_file:
        return 0
    for path, items in by_file.items():
        rewrite(path, items)
    files = [str(path) for path in by_file]
    ruff = Path(sys.executable).parent / "ruff"
    subprocess.run([str(ruff), "check", "--select", "I", "--fix", "--quiet", *files], cwd=ROOT, check=False)
    subprocess.run([str(ruff), "format", "--quiet", *files], cwd=ROOT, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
