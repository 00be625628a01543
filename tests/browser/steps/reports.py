"""Walk steps for the reports (issue 15's Playwright walk): open each report from the reports
index and check what a finance person sees first: the headline figures, a drawn chart, the
table, no console error, nothing wider than the screen.

Plain functions over a Playwright `page`, the live server's base URL and `shots(name)`
(saves a screenshot); they drive the UI only (no ORM writes).
"""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import ConsoleMessage, Page, expect

Shots = Callable[[str], None]

# Every chart canvas the page announced has been drawn by static/tarif/admin/reports.js.
CHARTS_DRAWN = """() => Array.from(document.querySelectorAll('canvas.tarif-chart')).every(
    (canvas) => canvas.dataset.drawn === '1' && window.Chart && window.Chart.getChart(canvas))"""
NO_OVERFLOW = "() => document.documentElement.scrollWidth <= window.innerWidth"


def _check_report_page(page: Page, *, name: str) -> None:
    expect(page.locator(".tarif-report-title")).to_be_visible()
    expect(page.locator(".errornote")).to_have_count(0)
    headlines = page.locator("#report-headlines .tarif-headline-value")
    if page.locator("canvas.tarif-chart").count():
        # A page with a chart has figures to put first.
        expect(headlines.first, f"{name}: no headline figure").to_be_visible()
        assert page.evaluate(CHARTS_DRAWN), f"{name}: a chart was not drawn"
    assert page.evaluate(NO_OVERFLOW), f"{name}: the page scrolls sideways at {page.viewport_size}"


def choose_timeline_customer(page: Page) -> str:
    """On the customer timeline: pick the first customer the searchable picker offers, apply."""
    page.locator(".tarif-filter-customer .select2-selection").click()
    option = page.locator(".select2-results__option:not(.loading-results)").first
    expect(option).to_be_visible()
    name = option.inner_text().strip()
    option.click()
    page.locator("#report-filters button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    return name


def open_each_report(page: Page, base_url: str, shots: Shots) -> list[str]:
    """Open every report listed on the reports index (dashboards, feedback, operations);
    returns the titles seen. Fails on a console error, a missing headline or an undrawn chart."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"{page.url}: {message.text}")

    def on_page_error(error: Exception) -> None:
        errors.append(f"{page.url}: {error}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    try:
        page.goto(f"{base_url}/admin/reports/dashboard/")
        cards = page.locator("#report-index a")
        expect(cards.first).to_be_visible()
        links = [
            (cards.nth(i).inner_text().split("\n")[0].strip(), cards.nth(i).get_attribute("href"))
            for i in range(cards.count())
        ]
        shots("reports-index")
        titles = []
        for title, href in links:
            page.goto(f"{base_url}{href}")
            page.wait_for_load_state("networkidle")
            path = (href or "").rstrip("/")
            slug = "feedback" if "/feedback/" in path else path.rsplit("/", 1)[-1]
            if slug == "customer-timeline":
                choose_timeline_customer(page)
                expect(page.locator("#report-table tbody tr").first).to_be_visible()
            _check_report_page(page, name=title)
            titles.append(page.locator(".tarif-report-title").inner_text().strip())
            shots(f"report-{slug}")
        assert not errors, "console errors: " + "; ".join(errors)
        return titles
    finally:
        page.remove_listener("console", on_console)
        page.remove_listener("pageerror", on_page_error)
