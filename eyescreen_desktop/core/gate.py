"""The learned gate: what kind of picture is this, is it good enough, is it familiar?

Three questions, answered at screening speed on the ONNX path:

1. **Modality** (:meth:`Gate.modality`): ``fundus``, ``external_eye`` (the
   front of the eye: lids, sclera, iris) or ``other`` (faces, documents,
   screens, anything else), from a small network (EfficientNet-Lite0 at
   ``input_size`` px with a softmax head, ~3 ms) that sees the whole picture
   letterboxed, so it does not depend on finding a round field first: a
   rectangular crop, a clipped circle or a colour-cast frame from an unknown
   camera is still a fundus photograph. Only ``fundus`` goes to the grader.
2. **Quality** (:meth:`Gate.quality`, before grading): good / usable / reject
   from small heads (reject: one hidden layer; good vs usable: logistic) on
   the same run's early-block statistics (the mean and
   spread of the ImageNet base's activations at strides 4-16: edges and fine
   texture, which say whether vessels are sharp and the field evenly lit) plus
   the hand-made focus and exposure measures (``core.fundus``), trained on
   EyeQ labels (split by patient) and synthetic degradations. The grader's own
   features are not used for quality: trained on camera copies, they have
   learned to ignore blur and haze (gate 1.1.0 caught 42.5% of EyeQ rejects on
   them, 1.2.0 77% on these). The hand-made measures still give the
   reason in words; the learned head catches what a global measure misses.
3. **Unfamiliar** (:meth:`Gate.familiarity`, after grading): a Mahalanobis
   distance (probabilistic PCA) of the grader's pooled features to the fundus photographs the gate was
   fitted on. A photograph far from all of them (threshold: a high percentile
   of validation fundus photographs) is not graded: "unfamiliar photograph:
   check it by eye". This needs no negative examples.

The folder ``models/eyescreen-gate`` holds ``gate_card.json`` (version,
thresholds, SHA-256 of every file), ``modality.onnx`` and ``heads.npz``; files
whose bytes do not match the card are refused, like the grader's.
Training: ``training/gate.py`` (``eyescreen train-gate``).
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import cv2
import numpy as np

from ..domain.vocabulary import Modality
from . import fundus
from .classifier import sha256_file
from .records import REASON_BORDERLINE

log = logging.getLogger(__name__)

CARD_FILE = "gate_card.json"
CARD_FORMAT = "eyescreen-gate-card/2"   # 2: quality read from the modality run (1.2.0)
MODALITIES = (Modality.FUNDUS.value, Modality.EXTERNAL_EYE.value, Modality.OTHER.value)  # the network's output order
QUALITY_GRADES = ("good", "usable", "reject")
# hand-made measures (core.fundus metrics) the quality head reads beside the picture's early-block statistics
QUALITY_METRICS = ("vessel_contrast", "fine_detail", "dark_fraction", "fov_brightness", "saturated", "coverage")

# the metric (QualityReport.metrics) holding the learned quality verdict's probability that the
# photograph is a reject: results.csv's ``p_quality_reject`` and the FHIR quality observation read it
QUALITY_PROBABILITY = "gate_p_reject"

HEAD_KEYS = ("q_mean", "q_std", "reject_w1", "reject_b1", "reject_w2", "reject_b2", "good_w", "good_b",
             "ood_mean", "ood_components", "ood_variances", "ood_noise",
             "lite_ood_mean", "lite_ood_components", "lite_ood_variances", "lite_ood_noise")


class GateError(RuntimeError):
    """The gate's files are missing, damaged or do not match their card."""


def default_gate_dir() -> Path:
    """The gate shipped beside the grader (``models/eyescreen-gate``, package data
    in a wheel or bundle)."""
    from .paths import models_dir

    return models_dir() / "eyescreen-gate"


