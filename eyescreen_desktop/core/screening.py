"""The screening pipeline: read -> quality gate -> preprocess -> predict (batched) -> decide.

The same code serves the batch command, the desktop worker and the tests, so it
is synchronous and Qt-free. It is split the way MONAI Deploy splits an
inference operator, so each stage can be tested on its own:

* :func:`prepare` (pre-processing, pure apart from reading the file): decode,
  ask the learned gate (``core.gate``) what kind of picture it is (only a
  fundus photograph goes on), find the field of view, run the hand-made
  quality checks and, for a gradable photograph, build the model input. Runs
  on decode threads: OpenCV and ONNX Runtime release the GIL.
* After prediction the gate's learned quality and familiarity heads read the
  grader's own pooled features (:meth:`Screener._apply_gate`): a photograph
  they refuse goes to review with the reason in words, ungraded.
* ``Classifier.predict`` (prediction): one call per batch of gradable images.
* :func:`decide` (post-processing, pure): quality verdict + prediction +
  protocol + operating point -> :class:`EyeResult` with its queue.

:class:`Screener` runs them as a stream: results come back lazily and in input
order while the next photographs are decoded during inference; look-ahead is
bounded (``2 * batch_size`` files in flight), so memory stays flat for folders
of thousands of files. The caller cancels by closing the generator (or simply
dropping it): work not yet started is discarded and the decode threads end.

A problem with one file never stops the run: it becomes an ERROR result whose
message names the file and says what to do.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from . import fundus
from .classifier import ModelError
from .external_eye import ExternalEyeModel, PhotoCheck, check_photo, default_external_model, external_result
from .fundus import assess_quality, find_field_of_view
from .heatmap import heatmap_to_show
from .gate import Gate, GateError, decide_gate
from .imageio import ImageReadError, image_sha256, read_image_with_hash
from .preprocess import PREPROCESSING_ID, model_frame, preprocess
from .protocol import DEFAULT_PROTOCOL, EXTERNAL_EYE_CODES, Protocol, get_protocol
from .records import REASON_URGENT_SIGNS, Eye, EyeResult, Modality, OperatingPoint, Prediction, QualityReport, Status

log = logging.getLogger(__name__)

# JPEGs are decoded at 1/2, 1/4 or 1/8 scale down to max(this, 2 x input size) on the long side.
# At 224 px that is 448: 1024-px exports decode at 512 px, exactly as training.data decodes
# them (identical model inputs; 1024 gave a train/serve skew of ~0.8 grey levels), and
# 3872-px camera originals at 484 px, 2.5x faster than at 1936 (docs/performance.md).
DECODE_MAX_SIDE = 448


def decode_side(input_size: int, max_side: int = DECODE_MAX_SIDE) -> int:
    """Long side JPEGs are decoded down to for a model of ``input_size``; training
    (``training.data``) uses this same rule, so both see the same pixels."""
    return max(max_side, 2 * input_size)


CacheLookup = Callable[[str], "EyeResult | None"]


@dataclass(frozen=True)
class ScreenItem:
    """One photograph to screen and the eye it shows (UNKNOWN when nobody said)."""

    path: Path
    eye: Eye = Eye.UNKNOWN


@dataclass(frozen=True)
class Prepared:
    """What pre-processing made of one photograph: the quality verdict and, when
    gradable, the model input; or the error; or a result reused from the cache."""

    item: ScreenItem
    sha256: str = ""
    width: int = 0
    height: int = 0
    quality: QualityReport | None = None
    tensor: np.ndarray | None = None       # (S, S, 3) uint8, only for gradable photographs
    error: str = ""
    cached: EyeResult | None = None
    external: PhotoCheck | None = None     # the eye check of a close-up or selfie (core.external_eye)
    look: np.ndarray | None = None         # (S, S, 3) uint8 of a fundus photograph refused for quality:
    #                                        the grader looks for urgent signs, it is never graded


DEFAULT_GATE = "default"
DEFAULT_EXTERNAL = "default"
MIN_GATE_SIDE = 64      # px, long side: smaller pictures are "image too small" without asking the gate


@functools.cache
def default_gate() -> Gate | None:
    """The shipped gate (``models/eyescreen-gate``), loaded once per process; None
    (hand-made rules only, logged) when this installation has none. A gate that is
    there but damaged (hash, card, network) is refused with a ModelError that says
    so: grading behind a broken gate would pass pictures it should stop."""
    from .gate import default_gate_dir

    folder = default_gate_dir()
    if not folder.exists():
        log.warning("no learned gate in %s: using the hand-made rules only", folder)
        return None
    try:
        return Gate.load(folder)
    except (GateError, OSError) as exc:
        raise ModelError(f"the learned gate in {folder} is damaged, so no photograph is graded ({exc}); "
                         "reinstall EyeScreen or restore that folder") from None


def site_gate(reject: float | None) -> Gate | None:
    """The gate screening uses at this clinic: the shipped one, at the photo-quality
    threshold an admin applied (``ClinicStore.applied_quality_threshold``) when there
    is one. Every screening path that has the clinic's store passes this as ``gate``."""
    gate = default_gate()
    return gate.with_reject(reject) if gate is not None and reject is not None else gate


