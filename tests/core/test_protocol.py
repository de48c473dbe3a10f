"""The protocol tables: queue per grade and threshold, both protocols, due dates,
the patient's queue, and the rule that nothing unusable ever lands in annual."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pytest

from eyescreen_desktop.core.protocol import PROTOCOLS, get_protocol, patient_queue
from eyescreen_desktop.core.records import (
    Eye,
    EyeDecision,
    EyeResult,
    OperatingPoint,
    Prediction,
    QualityReport,
    Queue,
    Status,
)

OP = OperatingPoint("default", referable=0.5, urgent=0.3, maculopathy=0.5)


def confident(grade: int, p_mac: float | None = None) -> Prediction:
    """A prediction 92% sure of ``grade``, referable/urgent summed like the classifier does."""
    probs = tuple(0.92 if g == grade else 0.02 for g in range(5))
    return Prediction(probs, p_referable=sum(probs[2:]), p_urgent=sum(probs[3:]), p_maculopathy=p_mac)


ICDR_TABLE = [  # grade, maculopathy, queue, code
    (0, None, Queue.ANNUAL, "ICDR 0"),
    (1, None, Queue.ANNUAL, "ICDR 1"),
    (2, None, Queue.ROUTINE, "ICDR 2"),
    (3, None, Queue.URGENT, "ICDR 3"),
    (4, None, Queue.URGENT, "ICDR 4"),
    (0, 0.9, Queue.ROUTINE, "ICDR 0 + M"),
    (1, 0.9, Queue.ROUTINE, "ICDR 1 + M"),
    (1, 0.1, Queue.ANNUAL, "ICDR 1"),
    (4, 0.9, Queue.URGENT, "ICDR 4 + M"),
]

NHS_TABLE = [
    (0, None, Queue.ANNUAL, "R0 M0"),
    (1, None, Queue.ANNUAL, "R1 M0"),
    (2, None, Queue.ROUTINE, "R2 M0"),
    (3, None, Queue.URGENT, "R2 M0"),
    (4, None, Queue.URGENT, "R3 M0"),
    (0, 0.9, Queue.ROUTINE, "R0 M1"),
    (1, 0.9, Queue.ROUTINE, "R1 M1"),
    (4, 0.9, Queue.URGENT, "R3 M1"),
]


@pytest.mark.parametrize("grade,mac,queue,code", ICDR_TABLE)
def test_icdr_ada_queue_per_grade(grade, mac, queue, code):
    d = get_protocol("icdr-ada").decide_eye(confident(grade, mac), OP)
    assert (d.queue, d.code, d.grade) == (queue, code, grade)
    assert ("maculopathy" in d.finding) == (mac is not None and mac >= 0.5)


@pytest.mark.parametrize("grade,mac,queue,code", NHS_TABLE)
def test_nhs_dess_queue_per_grade(grade, mac, queue, code):
    d = get_protocol("nhs-dess").decide_eye(confident(grade, mac), OP)
    assert (d.queue, d.code, d.grade) == (queue, code, grade)


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_thresholds_decide_at_the_operating_point(protocol):
    proto = get_protocol(protocol)
    # most probable grade 0, but the referable / urgent probabilities reach the thresholds
    p = Prediction((0.40, 0.15, 0.15, 0.15, 0.15), p_referable=0.45, p_urgent=0.30)
    assert proto.decide_eye(p, OP).queue is Queue.URGENT                # p_urgent == threshold fires
    just_below = OperatingPoint("strict", referable=0.46, urgent=0.31)
    assert proto.decide_eye(p, just_below).queue is Queue.ANNUAL
    routine_op = OperatingPoint("sensitive", referable=0.45, urgent=0.31)
    d = proto.decide_eye(p, routine_op)
    assert d.queue is Queue.ROUTINE and d.grade == 2      # the grade shown agrees with the queue


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_queue_follows_the_thresholds_for_any_prediction(protocol):
    proto, rng = get_protocol(protocol), np.random.default_rng(7)
    for _ in range(400):
        probs = rng.dirichlet(np.ones(5) * 0.7)
        mac = float(rng.random()) if rng.random() < 0.5 else None
        p = Prediction(tuple(probs), float(probs[2:].sum()), float(probs[3:].sum()), mac)
        d = proto.decide_eye(p, OP)
        urgent = p.p_urgent >= OP.urgent
        referable = urgent or p.p_referable >= OP.referable or (mac is not None and mac >= OP.maculopathy)
        expected = Queue.URGENT if urgent else Queue.ROUTINE if referable else Queue.ANNUAL
        assert d.queue is expected, (probs, mac, d)
        assert d.grade is not None and (d.grade >= 3) == urgent


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_due_dates(protocol):
    proto, day = get_protocol(protocol), dt.date(2024, 2, 20)
    assert proto.due_date(Queue.URGENT, day) == dt.date(2024, 3, 5)
    assert proto.due_date(Queue.ROUTINE, day) == dt.date(2024, 5, 21)
    assert proto.due_date(Queue.REVIEW, day) == day
    assert proto.due_date(Queue.ANNUAL, day) == dt.date(2025, 2, 19)
    assert all(proto.action(q) for q in Queue)


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize("status", [Status.UNGRADABLE, Status.NOT_FUNDUS, Status.ERROR])
def test_nothing_unusable_ever_lands_in_annual(protocol, status):
    proto = get_protocol(protocol)
    d = proto.decide_unreadable(status, ("blurred", "dark"))
    assert d.queue is Queue.REVIEW and d.grade is None
    # even a result carrying a stale "annual" decision and a normal prediction is review
    stale = EyeResult("a.jpg", Eye.LEFT, status, quality=QualityReport(status, ("blurred",)),
                      prediction=confident(0), decision=EyeDecision(Queue.ANNUAL, "ICDR 0", "no DR", 0))
    assert stale.queue is Queue.REVIEW and stale.grade is None


def test_unreadable_findings_name_the_reason_once():
    proto = get_protocol("icdr-ada")
    assert proto.decide_unreadable(Status.UNGRADABLE, ("small_field",)).finding == \
        "could not be graded (small field)"
    assert proto.decide_unreadable(Status.NOT_FUNDUS, ("not_fundus",)).finding == "not a fundus photograph"
    assert get_protocol("nhs-dess").decide_unreadable(Status.ERROR).code == "U"


def _eye(queue: Queue, status: Status = Status.OK) -> EyeResult:
    grade = {Queue.URGENT: 4, Queue.ROUTINE: 2}.get(queue, 0)
    return EyeResult("x.jpg", Eye.LEFT, status, prediction=confident(grade),
                     decision=EyeDecision(queue, "c", "f", grade if status is Status.OK else None))


def test_patient_queue_is_the_most_urgent_eye():
    order = [Queue.URGENT, Queue.ROUTINE, Queue.REVIEW, Queue.ANNUAL]
    for a, b in itertools.product(order, repeat=2):
        eyes = [_eye(a) if a is not Queue.REVIEW else _eye(a, Status.UNGRADABLE),
                _eye(b) if b is not Queue.REVIEW else _eye(b, Status.UNGRADABLE)]
        assert patient_queue(eyes) is min(a, b, key=order.index)
        assert patient_queue(reversed(eyes)) is min(a, b, key=order.index)


def test_an_ungradable_eye_is_never_hidden_by_a_normal_fellow_eye():
    for status in (Status.UNGRADABLE, Status.NOT_FUNDUS, Status.ERROR):
        assert patient_queue([_eye(Queue.ANNUAL), _eye(Queue.ANNUAL, status)]) is Queue.REVIEW
    assert patient_queue([_eye(Queue.URGENT), _eye(Queue.ANNUAL, Status.UNGRADABLE)]) is Queue.URGENT
    assert patient_queue([]) is Queue.REVIEW


def test_unknown_protocol_lists_the_valid_ones():
    with pytest.raises(ValueError, match="icdr-ada, nhs-dess"):
        get_protocol("etdrs")
