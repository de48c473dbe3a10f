"""One place that finds the files under ``resources/``: icons, the stylesheet.

Widgets ask for an icon by its short name (``icon("camera")``) instead of
building paths, so a packaged build only has to move one folder. Icons are
SVG, so Qt renders them sharp at any screen scale (high-DPI displays).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from PySide6.QtGui import QIcon

from ..core.paths import resources_dir

log = logging.getLogger(__name__)


def resource_path(*parts: str) -> Path:
    """The path of a file under ``resources/`` (whether or not it exists)."""
    return resources_dir().joinpath(*parts)


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
