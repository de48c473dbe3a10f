"""Where an external-eye photograph lands: "go for an eye check-up" is at least
routine with the finding in words; "looks healthy" never counts as a
diabetic-retinopathy screen, except under the eye-check protocol."""

from __future__ import annotations

import pytest

from eyescreen_desktop.core.protocol import (
    CODE_NEEDS_FUNDUS,
    NEEDS_FUNDUS,
    PROTOCOLS,
    get_protocol,
)
from eyescreen_desktop.core.records import Queue


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_a_check_up_is_at_least_routine_with_the_finding_in_words(protocol):
    d = get_protocol(protocol).decide_external_eye(True, "red eye: possible conjunctivitis")
    assert d.queue is Queue.ROUTINE and d.finding == "red eye: possible conjunctivitis" and d.grade is None


@pytest.mark.parametrize("protocol", ["icdr-ada", "nhs-dess"])
def test_looks_healthy_is_no_diabetic_retinopathy_screen(protocol):
    d = get_protocol(protocol).decide_external_eye(False, "no visible finding")
    assert d.queue is Queue.REVIEW and d.code == CODE_NEEDS_FUNDUS and NEEDS_FUNDUS in d.finding
    assert NEEDS_FUNDUS == "a fundus photograph is needed for diabetic-retinopathy screening"


def test_the_eye_check_protocol_lets_the_check_stand_alone():
    proto = get_protocol("eye-check")
    assert proto.eye_check_alone
    healthy = proto.decide_external_eye(False)
    assert healthy.queue is Queue.ANNUAL and healthy.finding == "eye looks healthy"
    assert "eye check-up" in proto.action(Queue.ROUTINE)


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_an_eye_that_could_not_be_checked_goes_to_review_with_the_reason(protocol):
    d = get_protocol(protocol).decide_external_eye(None, message="The right eye is blurred: retake.")
    assert d.queue is Queue.REVIEW and "blurred" in d.finding


# --------------------------------------------------------------------------- the visit's queue


def _result(eye, decision, status=None):
    from eyescreen_desktop.core.records import EyeResult, Status

    return EyeResult(f"{eye.value}.jpg", eye, status or Status.OK, decision=decision)


def _fundus(eye, queue):
    from eyescreen_desktop.core.records import EyeDecision

    return _result(eye, EyeDecision(queue, "ICDR 0" if queue is Queue.ANNUAL else "ICDR 2", "f", 0))


def test_external_eyes_only_stay_in_review_for_a_fundus_photograph():
    from eyescreen_desktop.core.protocol import encounter_decision
    from eyescreen_desktop.core.records import Eye

    proto = get_protocol("icdr-ada")
    healthy = [_result(e, proto.decide_external_eye(False)) for e in (Eye.RIGHT, Eye.LEFT)]
    d = encounter_decision(healthy)
    assert d.queue is Queue.REVIEW and d.note == NEEDS_FUNDUS and not d.complete


def test_eye_check_protocol_healthy_eyes_are_a_complete_annual_visit():
    from eyescreen_desktop.core.protocol import encounter_decision
    from eyescreen_desktop.core.records import Eye

    proto = get_protocol("eye-check")
    d = encounter_decision([_result(Eye.UNKNOWN, proto.decide_external_eye(False))])
    assert d.queue is Queue.ANNUAL and d.complete


def test_a_check_up_refers_even_beside_normal_fundus_photographs():
    from eyescreen_desktop.core.protocol import encounter_decision
    from eyescreen_desktop.core.records import Eye

    proto = get_protocol("icdr-ada")
    fundus = [_fundus(Eye.RIGHT, Queue.ANNUAL), _fundus(Eye.LEFT, Queue.ANNUAL)]
    checkup = _result(Eye.RIGHT, proto.decide_external_eye(True, "possible cataract"))
    healthy = _result(Eye.LEFT, proto.decide_external_eye(False))
    assert encounter_decision(fundus).queue is Queue.ANNUAL
    assert encounter_decision([*fundus, healthy]).queue is Queue.ANNUAL       # fundus screen done
    both = encounter_decision([*fundus, checkup, healthy])
    assert both.queue is Queue.ROUTINE and both.complete


def test_an_external_photo_never_replaces_the_fundus_photograph_of_its_side():
    from eyescreen_desktop.core.protocol import encounter_decision
    from eyescreen_desktop.core.records import Eye

    proto = get_protocol("icdr-ada")
    urgent = _fundus(Eye.RIGHT, Queue.URGENT)
    later = _result(Eye.RIGHT, proto.decide_external_eye(False))
    d = encounter_decision([urgent, _fundus(Eye.LEFT, Queue.ANNUAL), later])
    assert d.queue is Queue.URGENT and d.complete
