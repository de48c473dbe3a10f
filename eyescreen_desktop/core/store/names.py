"""What names the clinic database, who writes to it and how its views are sized, without opening it.

Light on purpose (no SQLAlchemy, no Alembic): ``eyescreen gui`` reads these
while it parses its options and builds the window, before the window's first
paint; the store itself is imported and opened afterwards, on a background
thread (``gui.app``). Everything here is re-exported where it always was
(``engine``, ``base``, ``queue_views``, the package).
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

ENV_VAR = "EYESCREEN_DATABASE_URL"
"""Environment variable naming the clinic database (``--database`` wins over it)."""

IMAGE_STORE_VAR = "EYESCREEN_IMAGE_STORE"
"""Environment variable naming a shared image store folder; the database keeps
paths relative to it (``ab/<sha256>.jpg``), so each workstation may mount it anywhere."""

PAGE_ROWS = 100
"""Rows of a queue view read per page: a screenful or two."""


def database_url(database: str | os.PathLike[str] | None, default_file: Path) -> str:
    """The URL to open: ``database`` (a URL or a SQLite file path), else
    ``EYESCREEN_DATABASE_URL``, else the SQLite file in the data folder."""
    chosen = str(database) if database else os.environ.get(ENV_VAR, "").strip()
    if not chosen:
        return f"sqlite:///{Path(default_file)}"
    if "://" not in chosen:
        return f"sqlite:///{Path(chosen)}"
    return chosen


def add_database_argument(parser: Any) -> None:
    """``--database URL`` for every command that opens the clinic database."""
    parser.add_argument("--database", metavar="URL", default=None,
                        help="clinic database: postgresql://user@host:port/db for a clinic server, or "
                             f"sqlite:///FILE (default: clinic.sqlite3 in the data folder; also {ENV_VAR})")


def default_user() -> str:
    """The operating-system user name: who an audit row names when no one else is given."""
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # noqa: BLE001 - no login name (e.g. some containers)
        return "unknown"


class StoreError(Exception):
    """The database cannot be used; the message says which file and what to do.
    Defined here, where nothing imports SQLAlchemy, so the window can name it
    before the first paint (engine re-exports it)."""
