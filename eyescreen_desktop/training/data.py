"""Labelled photographs for training and evaluation: manifests, patient split, cached preprocessing.

Three decisions live here, because every experiment depends on them:

* **What a sample is.** Both collections' ``labels.csv`` (and the course's
  folder-per-class layout) become :class:`Sample` rows with the clinic's
  targets: ICDR grade, referable, urgent (grade 3-4) and maculopathy where the
  collection grades it. Patient ids are prefixed with the collection's name so
  two collections cannot share a patient by accident.
* **How patients are split.** :func:`patient_split` never puts two photographs
  of one patient on both sides; it is stratified by collection and by the
  patient's worst grade (so the rare urgent patients are spread evenly) and is
  reproducible from its seed.
* **Preprocess once.** :class:`ImageCache` runs every photograph through the
  engine's own :func:`core.preprocess.preprocess` (what the clinic will run) at
  the chosen input size and keeps the uint8 result on disk, keyed by the file's
  SHA-256, the size and ``PREPROCESSING_ID``, together with the quality gate's
  verdict. A rerun, or an evaluation after training, reads ~4000 arrays in
  seconds instead of decoding the JPEGs again.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import logging
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..domain.eyes import parse_eye, patient_and_eye
from ..domain.grades import is_referable, is_urgent

log = logging.getLogger(__name__)

N_GRADES = 5
#: EyeQ verdicts whose photographs are left out of training (see docs/training.md)
DEFAULT_DROP_QUALITY: tuple[str, ...] = ("reject",)

#: folder names of the course's folder-per-class layout -> ICDR grade
CLASS_FOLDER_GRADES: dict[str, int] = {
    "0": 0, "1": 1, "2": 2, "3": 3, "4": 4,
    "no_dr": 0, "nodr": 0, "no": 0, "none": 0, "normal": 0,
    "mild": 1, "mild_npdr": 1,
    "moderate": 2, "moderate_npdr": 2,
    "severe": 3, "severe_npdr": 3,
    "proliferative": 4, "proliferative_dr": 4, "pdr": 4, "proliferate_dr": 4,
}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})


class DataError(Exception):
    """A manifest or folder that cannot be used; the message names it and says what to fix."""


@dataclass(frozen=True)
class Sample:
    """One labelled photograph.

    ``referable`` follows the collection's own column when it has one (fundus-dr
    counts mild NPDR with maculopathy as referable), else grade >= 2.
    ``maculopathy`` is -1 where the collection does not grade it.
    """

    path: Path
    patient: str
    eye: str
    grade: int
    referable: int
    collection: str
    maculopathy: int = -1
    quality: str = ""

    @property
    def urgent(self) -> int:
        return int(is_urgent(self.grade))

    @property
    def key(self) -> str:
        """Stable identifier used in split files and reports."""
        return f"{self.collection}/{self.path.name}"


# --------------------------------------------------------------------------- reading


def read_manifest(path: Path) -> list[Sample]:
    """Samples of a ``labels.csv`` (columns file, patient, eye, icdr_grade, and
    optionally referable, maculopathy, quality). Images are looked up in
    ``images/`` beside the CSV, then beside it directly."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such labels file; pass a labels.csv or a folder of class folders")
    collection = path.parent.name
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missing = {"file", "icdr_grade"} - set(rows[0] if rows else {})
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    return [_row_sample(row, path.parent, collection) for row in rows]


def label_referable(row: dict[str, str], grade: int) -> bool:
    """A labelled eye's referable target: the collection's own ``referable``
    column when it has one (fundus-dr counts mild NPDR with maculopathy as
    referable), else the grade by the domain's cut-off. Training and every
    evaluation read it from here."""
    column = (row.get("referable") or "").strip()
    return column == "1" if column else is_referable(grade)


