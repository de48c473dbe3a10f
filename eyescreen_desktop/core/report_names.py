"""File names of the documents written for patients: one rule for every writer.

A slip named after the patient ID alone (``referrals/P1.pdf``) is overwritten by
the slip of a patient whose ID differs only by case (``p1``: the same file on
Windows and macOS) or cleans up to the same name (``A/1`` and ``A_1``), and
removing an "old" slip can then delete another patient's. So every document is
named ``<patient>_<encounter>`` (the encounter ID makes it unique, case-folded
too), cleaned for every file system, with Windows' reserved device names
(``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM1``..``COM9``, ``LPT1``..``LPT9``)
never used as a name. Qt-free and without reportlab, so the window, the batch
and ``eyescreen report`` all import it cheaply.
"""

from __future__ import annotations

import re
from pathlib import Path

ENCOUNTER_CHARS = 12  # of the encounter ID in a file name: unique among real encounters (hex, 48 bits)
PATIENT_CHARS = 60
WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                              *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10)),
                              "COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"})
_UNSAFE = re.compile(r"[^\w.\-]+", flags=re.UNICODE)


def safe_name(text: str, limit: int = PATIENT_CHARS, fallback: str = "patient") -> str:
    """Text usable as a file name on every platform: letters of any script, digits,
    ``. _ -`` kept, anything else (``/ \\ : * ? " < > |``, spaces, control
    characters) turned into ``_``; no leading or trailing dot; a Windows reserved
    device name (also with an extension, ``con.txt``) gets a ``_`` prefix."""
    cleaned = _UNSAFE.sub("_", text or "").strip("._")[:limit].rstrip("._")
    if not cleaned:
        return fallback
    if cleaned.split(".")[0].upper() in WINDOWS_RESERVED:
        cleaned = "_" + cleaned
    return cleaned


def report_stem(patient_id: str, encounter_id: str) -> str:
    """``<patient>_<encounter>`` for one encounter's document: the same encounter
    always gets the same name (a rerun replaces its own file) and two encounters
    never share one, even where the file system ignores case."""
    return f"{safe_name(patient_id)}_{safe_name(encounter_id, ENCOUNTER_CHARS, 'encounter').lower()}"


class ReportNames:
    """Names for one run's documents, unique case-insensitively within the run (a
    second encounter whose stem would clash gets ``-2``, ``-3``...)."""

    def __init__(self) -> None:
        self._taken: dict[str, str] = {}   # case-folded stem -> encounter ID

    def stem(self, patient_id: str, encounter_id: str) -> str:
        """The stem for this encounter (stable within the run)."""
        base = report_stem(patient_id, encounter_id)
        name, n = base, 2
        while self._taken.get(name.casefold(), encounter_id) != encounter_id:
            name, n = f"{base}-{n}", n + 1
        self._taken[name.casefold()] = encounter_id
        return name


def report_path(folder: Path, patient_id: str, encounter_id: str, suffix: str = ".pdf",
                names: ReportNames | None = None) -> Path:
    """Where one encounter's document goes in ``folder``."""
    stem = names.stem(patient_id, encounter_id) if names else report_stem(patient_id, encounter_id)
    return Path(folder) / f"{stem}{suffix}"


def remove_stale(folder: Path, keep: Path | None, patient_id: str, encounter_id: str,
                 suffix: str = ".pdf") -> list[Path]:
    """Remove this encounter's own document from ``folder`` (e.g. the review slip
    of a patient now referred), unless it is ``keep``. Only the exact name of THIS
    encounter is ever removed, so another patient's document cannot go."""
    target = report_path(folder, patient_id, encounter_id, suffix)
    if keep is not None and target.resolve() == Path(keep).resolve():
        return []
    try:
        target.unlink()
    except FileNotFoundError:
        return []
    return [target]
