"""An earlier patient document is kept as superseded, never silently replaced.

Why: a referral slip or result letter may already be in the patient's hands or
in a hospital's inbox when a grader's grade (or an arbitration) changes what it
says. Overwriting the file would leave no trace of what the patient was told.
So before a patient's document is written where one of the same encounter
already lies (of any kind: a letter that becomes a referral slip too), the
earlier file is moved, bytes untouched, to ``<out>/superseded/<kind folder>/``
as ``<name>.superseded-<n>.pdf`` (n counts up, nothing there is ever
overwritten), out of the folders staff print from, and the new document says
which file it replaces.
"""

from __future__ import annotations

import os
from pathlib import Path

SUPERSEDED = "superseded"
"""The sub-folder of an output folder where earlier documents are kept."""


def superseded_path(out_dir: Path, earlier: Path) -> Path:
    """The first free ``<out>/superseded/<folder>/<stem>.superseded-<n><suffix>`` for ``earlier``."""
    folder = Path(out_dir) / SUPERSEDED / earlier.parent.name
    n = 1
    while (target := folder / f"{earlier.stem}.{SUPERSEDED}-{n}{earlier.suffix}").exists():
        n += 1
    return target


def keep_superseded(out_dir: Path, earlier: Path) -> Path | None:
    """Move ``earlier`` (when it exists) into the superseded folder and return where
    it now lies; None when there was nothing to keep."""
    if not earlier.is_file():
        return None
    target = superseded_path(out_dir, earlier)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(earlier, target)
    return target


def replaces_words(out_dir: Path, kept: Path) -> str:
    """The line on the new document naming the one it replaces (relative to the output folder)."""
    try:
        name = kept.relative_to(out_dir).as_posix()
    except ValueError:
        name = kept.name
    return f"This document replaces an earlier one, kept as {name}."