def _row_sample(row: dict[str, str], root: Path, collection: str) -> Sample:
    image = root / "images" / row["file"]
    if not image.exists():
        image = root / row["file"]
    grade = int(row["icdr_grade"])
    if not 0 <= grade < N_GRADES:
        raise DataError(f"{root / 'labels.csv'}: {row['file']} has ICDR grade {grade}, expected 0-4")
    stem = Path(row["file"]).stem
    patient, eye = patient_and_eye(stem)
    return Sample(
        path=image,
        patient=f"{collection}:{row.get('patient') or patient or stem}",
        eye=(parse_eye(row["eye"]) if (row.get("eye") or "").strip() else eye).value,
        grade=grade,
        referable=int(label_referable(row, grade)),
        collection=collection,
        maculopathy=int(row["maculopathy"]) if row.get("maculopathy", "") != "" else -1,
        quality=row.get("quality", "") or "",
    )


def read_class_tree(folder: Path) -> list[Sample]:
    """Samples of the course's layout: one sub-folder per class, named 0-4 or by
    label (no_dr, mild, moderate, severe, proliferative). A photograph's patient
    is its name without a trailing ``_left``/``_right``/``_L``/``_R``, so the two
    eyes of one person still stay on one side of the split."""
    folder = Path(folder)
    samples = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        grade = CLASS_FOLDER_GRADES.get(sub.name.lower())
        if grade is None:
            raise DataError(f"{sub}: class folder name not understood; name it 0-4 or "
                            f"one of {', '.join(sorted(k for k in CLASS_FOLDER_GRADES if not k.isdigit()))}")
        for image in sorted(sub.rglob("*")):
            if image.suffix.lower() in IMAGE_SUFFIXES and not image.name.startswith("."):
                patient, eye = patient_and_eye(image.stem)
                samples.append(Sample(image, f"{folder.name}:{patient or image.stem}", eye.value, grade,
                                      int(is_referable(grade)), folder.name))
    if not samples:
        raise DataError(f"{folder}: no photographs found in class folders")
    return samples


def load_samples(sources: Sequence[Path], drop_quality: Iterable[str] = DEFAULT_DROP_QUALITY
                 ) -> tuple[list[Sample], dict[str, int]]:
    """All samples of ``sources`` (labels.csv files or class-folder trees), without
    those whose collection-assigned quality is in ``drop_quality``; also returns
    how many were dropped per collection (for the training log and report)."""
    drop = set(drop_quality)
    samples: list[Sample] = []
    dropped: Counter[str] = Counter()
    for src in sources:
        src = Path(src)
        found = read_class_tree(src) if src.is_dir() else read_manifest(src)
        for s in found:
            if s.quality in drop:
                dropped[s.collection] += 1
            elif not s.path.exists():
                raise DataError(f"{s.path}: listed in {src} but missing; fix the manifest or restore the file")
            else:
                samples.append(s)
    return samples, dict(dropped)


# --------------------------------------------------------------------------- split


def patient_split(samples: Sequence[Sample], val_fraction: float = 0.2, seed: int = 42,
                  test_fraction: float = 0.0) -> dict[str, list[Sample]]:
    """Split by patient into ``train``, ``val`` (and ``test`` when asked).

    Patients are grouped by (collection, worst grade); each group is shuffled
    with ``seed`` and the groups are laid end to end, then every k-th patient
    goes to validation (systematic sampling from a random start). So every
    collection and grade is represented in proportion, the overall fraction is
    exact even for a handful of patients, and the split is reproducible."""
    by_patient: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_patient[s.patient].append(s)
    strata: dict[tuple[str, int], list[str]] = defaultdict(list)
    for patient, eyes in sorted(by_patient.items()):
        strata[(eyes[0].collection, max(e.grade for e in eyes))].append(patient)
    rng = random.Random(seed)
    ordered: list[str] = []
    for key in sorted(strata):
        patients = strata[key]
        rng.shuffle(patients)
        ordered.extend(patients)
    val, rest = _systematic(ordered, val_fraction, rng.random())
    test_share = test_fraction / (1.0 - val_fraction) if test_fraction > 0 else 0.0
    test, train = _systematic(rest, test_share, rng.random())
    parts = {"train": train, "val": val, **({"test": test} if test_fraction > 0 else {})}
    return {name: [s for p in patients for s in by_patient[p]] for name, patients in parts.items()}


