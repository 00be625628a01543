"""The event log is a leaf: every app imports it, it imports none of them."""

from __future__ import annotations

import grimp

PRODUCT_APPS = ("billing", "customers", "invoices", "reports", "feedback")


def chains_from(graph, importer: str) -> list[tuple[str, ...]]:
    return [
        chain
        for app in PRODUCT_APPS
        for chain in graph.find_shortest_chains(importer=importer, imported=app, as_packages=True)
    ]


def test_the_event_log_and_the_bulk_helper_import_no_product_app():
    graph = grimp.build_graph("config", *PRODUCT_APPS, cache_dir=None)

    assert chains_from(graph, "config.events") == []
    assert chains_from(graph, "config.bulk") == []
    # Negative control: the graph does see the imports it should refuse, so the check can fail.
    assert chains_from(graph, "config.api")
    assert graph.find_shortest_chains(importer="feedback.services", imported="config.events", as_packages=True)