# ---------------------------------------------------------------------- pre-processing


def prepare(item: ScreenItem, input_size: int, cache: CacheLookup | None = None,
            max_side: int = DECODE_MAX_SIDE, gate: Gate | None = None,
            external: ExternalEyeModel | None = None, look_refused: bool = False) -> Prepared:
    """Read, gate and preprocess one file; never raises for a bad file.

    ``cache`` maps a content hash to a result already on record (same model and
    protocol); on a hit the photograph is not decoded again. ``look_refused``:
    also build the model input of a fundus photograph refused for quality
    (:func:`refused_for_quality`), for the urgent-signs look."""
    path = Path(item.path)
    try:
        if cache is not None:
            sha = image_sha256(path)
            hit = _lookup(cache, sha)
            if hit is not None:
                return Prepared(item, sha, hit.width, hit.height, hit.quality,
                                cached=replace(hit, path=str(path), eye=item.eye))
        rgb, sha = read_image_with_hash(path, max_side=decode_side(input_size, max_side))
    except ImageReadError as exc:
        return Prepared(item, _hash_if_readable(path), error=str(exc))
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the run
        log.exception("reading %s failed", path)
        return Prepared(item, error=f"{path.name} could not be read ({exc}): copy it again or report the problem")
    return prepare_array(rgb, item, input_size, sha, gate, external, look_refused)


def _lookup(cache: CacheLookup, sha256: str) -> EyeResult | None:
    """A cache that fails costs a decode, not the file."""
    try:
        return cache(sha256)
    except Exception:  # noqa: BLE001 - any failure here is logged or reported, and must not stop the rest
        log.exception("result cache lookup failed; screening the photograph again")
        return None


def prepare_array(rgb: np.ndarray, item: ScreenItem, input_size: int, sha256: str = "",
                  gate: Gate | None = None, external: ExternalEyeModel | None = None,
                  look_refused: bool = False) -> Prepared:
    """Quality gate and model input for pixels already in memory (camera captures)."""
    h, w = rgb.shape[:2]
    try:
        quality, fov = gate_picture(rgb, gate)
        tensor = preprocess(rgb, input_size, fov) if quality.gradable else None
        look = (preprocess(rgb, input_size, fov)
                if look_refused and fov is not None and refused_for_quality(quality) else None)
        check = eye_check(rgb, quality, external)
    except Exception as exc:  # noqa: BLE001 - any failure here is logged or reported, and must not stop the rest
        log.exception("quality gate failed on %s", item.path)
        return Prepared(item, sha256, w, h,
                        error=f"{Path(item.path).name} could not be analysed ({exc}): retake the photograph")
    return Prepared(item, sha256, w, h, quality, tensor, external=check, look=look)


# refusals that say nothing about the photograph's quality: the picture may not be a
# retina at all (unfamiliar), or is too small for the grader to see anything
NOT_QUALITY_REASONS = frozenset({"unfamiliar", "low_resolution", "no_field_of_view", "not_fundus", "external_eye"})


def refused_for_quality(quality: QualityReport) -> bool:
    """A fundus photograph the gate refused for its quality (blur, shadow, exposure,
    small field, the learned reject): the grader still looks at it for urgent signs.
    Never a picture that is not a fundus photograph, nor one refused as unfamiliar
    or too small."""
    return (quality.status is Status.UNGRADABLE and quality.modality == "fundus"
            and bool(quality.reasons) and not NOT_QUALITY_REASONS.intersection(quality.reasons))


