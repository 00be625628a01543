"""The order `make test` hands files to its xdist workers (tests/scheduling.py): the slowest
files first, then the other slow or browser files, then the rest by number of tests; a run
without xdist keeps pytest's own order."""

from __future__ import annotations

from types import SimpleNamespace

from tests.scheduling import HEAVIEST_FIRST, pytest_collection_modifyitems


class Item:
    def __init__(self, nodeid: str, *markers: str) -> None:
        self.nodeid, self.markers = nodeid, markers

    def get_closest_marker(self, name: str) -> str | None:
        return name if name in self.markers else None


def collected() -> list[Item]:
    return [
        Item("tests/api/test_small.py::test_one"),
        Item("tests/api/test_many.py::test_a"),
        Item("tests/api/test_many.py::test_b"),
        Item("tests/browser/test_page.py::test_it", "browser"),
        Item(f"{HEAVIEST_FIRST[1]}::test_second_slowest"),
        Item("tests/ops/test_slowish.py::test_it", "slow"),
        Item(f"{HEAVIEST_FIRST[0]}::test_slowest_a"),
        Item("tests/api/test_many.py::test_c"),
        Item(f"{HEAVIEST_FIRST[0]}::test_slowest_b"),
    ]


def test_an_xdist_worker_collects_the_slowest_files_first_and_keeps_each_file_whole():
    items = collected()

    pytest_collection_modifyitems(None, SimpleNamespace(workerinput={"workerid": "gw0"}), items)

    assert [item.nodeid for item in items] == [
        f"{HEAVIEST_FIRST[0]}::test_slowest_a",
        f"{HEAVIEST_FIRST[0]}::test_slowest_b",
        f"{HEAVIEST_FIRST[1]}::test_second_slowest",
        "tests/browser/test_page.py::test_it",
        "tests/ops/test_slowish.py::test_it",
        "tests/api/test_many.py::test_a",
        "tests/api/test_many.py::test_b",
        "tests/api/test_many.py::test_c",
        "tests/api/test_small.py::test_one",
    ]


def test_a_run_without_xdist_keeps_the_collection_order():
    items = collected()

    pytest_collection_modifyitems(None, SimpleNamespace(), items)

    assert [item.nodeid for item in items] == [item.nodeid for item in collected()]


def test_the_heaviest_files_exist():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    assert [path for path in HEAVIEST_FIRST if not (root / path).is_file()] == []