def card_reject_threshold(folder: Path | None = None) -> float | None:
    """The shipped gate card's reject threshold on p_reject (None without a readable
    card): what a site threshold is compared with, read without loading the network."""
    folder = Path(folder) if folder is not None else default_gate_dir()
    try:
        return float(json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))["thresholds"]["reject"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def modality_input(rgb: np.ndarray, size: int) -> np.ndarray:
    """The whole picture letterboxed into ``size`` x ``size`` (black bars keep its
    shape: a round field stays round), float32 RGB 0-255. Training uses this
    same function."""
    h, w = rgb.shape[:2]
    s = size / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.zeros((size, size, 3), np.float32)
    y, x = (size - nh) // 2, (size - nw) // 2
    out[y:y + nh, x:x + nw] = small
    return out


@dataclass(frozen=True)
class ModalityVerdict:
    """What kind of picture it is, with the softmax probabilities."""

    label: str
    probs: dict[str, float] = field(default_factory=dict)
    doubtful: bool = False      # called fundus, but with less than the card's minimum probability, or
    #                             with features far from every fundus picture the network was fitted on
    distance: float = 0.0       # that distance (PPCA Mahalanobis of the network's pooled features)
    features: np.ndarray | None = field(default=None, repr=False, compare=False)
    #                             the early blocks' statistics the quality head reads (:meth:`Gate.quality`)


@dataclass(frozen=True)
class QualityVerdict:
    """The learned quality grade of one fundus photograph."""

    quality: str            # good / usable / reject
    p_reject: float
    p_good: float
    borderline: bool = False    # passed, but p_reject at or above the card's ``borderline`` (not reject)

    def metrics(self) -> dict[str, float]:
        """For ``QualityReport.metrics`` (logs and re-tuning)."""
        return {QUALITY_PROBABILITY: self.p_reject, "gate_p_good": self.p_good}


class Gate:
    """The loaded gate. ``modality`` is thread-safe (one ONNX Runtime session,
    one thread per call, so it runs beside the grader on the decode threads)."""

    def __init__(self, card: Mapping, folder: Path, session: object, heads: Mapping[str, np.ndarray]):
        self.card = dict(card)
        self.folder = folder
        self._session = session
        self._input = session.get_inputs()[0].name  # type: ignore[attr-defined]  # an onnxruntime InferenceSession, typed as object so onnxruntime loads lazily
        self._outputs = [o.name for o in session.get_outputs()]  # type: ignore[attr-defined]  # an onnxruntime InferenceSession, typed as object so onnxruntime loads lazily
        self._heads = {k: np.asarray(v) for k, v in heads.items()}
        self.input_size = int(card["input_size"])
        self.thresholds = dict(card["thresholds"])
        self.site_reject: float | None = None     # the clinic's own threshold, applied by an admin

    @property
    def version(self) -> str:
        """``name version``: goes on every result row and slip (with the clinic's own
        photo-quality threshold when one is applied, so cached results of another
        threshold are not reused and every result says which threshold judged it)."""
        site = f" (site photo-quality threshold {self.site_reject:.4f})" if self.site_reject is not None else ""
        return f"{self.card['name']} {self.card['version']}{site}"

    def with_reject(self, threshold: float) -> "Gate":
        """This gate judging quality at the clinic's threshold on p_reject (an admin's
        applied suggestion, :mod:`.quality_threshold`); the borderline band starts no
        higher than it. The network and heads are shared, not reloaded."""
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"a photo-quality threshold lies strictly between 0 and 1, not {threshold}")
        site = copy.copy(self)
        site.thresholds = {**self.thresholds, "reject": float(threshold),
                           "borderline": min(self.thresholds.get("borderline", float("inf")), float(threshold))}
        site.site_reject = float(threshold)
        return site

    @classmethod
    def load(cls, folder: Path | None = None) -> "Gate":
        """Read the card, check every file's SHA-256 and open the modality network."""
        import onnxruntime as ort

        folder = Path(folder) if folder is not None else default_gate_dir()
        try:
            card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise GateError(f"no readable gate card in {folder} ({exc}): reinstall EyeScreen's models") from None
        if card.get("format") != CARD_FORMAT:
            raise GateError(f"{folder / CARD_FILE} has format {card.get('format')!r}, this EyeScreen reads "
                            f"{CARD_FORMAT!r}: reinstall the gate that came with it, or run eyescreen train-gate")
        for name, sha in card["files"].items():
            path = folder / name
            if not path.is_file() or sha256_file(path) != sha:
                raise GateError(f"gate file {path} is missing or does not match its card: reinstall the model")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(folder / card["modality_file"]), sess_options=opts,
                                       providers=["CPUExecutionProvider"])
        with np.load(folder / card["heads_file"]) as npz:
            heads = {k: npz[k] for k in npz.files}
        outputs = {o.name for o in session.get_outputs()}
        missing = ({"modality", "features", "quality"} - outputs) | (set(HEAD_KEYS) - set(heads))
        if missing:
            raise GateError(f"the gate in {folder} lacks {', '.join(sorted(missing))}: reinstall the model")
        log.info("loaded gate %s %s", card["name"], card["version"])
        return cls(card, folder, session, heads)

    # ------------------------------------------------------------------ modality

    def modality(self, rgb: np.ndarray) -> ModalityVerdict:
        """Fundus, external eye or other, for one RGB picture of any size. A
        fundus call is doubtful when weak or when the network's own features
        are far from every fundus picture it was fitted on (a lit round object,
        a clock face: 1.1.0's second check for pictures called fundus)."""
        outs = dict(zip(self._outputs, self._session.run(  # type: ignore[attr-defined]  # an onnxruntime InferenceSession, typed as object so onnxruntime loads lazily
            None, {self._input: modality_input(rgb, self.input_size)[None]})))
        distance = ppca_distance(np.asarray(outs["features"][0], np.float64), self._heads, "lite_ood")
        t = self.thresholds
        seen = verdict_from_probs(outs["modality"][0], t.get("fundus_min_prob", 0.0), distance,
                                  t.get("unfamiliar_picture", float("inf")))
        return replace(seen, features=np.asarray(outs["quality"][0], np.float32))

    # ------------------------------------------------------------------ quality and familiarity

    def quality(self, seen: ModalityVerdict, metrics: Mapping[str, float]) -> QualityVerdict:
        """Learned quality grade of a fundus photograph, from the modality run's
        early-block statistics (``seen.features``) and the hand-made measures:
        decided before grading, so a refused photograph is never graded (the grader only
        looks at one refused for quality for urgent signs, ``screening.with_urgent_signs``)."""
        if seen.features is None:
            raise ValueError("the modality verdict carries no quality features (made by Gate.modality)")
        return quality_verdict(self._heads, seen.features, metrics, self.thresholds["reject"],
                               self.thresholds.get("borderline", float("inf")))

    def familiarity(self, embedding: np.ndarray) -> float:
        """Mahalanobis distance (PPCA, per dimension) of the grader's pooled
        features to the fundus photographs the gate was fitted on; above the
        card's ``unfamiliar`` the photograph is not graded."""
        return round(ppca_distance(np.asarray(embedding, np.float64), self._heads), 4)

    def unfamiliar(self, distance: float) -> bool:
        return distance > self.thresholds["unfamiliar"]


