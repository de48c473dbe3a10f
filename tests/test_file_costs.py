"""The suite's file order for the two workers: costly files first, each file's
own order kept, unknown files as a median one; costs read back from a real
junit report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.file_costs import costly_files_first, costs_from_junit, read_costs


@dataclass
class Item:
    nodeid: str


def test_costly_files_first_keeps_each_files_order_and_places_unknown_files_at_the_median():
    items = [Item(n) for n in ("tests/a.py::one", "tests/a.py::two", "tests/b.py::one", "tests/new.py::x",
                               "tests/c.py::one", "tests/b.py::two")]
    costly_files_first(items, {"tests/a.py": 1.0, "tests/b.py": 30.0, "tests/c.py": 5.0, "tests/d.py": 9.0})
    assert [i.nodeid for i in items] == ["tests/b.py::one", "tests/b.py::two", "tests/new.py::x",
                                         "tests/c.py::one", "tests/a.py::one", "tests/a.py::two"]
    unchanged = [Item("tests/z.py::1"), Item("tests/a.py::1")]
    costly_files_first(unchanged, {})
    assert [i.nodeid for i in unchanged] == ["tests/z.py::1", "tests/a.py::1"]


def test_costs_come_from_a_junit_report_per_file(tmp_path):
    xml = tmp_path / "junit.xml"
    xml.write_text('<testsuites><testsuite name="pytest">'
                   '<testcase classname="tests.core.test_x" name="test_a" time="1.5"/>'
                   '<testcase classname="tests.core.test_x.TestGroup" name="test_b" time="2.0"/>'
                   '<testcase classname="tests.test_y" name="test_c" time="0.25"/>'
                   "</testsuite></testsuites>", encoding="utf-8")
    assert costs_from_junit(xml) == {"tests/core/test_x.py": 3.5, "tests/test_y.py": 0.2}


def test_the_committed_costs_name_test_files_that_exist():
    costs = read_costs()
    root = Path(__file__).resolve().parents[1]
    assert costs, "tests/file_costs.json is missing: make test-costs"
    missing = [f for f in costs if not (root / f).is_file()]
    assert not missing, f"tests/file_costs.json names files that are gone (make test-costs): {missing}"
