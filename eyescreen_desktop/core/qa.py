"""The agreement report's numbers: how EyeScreen's AI agrees with the clinic's graders.

Every human-graded eye is paired with the AI's result for the same photograph
(the current photograph of that side). The reference reading of an eye is the
arbitration when there was one, else the newest first read. Only referrals,
reviews and a quality-assurance sample of annual encounters are graded, so each
eye carries the weight 1/P(graded) (``ClinicStore.p_graded``) when sensitivity,
specificity and rates are estimated: a 10% sample of annual encounters weighs
10, a reading-centre census weighs 1. Without it the AI's misses among annual
encounters would be under-counted ten times over.

Qt-free; the PDF is :mod:`.qa_report`, the command ``eyescreen report --format qa``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..domain.vocabulary import REFERRAL_QUEUES
from . import metrics as M
from .grading import HumanGrade, eye_outcome
from .gate import QUALITY_PROBABILITY
from .imageio import camera_model
from .quality_threshold import QualityEye, QualitySuggestion, suggest_quality_threshold
from .records import Eye, EyeResult, Queue, Status

if TYPE_CHECKING:
    from .store import ClinicStore

REFERRED = REFERRAL_QUEUES


@dataclass(frozen=True)
class QaEye:
    """One graded eye beside what the AI made of the same photograph."""

    patient_id: str
    encounter_id: str
    date: str                   # YYYY-MM-DD, the visit's local day
    site: str
    camera: str                 # EXIF model, else the image size
    eye: str                    # R / L
    grader: str                 # of the reference reading
    source: str                 # desk / import
    arbitrated: bool
    ai_status: str              # ok / ungradable / not_fundus / error
    ai_grade: int | None
    ai_queue: str
    p_referable: float | None
    grader_grade: int | None    # None: the grader called it ungradable
    grader_queue: str
    grader_referable: bool
    grader_urgent: bool
    weight: float               # 1 / P(graded)
    p_quality_reject: float | None = None   # the gate's p_reject of the photograph (None: it did not judge)

    @property
    def month(self) -> str:
        return self.date[:7]

    @property
    def ai_referred(self) -> bool:
        return Queue(self.ai_queue) in REFERRED

    @property
    def both_graded(self) -> bool:
        return self.ai_grade is not None and self.grader_grade is not None

    @property
    def urgent_in_annual(self) -> bool:
        """The grader called it urgent and the AI put it in annual: listed for follow-up."""
        return self.grader_urgent and self.ai_queue == Queue.ANNUAL.value


def reference_readings(grades: Sequence[HumanGrade]) -> dict[tuple[str, Eye], HumanGrade]:
    """The reading each eye is judged by: its arbitration, else its newest first read."""
    out: dict[tuple[str, Eye], HumanGrade] = {}
    for g in grades:   # oldest first
        key = (g.encounter_id, g.eye)
        if g.role == "arbitration" or out.get(key) is None or out[key].role != "arbitration":
            out[key] = g
    return out


def qa_eyes(store: ClinicStore, site: str, camera_of: Callable[[EyeResult], str] | None = None) -> list[QaEye]:
    """Every human-graded eye with the AI's result of its photograph, in visit order."""
    readings = reference_readings(store.grades())
    encounters = sorted({e for e, _ in readings})
    summaries = {s.encounter_id: s for s in store.encounter_summaries(encounters)}
    p_graded = store.p_graded(encounters)
    camera_of = camera_of or (lambda r: photo_camera(r, store))
    out: list[QaEye] = []
    for (encounter_id, eye), reading in readings.items():
        s = summaries[encounter_id]
        ai = next((e for e in s.eyes if e.eye is eye), None)
        if ai is None:
            continue
        graded_queue = eye_outcome(reading, s.protocol_name).queue
        out.append(QaEye(
            s.patient.patient_id, encounter_id, s.started_at.date().isoformat(), site, camera_of(ai), eye.value,
            reading.grader, reading.source, reading.role == "arbitration", ai.status.value, ai.grade, ai.queue.value,
            ai.prediction.p_referable if ai.prediction else None, reading.icdr_grade, graded_queue.value,
            reading.referable, reading.urgent, 1.0 / p_graded[encounter_id], _p_reject(ai)))
    return sorted(out, key=lambda q: (q.date, q.patient_id, q.encounter_id, q.eye != "R"))


def _p_reject(result: EyeResult) -> float | None:
    value = result.quality.metrics.get(QUALITY_PROBABILITY) if result.quality else None
    return None if value is None else float(value)


def quality_suggestions(eyes: Sequence[QaEye], current: float) -> list[QualitySuggestion]:
    """The photo-quality threshold suggested from the graders' ungradable calls, per
    camera (:func:`quality_threshold.suggest_quality_threshold`), on the eyes whose
    photograph the gate judged."""
    cameras = sorted({e.camera for e in eyes})
    return [suggest_quality_threshold([QualityEye(e.p_quality_reject, e.grader_grade is None, e.weight)
                                       for e in eyes if e.camera == camera and e.p_quality_reject is not None],
                                      current, camera) for camera in cameras]


def photo_camera(result: EyeResult, store: ClinicStore) -> str:
    """The camera of a photograph: its EXIF model, else its size (``1024x685``)."""
    path = Path(result.path) if result.path and Path(result.path).is_file() else store.image_file(result.sha256)
    model = camera_model(path) if path is not None else None
    return model or (f"{result.width}x{result.height}" if result.width else "unknown size")


# ---------------------------------------------------------------------- the figures