def _systematic(items: list[str], fraction: float, phase: float) -> tuple[list[str], list[str]]:
    """Every 1/fraction-th item (from a random phase) and the rest, order kept."""
    chosen, rest = [], []
    for i, item in enumerate(items):
        take = np.floor((i + 1) * fraction + phase) > np.floor(i * fraction + phase)
        (chosen if take else rest).append(item)
    return chosen, rest


def write_split(path: Path, parts: dict[str, list[Sample]]) -> None:
    """Record which photograph went where, so evaluation can use the same validation patients."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["key", "patient", "part"])
        for part, samples in parts.items():
            for s in samples:
                w.writerow([s.key, s.patient, part])


def read_split(path: Path) -> dict[str, str]:
    """``key -> part`` from a split file written by :func:`write_split`."""
    with open(path, newline="", encoding="utf-8") as f:
        return {row["key"]: row["part"] for row in csv.DictReader(f)}


def select_part(samples: Sequence[Sample], split: dict[str, str], part: str) -> list[Sample]:
    """The samples the split file puts in ``part`` (others, and unknown photos, are left out)."""
    return [s for s in samples if split.get(s.key) == part]


# --------------------------------------------------------------------------- targets


def targets(samples: Sequence[Sample]) -> dict[str, np.ndarray]:
    """Training targets: one-hot grade (N, 5) and referable, urgent, maculopathy (N, 1);
    maculopathy is -1 where unknown (masked out of its loss)."""
    grade = np.array([s.grade for s in samples], np.int64)
    return {
        "grade": np.eye(N_GRADES, dtype=np.float32)[grade],
        "referable": np.array([[s.referable] for s in samples], np.float32),
        "urgent": np.array([[s.urgent] for s in samples], np.float32),
        "maculopathy": np.array([[s.maculopathy] for s in samples], np.float32),
    }


def describe(samples: Sequence[Sample]) -> str:
    """One line per collection: photographs, patients, grade counts (for logs)."""
    lines = []
    for coll in sorted({s.collection for s in samples}):
        sub = [s for s in samples if s.collection == coll]
        grades = Counter(s.grade for s in sub)
        lines.append(f"{coll}: {len(sub)} photographs, {len({s.patient for s in sub})} patients, grades "
                     + " ".join(f"{g}:{grades.get(g, 0)}" for g in range(N_GRADES)))
    return "\n".join(lines)


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """``EYESCREEN_CACHE_DIR``, else the platform's cache folder (``core.paths``)."""
    from ..core.paths import default_cache_dir

    return default_cache_dir()


@dataclass(frozen=True)
class Prepared:
    """One photograph after the engine's front end: the model input and the gate's verdict."""

    image: np.ndarray          # uint8 (size, size, 3)
    status: str                # core.records.Status value
    reasons: tuple[str, ...]


def file_digest(path: Path) -> str:
    """SHA-256 of a photograph's bytes, remembered for this process while the
    file keeps its size and modification time: the image cache, the camera
    copies and the feature cache all key on it, and a training run would
    otherwise read and hash every photograph once per cache."""
    st = Path(path).stat()
    return _digest(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=65536)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    from ..core.classifier import sha256_file

    return sha256_file(Path(path))


def read_cached(npy: Path, size: int) -> tuple[np.ndarray, dict] | None:
    """A cached model input (``<key>.npy``) and its verdict (``<key>.json``, with
    at least ``status`` and ``reasons``); None when absent, unreadable or of
    another size (the caller then computes it again)."""
    meta = npy.with_suffix(".json")
    if not (npy.exists() and meta.exists()):
        return None
    try:
        info = json.loads(meta.read_text())
        image = np.load(npy)
        if image.shape == (size, size, 3) and "status" in info and "reasons" in info:
            return image, info
    except (OSError, ValueError):
        log.warning("cache entry %s unreadable; recomputing", npy.name)
    return None


