"""The screening pipeline: pure pre/post-processing, batched grading with the tiny
real model, input order, bounded look-ahead, cancellation and per-file errors."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from eyescreen_desktop.core.classifier import Classifier, ModelError
from eyescreen_desktop.core.protocol import get_protocol
from eyescreen_desktop.core.records import Eye, OperatingPoint, Prediction, QualityReport, Queue, Status
from eyescreen_desktop.core.screening import ScreenItem, Screener, decide, prepare
from tests.conftest import TINY_SIZE
from tests.core.screen_inputs import make_bad_inputs, real_photos

OP = OperatingPoint("default", referable=0.5, urgent=0.3)
OK_Q = QualityReport(Status.OK, (), "", {})


@pytest.fixture(scope="module")
def classifier(tiny_model_dir) -> Classifier:
    return Classifier.load(tiny_model_dir, backend="keras")


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("bad")
    return folder, make_bad_inputs(folder)


class CountingItems:
    """An iterable of items that records how many were taken from it."""

    def __init__(self, items):
        self.items, self.taken = list(items), 0

    def __iter__(self):
        for item in self.items:
            self.taken += 1
            yield item


class Wrapped:
    """The real classifier, watched: calls, batch sizes, and optional failure."""

    def __init__(self, inner: Classifier, fail: bool = False, on_predict=None):
        self.inner, self.fail, self.on_predict, self.batches = inner, fail, on_predict, []
        self.card, self.input_size = inner.card, inner.input_size

    def predict(self, batch):
        self.batches.append(len(batch))
        if self.on_predict:
            self.on_predict()
        if self.fail:
            raise RuntimeError("out of memory")
        return self.inner.predict(batch)

    def predict_with_heatmaps(self, batch):
        return self.inner.predict_with_heatmaps(batch)


# ---------------------------------------------------------------------- pure steps


@pytest.mark.parametrize("protocol", ["icdr-ada", "nhs-dess"])
def test_decide_follows_the_protocol_for_gradable_eyes(protocol):
    proto = get_protocol(protocol)
    urgent = Prediction((0.05, 0.05, 0.1, 0.1, 0.7), p_referable=0.9, p_urgent=0.8)
    normal = Prediction((0.9, 0.05, 0.03, 0.01, 0.01), p_referable=0.05, p_urgent=0.02)
    for pred, queue in ((urgent, Queue.URGENT), (normal, Queue.ANNUAL)):
        r = decide("a.jpg", Eye.LEFT, OK_Q, pred, proto, OP, sha256="ab")
        assert (r.status, r.queue, r.decision) == (Status.OK, queue, proto.decide_eye(pred, OP))
        assert r.sha256 == "ab" and r.eye is Eye.LEFT


@pytest.mark.parametrize("status", [Status.UNGRADABLE, Status.NOT_FUNDUS])
def test_decide_sends_what_cannot_be_graded_to_review_with_advice(status):
    q = QualityReport(status, ("blurred",), "Out of focus: retake", {})
    pred = Prediction((0.99, 0.01, 0, 0, 0), 0.0, 0.0)  # even with a (stale) normal prediction
    r = decide("a.jpg", Eye.RIGHT, q, pred, get_protocol("icdr-ada"), OP)
    assert (r.status, r.queue, r.message, r.grade, r.prediction) == (status, Queue.REVIEW, q.advice, None, None)


def test_decide_without_a_verdict_or_a_prediction_is_an_error_in_review():
    proto = get_protocol("icdr-ada")
    unread = decide("a.jpg", Eye.LEFT, None, None, proto, OP, message="a.jpg is 0 bytes")
    assert (unread.status, unread.queue, unread.message) == (Status.ERROR, Queue.REVIEW, "a.jpg is 0 bytes")
    ungraded = decide("a.jpg", Eye.LEFT, OK_Q, None, proto, OP)
    assert (ungraded.status, ungraded.queue) == (Status.ERROR, Queue.REVIEW) and "a.jpg" in ungraded.message


def test_prepare_builds_the_model_input_for_a_real_photograph():
    p = prepare(ScreenItem(real_photos(1)[0], Eye.LEFT), TINY_SIZE)
    assert p.error == "" and p.quality.gradable and len(p.sha256) == 64
    assert p.tensor.shape == (TINY_SIZE, TINY_SIZE, 3) and p.tensor.dtype == np.uint8
    assert p.tensor[0, 0].sum() == 0 and p.tensor[TINY_SIZE // 2, TINY_SIZE // 2].sum() > 0


def test_prepare_reports_every_bad_input_without_raising(bad_dir):
    folder, expected = bad_dir
    for name, status in expected.items():
        p = prepare(ScreenItem(folder / name), TINY_SIZE)
        got = p.quality.status.value if p.quality else "error"
        assert got == status, (name, p.error, p.quality)
        assert p.tensor is None
        if status == "error":
            assert name in p.error
    assert prepare(ScreenItem(folder / "zero.jpg"), TINY_SIZE).sha256 == ""
    assert len(prepare(ScreenItem(folder / "truncated.jpg"), TINY_SIZE).sha256) == 64


# ---------------------------------------------------------------------- the stream


def test_screen_returns_one_result_per_file_in_input_order(classifier, bad_dir):
    folder, expected = bad_dir
    photos = real_photos(5)
    items = [ScreenItem(photos[0], Eye.LEFT)] + [ScreenItem(folder / n) for n in expected] + \
        [ScreenItem(p, Eye.RIGHT) for p in photos[1:]]
    wrapped = Wrapped(classifier)
    results = list(Screener(wrapped, "icdr-ada", batch_size=4).screen(items))
    assert [r.path for r in results] == [str(i.path) for i in items]
    assert [r.eye for r in results] == [i.eye for i in items]
    by_name = {Path(r.path).name: r for r in results}
    for name, status in expected.items():
        assert by_name[name].status.value == status and by_name[name].queue is Queue.REVIEW
        assert by_name[name].message
    graded = [r for r in results if r.status is Status.OK]
    assert len(graded) == 5 and sum(wrapped.batches) == 5 and max(wrapped.batches) <= 4
    for r in graded:
        assert r.decision == get_protocol("icdr-ada").decide_eye(r.prediction, classifier.card.operating_point)
        assert abs(sum(r.prediction.grade_probs) - 1) < 1e-5 and r.grade in range(5)


def test_batched_grading_equals_one_at_a_time(classifier):
    items = [ScreenItem(p) for p in real_photos(6)]
    batched = list(Screener(classifier, batch_size=6).screen(items))
    single = list(Screener(classifier, batch_size=1, decode_workers=1).screen(items))
    for a, b in zip(batched, single):
        assert np.allclose(a.prediction.grade_probs, b.prediction.grade_probs, atol=1e-5)


def test_decoding_runs_ahead_of_inference_but_stays_bounded(classifier):
    photos = real_photos(4)
    items = CountingItems(ScreenItem(photos[i % 4]) for i in range(60))
    taken_at_first_predict = []
    wrapped = Wrapped(classifier, on_predict=lambda: taken_at_first_predict.append(items.taken))
    screener = Screener(wrapped, batch_size=4, decode_workers=2)
    stream = screener.screen(items)
    first = next(stream)
    assert first.status is Status.OK
    # the next files were already handed to the decode threads when the first batch was graded
    assert taken_at_first_predict[0] > 4
    assert items.taken <= screener.lookahead + 4
    stream.close()  # cancel: pending work is dropped, decode threads end
    assert items.taken < 60
    assert not [t for t in threading.enumerate() if t.name.startswith("eyescreen-decode")]


def test_a_model_failure_marks_the_gradable_files_and_the_run_goes_on(classifier, bad_dir):
    folder, _ = bad_dir
    items = [ScreenItem(real_photos(1)[0]), ScreenItem(folder / "black.png")]
    results = list(Screener(Wrapped(classifier, fail=True)).screen(items))
    assert results[0].status is Status.ERROR and "out of memory" in results[0].message
    assert results[0].queue is Queue.REVIEW
    assert results[1].status is Status.NOT_FUNDUS


def test_heatmaps_come_with_the_results_when_asked(classifier):
    results = list(Screener(classifier, heatmaps=True).screen([ScreenItem(p) for p in real_photos(2)]))
    for r in results:
        assert r.heatmap.shape == (TINY_SIZE, TINY_SIZE)
        assert 0.0 <= r.heatmap.min() and r.heatmap.max() <= 1.0
    plain = list(Screener(classifier).screen([ScreenItem(real_photos(1)[0])]))
    assert plain[0].heatmap is None


def test_screen_array_grades_a_camera_capture(classifier):
    bgr = cv2.imread(str(real_photos(1)[0]))
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    screener = Screener(classifier, "nhs-dess")
    r = screener.screen_array(rgb, Eye.RIGHT, "capture 1")
    assert (r.status, r.eye, r.path) == (Status.OK, Eye.RIGHT, "capture 1")
    assert r.decision.code.startswith("R") and len(r.sha256) == 64
    assert screener.screen_array(rgb, Eye.RIGHT).sha256 == r.sha256
    dark = screener.screen_array(np.zeros((480, 640, 3), np.uint8), Eye.LEFT)
    assert dark.status is not Status.OK and dark.queue is Queue.REVIEW


def test_a_result_on_record_is_reused_without_decoding(classifier, monkeypatch):
    photo = real_photos(1)[0]
    first = next(Screener(classifier).screen([ScreenItem(photo, Eye.LEFT)]))
    looked_up = []

    def cache(sha):
        looked_up.append(sha)
        return first

    def no_decode(*a, **k):
        raise AssertionError("decoded although the result was on record")

    monkeypatch.setattr("eyescreen_desktop.core.screening.read_image_with_hash", no_decode)
    again = next(Screener(classifier, cache=cache).screen([ScreenItem(photo, Eye.RIGHT)]))
    assert looked_up == [first.sha256]
    assert again.eye is Eye.RIGHT and again.prediction == first.prediction and again.queue == first.queue


def test_a_model_with_other_preprocessing_or_operating_point_is_refused(classifier):
    from dataclasses import replace

    with pytest.raises(ModelError, match="preprocessing"):
        Screener(_with_card(classifier, replace(classifier.card, preprocessing="ben-graham-v0")))
    with pytest.raises(ModelError, match="no operating point 'strict'"):
        Screener(classifier, operating_point="strict")
    assert Screener(classifier, operating_point=OP).operating_point == OP
    assert Screener(classifier).operating_point == classifier.card.operating_point


def _with_card(classifier, card):
    w = Wrapped(classifier)
    w.card = card
    return w
