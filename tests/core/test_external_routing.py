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
