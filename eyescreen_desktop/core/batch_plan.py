"""Planning a batch (``eyescreen screen``, the window's Batch tab, the camera folder): the
``--patients`` list read and checked, every image-like file under the inputs found once,
each with its name in results.csv, its patient and its eye, and the batch's identity (its
key). Nothing here opens the clinic database or a model."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Sequence

from ..domain.eyes import NO_PATIENT_ID, parse_eye
from ..domain.eyes import patient_and_eye as name_patient_and_eye
from .imageio import discover
from .paths import common_folder
from .records import Eye, OperatingPoint, Patient


class BatchUsageError(Exception):
    """The command cannot start (no such folder, bad patient list, unknown protocol)."""


@dataclass(frozen=True)
class BatchFile:
    """One file to account for: where it is, its name in results.csv, whose eye it is."""

    path: Path
    file: str
    patient_id: str
    eye: Eye


@dataclass(frozen=True)
class PatientRow:
    """One row of the ``--patients`` list."""

    patient: Patient
    eye: Eye


def read_patients_csv(path: Path) -> dict[str, PatientRow]:
    """The patient list keyed by its ``file`` column (normalised, relative to the
    input folder). Comma, semicolon or tab separated; UTF-8 with or without BOM."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchUsageError(f"cannot read the patient list {path}: {exc}") from None
    try:
        dialect: Any = csv.Sniffer().sniff(text.splitlines()[0] if text else "", delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    header = {(h or "").strip().lower() for h in reader.fieldnames or []}
    missing = [c for c in ("file", "patient_id") if c not in header]
    if missing:
        raise BatchUsageError(f"the patient list {path.name} has no column {', '.join(missing)}: "
                              "it needs file, patient_id, name, birth_date (and optionally sex, eye)")
    rows: dict[str, PatientRow] = {}
    lines: dict[str, int] = {}
    for n, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        if not row.get("file") or not row.get("patient_id"):
            continue
        key = _norm(row["file"])
        if key in lines:   # one would silently replace the other: whose eye is it?
            raise BatchUsageError(f"the patient list {path.name} names {row['file']} twice (lines {lines[key]} "
                                  f"and {n}): keep one row per photograph")
        lines[key] = n
        rows[key] = PatientRow(_patient_from_row(row, path.name, n), parse_eye(row.get("eye", "")))
    return rows


def _patient_from_row(row: dict[str, str], name: str, line: int) -> Patient:
    birth = None
    if row.get("birth_date"):
        try:
            birth = dt.date.fromisoformat(row["birth_date"])
        except ValueError:
            raise BatchUsageError(f"{name} line {line}: birth_date {row['birth_date']!r} is not a date "
                                  "like 1956-03-21") from None
    return Patient(row["patient_id"], row.get("name", ""), birth, row.get("sex", ""))


def _norm(file: str) -> str:
    """``./a\\b.jpg`` -> ``a/b.jpg``: how a list typed on any system names a file."""
    return PurePosixPath(file.strip().replace("\\", "/")).as_posix()


def patient_and_eye(rel: PurePosixPath, listed: dict[str, PatientRow] | None) -> tuple[str, Eye] | None:
    """Patient and eye for a file from the rules (list, name, sub-folder); None
    when none of them names the patient."""
    if listed:
        row = listed.get(rel.as_posix()) or _casefold_lookup(listed, rel)
        if row is not None:
            return row.patient.patient_id, row.eye
    patient, eye = name_patient_and_eye(PurePosixPath(rel.name).stem)
    if patient is not None:
        return patient, eye
    if len(rel.parts) >= 2:
        return rel.parts[-2], eye
    return None


def file_patient_and_eye(rel: PurePosixPath, listed: dict[str, PatientRow] | None) -> tuple[str, Eye]:
    """Patient and eye for a file as the batch and the camera folder file it: by
    :func:`patient_and_eye`, else :data:`NO_PATIENT_ID` (one group for staff to
    identify, eye unknown) rather than a patient named after the file: an
    ``IMG_0001`` patient would be a record nobody can find or merge."""
    return patient_and_eye(rel, listed) or (NO_PATIENT_ID, Eye.UNKNOWN)


def _casefold_lookup(listed: dict[str, PatientRow], rel: PurePosixPath) -> PatientRow | None:
    key = rel.as_posix().casefold()
    for name, row in listed.items():
        if name.casefold() == key:
            return row
    by_name = [row for name, row in listed.items() if "/" not in name and name.casefold() == rel.name.casefold()]
    return by_name[0] if len(by_name) == 1 else None


def resolve_inputs(inputs: Iterable[Path | str]) -> list[Path]:
    """Resolved, de-duplicated inputs; a missing one is a usage error."""
    roots: list[Path] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if not path.exists():
            raise BatchUsageError(f"no such file or folder: {raw}")
        resolved = path.resolve()
        if resolved not in roots:
            roots.append(resolved)
    if not roots:
        raise BatchUsageError("give at least one folder or photograph to screen")
    return roots


def plan_files(roots: Sequence[Path], listed: dict[str, PatientRow] | None = None) -> list[BatchFile]:
    """Every image-like file under the inputs with its results.csv name, patient and eye."""
    base = common_folder([r if r.is_dir() else r.parent for r in roots]) if len(roots) > 1 else None
    found: list[tuple[Path, PurePosixPath, str]] = []
    seen: set[str] = set()
    for root in roots:
        folder = root if root.is_dir() else root.parent
        for path in discover([root]):
            key = os.path.realpath(path) if not path.is_symlink() else str(path)
            if key in seen:
                continue
            seen.add(key)
            rel = PurePosixPath(path.relative_to(folder).as_posix())
            shown = PurePosixPath(path.relative_to(base).as_posix()).as_posix() if base else rel.as_posix()
            found.append((path, rel, shown))
    return [BatchFile(path, shown, *file_patient_and_eye(rel, listed)) for path, rel, shown in found]


def batch_key(roots: Sequence[Path], protocol: str, model_sha: str, op: OperatingPoint | None = None) -> str:
    """The batch's identity: the same inputs, protocol, model (and a clinic's own
    thresholds, when chosen) are the same batch."""
    ident = {"inputs": sorted(str(r) for r in roots), "protocol": protocol, "model": model_sha}
    if op is not None:  # only then, so batches at the model's own points keep their keys
        ident["thresholds"] = [op.referable, op.urgent]
    blob = json.dumps(ident, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]
