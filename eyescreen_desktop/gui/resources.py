"""Icons and the stylesheet for the window, by short name.

Widgets ask for an icon by its short name (``icon("camera")``) instead of
building paths; the files are package data found by ``core.paths`` with
``importlib.resources``, so a checkout, a wheel and the desktop bundle behave
the same. Icons are SVG, so Qt renders them sharp at any screen scale
(high-DPI displays).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from PySide6.QtGui import QIcon

from ..core.paths import resource_file

log = logging.getLogger(__name__)


def resource_path(*parts: str) -> Path:
    """The path of a file under ``resources/`` (whether or not it exists)."""
    return resource_file(*parts)


@lru_cache(maxsize=None)
def icon(name: str) -> QIcon:
    """The icon ``resources/icons/<name>.svg``; an empty icon (logged) when missing,
    so a lost file costs a picture, not the window."""
    path = resource_path("icons", f"{name}.svg")
    if not path.is_file():
        log.warning("icon %s is missing", path)
        return QIcon()
    return QIcon(str(path))


def stylesheet() -> str:
    """The application stylesheet (``resources/style.qss``), or "" when missing."""
    path = resource_path("style.qss")
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        log.warning("stylesheet %s could not be read: %s", path, exc)
        return ""
