"""The same install every day: the environment the tests run in is exactly uv.lock.

`make` installs the lock with `uv sync --locked` (docs/development.md). This test
asks uv which distributions the lock gives this Python on this platform (every
extra) and compares them with what is installed, name and version, both ways: a
package pip resolved differently on the day, or one installed by hand, fails here.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

PROJECT = "eyescreen-desktop"


def _uv() -> str:
    found = shutil.which("uv", path=os.pathsep.join([str(ROOT / ".tools" / "bin"), os.environ.get("PATH", "")]))
    if found is None:
        pytest.fail("uv is not installed: `make venv` puts the pinned uv in .tools/ (packaging/tools/uv.txt)")
    return found


def locked() -> dict[str, str]:
    """name -> version of every distribution uv.lock installs here (markers evaluated)."""
    out = subprocess.run([_uv(), "export", "--locked", "--all-extras", "--no-hashes", "--no-emit-project",
                          "--format", "requirements-txt", "--no-header", "--no-annotate", "--quiet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
    assert out.returncode == 0, f"uv.lock does not match pyproject.toml (run `make lock`):\n{out.stderr}"
    found = {}
    for line in out.stdout.splitlines():
        requirement, _, marker = line.partition(";")
        if not requirement.strip() or (marker.strip() and not Marker(marker.strip()).evaluate()):
            continue
        name, _, version = requirement.strip().partition("==")
        found[canonicalize_name(name)] = version
    return found


def installed() -> dict[str, str]:
    """name -> version of every distribution in this interpreter's environment."""
    return {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
            if d.metadata["Name"]}


def test_the_installed_distributions_are_exactly_the_lock():
    if sys.prefix == sys.base_prefix:
        pytest.fail("the tests run outside a virtual environment: `make test` runs them in .venv, from the lock")
    want, have = locked(), installed()
    have.pop(canonicalize_name(PROJECT), None)   # this checkout itself, installed editable
    assert len(want) > 50   # the run time, tests, training and bundle: not an empty export
    wrong = {n: (have.get(n), v) for n, v in want.items() if have.get(n) != v}
    extra = sorted(set(have) - set(want))
    assert not wrong, f"installed, locked: {wrong} (run `make venv`)"
    assert not extra, f"installed but not in uv.lock: {extra} (run `make venv`, which removes them)"


def test_the_lock_pins_every_package_with_hashes():
    """Every locked distribution from the registry carries a hash that uv checks at install."""
    import tomllib

    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    packages = [p for p in lock["package"] if p["name"] != PROJECT]
    unhashed = [p["name"] for p in packages
                if not all(f.get("hash", "").startswith("sha256:") for f in p.get("wheels", []) + [p.get("sdist", {})]
                           if f)]
    assert packages and not unhashed
    assert lock["requires-python"].startswith(">=3.11")


def test_the_python_is_the_pinned_one():
    pinned = Path(ROOT / ".python-version").read_text(encoding="utf-8").strip()
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == pinned
