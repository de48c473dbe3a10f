"""Site calibration from the clinic's own grades (``eyescreen calibrate --from-database``).

Why: on a camera it never saw, the shipped model ranks eyes well but its
thresholds do not carry over. The clinic's graders have already graded
referrals, reviews and a quality-assurance sample of annual encounters; their
grader-confirmed eyes choose the site's operating point by the same rule as
``eyescreen calibrate --data`` (:mod:`.calibration`), with two differences:

* each graded eye weighs 1/P(graded) (verification bias: a 10% sample of
  annual encounters weighs 10), in sensitivity, specificity, the eyes without
  disease a threshold refers and the expected referral rate;
* the stored photographs of those eyes are screened again with the model in
  force, so the point belongs to that model's weights (their SHA-256 is in the
  file, and a point for other weights is refused when loaded).

Below :data:`MIN_GRADED_EYES` graded or :data:`MIN_REFERABLE_EYES` referable eyes it
refuses and says how many more it needs. No grader-urgent eye is ever left in annual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..domain.grades import referred
from . import calibration as C
from . import metrics as M
from .qa import reference_readings

if TYPE_CHECKING:
    from .store import ClinicStore

MIN_GRADED_EYES = 100
MIN_REFERABLE_EYES = 30


@dataclass(frozen=True)
class GradedEyes:
    """The grader-confirmed eyes a site calibration rests on."""

    eyes: list[C.LabelledEye]
    graded: int
    referable: int


def graded_eyes(store: ClinicStore, site: str) -> GradedEyes:
    """Every eye with a gradable human reference grade and a stored photograph,
    labelled by that grade and weighed 1/P(graded)."""
    readings = {k: g for k, g in reference_readings(store.grades()).items() if g.gradable}
    encounters = sorted({e for e, _ in readings})
    summaries = {s.encounter_id: s for s in store.encounter_summaries(encounters)}
    p_graded = store.p_graded(encounters)
    out: list[C.LabelledEye] = []
    for (encounter_id, eye), reading in readings.items():
        s = summaries[encounter_id]
        photo = next((e for e in s.eyes if e.eye is eye), None)
        if photo is None:
            continue
        path = store.image_file(photo.sha256) if photo.sha256 else None
        if path is None and photo.path and Path(photo.path).is_file():
            path = Path(photo.path)
        if path is None:
            continue
        out.append(C.LabelledEye(path, f"{site}:{s.patient.patient_id}", eye, reading.referable, reading.urgent,
                                 site, reading.icdr_grade, 1.0 / p_graded[encounter_id]))
    return GradedEyes(out, len(out), sum(e.referable for e in out))


def check_enough(found: GradedEyes, min_graded: int = MIN_GRADED_EYES,
                 min_referable: int = MIN_REFERABLE_EYES) -> None:
    """Refuse too few grader-confirmed eyes, saying how many more are needed."""
    short = []
    if found.graded < min_graded:
        short.append(f"{min_graded - found.graded} more graded eye(s) (has {found.graded}, needs {min_graded})")
    if found.referable < min_referable:
        short.append(f"{min_referable - found.referable} more referable eye(s) (has {found.referable}, "
                     f"needs {min_referable})")
    if short:
        raise C.CalibrationError("too few grader-confirmed eyes to calibrate this site: it needs "
                                 + " and ".join(short) + "; grade more referrals and the quality-assurance sample, "
                                 "or import a reading centre's grades. Nothing was written")


def expected_referral_rate(screened: list[C.ScreenedEye], t: C.Thresholds) -> float:
    """The share of eyes the point refers, weighed 1/P(graded) (photographs the gate
    refuses go to review, not referral)."""
    w = np.array([e.eye.weight for e in screened], float)
    flagged = np.array([e.gradable and referred(e.p_referable, e.p_urgent, t.referable, t.urgent)
                        for e in screened], bool)
    return M.weighted_rate(flagged, np.ones(len(screened), bool), w)


def calibrate_site(store: ClinicStore, site: str, name: str, classifier: Any, rule: C.Rule = C.Rule(),
                   min_graded: int = MIN_GRADED_EYES, min_referable: int = MIN_REFERABLE_EYES,
                   progress: C.Progress | None = None, cancelled: Callable[[], bool] | None = None
                   ) -> C.Calibration:
    """Choose the site's operating point from its grader-confirmed eyes, re-screened
    with ``classifier`` (the model in force)."""
    from .screening import Screener

    found = graded_eyes(store, site)
    check_enough(found, min_graded, min_referable)
    screener = Screener(classifier, decode_workers=2, batch_size=getattr(classifier, "preferred_batch", 8))
    screened = C.screen_labelled(screener, found.eyes, progress, cancelled)
    if len(screened) < len(found.eyes):
        raise C.CalibrationError("calibration cancelled: nothing was written")
    card = classifier.card
    ok = [e for e in screened if e.gradable]
    source = C.DataSource(store.where, site, len(screened), len(ok), len({e.eye.patient for e in screened}),
                          sum(e.eye.referable for e in ok), sum(e.eye.urgent for e in ok), "")
    mac = card.operating_point.maculopathy if "maculopathy" in card.outputs else None
    c = C.calibrate(screened, C.model_identity(card), [source], rule, name, min_eyes=1, maculopathy=mac)
    site_info = {"source": "clinic database", "site": site, "graded_eyes": found.graded,
                 "referable_eyes": found.referable, "weighted": "1/P(graded)",
                 "weight_total": float(sum(e.eye.weight for e in screened)),
                 "expected_referral_rate": expected_referral_rate(screened, c.thresholds)}
    return replace(c, site=site_info)


def record_site_calibration(store: ClinicStore, who: str | None, site: str, out: Path, c: C.Calibration) -> None:
    """Audit a site point written to ``out``: its thresholds, model and what it rests on
    (the one record the command and the window's Settings both write)."""
    with store.transaction() as s:
        s._audit(s._db, who, "site calibrated", f"site:{site}",
                 {"out": str(out), "thresholds": {"referable": c.thresholds.referable, "urgent": c.thresholds.urgent},
                  "model": c.model, **(c.site or {})})
