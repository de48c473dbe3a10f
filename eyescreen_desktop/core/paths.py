"""Every path the application writes to comes from here.

The default data folder follows the platform's convention (XDG on Linux,
``%APPDATA%`` on Windows, ``~/Library/Application Support`` on macOS); tests and
demos pass ``--data-dir`` (or set ``EYESCREEN_DATA_DIR``) so a real clinic's data
is never touched.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "EyeScreen"
ENV_VAR = "EYESCREEN_DATA_DIR"


def default_data_dir() -> Path:
    """The user's data folder for EyeScreen on this platform."""
    if env := os.environ.get(ENV_VAR):
        return Path(env)
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / APP_NAME


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
    """The source checkout (for the shipped model and ../shared during development)."""
    return Path(__file__).resolve().parents[2]


def resources_dir() -> Path:
    """Icons, fonts, stylesheet and logo (``resources/`` in the checkout)."""
    return project_root() / "resources"


def default_model_dir() -> Path:
    """The model EyeScreen ships with."""
    return Path(os.environ.get("EYESCREEN_MODEL", project_root() / "models" / "eyescreen-dr"))


def shared_datasets_dir() -> Path:
    """../shared/datasets beside the checkout (development and tests only)."""
    return project_root().parent / "shared" / "datasets"
