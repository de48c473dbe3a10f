"""Which test files cost most, so that the two xdist workers start with them.

``pytest -n 2 --dist loadfile`` hands out whole files; with the files in
collection order, a one-minute file that starts last keeps one worker busy
while the other has finished (the run's tail). tests/file_costs.json keeps
each file's seconds from a quiet run; ``conftest.pytest_collection_modifyitems``
puts the costly files first (longest processing time first), keeping each
file's own order. A file missing from the list counts as a median one, so a
stale list only costs balance, never a test.

Refresh it after adding a slow file: ``make test-costs`` (runs the suite with
``--junitxml`` and writes the sums per file).
"""

from __future__ import annotations

import json
import statistics
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

COSTS = Path(__file__).with_name("file_costs.json")


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def read_costs(path: Path = COSTS) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
    except FileNotFoundError:
        return {}


def costly_files_first(items: list[Any], costs: dict[str, float]) -> None:
    """Sort ``items`` in place: files by descending cost, each file's tests in their order."""
    if not costs:
        return
    default = statistics.median(costs.values())
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        first.setdefault(file_of(item.nodeid), i)
    items.sort(key=lambda it: (-costs.get(file_of(it.nodeid), default), first[file_of(it.nodeid)]))


def costs_from_junit(xml_path: Path) -> dict[str, float]:
    """Seconds per test file (setup + call + teardown) from a pytest --junitxml report."""
    per_file: dict[str, float] = defaultdict(float)
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        classname = case.get("classname", "")
        module = classname.split(".")
        # tests.core.test_x.TestClass -> tests/core/test_x.py
        while module and not module[-1].startswith("test_"):
            module.pop()
        if module:
            per_file["/".join(module) + ".py"] += float(case.get("time", 0.0))
    return {f: round(s, 1) for f, s in sorted(per_file.items(), key=lambda kv: -kv[1])}


if __name__ == "__main__":
    costs = costs_from_junit(Path(sys.argv[1]))
    COSTS.write_text(json.dumps(costs, indent=1) + "\n", encoding="utf-8")
    print(f"{COSTS}: {len(costs)} files, {sum(costs.values()):.0f} s in all")