def with_urgent_signs(quality: QualityReport, p_urgent: float, threshold: float | None) -> QualityReport:
    """The refused photograph's verdict after the grader's look: its p_urgent is kept
    in the metrics (``grader_p_urgent``), and at or above ``threshold`` (the model
    card's ``refused_photographs.urgent_signs``) the reason ``urgent_signs_visible``
    is added: the protocol's finding, the window's verdict and the slip's note then
    say "possible urgent disease visible: examine today" (the advice stays the
    reason's). It stays ungradable: never a grade, always review."""
    metrics = {**quality.metrics, "grader_p_urgent": round(float(p_urgent), 4)}
    if threshold is None or p_urgent < threshold:
        return replace(quality, metrics=metrics)
    return replace(quality, reasons=(*quality.reasons, REASON_URGENT_SIGNS), metrics=metrics)


def eye_check(rgb: np.ndarray, quality: QualityReport, external: ExternalEyeModel | None) -> PhotoCheck | None:
    """The external-eye check of a picture that is not a fundus photograph: a close-up
    (the gate says ``external_eye``) or a selfie (``other`` with a face); None for
    a fundus photograph or without the eye-check model. Without the learned gate
    the check's own heuristic decides what the picture is."""
    if external is None or quality.modality == Modality.FUNDUS:
        return None
    return check_photo(rgb, external, quality.modality if quality.gate else None)


def gate_picture(rgb: np.ndarray, gate: Gate | None) -> tuple[QualityReport, fundus.FieldOfView | None]:
    """The gate's verdict before grading, and the field of view to crop.

    With the learned gate: its modality decides whether this is a fundus
    photograph at all (the front of the eye and anything else are not graded);
    for a fundus photograph the cropper only finds where the retina is (the
    whole frame for a rectangular crop) and the hand-made checks give the
    reasons in words. Without it: the hand-made rules alone, as before.
    A picture too small for anyone to judge (under ``MIN_GATE_SIDE`` px) is
    "image too small"; a small fundus photograph is too."""
    if gate is None or max(rgb.shape[:2]) < MIN_GATE_SIDE:
        fov = find_field_of_view(rgb)
        q = assess_quality(rgb, fov)
        modality = (Modality.OTHER if q.status is Status.NOT_FUNDUS else Modality.FUNDUS).value
        return replace(q, modality=modality, gate=gate.version if gate else ""), fov
    work = fundus.work_copy(rgb)        # one 256-px copy for the gate's network and the cropper
    seen = gate.modality(work[0])
    probs = {f"p_{k}": v for k, v in seen.probs.items()}
    if seen.label == Modality.FUNDUS and max(rgb.shape[:2]) < fundus.MIN_IMAGE_SIDE_PX:
        q = assess_quality(rgb, None)
        return replace(q, metrics={**q.metrics, **probs}, modality=Modality.FUNDUS.value, gate=gate.version), None
    if seen.label != Modality.FUNDUS or seen.doubtful:
        status, reasons = decide_gate(seen.label, "ok", (), None, {}, seen.doubtful)
        q = fundus.report(Status(status), list(reasons), {"width": float(rgb.shape[1]),
                                                          "height": float(rgb.shape[0]), **probs})
        return replace(q, modality=seen.label, gate=gate.version), None
    fov = model_frame(rgb, work)
    q = assess_quality(rgb, fov, fundus_known=True)
    metrics = {**q.metrics, **probs}
    if q.status is Status.OK:
        # the learned quality head, on the modality run's early-block statistics, before grading;
        # the reason is the hand-made measure nearest its limit. A refused photograph keeps its
        # field of view: the grader may still look at it for urgent signs (never a grade)
        verdict = gate.quality(seen, q.metrics)
        metrics.update(verdict.metrics())
        status, reasons = decide_gate(Modality.FUNDUS, "ok", (), verdict, q.metrics)
        if status != Status.OK.value:
            q = fundus.report(Status(status), list(reasons), metrics)
            return replace(q, modality=Modality.FUNDUS.value, gate=gate.version), fov
        q = replace(q, reasons=reasons)     # a borderline pass carries ``borderline_quality``
    return replace(q, metrics=metrics, modality=Modality.FUNDUS.value, gate=gate.version), fov


def _hash_if_readable(path: Path) -> str:
    """The content hash of a file that is not a usable image (so the same broken
    file is recognised), or "" when its bytes cannot be read at all."""
    try:
        return image_sha256(path)
    except (ImageReadError, OSError):
        return ""


# ---------------------------------------------------------------------- post-processing


