"""The helper scripts (``scripts/``, ``packaging/``) are not imported by the suite,
so a name that moves inside the package breaks them silently:
``scripts/simulated_clinic.py`` still imported the grade cut-offs from
``core.calibration`` after they moved to ``domain.grades``, and failed only when
someone ran it. Every ``from eyescreen_desktop... import name`` in them must resolve."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.py")) + sorted((ROOT / "packaging").glob("*.py"))


def _package_imports(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.module, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("eyescreen_desktop")
            for alias in node.names]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_package_name_a_script_imports_exists(script):
    missing = []
    for module, name in _package_imports(script):
        found = importlib.import_module(module)
        if not hasattr(found, name) and importlib.util.find_spec(f"{module}.{name}") is None:
            missing.append(f"{module}.{name}")
    assert not missing, missing


def test_the_check_sees_a_moved_name(tmp_path):
    stale = tmp_path / "stale.py"
    stale.write_text("from eyescreen_desktop.core.calibration import REFERABLE_GRADE\n", encoding="utf-8")
    (module, name), = _package_imports(stale)
    assert not hasattr(importlib.import_module(module), name)
