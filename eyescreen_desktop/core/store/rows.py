"""Rows <-> records: how results, patients and encounter summaries are read back."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .engine import Row
from ..protocol import current_eyes, get_protocol, patient_decision
from ..records import (
    EncounterSummary,
    Eye,
    EyeDecision,
    EyeResult,
    MissingEye,
    ModelInfo,
    OperatingPoint,
    Patient,
    Prediction,
    QualityReport,
    Queue,
    Status,
)
from .base import _date, _datetime

_EYE_ORDER = {Eye.RIGHT: 0, Eye.LEFT: 1, Eye.UNKNOWN: 2}  # right eye first, as on clinic forms
HEATMAP_SIDE = 96  # stored heat maps are this many pixels square (they are smooth: 12x12 features at 384 px)
_RESULT_SELECT = (
    "SELECT r.*, ei.eye AS link_eye, ei.original_path AS link_path, i.sha256 AS image_sha "
    "FROM results r JOIN encounter_images ei ON ei.encounter_image_id = r.encounter_image_id "
    "JOIN images i ON i.image_id = r.image_id"
)


def _file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def _result_values(result: EyeResult, model: ModelInfo, protocol: str,
                   op: OperatingPoint | None) -> dict[str, Any]:
    p, q, d = result.prediction, result.quality, result.decision
    return {
        "model_name": model.name, "model_version": model.version, "model_sha": model.sha256,
        "protocol": protocol, "op_name": op.name if op else None,
        "operating_point": json.dumps({"referable": op.referable, "urgent": op.urgent,
                                       "maculopathy": op.maculopathy}) if op else None,
        "status": result.status.value, "grade": result.grade,
        "probabilities": json.dumps(list(p.grade_probs)) if p else None,
        "p_referable": p.p_referable if p else None, "p_urgent": p.p_urgent if p else None,
        "p_maculopathy": p.p_maculopathy if p else None,
        "queue": result.queue.value, "code": d.code if d else "", "finding": d.finding if d else "",
        "message": result.message, "quality_reasons": json.dumps(list(q.reasons) if q else []),
        "quality_advice": q.advice if q else None,
        "quality_metrics": json.dumps(q.metrics) if q else None,
        "width": result.width, "height": result.height,
        "heatmap": encode_heatmap(result.heatmap) if result.status is Status.OK else None,
        "modality": result.modality, "p_checkup": result.p_checkup, "gate": result.gate,
    }


def encode_heatmap(heatmap: Any) -> bytes | None:
    """A heat map in [0, 1] as a small grey PNG (about 2 KB), or None."""
    if heatmap is None:
        return None
    import cv2

    heat = np.nan_to_num(np.asarray(heatmap, np.float32)).clip(0.0, 1.0)
    if heat.ndim != 2 or min(heat.shape) < 1:
        return None
    small = cv2.resize(heat, (HEATMAP_SIDE, HEATMAP_SIDE), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", np.round(small * 255).astype(np.uint8))
    return png.tobytes() if ok else None


def decode_heatmap(blob: bytes | None) -> np.ndarray | None:
    """The stored heat map as float32 in [0, 1], or None (none stored, or unreadable)."""
    if not blob:
        return None
    import cv2

    grey = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_GRAYSCALE)
    return None if grey is None else grey.astype(np.float32) / 255.0


def _eye_result(r: Row, heatmap: bool = False) -> EyeResult:
    """The result of one row; its stored heat map decoded only when asked for."""
    status = Status(r["status"])
    probs = json.loads(r["probabilities"]) if r["probabilities"] else None
    prediction = Prediction(tuple(probs), r["p_referable"], r["p_urgent"], r["p_maculopathy"]) if probs else None
    quality = None
    if r["quality_metrics"] is not None:
        quality = QualityReport(status, tuple(json.loads(r["quality_reasons"])), r["quality_advice"] or "",
                                json.loads(r["quality_metrics"]), modality=r["modality"], gate=r["gate"])
    return EyeResult(
        path=r["link_path"], eye=Eye(r["link_eye"]), status=status, message=r["message"],
        sha256=r["image_sha"] or "", quality=quality, prediction=prediction,
        decision=EyeDecision(Queue(r["queue"]), r["code"], r["finding"], r["grade"]),
        width=r["width"] or 0, height=r["height"] or 0, heatmap=decode_heatmap(r["heatmap"]) if heatmap else None,
        modality=r["modality"], p_checkup=r["p_checkup"], gate=r["gate"],
    )


def _patient(r: Row) -> Patient:
    return Patient(r["patient_id"], r["name"], _date(r["birth_date"]), r["sex"], r["diabetes_type"],
                   r["diabetes_years"])


def _operating_point(r: Row) -> OperatingPoint | None:
    if not r["operating_point"]:
        return None
    v = json.loads(r["operating_point"])
    return OperatingPoint(r["op_name"] or "default", v["referable"], v["urgent"], v.get("maculopathy", 0.5))


def _summary(enc: Row, patient: Patient, rows: list[Row], heatmaps: bool,
             missing: Sequence[MissingEye] = ()) -> EncounterSummary:
    """One visit from its rows: ``rows`` oldest photograph first, so the rule's
    current photograph of each eye is the last of its side."""
    photos = [_eye_result(r, heatmaps) for r in rows]
    decision = patient_decision(patient.patient_id, photos, missing)
    current = current_eyes(photos)
    kept = {id(e) for e in current}
    eyes = tuple(sorted(current, key=lambda e: _EYE_ORDER[e.eye]))
    retaken = tuple(sorted((e for e in photos if id(e) not in kept), key=lambda e: _EYE_ORDER[e.eye]))
    protocol = get_protocol(enc["protocol"])
    started = _datetime(enc["started_at"]) or dt.datetime.now().astimezone()
    computed = Queue(enc["queue"]) if enc["queue"] else decision.queue
    override = Queue(enc["override_queue"]) if enc["override_queue"] else None
    queue = override or computed
    due = _date(enc["override_due_date"] or enc["due_date"]) or protocol.due_date(queue, started.date())
    last = max(rows, key=lambda r: r["result_id"]) if rows else None
    return EncounterSummary(
        encounter_id=enc["encounter_id"], patient=patient, started_at=started, eyes=eyes, queue=queue,
        due_date=due, action=protocol.action(queue), protocol_name=protocol.name,
        operating_point=_operating_point(last) if last else None,
        model=ModelInfo(last["model_name"], last["model_version"], last["model_sha"]) if last else None,
        state=enc["state"] or "open", override_reason=enc["override_reason"] or "",
        slip_printed_at=_datetime(enc["slip_printed_at"]), retaken=retaken, computed_queue=computed,
        override_queue=override, complete=decision.complete, queue_note=decision.note,
        missing_eyes=tuple(missing), slip_saved_at=_datetime(enc["slip_saved_at"]),
        referred_without_slip=bool(enc["referred_without_slip"]),
        version=int(enc["version"] or 0),
    )