@dataclass(frozen=True)
class Agreement:
    """How the AI agrees with the graders on a group of eyes."""

    group: str
    eyes: int
    patients: int
    kappa: float                           # quadratic-weighted, AI grade vs grader grade, eyes both graded
    sensitivity: M.RateCI                  # referable, weighted 1/P(graded)
    specificity: M.RateCI
    urgent_in_annual: int
    gate_vs_grader: tuple[int, int, int, int]   # both ungradable, gate only, grader only, both gradable
    ai_referral_rate: float                # weighted share of eyes the AI referred
    grader_referral_rate: float            # weighted share the graders' grades refer

    @property
    def ungradable_agreement(self) -> float:
        both, gate, grader, neither = self.gate_vs_grader
        n = both + gate + grader + neither
        return (both + neither) / n if n else math.nan


def agreement(eyes: Sequence[QaEye], group: str = "all", n_boot: int = 1000) -> Agreement:
    """The AI against the graders on ``eyes`` (see the module's note on weights)."""
    both = [e for e in eyes if e.both_graded]
    kappa = M.quadratic_weighted_kappa([e.grader_grade for e in both], [e.ai_grade for e in both])  # type: ignore[misc]  # grades of both readers are never None here
    w = np.array([e.weight for e in both], float)
    y = np.array([e.grader_referable for e in both], bool)
    flag = np.array([e.ai_referred for e in both], bool)
    groups = [e.patient_id for e in both]
    sens = M.weighted_rate_ci(flag, y, w, groups, n_boot)
    spec = M.weighted_rate_ci(~flag, ~y, w, groups, n_boot)
    gate_refused = [e.ai_status != Status.OK.value for e in eyes]
    grader_refused = [e.grader_grade is None for e in eyes]
    table = (sum(a and b for a, b in zip(gate_refused, grader_refused)),
             sum(a and not b for a, b in zip(gate_refused, grader_refused)),
             sum(b and not a for a, b in zip(gate_refused, grader_refused)),
             sum(not a and not b for a, b in zip(gate_refused, grader_refused)))
    weights = np.array([e.weight for e in eyes], float)
    everyone = np.ones(len(eyes), bool)
    return Agreement(group, len(eyes), len({e.patient_id for e in eyes}), kappa, sens, spec,
                     sum(e.urgent_in_annual for e in eyes), table,
                     M.weighted_rate(np.array([e.ai_referred for e in eyes], bool), everyone, weights),
                     M.weighted_rate(np.array([Queue(e.grader_queue) in REFERRED for e in eyes], bool), everyone,
                                     weights))


SPLITS: dict[str, Callable[[QaEye], str]] = {
    "site": lambda e: e.site, "camera": lambda e: e.camera, "month": lambda e: e.month, "grader": lambda e: e.grader}


def split(eyes: Sequence[QaEye], by: str, n_boot: int = 500) -> list[Agreement]:
    """:func:`agreement` per site, camera, month or grader, in name order."""
    groups: dict[str, list[QaEye]] = {}
    for e in eyes:
        groups.setdefault(SPLITS[by](e), []).append(e)
    return [agreement(members, name, n_boot) for name, members in sorted(groups.items())]


def confusion_table(eyes: Sequence[QaEye]) -> np.ndarray:
    """Counts, rows = the grader's grade 0-4 then ungradable, columns = the AI's likewise."""
    table = np.zeros((6, 6), np.int64)
    for e in eyes:
        table[5 if e.grader_grade is None else e.grader_grade, 5 if e.ai_grade is None else e.ai_grade] += 1
    return table


@dataclass(frozen=True)
class ArbitrationAgreement:
    """How often a grader's first reads held when another grader arbitrated them."""

    grader: str
    first_reads: int
    arbitrated: int
    upheld: int          # the arbiter's outcome was the first grader's, at the decision level


def arbitration_agreement(grades: Sequence[HumanGrade], protocol_of: Callable[[str], str]) -> list[ArbitrationAgreement]:
    """Per grader: eyes first-read, how many went to arbitration, and how many the arbiter upheld."""
    arbiters = {(g.encounter_id, g.eye): g for g in grades if g.role == "arbitration"}
    rows: dict[str, list[int]] = {}
    for g in grades:
        if g.role != "first":
            continue
        counts = rows.setdefault(g.grader, [0, 0, 0])
        counts[0] += 1
        arbiter = arbiters.get((g.encounter_id, g.eye))
        if arbiter is not None:
            counts[1] += 1
            protocol = protocol_of(g.encounter_id)
            counts[2] += eye_outcome(g, protocol).queue is eye_outcome(arbiter, protocol).queue
    return [ArbitrationAgreement(name, *c) for name, c in sorted(rows.items())]


def write_qa_csv(eyes: Sequence[QaEye], path: Path) -> Path:
    """``qa-eyes.csv``: one row per graded eye, with its weight and the urgent-in-annual flag."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = [*QaEye.__dataclass_fields__, "month", "urgent_in_annual"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        for e in eyes:
            row = {k: ("" if v is None else v) for k, v in asdict(e).items()}
            if row["grader_grade"] == "":
                row["grader_grade"] = "ungradable"
            writer.writerow({**row, "month": e.month, "urgent_in_annual": int(e.urgent_in_annual)})
    return path


def summary_line(a: Agreement) -> str:
    """The one line the command prints and the report opens with; it names the kappa."""
    return (f"quadratic-weighted kappa {a.kappa:.3f} (AI grade vs grader, {a.eyes} graded eyes of {a.patients} "
            f"patients); referable sensitivity {a.sensitivity.value:.3f} ({a.sensitivity.low:.3f}-"
            f"{a.sensitivity.high:.3f}), specificity {a.specificity.value:.3f} ({a.specificity.low:.3f}-"
            f"{a.specificity.high:.3f}), weighted 1/P(graded); {a.urgent_in_annual} grader-urgent eye(s) in annual")
