"""Every ``noqa`` and ``type: ignore`` in the project names its code and says why
(issue 20): a bare suppression hides the next real finding on that line too.
(ruff's PGH003/PGH004 check the code; this checks the reason.)"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOQA = re.compile(r"#\s*noqa\b(?P<rest>.*)$")
IGNORE = re.compile(r"#\s*type:\s*ignore\b(?P<rest>.*)$")


def test_every_suppression_carries_its_code_and_a_reason():
    bad = []
    for folder in ("eyescreen_desktop", "tests", "scripts", "packaging"):
        for path in (ROOT / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if m := NOQA.search(line):
                    ok = re.match(r":\s*[A-Z]+\d+(\s*,\s*[A-Z]+\d+)*\s+-\s+\S", m["rest"])
                elif m := IGNORE.search(line):
                    ok = re.match(r"\[[a-z-]+(,\s*[a-z-]+)*\]\s+#\s+\S", m["rest"])
                else:
                    continue
                if not ok:
                    bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "suppressions without a code and a reason:\n" + "\n".join(bad)