def decide(path: str, eye: Eye, quality: QualityReport | None, prediction: Prediction | None,
           protocol: Protocol, operating_point: OperatingPoint, *, sha256: str = "", width: int = 0,
           height: int = 0, heatmap: Any = None, message: str = "") -> EyeResult:
    """The pure post-processing step: what the clinic does about one photograph.

    Gradable with a prediction -> the protocol's decision for the eye. Ungradable
    or not a fundus photograph -> review with the gate's advice. No quality
    verdict (unreadable file) or no prediction -> ERROR, review, with ``message``.
    """
    common = dict(path=path, eye=eye, sha256=sha256, width=width, height=height)
    if quality is None or (quality.gradable and prediction is None):
        msg = message or f"{Path(path).name} could not be graded: screen it again or examine the eye in person"
        return error_result(path, eye, msg, protocol, sha256=sha256, width=width, height=height)
    common.update(modality=quality.modality, gate=quality.gate)
    if not quality.gradable:
        decision = protocol.decide_unreadable(quality.status, quality.reasons)
        return EyeResult(status=quality.status, message=message or quality.advice, quality=quality,
                         decision=decision, **common)
    decision = protocol.decide_eye(prediction, operating_point, borderline=quality.borderline)
    return EyeResult(status=Status.OK, message=message, quality=quality, prediction=prediction,
                     decision=decision, heatmap=heatmap, **common)


def error_result(path: str, eye: Eye, message: str, protocol: Protocol, *, sha256: str = "",
                 width: int = 0, height: int = 0) -> EyeResult:
    """A file the engine could not use: status ERROR, queue review, the reason."""
    return EyeResult(path=path, eye=eye, status=Status.ERROR, message=message, sha256=sha256,
                     decision=protocol.decide_unreadable(Status.ERROR), width=width, height=height)


# ---------------------------------------------------------------------- the stream