def quality_probabilities(heads: Mapping[str, np.ndarray], features: np.ndarray,
                          metrics: Mapping[str, float]) -> tuple[float, float]:
    """(p_reject, p_good) of the quality heads, unrounded (training chooses the
    reject threshold on these)."""
    z = (quality_vector(features, metrics) - heads["q_mean"]) / heads["q_std"]
    return _sigmoid(reject_logit(heads, z)), _sigmoid(float(z @ heads["good_w"] + heads["good_b"]))


def quality_verdict(heads: Mapping[str, np.ndarray], features: np.ndarray, metrics: Mapping[str, float],
                    reject_at: float, borderline_at: float = float("inf")) -> QualityVerdict:
    """The quality heads' verdict (screening and the training report share it).
    ``borderline_at`` (the card's ``borderline``, below ``reject_at``) starts the band
    of photographs that pass but are graded with "photo quality borderline"."""
    p_reject, p_good = quality_probabilities(heads, features, metrics)
    quality = "reject" if p_reject >= reject_at else ("good" if p_good >= 0.5 else "usable")
    borderline = quality != "reject" and p_reject >= borderline_at
    return QualityVerdict(quality, round(p_reject, 4), round(p_good, 4), borderline)


def verdict_from_probs(probs: np.ndarray, fundus_min_prob: float = 0.0, distance: float = 0.0,
                       max_distance: float = float("inf")) -> ModalityVerdict:
    """Arg-max; a picture called fundus with a probability under
    ``fundus_min_prob``, or whose modality features lie further than
    ``max_distance`` from the fundus pictures the network was fitted on, is
    ``doubtful``: it is not graded but goes to review as unfamiliar (pictures
    of kinds the gate never saw, the moon, a clock, a scrap of text, landed
    there in the check; real fundus photographs rarely do)."""
    named = {m: round(float(p), 4) for m, p in zip(MODALITIES, probs)}
    label = MODALITIES[int(np.argmax(probs))]
    doubtful = label == Modality.FUNDUS and (named[Modality.FUNDUS] < fundus_min_prob or distance > max_distance)
    return ModalityVerdict(label, named, doubtful, round(float(distance), 4))


