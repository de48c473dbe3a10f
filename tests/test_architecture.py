"""The layering of ../shared/STYLE.md, enforced: core and training never import Qt,
core imports TensorFlow only lazily, and the CLI starts without either."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import eyescreen_desktop.core as core
import eyescreen_desktop.training as training


def _modules(pkg) -> list[str]:
    return [f"{pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]


def _imported_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True, timeout=120)
    return set(out.stdout.split())


def test_core_never_imports_qt_or_tensorflow_at_import_time():
    code = "\n".join(f"import {m}" for m in _modules(core))
    loaded = _imported_after(code)
    assert not any(m.startswith(("PySide6", "shiboken6")) for m in loaded)
    assert "tensorflow" not in loaded and "keras" not in loaded


def test_training_never_imports_qt():
    code = "\n".join(f"import {m}" for m in _modules(training))
    loaded = _imported_after(code)
    assert not any(m.startswith("PySide6") for m in loaded)


def test_cli_help_imports_neither_qt_nor_tensorflow():
    code = ("import contextlib, io\nfrom eyescreen_desktop import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        cli.main(['--help'])\n    except SystemExit:\n        pass")
    loaded = _imported_after(code)
    assert "tensorflow" not in loaded
    assert not any(m.startswith("PySide6") for m in loaded)
