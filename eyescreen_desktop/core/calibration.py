"""Site calibration: a clinic chooses its own operating point on its own graded photographs.

Why: ranking carries over to a new camera, thresholds do not (docs/training.md).
A clinic that has a few hundred photographs graded by its own ophthalmologist
screens them here through the real screening path (quality gate, preprocessing,
the ONNX model), and gets thresholds chosen by one written rule, with
sensitivity/specificity curves whose confidence intervals resample *patients*.

The pieces, each small and testable without a model:

* :func:`read_labels` reads the clinic's labels CSV into :class:`LabelledEye` rows.
* :func:`screen_labelled` runs them through a :class:`~.screening.Screener`.
* :func:`choose_thresholds` applies the rule (worst collection wins).
* :func:`calibrate` ties them together into a :class:`Calibration`, which
  :func:`write_operating_point` saves as the operating point file (OP.json)
  that ``eyescreen screen --operating-point`` and the window load back with
  :func:`load_operating_point` (refused when the model's hash differs).

Qt-free and TensorFlow-free: only numpy and the core screening path.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..domain.eyes import parse_eye, patient_and_eye
from ..domain.grades import is_referable, is_urgent, referred_array
from ..domain.thresholds import Rule, Thresholds, thresholds_from_arrays
from . import metrics as M
from .records import Eye, OperatingPoint, Status

OP_FORMAT = "eyescreen-operating-point/1"
#: below this many gradable eyes a calibration is refused unless the caller lowers it
MIN_EYES = 100

Progress = Callable[[int, int], None]      # (photographs done, photographs in all)


class CalibrationError(ValueError):
    """A calibration that cannot be made or an operating point file that cannot be used;
    the message names the file and says what to do."""


# ---------------------------------------------------------------------- the clinic's labels


@dataclass(frozen=True)
class LabelledEye:
    """One graded photograph of the clinic's: where it is, whose eye, what the grader said.

    ``collection`` names the labels file it came from (a camera or a site), so the
    rule can insist on every collection separately."""

    path: Path
    patient: str
    eye: Eye
    referable: bool
    urgent: bool
    collection: str
    grade: int | None = None
    weight: float = 1.0     # 1 / P(graded): how many eyes this graded one stands for (verification bias)

    @property
    def key(self) -> str:
        return f"{self.collection}/{self.path.name}"


def collection_name(labels_csv: Path) -> str:
    """``site-a/labels.csv`` -> ``site-a``; ``site-a.csv`` -> ``site-a``."""
    labels_csv = Path(labels_csv)
    return labels_csv.parent.name if labels_csv.stem.lower() == "labels" else labels_csv.stem


def read_labels(labels_csv: Path, collection: str | None = None) -> list[LabelledEye]:
    """The clinic's labels CSV: a ``file`` column (images beside the CSV or in ``images/``)
    and either ``icdr_grade`` (0-4) or ``referable`` (0/1, then ``urgent`` 0/1 too);
    optional ``patient`` and ``eye`` (else read from names like ``P001_L.jpg``).
    ``referable`` and ``urgent`` columns, when present, win over the grade (a grader's
    referable may include maculopathy)."""
    labels_csv = Path(labels_csv)
    if not labels_csv.is_file():
        raise CalibrationError(f"{labels_csv}: no such labels file; choose the CSV that lists the graded photographs")
    with open(labels_csv, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise CalibrationError(f"{labels_csv}: no rows; it needs one row per graded photograph")
    columns = set(rows[0])
    if "file" not in columns or not ({"icdr_grade"} <= columns or {"referable", "urgent"} <= columns):
        raise CalibrationError(f"{labels_csv}: needs a 'file' column and either 'icdr_grade' (0-4) or "
                               f"'referable' and 'urgent' (0/1); it has {', '.join(sorted(columns))}")
    name = collection or collection_name(labels_csv)
    return [_labelled_eye(row, labels_csv, name, line) for line, row in enumerate(rows, start=2)]


def _labelled_eye(row: dict[str, str], labels_csv: Path, collection: str, line: int) -> LabelledEye:
    root = labels_csv.parent
    image = root / "images" / row["file"]
    if not image.exists():
        image = root / row["file"]
    if not image.exists():
        raise CalibrationError(f"{labels_csv} line {line}: photograph {row['file']} not found beside the CSV "
                               "or in its images/ folder; fix the name or copy the photograph")
    try:
        grade = int(row["icdr_grade"]) if row.get("icdr_grade", "").strip() != "" else None
        referable = _flag(row, "referable", grade is not None and is_referable(grade))
        urgent = _flag(row, "urgent", grade is not None and is_urgent(grade))
    except ValueError:
        raise CalibrationError(f"{labels_csv} line {line}: grade or flag is not a number") from None
    if grade is not None and not 0 <= grade <= 4:
        raise CalibrationError(f"{labels_csv} line {line}: ICDR grade {grade}, expected 0-4")
    stem = Path(row["file"]).stem
    patient, named = patient_and_eye(stem)
    eye = parse_eye(row["eye"]) if (row.get("eye") or "").strip() else named
    return LabelledEye(image, f"{collection}:{row.get('patient') or patient or stem}", eye, referable, urgent,
                       collection, grade)


def _flag(row: dict[str, str], column: str, fallback: bool) -> bool:
    value = row.get(column, "").strip()
    return bool(int(value)) if value != "" else fallback


# ---------------------------------------------------------------------- screening them


@dataclass(frozen=True)
class ScreenedEye:
    """What the screening path made of one graded photograph (NaN probabilities when
    the quality gate refused it: such eyes go to review and are not calibrated on)."""

    eye: LabelledEye
    status: str
    p_referable: float
    p_urgent: float

    @property
    def gradable(self) -> bool:
        return self.status == Status.OK.value


def screen_labelled(screener: Any, eyes: Sequence[LabelledEye], progress: Progress | None = None,
                    cancelled: Callable[[], bool] | None = None) -> list[ScreenedEye]:
    """Screen every photograph through ``screener`` (the product path: gate, preprocess,
    model), in order; ``cancelled()`` returning True stops early (the rest is dropped)."""
    from .screening import ScreenItem

    out: list[ScreenedEye] = []
    results = screener.screen(ScreenItem(e.path, e.eye) for e in eyes)
    try:
        for labelled, result in zip(eyes, results):
            p = result.prediction
            out.append(ScreenedEye(labelled, result.status.value, p.p_referable if p else math.nan,
                                   p.p_urgent if p else math.nan))
            if progress:
                progress(len(out), len(eyes))
            if cancelled and cancelled():
                break
    finally:
        results.close()
    return out


# ---------------------------------------------------------------------- the rule


def _arrays(eyes: Sequence[ScreenedEye]) -> dict[str, np.ndarray]:
    ok = [e for e in eyes if e.gradable]
    return {
        "y_ref": np.array([e.eye.referable for e in ok], bool), "y_urg": np.array([e.eye.urgent for e in ok], bool),
        "p_ref": np.array([e.p_referable for e in ok], float), "p_urg": np.array([e.p_urgent for e in ok], float),
        "patient": np.array([e.eye.patient for e in ok]), "collection": np.array([e.eye.collection for e in ok]),
        "w": np.array([e.eye.weight for e in ok], float),
    }


def by_collection(eyes: Sequence[ScreenedEye]) -> dict[str, list[ScreenedEye]]:
    """The screened eyes of each collection, in name order."""
    out: dict[str, list[ScreenedEye]] = {}
    for e in eyes:
        out.setdefault(e.eye.collection, []).append(e)
    return dict(sorted(out.items()))


def choose_thresholds(eyes: Sequence[ScreenedEye], rule: Rule = Rule()) -> Thresholds:
    """Apply ``rule`` on the gradable eyes: per collection, then the worst collection wins."""
    if not any(e.gradable for e in eyes):
        raise CalibrationError("no gradable photograph to calibrate on: every one was refused by the quality gate")
    a = _arrays(eyes)
    return thresholds_from_arrays(a["y_ref"], a["p_ref"], a["y_urg"], a["p_urg"], a["collection"], rule,
                                  weights=a["w"])


def _maculopathy_kw(value: float | None) -> dict[str, float]:
    return {} if value is None else {"maculopathy": float(value)}


# ---------------------------------------------------------------------- figures at a point


@dataclass(frozen=True)
class Figures:
    """How one collection fares at an operating point (gradable eyes; CIs resample patients).

    ``own_specificity`` is the referable specificity the same rule would give on this
    collection alone; the difference is what the worst collection costs this one."""

    collection: str
    photographs: int
    patients: int
    gated: int
    referable_eyes: int
    urgent_eyes: int
    referable_auc: tuple[float, float, float]
    urgent_auc: tuple[float, float, float]
    referable_sensitivity: M.RateCI
    referable_specificity: M.RateCI
    urgent_sensitivity: M.RateCI
    urgent_specificity: M.RateCI
    urgent_in_annual: int
    own_specificity: float

    @property
    def specificity_cost(self) -> float:
        return self.own_specificity - self.referable_specificity.value


def figures(eyes: Sequence[ScreenedEye], t: Thresholds, rule: Rule = Rule(), n_boot: int = 1000,
            collection: str = "all") -> Figures:
    """AUCs, sensitivity/specificity (with patient-bootstrap CIs) and urgent eyes in annual at ``t``."""
    a = _arrays(eyes)
    flag_ref = referred_array(a["p_ref"], a["p_urg"], t.referable, t.urgent).astype(float)
    flag_urg = (a["p_urg"] >= t.urgent).astype(float)
    groups = list(a["patient"])
    ref_sens, ref_spec = M.sens_spec_ci(a["y_ref"], flag_ref, 0.5, groups, n_boot, weights=a["w"])
    urg_sens, urg_spec = M.sens_spec_ci(a["y_urg"], flag_urg, 0.5, groups, n_boot, weights=a["w"])
    own = choose_thresholds(eyes, rule) if a["y_ref"].any() and (~a["y_ref"]).any() else t
    own_flag = referred_array(a["p_ref"], a["p_urg"], own.referable, own.urgent)
    return Figures(
        collection=collection, photographs=len(eyes), patients=len({e.eye.patient for e in eyes}),
        gated=sum(not e.gradable for e in eyes), referable_eyes=int(a["y_ref"].sum()),
        urgent_eyes=int(a["y_urg"].sum()),
        referable_auc=M.auc_ci(a["y_ref"], a["p_ref"], groups, n_boot),
        urgent_auc=M.auc_ci(a["y_urg"], a["p_urg"], groups, n_boot),
        referable_sensitivity=ref_sens, referable_specificity=ref_spec,
        urgent_sensitivity=urg_sens, urgent_specificity=urg_spec,
        urgent_in_annual=int((a["y_urg"] & (flag_ref == 0)).sum()),
        own_specificity=M.weighted_rate(~own_flag, ~a["y_ref"], a["w"]),
    )


def figures_by_collection(eyes: Sequence[ScreenedEye], t: Thresholds, rule: Rule = Rule(),
                          n_boot: int = 1000) -> list[Figures]:
    """:func:`figures` for each collection, in name order."""
    return [figures(members, t, rule, n_boot, name) for name, members in by_collection(eyes).items()]


# ---------------------------------------------------------------------- curves


@dataclass(frozen=True)
class Curve:
    """Sensitivity and specificity against one threshold, each with a pointwise 95% band
    from a bootstrap over patients (the other threshold held at the chosen point)."""

    decision: str                  # "referable" or "urgent"
    thresholds: np.ndarray
    sensitivity: np.ndarray
    sensitivity_band: tuple[np.ndarray, np.ndarray]
    specificity: np.ndarray
    specificity_band: tuple[np.ndarray, np.ndarray]


def curve(eyes: Sequence[ScreenedEye], decision: str, at: Thresholds, n_points: int = 80,
          n_boot: int = 300, seed: int = 0) -> Curve:
    """Sensitivity/specificity of ``decision`` at ``n_points`` thresholds spread over the
    observed probabilities (log-spaced: the interesting thresholds are small)."""
    a = _arrays(eyes)
    y, p = (a["y_ref"], a["p_ref"]) if decision == "referable" else (a["y_urg"], a["p_urg"])
    always = (a["p_urg"] >= at.urgent) if decision == "referable" else np.zeros(len(y), bool)
    lo = max(float(np.nanmin(p)) if len(p) else 1e-4, 1e-5)
    grid = np.unique(np.r_[np.geomspace(lo, 1.0, n_points), at.referable if decision == "referable" else at.urgent])
    flagged = always[:, None] | (p[:, None] >= grid[None, :])            # (eyes, thresholds)
    sens, spec = _rates(flagged, y, np.arange(len(y)))
    _, inverse = np.unique(a["patient"], return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)] if len(y) else []
    rng = np.random.default_rng(seed)
    boots_s, boots_p = [], []
    for _ in range(n_boot if members else 0):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        s, q = _rates(flagged, y, idx)
        boots_s.append(s)
        boots_p.append(q)
    band = lambda b, v: tuple(np.nanpercentile(np.array(b), [2.5, 97.5], axis=0)) if b else (v, v)  # noqa: E731 - a one-line helper used only here
    return Curve(decision, grid, sens, band(boots_s, sens), spec, band(boots_p, spec))


def _rates(flagged: np.ndarray, y: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f, yy = flagged[idx], y[idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = (f & yy[:, None]).sum(0) / yy.sum() if yy.any() else np.full(f.shape[1], np.nan)
        spec = (~f & ~yy[:, None]).sum(0) / (~yy).sum() if (~yy).any() else np.full(f.shape[1], np.nan)
    return sens.astype(float), spec.astype(float)


# ---------------------------------------------------------------------- a calibration and its file


@dataclass(frozen=True)
class DataSource:
    """One labels file a calibration used, with its counts (written into the OP file)."""

    labels: str
    collection: str
    photographs: int
    gradable: int
    patients: int
    referable: int
    urgent: int
    labels_sha256: str


@dataclass(frozen=True)
class Calibration:
    """A finished calibration: the thresholds, what they rest on, how each collection fares."""

    name: str
    thresholds: Thresholds
    rule: Rule
    model: dict[str, str]
    sources: tuple[DataSource, ...]
    per_collection: tuple[Figures, ...]
    overall: Figures
    curves: tuple[Curve, ...]
    created: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    warnings: tuple[str, ...] = ()
    maculopathy: float | None = None    # the model's own maculopathy threshold, carried over unchanged
    site: dict[str, Any] = field(default_factory=dict)   # calibrated from the clinic database: what on

    @property
    def operating_point(self) -> OperatingPoint:
        return OperatingPoint(self.name, self.thresholds.referable, self.thresholds.urgent,
                              **_maculopathy_kw(self.maculopathy))


def model_identity(card: Any) -> dict[str, str]:
    """What an operating point file must say about the model it was chosen for."""
    return {"name": card.name, "version": card.version, "weights_sha256": card.weights_sha256,
            "runtime_sha256": getattr(card, "runtime_sha256", "") or ""}


def check_size(eyes: Sequence[ScreenedEye], min_eyes: int = MIN_EYES) -> list[str]:
    """Refuse a calibration on fewer than ``min_eyes`` gradable eyes; warn where a collection
    has too few referable or urgent eyes for its sensitivity to mean much."""
    gradable = sum(e.gradable for e in eyes)
    if gradable < min_eyes:
        raise CalibrationError(f"only {gradable} gradable photographs: a calibration needs at least {min_eyes} "
                               "graded eyes (a few hundred is better); add more graded photographs")
    warnings = []
    for name, members in by_collection(eyes).items():
        ok = [e for e in members if e.gradable]
        n_ref, n_urg = sum(e.eye.referable for e in ok), sum(e.eye.urgent for e in ok)
        if len(ok) < MIN_EYES:
            warnings.append(f"{name}: only {len(ok)} gradable eyes; its curves are wide")
        if n_ref < 20:
            warnings.append(f"{name}: only {n_ref} referable eyes; one missed eye moves sensitivity by "
                            f"{1 / max(n_ref, 1):.0%}")
        if n_urg < 5:
            warnings.append(f"{name}: only {n_urg} urgent eyes; the urgent threshold rests on very few eyes")
    return warnings


def calibrate(screened: Sequence[ScreenedEye], model: dict[str, str], sources: Sequence[DataSource],
              rule: Rule = Rule(), name: str = "clinic", min_eyes: int = MIN_EYES, n_boot: int = 1000,
              maculopathy: float | None = None, site: dict[str, Any] | None = None) -> Calibration:
    """Choose the thresholds and measure them: the whole calibration, without the screening.
    ``maculopathy`` is the model's own threshold for that output (clinics rarely have
    maculopathy grades, so it is kept, not recalibrated)."""
    warnings = check_size(screened, min_eyes)
    t = choose_thresholds(screened, rule)
    return Calibration(
        name=name, thresholds=t, rule=rule, model=dict(model), sources=tuple(sources),
        per_collection=tuple(figures_by_collection(screened, t, rule, n_boot)),
        overall=figures(screened, t, rule, n_boot, "all"),
        curves=(curve(screened, "referable", t), curve(screened, "urgent", t)),
        warnings=tuple(warnings), maculopathy=maculopathy, site=dict(site or {}))


def describe_sources(labels: Sequence[Path], screened: Sequence[ScreenedEye]) -> list[DataSource]:
    """One :class:`DataSource` per labels file, counted from what was screened."""
    from .classifier import sha256_file

    groups = by_collection(screened)
    out = []
    for path in labels:
        members = groups.get(collection_name(path), [])
        ok = [e for e in members if e.gradable]
        out.append(DataSource(str(Path(path).resolve()), collection_name(path), len(members), len(ok),
                              len({e.eye.patient for e in members}), sum(e.eye.referable for e in ok),
                              sum(e.eye.urgent for e in ok), sha256_file(Path(path))))
    return out


def operating_point_dict(c: Calibration) -> dict[str, Any]:
    """The operating point file's content (format ``eyescreen-operating-point/1``)."""
    return {
        "format": OP_FORMAT, "name": c.name, "created": c.created,
        "thresholds": {"referable": c.thresholds.referable, "urgent": c.thresholds.urgent,
                       **({"maculopathy": c.maculopathy} if c.maculopathy is not None else {})},
        "rule": {**asdict(c.rule), "text": c.rule.text()},
        "model": c.model,
        "data": [asdict(s) for s in c.sources],
        "per_collection": {f.collection: _figures_dict(f) for f in c.per_collection},
        "overall": _figures_dict(c.overall),
        "warnings": list(c.warnings),
        **({"site": c.site} if c.site else {}),
    }


