"""The FHIR R4 export: one Bundle per encounter for the hospital's record system."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

from ...domain.vocabulary import REFERRAL_QUEUES
from ..gate import QUALITY_PROBABILITY
from ..records import (REASON_BORDERLINE, REASON_URGENT_SIGNS, EncounterSummary, Eye, EyeResult, ICDR_GRADE_NAMES,
                       Queue, Status)
from .layout import (
    SlipSettings,
    _write_atomic,
    clean_text,
    eye_finding_short,
    quality_advice,
    quality_note,
    reason_words,
)


# --------------------------------------------------------------------------- FHIR R4


SYSTEM = "urn:eyescreen"
PATIENT_ID_SYSTEM = f"{SYSTEM}:patient-id"
ENCOUNTER_ID_SYSTEM = f"{SYSTEM}:encounter-id"
OBSERVATION_SYSTEM = f"{SYSTEM}:observation"
ICDR_SYSTEM = f"{SYSTEM}:icdr-grade"
QUALITY_SYSTEM = f"{SYSTEM}:image-quality"
QUALITY_REASON_SYSTEM = f"{SYSTEM}:image-quality-reason"
QUEUE_SYSTEM = f"{SYSTEM}:queue"
MODEL_SHA_SYSTEM = f"{SYSTEM}:model-sha256"
SNOMED = "http://snomed.info/sct"
BODY_SITE = {Eye.RIGHT: ("18944008", "Right eye structure"), Eye.LEFT: ("8966001", "Left eye structure")}
_FHIR_NS = uuid.UUID("6f1d2a0e-5f55-4a8e-9d3c-2b7e6c1f9a10")


def _fhir_time(t: dt.datetime) -> str:
    """A FHIR dateTime with an offset (naive times are the machine's local time)."""
    return t.replace(microsecond=0).astimezone().isoformat()


def _coding(system: str, code: str, display: str = "") -> dict[str, str]:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def _concept(system: str, code: str, display: str = "", text: str = "") -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [_coding(system, code, display)]}
    if text or display:
        concept["text"] = text or display
    return concept


def _probability(value: float) -> dict[str, Any]:
    return {"value": round(float(value), 4), "unit": "probability", "system": "http://unitsofmeasure.org",
            "code": "1"}


class _Bundler:
    """Builds one encounter's resources with stable ``urn:uuid`` IDs (UUIDv5 of
    the encounter ID and the resource's role), so exporting twice gives the
    same references."""

    def __init__(self, summary: EncounterSummary):
        self.summary = summary
        self.entries: list[dict[str, Any]] = []

    def add(self, role: str, resource: dict[str, Any]) -> str:
        """Add ``resource`` as an entry; returns the reference to it."""
        rid = str(uuid.uuid5(_FHIR_NS, f"{self.summary.encounter_id}/{role}"))
        resource = {"resourceType": resource.pop("resourceType"), "id": rid, **resource}
        self.entries.append({"fullUrl": f"urn:uuid:{rid}", "resource": resource})
        return f"urn:uuid:{rid}"


def _fhir_patient(s: EncounterSummary) -> dict[str, Any]:
    p = s.patient
    gender = {"f": "female", "female": "female", "m": "male", "male": "male", "o": "other",
              "other": "other"}.get(clean_text(p.sex).strip().lower(), "unknown")
    res: dict[str, Any] = {"resourceType": "Patient",
                           "identifier": [{"system": PATIENT_ID_SYSTEM, "value": clean_text(p.patient_id) or "-"}],
                           "gender": gender}
    if clean_text(p.name).strip():
        res["name"] = [{"text": clean_text(p.name).strip()}]
    if p.birth_date:
        res["birthDate"] = p.birth_date.isoformat()
    return res


def _fhir_encounter(s: EncounterSummary, patient: str) -> dict[str, Any]:
    return {"resourceType": "Encounter",
            "identifier": [{"system": ENCOUNTER_ID_SYSTEM, "value": clean_text(s.encounter_id) or "-"}],
            "status": "finished",
            "class": _coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "ambulatory"),
            "serviceType": {"text": "Diabetic eye screening"},
            "subject": {"reference": patient}, "period": {"start": _fhir_time(s.started_at)}}


def _fhir_device(s: EncounterSummary) -> dict[str, Any] | None:
    m = s.model
    if m is None:
        return None
    dev: dict[str, Any] = {"resourceType": "Device", "status": "active",
                           "deviceName": [{"name": clean_text(m.name) or "model", "type": "model-name"}],
                           "type": {"text": "EyeScreen diabetic-retinopathy grading model (software)"},
                           "version": [{"value": clean_text(m.version) or "-"}]}
    if m.sha256:
        dev["identifier"] = [{"system": MODEL_SHA_SYSTEM, "value": clean_text(m.sha256)}]
    return dev


