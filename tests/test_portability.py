"""The run-time code works on Windows too: no POSIX-only modules outside the
benchmark (which measures memory with ``resource`` and /proc, Linux only)."""

from __future__ import annotations

import ast
from pathlib import Path

import eyescreen_desktop

POSIX_ONLY = {"resource", "fcntl", "termios", "pwd", "grp", "posix", "tty", "pty", "crypt"}
PACKAGE = Path(eyescreen_desktop.__file__).parent
ALLOWED = {PACKAGE / "bench.py"}


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.partition(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.partition(".")[0])
    return names


def test_no_posix_only_module_outside_the_benchmark():
    files = sorted(set(PACKAGE.rglob("*.py")) - ALLOWED)
    assert len(files) > 30
    offending = {str(f.relative_to(PACKAGE)): sorted(_imported_modules(f) & POSIX_ONLY) for f in files}
    assert {f: m for f, m in offending.items() if m} == {}


def test_the_check_sees_a_posix_only_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import resource\n    from fcntl import flock\n")
    assert _imported_modules(probe) & POSIX_ONLY == {"resource", "fcntl"}