class Screener:
    """Screens photographs with one classifier, protocol and operating point.

    ``classifier`` is a loaded :class:`~eyescreen_desktop.core.classifier.Classifier`
    (anything with ``card``, ``input_size``, ``predict`` and
    ``predict_with_heatmaps``); it is used only from the thread that iterates
    :meth:`screen`. ``operating_point`` is an OperatingPoint, the name of one in
    the model card, or None for the card's default. ``cache`` (optional) looks a
    content hash up among results already on record, e.g.
    ``lambda sha: store.result_for(sha, model_sha, protocol)``; it is called from
    the decode threads. ``gate`` is the learned gate (``core.gate.Gate``), by
    default the shipped one, or None for the hand-made rules only; its
    quality and familiarity heads are used only with the grader they were
    fitted on (the card names it). ``external`` is the eye-check model
    (``core.external_eye``), by default the shipped one, or None: a close-up of
    the eye or a selfie is then checked ("go for an eye check-up" / "looks
    healthy", ``p_checkup``) instead of being only "not a fundus photograph".
    """

    def __init__(self, classifier: Any, protocol: Protocol | str = DEFAULT_PROTOCOL,
                 operating_point: OperatingPoint | str | None = None, decode_workers: int = 2,
                 batch_size: int = 16, heatmaps: bool = False, cache: CacheLookup | None = None,
                 gate: Gate | str | None = DEFAULT_GATE,
                 external: ExternalEyeModel | str | None = DEFAULT_EXTERNAL):
        card = classifier.card
        if card.preprocessing != PREPROCESSING_ID:
            raise ModelError(f"model {card.name} {card.version} expects preprocessing {card.preprocessing!r} but "
                             f"this EyeScreen provides {PREPROCESSING_ID!r}: install a matching model")
        self.classifier = classifier
        self.protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
        self.operating_point = _operating_point(card, operating_point)
        self.decode_workers = max(1, int(decode_workers))
        self.batch_size = max(1, int(batch_size))
        self.heatmaps = heatmaps
        self.cache = cache
        self.gate = default_gate() if gate == DEFAULT_GATE else gate
        self.external = default_external_model() if external == DEFAULT_EXTERNAL else external
        self._familiarity = self.gate is not None and _fitted_on(self.gate, card)
        # the p_urgent at which a photograph refused for quality still says "possible urgent
        # disease visible"; None (an older card): refused photographs cost no grader run
        self.urgent_signs_at = urgent_signs_threshold(card)

    @property
    def lookahead(self) -> int:
        """Files decoded ahead of the one being returned (bounds memory)."""
        return max(2 * self.batch_size, 2 * self.decode_workers, 4)

    def screen(self, items: Iterable[ScreenItem]) -> Iterator[EyeResult]:
        """One EyeResult per item, in input order, produced lazily; decoding of the
        next files overlaps inference. Close the generator to cancel."""
        source = iter(items)
        pending: deque[Future[Prepared]] = deque()
        pool = ThreadPoolExecutor(self.decode_workers, thread_name_prefix="eyescreen-decode")
        try:
            self._fill(pool, source, pending)
            while pending:
                batch: list[Prepared] = []
                while pending and len(batch) < self.batch_size:
                    batch.append(pending.popleft().result())
                    self._fill(pool, source, pending)
                yield from self._finish(batch)
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def screen_array(self, rgb: np.ndarray, eye: Eye = Eye.UNKNOWN, name: str = "camera capture") -> EyeResult:
        """Screen pixels already in memory (a camera capture). ``sha256`` is that of
        the pixel buffer, since the capture has no file yet."""
        rgb = np.ascontiguousarray(rgb)
        digest = hashlib.sha256(rgb.tobytes() + repr(rgb.shape).encode()).hexdigest()
        prepared = prepare_array(rgb, ScreenItem(Path(name), Eye(eye)), self.classifier.input_size, digest,
                                 self.gate, self.external, self.urgent_signs_at is not None)
        return next(iter(self._finish([prepared])))

    def _fill(self, pool: ThreadPoolExecutor, source: Iterator[ScreenItem],
              pending: deque[Future[Prepared]]) -> None:
        while len(pending) < self.lookahead:
            item = next(source, None)
            if item is None:
                return
            pending.append(pool.submit(prepare, item, self.classifier.input_size, self.cache, gate=self.gate,
                                       external=self.external, look_refused=self.urgent_signs_at is not None))

    def _finish(self, batch: Sequence[Prepared]) -> Iterator[EyeResult]:
        """Predict the gradable ones in one call, then decide every one, in order."""
        gradable = [p for p in batch if p.tensor is not None and p.cached is None]
        outputs, failure, embeddings = self._predict(gradable)
        batch = self._look_at_refused(batch)
        batch = [self._apply_gate(p, outputs, embeddings) for p in batch]
        for p in batch:
            if p.cached is not None:
                yield p.cached
            elif p.external is not None and (checked := self._external_result(p)) is not None:
                yield checked
            elif p.error:
                yield error_result(str(p.item.path), p.item.eye, p.error, self.protocol, sha256=p.sha256,
                                   width=p.width, height=p.height)
            else:
                prediction, heatmap = outputs.get(id(p), (None, None))
                result = decide(str(p.item.path), p.item.eye, p.quality, prediction, self.protocol,
                                self.operating_point, sha256=p.sha256, width=p.width, height=p.height,
                                message=failure if p.tensor is not None else "")
                # heat maps only on the retina, and only for an eye found referable
                yield result if heatmap is None else replace(
                    result, heatmap=heatmap_to_show(heatmap, p.tensor, result.queue))

    def _look_at_refused(self, batch: Sequence[Prepared]) -> list[Prepared]:
        """The grader's look at the fundus photographs refused for quality (one call for
        the batch): their verdicts gain ``grader_p_urgent`` and, above the card's
        threshold, "possible urgent disease visible: examine today". A failed look is
        logged and leaves the refusal as it was."""
        looked = [p for p in batch if p.look is not None and p.cached is None and p.quality is not None]
        if not looked:
            return list(batch)
        try:
            preds = self.classifier.predict(np.stack([p.look for p in looked]))
        except Exception:  # noqa: BLE001 - the refusal stands without the look
            log.exception("looking at %d refused photographs failed", len(looked))
            return list(batch)
        seen = {id(p): with_urgent_signs(p.quality, pred.p_urgent, self.urgent_signs_at)  # type: ignore[arg-type]  # refused photographs carry a quality report
                for p, pred in zip(looked, preds)}
        return [replace(p, quality=seen[id(p)], look=None) if id(p) in seen else p for p in batch]

    def _external_result(self, p: Prepared) -> EyeResult | None:
        """The record of an external-eye photograph (never graded for retinopathy)."""
        return external_result(str(p.item.path), p.item.eye, p.external, p.quality, self.protocol,
                               sha256=p.sha256, width=p.width, height=p.height)

    def model_info(self, result: EyeResult) -> Any:
        """The model a result came from: the eye-check model's for an external-eye record."""
        external = result.p_checkup is not None or (result.modality == Modality.EXTERNAL_EYE and result.decision
                                                    is not None and result.decision.code in EXTERNAL_EYE_CODES)
        return self.external.info if external and self.external is not None else self.classifier.info

    def _predict(self, gradable: Sequence[Prepared]
                 ) -> tuple[dict[int, tuple[Prediction, Any]], str, dict[int, np.ndarray]]:
        """{id(prepared): (prediction, heatmap)}, "", {id(prepared): pooled features};
        or ({}, message, {}) when the model failed."""
        if not gradable:
            return {}, "", {}
        batch = np.stack([p.tensor for p in gradable])
        embedded = getattr(self.classifier, "predict_with_embeddings", None)
        try:
            if self._familiarity and embedded is not None:
                preds, maps, emb = embedded(batch, self.heatmaps)
            elif self.heatmaps:
                (preds, maps), emb = self.classifier.predict_with_heatmaps(batch), None
            else:
                preds, maps, emb = self.classifier.predict(batch), None, None
        except Exception as exc:  # noqa: BLE001 - reported per file, the run goes on
            log.exception("grading a batch of %d photographs failed", len(gradable))
            return {}, f"grading failed ({exc}): screen the photograph again or examine the eye in person", {}
        maps = [None] * len(gradable) if maps is None else maps
        embeddings = {} if emb is None else {id(p): e for p, e in zip(gradable, emb)}
        return {id(p): (pred, m) for p, pred, m in zip(gradable, preds, maps)}, "", embeddings

    def _apply_gate(self, p: Prepared, outputs: dict[int, tuple[Prediction, Any]],
                    embeddings: dict[int, np.ndarray]) -> Prepared:
        """The familiarity verdict on a graded photograph (the grader's pooled
        features against the fundus photographs the gate was fitted on): an
        unfamiliar one loses its grade (review, "check it by eye"); a kept one
        carries the distance. ``outputs`` is re-keyed to the new object."""
        emb = embeddings.get(id(p))
        if emb is None or self.gate is None or p.quality is None:
            return p
        distance = self.gate.familiarity(emb)
        metrics = {**p.quality.metrics, "gate_distance": distance}
        found = outputs.pop(id(p))
        if self.gate.unfamiliar(distance):
            status, reasons = decide_gate(Modality.FUNDUS, "ok", (), None, metrics, unfamiliar=True)
            q = replace(fundus.report(Status(status), list(reasons), metrics), modality=Modality.FUNDUS.value,
                        gate=self.gate.version)
            return replace(p, quality=q, tensor=None)
        kept = replace(p, quality=replace(p.quality, metrics=metrics))
        outputs[id(kept)] = found
        return kept