def _figures_dict(f: Figures) -> dict[str, Any]:
    rate = lambda r: {"value": r.value, "ci95": [r.low, r.high], "n": [r.hits, r.total]}  # noqa: E731 - a one-line helper used only here
    return {"photographs": f.photographs, "patients": f.patients, "gated": f.gated,
            "referable_eyes": f.referable_eyes, "urgent_eyes": f.urgent_eyes,
            "referable_auc": list(f.referable_auc), "urgent_auc": list(f.urgent_auc),
            "referable_sensitivity": rate(f.referable_sensitivity),
            "referable_specificity": rate(f.referable_specificity),
            "urgent_sensitivity": rate(f.urgent_sensitivity), "urgent_specificity": rate(f.urgent_specificity),
            "urgent_in_annual": f.urgent_in_annual, "own_rule_specificity": f.own_specificity,
            "specificity_cost": f.specificity_cost}


def write_operating_point(c: Calibration, path: Path) -> Path:
    """Write OP.json (NaN written as null, so any JSON reader can open it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_nan_to_none(operating_point_dict(c)), indent=1) + "\n", encoding="utf-8")
    return path


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    return x


@dataclass(frozen=True)
class SiteOperatingPoint:
    """An operating point file read back: the thresholds and the model they belong to."""

    path: Path
    name: str
    referable: float
    urgent: float
    model: dict[str, str]
    created: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    maculopathy: float | None = None

    @property
    def operating_point(self) -> OperatingPoint:
        return OperatingPoint(self.name, self.referable, self.urgent, **_maculopathy_kw(self.maculopathy))

    def check_model(self, card: Any) -> None:
        """Refuse thresholds chosen for other weights: probabilities shift between models."""
        want = self.model.get("weights_sha256", "")
        if want != card.weights_sha256:
            raise CalibrationError(
                f"operating point {self.path.name} was calibrated for model {self.model.get('name')} "
                f"{self.model.get('version')} (weights SHA-256 {want[:12]}...), but the loaded model is "
                f"{card.name} {card.version} ({card.weights_sha256[:12]}...): calibrate again with this model")


def load_operating_point(path: Path, card: Any | None = None) -> SiteOperatingPoint:
    """Read an operating point file (and check it against ``card`` when given)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"operating point file {path} is unreadable ({exc}): choose the OP.json "
                               "that `eyescreen calibrate` wrote") from None
    if not isinstance(d, dict) or d.get("format") != OP_FORMAT:
        raise CalibrationError(f"{path} is not an EyeScreen operating point file (format "
                               f"{d.get('format') if isinstance(d, dict) else None!r}, expected {OP_FORMAT!r})")
    try:
        t = d["thresholds"]
        mac = t.get("maculopathy")
        if mac is None and card is not None and "maculopathy" in getattr(card, "outputs", ()):
            mac = card.operating_point.maculopathy      # files written before the model had the output
        op = SiteOperatingPoint(path, str(d.get("name") or path.stem), float(t["referable"]), float(t["urgent"]),
                                dict(d["model"]), str(d.get("created", "")), d,
                                None if mac is None else float(mac))
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"operating point file {path} lacks {exc}: calibrate again") from None
    if not (0.0 <= op.referable <= 1.0 and 0.0 <= op.urgent <= 1.0):
        raise CalibrationError(f"operating point file {path} has thresholds outside 0-1: calibrate again")
    if card is not None:
        op.check_model(card)
    return op