def write_cached(npy: Path, image: np.ndarray, info: dict) -> None:
    """Store a model input and its verdict; the array is written under a
    temporary name and moved into place, so a reader (another worker, a killed
    run) never sees half a file."""
    tmp = npy.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, image)
    os.replace(tmp, npy)
    npy.with_suffix(".json").write_text(json.dumps(info))


class ImageCache:
    """Preprocessed model inputs on disk, one ``.npy`` + verdict per (file bytes, size, preprocessing)."""

    def __init__(self, size: int, root: Path | None = None):
        self.size = size
        self.version = f"{front_end_version()}-{size}"
        self.root = Path(root or cache_dir()) / "images" / self.version
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def get(self, path: Path) -> Prepared:
        """The preprocessed photograph, computed and stored on first use."""
        npy = self.root / f"{file_digest(path)}.npy"
        found = read_cached(npy, self.size)
        if found is not None:
            self.hits += 1
            return Prepared(found[0], found[1]["status"], tuple(found[1]["reasons"]))
        self.misses += 1
        prepared = prepare_bytes(Path(path).read_bytes(), path.name, self.size)
        write_cached(npy, prepared.image, {"status": prepared.status, "reasons": list(prepared.reasons)})
        return prepared

    def load(self, samples: Sequence[Sample], progress: Callable[[int, int], None] | None = None
             ) -> tuple[np.ndarray, list[Prepared]]:
        """Images (N, size, size, 3) uint8 for ``samples``, plus each one's verdict."""
        images = np.zeros((len(samples), self.size, self.size, 3), np.uint8)
        verdicts = []
        for i, s in enumerate(samples):
            p = self.get(s.path)
            images[i] = p.image
            verdicts.append(Prepared(np.empty(0, np.uint8), p.status, p.reasons))
            if progress and (i + 1) % 250 == 0:
                progress(i + 1, len(samples))
        return images, verdicts


def front_end_version() -> str:
    """``PREPROCESSING_ID`` plus a digest of the gate's and preprocessing's code.

    The ID is what the model card promises; the digest makes sure a cached array
    or gate verdict is never reused after someone retuned ``core/fundus.py`` or
    ``core/preprocess.py`` without bumping the ID (the cache is then rebuilt).
    The digest is taken over the parsed code without docstrings and comments,
    so editing documentation does not throw away an hour of preprocessing."""
    from ..core import fundus, preprocess

    h = hashlib.sha256()
    for module in (fundus, preprocess):
        h.update(_code_digest(Path(module.__file__).read_text(encoding="utf-8")))
    return f"{preprocess.PREPROCESSING_ID}-{h.hexdigest()[:10]}"


def _code_digest(source: str) -> bytes:
    """The code of a module as the parser sees it, docstrings removed."""
    import ast

    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False).encode()


def prepare_bytes(data: bytes, name: str, size: int) -> Prepared:
    """Decode, gate and preprocess one photograph exactly as screening does.

    Photographs the gate rejects are still preprocessed (training may use them,
    evaluation counts them as gated); an undecodable file gives a black image
    with status ``error``."""
    from ..core import fundus, imageio
    from ..core.preprocess import model_frame, preprocess
    from ..core.screening import decode_side

    try:
        rgb = imageio.decode_image(data, name, max_side=decode_side(size))
    except imageio.ImageReadError as exc:
        log.warning("%s", exc)
        return Prepared(np.zeros((size, size, 3), np.uint8), "error", ("unreadable",))
    fov = fundus.find_field_of_view(rgb)
    report = fundus.assess_quality(rgb, fov)
    return Prepared(preprocess(rgb, size, model_frame(rgb)), report.status.value, tuple(report.reasons))