def reject_logit(heads: Mapping[str, np.ndarray], z: np.ndarray) -> float:
    """The reject head: one hidden layer (tanh) on the standardised quality
    vector; a linear head on these inputs caught 57-68% of EyeQ rejects where
    this one catches 69-72% at the same pass rates (docs/quality-gate.md)."""
    hidden = np.tanh(z @ heads["reject_w1"] + heads["reject_b1"])
    return float(hidden @ heads["reject_w2"] + heads["reject_b2"])


def quality_vector(features: np.ndarray, metrics: Mapping[str, float]) -> np.ndarray:
    """The quality head's input: the early blocks' statistics then the hand-made measures."""
    extra = [float(metrics.get(k, 0.0)) for k in QUALITY_METRICS]
    return np.concatenate([np.asarray(features, np.float64).ravel(), np.asarray(extra, np.float64)])


def ppca_distance(x: np.ndarray, heads: Mapping[str, np.ndarray], prefix: str = "ood") -> float:
    """Mahalanobis distance under probabilistic PCA (top components with their
    own variance, the rest with one shared variance), divided by sqrt(dim) so
    the threshold reads the same for any feature width. ``prefix``: ``ood``
    for the grader's features, ``lite_ood`` for the modality network's."""
    d = x - heads[f"{prefix}_mean"]
    proj = heads[f"{prefix}_components"] @ d
    resid = float(d @ d - proj @ proj)
    d2 = float(np.sum(proj ** 2 / heads[f"{prefix}_variances"])) + max(resid, 0.0) / float(heads[f"{prefix}_noise"])
    return float(np.sqrt(d2 / d.size))


def _sigmoid(v: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.clip(v, -60, 60))))


def reject_reason(metrics: Mapping[str, float]) -> str:
    """The reason in words for a photograph the learned head rejects: the
    hand-made measure (core.fundus) nearest its own limit, or ``poor_quality``
    when none is within 1.5x of it."""
    m, f = metrics, fundus
    margins = {
        "blurred": min(m.get("vessel_contrast", 1) / f.MIN_VESSEL_CONTRAST, m.get("fine_detail", 1) / f.MIN_FINE_DETAIL),
        "dark": m.get("fov_brightness", 1) / f.MIN_BRIGHTNESS,
        "overexposed": min(f.MAX_BRIGHTNESS / max(m.get("fov_brightness", 0), 1e-6),
                           f.MAX_SATURATED / max(m.get("saturated", 0), 1e-6)),
        "uneven_illumination": f.MAX_DARK_FRACTION / max(m.get("dark_fraction", 0), 1e-6),
    }
    reason = min(margins, key=margins.__getitem__)
    return reason if margins[reason] < 1.5 else "poor_quality"


def decide_gate(modality: str, status: str, reasons: tuple[str, ...], verdict: QualityVerdict | None,
                metrics: Mapping[str, float], doubtful: bool = False,
                unfamiliar: bool = False) -> tuple[str, tuple[str, ...]]:
    """The whole gate's rule, shared by screening and the training report:
    (status value, reasons). Not a fundus photograph -> ``not_fundus`` (reason
    ``not_fundus`` or ``external_eye``); a hand-made reason (too small, too
    dark, out of focus...) -> ``ungradable`` with it; the learned quality head's
    reject -> ``ungradable`` with the nearest hand-made reason in words; far
    from every fundus photograph the gate knows (``unfamiliar``, the grader's
    features, known after grading) -> ``ungradable``, ``unfamiliar``; a pass
    with the learned p_reject in the card's borderline band -> ``ok`` with the
    reason ``borderline_quality`` (graded, "photo quality borderline"); else
    ``ok``. ``verdict`` is None when the learned quality is not available (it
    is then skipped)."""
    if modality == Modality.EXTERNAL_EYE:
        return "not_fundus", ("external_eye",)
    if modality != Modality.FUNDUS:
        return "not_fundus", ("not_fundus",)
    if doubtful:
        return "ungradable", ("unfamiliar",)
    if status != "ok":
        return status, reasons
    if verdict is not None and verdict.quality == "reject":
        return "ungradable", (reject_reason(metrics),)
    if unfamiliar:
        return "ungradable", ("unfamiliar",)
    if verdict is not None and verdict.borderline:
        return "ok", (REASON_BORDERLINE,)
    return "ok", ()
