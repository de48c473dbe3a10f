"""Every path the application writes to comes from here.

The default data folder follows the platform's convention (XDG on Linux,
``%LOCALAPPDATA%`` on Windows, ``~/Library/Application Support`` on macOS); tests
and demos pass ``--data-dir`` (or set ``EYESCREEN_DATA_DIR``) so a real clinic's
data is never touched. On Windows the data is *local*, not roaming: a clinic
database and its photographs must not be copied to a server at every log-on.

What EyeScreen reads (icons, fonts, the shipped model) is package data found
with ``importlib.resources``, so a source checkout, an installed wheel and the
desktop bundle (packaging/) find it the same way.
"""

from __future__ import annotations

import importlib.resources
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

APP_NAME = "EyeScreen"
ENV_VAR = "EYESCREEN_DATA_DIR"
CACHE_ENV_VAR = "EYESCREEN_CACHE_DIR"
RESOURCES_PACKAGE = "eyescreen_desktop.resources"
MODELS_PACKAGE = "eyescreen_desktop.models"
SHIPPED_MODEL = "eyescreen-dr"


def default_data_dir() -> Path:
    """The user's data folder for EyeScreen on this platform."""
    if env := os.environ.get(ENV_VAR):
        return Path(env)
    if sys.platform.startswith("win"):
        base = _windows_local_app_data()
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / APP_NAME


def default_cache_dir() -> Path:
    """Where EyeScreen keeps what it can rebuild (decoded images, converted
    weights): ``EYESCREEN_CACHE_DIR``, else the platform's cache folder, never the
    data folder, so backups of clinic data skip it."""
    if env := os.environ.get(CACHE_ENV_VAR):
        return Path(env).expanduser()
    if sys.platform.startswith("win"):
        return _windows_local_app_data() / APP_NAME / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / APP_NAME
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / APP_NAME.lower()


def _windows_local_app_data() -> Path:
    """``%LOCALAPPDATA%`` (``C:\\Users\\<name>\\AppData\\Local``): stays on this PC."""
    return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")


@dataclass(frozen=True)
class DataPaths:
    """The folders under one data root."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "clinic.sqlite3"

    @property
    def image_store(self) -> Path:
        return self.root / "images"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def ensure(self) -> "DataPaths":
        """Create the folders (idempotent) and return self."""
        for p in (self.root, self.image_store, self.reports, self.logs, self.cache):
            p.mkdir(parents=True, exist_ok=True)
        return self


def data_paths(data_dir: str | os.PathLike[str] | None = None) -> DataPaths:
    """Paths under ``data_dir`` or the platform default."""
    return DataPaths(Path(data_dir).expanduser() if data_dir else default_data_dir())


def project_root() -> Path:
    """The source checkout (``../shared`` beside it during development)."""
    return Path(__file__).resolve().parents[2]


def package_folder(package: str, checkout_folder: str) -> Path:
    """The folder of a data package (``eyescreen_desktop.resources``,
    ``eyescreen_desktop.models``) as a real path: Qt and reportlab open files by
    name. Without an install (``PYTHONPATH=.`` in a checkout) the package is not
    mapped, so the checkout's own folder is used."""
    try:
        return Path(str(importlib.resources.files(package)))
    except ModuleNotFoundError:
        return project_root() / checkout_folder


def resources_dir() -> Path:
    """Icons, fonts, stylesheet and logo (``resources/`` in the checkout)."""
    return package_folder(RESOURCES_PACKAGE, "resources")


def resource_file(*parts: str) -> Path:
    """One file under the resources (``resource_file("fonts", "DejaVuSans.ttf")``),
    whether or not it exists: callers say what is missing and what to do."""
    return resources_dir().joinpath(*parts)


def models_dir() -> Path:
    """The folder of the shipped models (``models/`` in the checkout)."""
    return package_folder(MODELS_PACKAGE, "models")


def default_model_dir() -> Path:
    """The model EyeScreen ships with (``EYESCREEN_MODEL`` chooses another)."""
    return Path(os.environ.get("EYESCREEN_MODEL") or models_dir() / SHIPPED_MODEL)


def shared_datasets_dir() -> Path:
    """../shared/datasets beside the checkout (development and tests only)."""
    return project_root().parent / "shared" / "datasets"


def common_folder(folders: Sequence[Path]) -> Path | None:
    """The deepest folder holding all ``folders``, or None when they share none
    (different drives on Windows, where ``os.path.commonpath`` raises)."""
    try:
        return Path(os.path.commonpath([str(f) for f in folders]))
    except ValueError:
        return None