def _observation(s: EncounterSummary, e: EyeResult, refs: dict[str, str], code: str, display: str,
                 value: dict[str, Any]) -> dict[str, Any]:
    """An Observation about one eye with the common fields filled in."""
    obs: dict[str, Any] = {
        "resourceType": "Observation", "status": "final",
        "category": [_concept("http://terminology.hl7.org/CodeSystem/observation-category", "imaging", "Imaging")],
        "code": _concept(OBSERVATION_SYSTEM, code, display),
        "subject": {"reference": refs["patient"]}, "encounter": {"reference": refs["encounter"]},
        "effectiveDateTime": _fhir_time(s.started_at), **value,
    }
    if e.eye in BODY_SITE:
        obs["bodySite"] = _concept(SNOMED, *BODY_SITE[e.eye])
    if "device" in refs:
        obs["device"] = {"reference": refs["device"]}
    return obs


def _grade_observation(s: EncounterSummary, e: EyeResult, refs: dict[str, str]) -> dict[str, Any]:
    d, p, grade = e.decision, e.prediction, e.grade
    assert d is not None and p is not None and grade is not None
    concept = {"coding": [_coding(ICDR_SYSTEM, str(grade), ICDR_GRADE_NAMES[grade]),
                          _coding(f"{SYSTEM}:protocol:{s.protocol_name}", clean_text(d.code).strip() or "-")],
               "text": clean_text(d.finding)}
    components = [{"code": _concept(OBSERVATION_SYSTEM, f"p-icdr-{g}", f"Probability of ICDR grade {g}"),
                   "valueQuantity": _probability(v)} for g, v in enumerate(p.grade_probs)]
    components.append({"code": _concept(OBSERVATION_SYSTEM, "p-urgent", "Probability of urgent (grade 3-4) DR"),
                       "valueQuantity": _probability(p.p_urgent)})
    if p.p_maculopathy is not None:
        components.append({"code": _concept(OBSERVATION_SYSTEM, "p-maculopathy", "Probability of maculopathy"),
                           "valueQuantity": _probability(p.p_maculopathy)})
    obs = _observation(s, e, refs, "dr-grade", "Diabetic retinopathy grade (ICDR)",
                       {"valueCodeableConcept": concept, "component": components})
    obs["method"] = {"text": f"Automated grading of a fundus photograph, protocol {s.protocol_name}"}
    return obs


def _referable_observation(s: EncounterSummary, e: EyeResult, refs: dict[str, str]) -> dict[str, Any]:
    p = e.prediction
    assert p is not None
    obs = _observation(s, e, refs, "dr-referable", "Referable diabetic retinopathy",
                       {"valueBoolean": e.queue in REFERRAL_QUEUES})
    obs["component"] = [{"code": _concept(OBSERVATION_SYSTEM, "p-referable", "Probability of referable DR"),
                         "valueQuantity": _probability(p.p_referable)}]
    if s.operating_point is not None:
        obs["note"] = [{"text": f"Operating point {clean_text(s.operating_point.name)}: referable when "
                                f"p >= {s.operating_point.referable:.2f}"}]
    return obs


def _quality_observation(s: EncounterSummary, e: EyeResult, refs: dict[str, str]) -> dict[str, Any]:
    gradable = e.status is Status.OK
    display = {Status.OK: "gradable", Status.UNGRADABLE: "ungradable", Status.NOT_FUNDUS: "not a fundus photograph",
               Status.ERROR: "file could not be read"}[e.status]
    obs = _observation(s, e, refs, "image-quality", "Fundus photograph quality",
                       {"valueCodeableConcept": _concept(QUALITY_SYSTEM, e.status.value, display)})
    reasons = e.quality.reasons if e.quality else ()
    components = [{"code": _concept(OBSERVATION_SYSTEM, *_QUALITY_NOTES.get(r, _NOT_GRADABLE)),
                   "valueCodeableConcept": _concept(QUALITY_REASON_SYSTEM, r, reason_words([r]))} for r in reasons]
    p_reject = e.quality.metrics.get(QUALITY_PROBABILITY) if e.quality else None
    if p_reject is not None:
        components.append({"code": _concept(OBSERVATION_SYSTEM, "p-quality-reject",
                                            "Probability that the photograph is not good enough to grade"),
                           "valueQuantity": _probability(float(p_reject))})
    if components:
        obs["component"] = components
    if not gradable:
        obs["note"] = [{"text": f"{quality_note(e)}. {quality_advice(e)}"}]
    return obs


# reasons that are notes about a photograph, not why it could not be graded
_NOT_GRADABLE = ("quality-reason", "Reason not gradable")
_QUALITY_NOTES = {REASON_BORDERLINE: ("quality-note", "Photo quality note"),
                  REASON_URGENT_SIGNS: ("urgent-signs", "Urgent signs seen on a photograph refused for quality")}


def _eye_observations(b: _Bundler, e: EyeResult, index: int, refs: dict[str, str]) -> list[str]:
    """Quality, and for a graded eye grade and referable; returns their references."""
    s = b.summary
    role = f"eye{index}-{e.eye.value}"
    out = [b.add(f"{role}/quality", _quality_observation(s, e, refs))]
    if e.status is Status.OK and e.decision is not None and e.prediction is not None and e.grade is not None:
        out.append(b.add(f"{role}/grade", _grade_observation(s, e, refs)))
        out.append(b.add(f"{role}/referable", _referable_observation(s, e, refs)))
    return out