def _fitted_on(gate: Gate, card: Any) -> bool:
    """Whether the gate's familiarity model was fitted on this grader: name and
    version, and the runtime file's SHA-256 where both cards record it (a
    re-exported or retrained grader of the same version has other features)."""
    grader = gate.card.get("grader", {})
    if (grader.get("name"), grader.get("version")) != (getattr(card, "name", None), getattr(card, "version", None)):
        return False
    fitted, served = grader.get("runtime_sha256", ""), getattr(card, "runtime_sha256", "")
    return not (fitted and served) or fitted == served


def urgent_signs_threshold(card: Any) -> float | None:
    """The card's ``refused_photographs.urgent_signs`` (a p_urgent chosen on validation
    patients' refused photographs, docs/training.md), or None when the card has none."""
    value = (getattr(card, "raw", None) or {}).get("refused_photographs", {}).get("urgent_signs")
    return None if value is None else float(value)


def _operating_point(card: Any, chosen: OperatingPoint | str | None) -> OperatingPoint:
    if isinstance(chosen, OperatingPoint):
        return chosen
    if chosen is None:
        return card.operating_point
    try:
        return card.operating_points[chosen]
    except KeyError:
        raise ModelError(f"model {card.name} has no operating point {chosen!r}; it has: "
                         f"{', '.join(card.operating_points)}") from None


def screen_files(classifier: Any, paths: Iterable[Path], protocol: Protocol | str = DEFAULT_PROTOCOL,
                 **options: Any) -> Iterator[EyeResult]:
    """Screen files whose eye is unknown: a shortcut for scripts and benchmarks."""
    return Screener(classifier, protocol, **options).screen(ScreenItem(Path(p)) for p in paths)
