"""Accessibility checks in the browser tests: axe-core (from the npm registry) run inside the page.

`assert_accessible(page, name=...)` runs axe-core against the page as Playwright shows it and
fails on any violation of impact "serious" or "critical" among the WCAG 2.0/2.1/2.2 A and AA
rules (issue 17: portal, checkout, pricing table and quote pages have none). Minor and moderate
findings are returned so a test may look at them, but do not fail.

axe-core is pinned in tests/browser/axe/package.json (lockfile beside it) and installed by
`make test` with `npm ci` into tests/browser/axe/node_modules. The script is evaluated through
the DevTools protocol, which the pages' Content-Security-Policy does not apply to, so the checks
see the pages exactly as served (no CSP relaxed for tests).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

AXE_SCRIPT = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa")
FAILING_IMPACTS = frozenset({"serious", "critical"})


@cache
def _axe_source() -> str:
    if not AXE_SCRIPT.exists():
        # The reason names the browser so that CI (TARIF_CI_REQUIRE=browser) fails instead of skipping.
        pytest.skip(
            "axe-core for the browser accessibility checks is not installed "
            "(make test runs `npm ci --prefix tests/browser/axe`; needs npm)"
        )
    return AXE_SCRIPT.read_text(encoding="utf-8")


def axe_violations(page: Any, *, include: str | None = None) -> list[dict[str, Any]]:
    """Every WCAG A/AA violation axe-core finds on the page (or inside the `include` selector)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source())
    return page.evaluate(
        """async ([include, tags]) => {
            const context = include ? {include: [include]} : document;
            const result = await window.axe.run(context, {
                runOnly: {type: "tag", values: tags},
                resultTypes: ["violations"],
            });
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                nodes: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary})),
            }));
        }""",
        [include, list(WCAG_TAGS)],
    )


def _describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- [{violation['impact']}] {violation['id']}: {violation['help']} ({violation['helpUrl']})")
        for node in violation["nodes"][:5]:
            lines.append(f"    {node['target']}: {(node['summary'] or '').splitlines()[0:2]}")
    return "\n".join(lines)


def assert_accessible(page: Any, *, name: str, include: str | None = None) -> list[dict[str, Any]]:
    """Fail on serious or critical WCAG violations; return the minor/moderate ones."""
    violations = axe_violations(page, include=include)
    failing = [violation for violation in violations if violation["impact"] in FAILING_IMPACTS]
    assert not failing, f"{name} ({page.url}): axe-core found serious/critical violations:\n{_describe(failing)}"
    return violations