def _conclusion(s: EncounterSummary) -> str:
    eyes = [f"{e.eye.label}: {eye_finding_short(e)}" for e in s.eyes]
    eyes += [f"{m.eye.label}: not photographed ({m.words})" for m in s.missing_eyes
             if m.eye not in {e.eye for e in s.eyes}]
    note = f" {s.queue_note[:1].upper()}{s.queue_note[1:]}." if s.queue_note and not s.overridden else ""
    return (f"{s.queue.label}: {s.action} (due {s.due_date.isoformat()}).{note} "
            f"{'; '.join(eyes) or 'no photographs'}. Screening aid, not a diagnosis.")


def _fhir_report(s: EncounterSummary, refs: dict[str, str], results: list[str]) -> dict[str, Any]:
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport", "status": "final",
        "category": [{"text": "Diabetic eye screening"}],
        "code": _concept(OBSERVATION_SYSTEM, "dr-screening", "Diabetic retinopathy screening report"),
        "subject": {"reference": refs["patient"]}, "encounter": {"reference": refs["encounter"]},
        "effectiveDateTime": _fhir_time(s.started_at),
        "issued": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "result": [{"reference": r} for r in results],
        "conclusion": clean_text(_conclusion(s)),
        "conclusionCode": [_concept(QUEUE_SYSTEM, s.queue.value, s.queue.label)],
    }
    if "organization" in refs:
        report["performer"] = [{"reference": refs["organization"]}]
    return report


def _fhir_follow_up(s: EncounterSummary, refs: dict[str, str]) -> dict[str, Any]:
    """The recommended follow-up as a ServiceRequest proposal with its due date."""
    status = {"closed": "completed"}.get(s.state, "active")
    req: dict[str, Any] = {
        "resourceType": "ServiceRequest", "status": status, "intent": "proposal",
        "priority": "urgent" if s.queue is Queue.URGENT else "routine",
        "code": _concept(QUEUE_SYSTEM, s.queue.value, s.queue.label, clean_text(s.action)),
        "subject": {"reference": refs["patient"]}, "encounter": {"reference": refs["encounter"]},
        "occurrencePeriod": {"start": s.started_at.date().isoformat(), "end": s.due_date.isoformat()},
        "authoredOn": _fhir_time(s.started_at),
        "reasonReference": [{"reference": refs["report"]}],
        "note": [{"text": "Recommended by an automated screening aid, not a diagnosis."}],
    }
    if s.override_reason:
        req["note"].append({"text": f"Queue set by a clinician: {clean_text(s.override_reason)}"})
    return req


def fhir_bundle(summary: EncounterSummary, settings: SlipSettings | None = None) -> dict[str, Any]:
    """One encounter as a FHIR R4 ``collection`` Bundle (JSON-ready dict):
    Patient, Encounter, the model as a Device, per-eye Observations (quality;
    for graded eyes the ICDR grade and referable), a DiagnosticReport with the
    queue as conclusion, and the follow-up as a ServiceRequest with its due
    date; an Organization for the clinic when ``settings`` names one."""
    b = _Bundler(summary)
    refs = {"patient": b.add("patient", _fhir_patient(summary))}
    refs["encounter"] = b.add("encounter", _fhir_encounter(summary, refs["patient"]))
    device = _fhir_device(summary)
    if device is not None:
        refs["device"] = b.add("device", device)
    if settings is not None and clean_text(settings.clinic_name).strip():
        org: dict[str, Any] = {"resourceType": "Organization", "name": clean_text(settings.clinic_name).strip()}
        if clean_text(settings.clinic_address).strip():
            org["address"] = [{"text": clean_text(settings.clinic_address).strip()}]
        refs["organization"] = b.add("organization", org)
    results = [ref for i, e in enumerate(summary.eyes) for ref in _eye_observations(b, e, i, refs)]
    refs["report"] = f"urn:uuid:{uuid.uuid5(_FHIR_NS, f'{summary.encounter_id}/report')}"
    b.add("report", _fhir_report(summary, refs, results))
    b.add("follow-up", _fhir_follow_up(summary, refs))
    return {"resourceType": "Bundle", "id": str(uuid.uuid5(_FHIR_NS, f"{summary.encounter_id}/bundle")),
            "identifier": {"system": ENCOUNTER_ID_SYSTEM, "value": clean_text(summary.encounter_id) or "-"},
            "type": "collection", "timestamp": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
            "entry": b.entries}


def write_fhir(summary: EncounterSummary, path: Path, settings: SlipSettings | None = None) -> Path:
    """Write the encounter's FHIR R4 Bundle as UTF-8 JSON to ``path``."""
    text = json.dumps(fhir_bundle(summary, settings), ensure_ascii=False, indent=2)
    return _write_atomic(text.encode("utf-8"), Path(path))
