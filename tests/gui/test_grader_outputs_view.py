"""The window says what issue 23 added, on real validation photographs screened by
the shipped grader and gate: "photo quality borderline" beside a grade, and
"possible urgent disease visible: examine today" on a photograph refused for quality."""

from __future__ import annotations

from pathlib import Path

import pytest

from eyescreen_desktop.core.classifier import Classifier
from eyescreen_desktop.core.records import PHOTO_QUALITY_BORDERLINE, URGENT_SIGNS_VISIBLE, Eye, Status
from eyescreen_desktop.core.screening import ScreenItem, Screener
from eyescreen_desktop.gui.result_view import EyeCard
from eyescreen_desktop.gui.worker import ScreenedEye, display_photo
from tests.conftest import SHARED

GRADER = Path(__file__).resolve().parents[2] / "models" / "eyescreen-dr"
REFUSED_URGENT = SHARED / "eyepacs-256" / "images" / "12419_right.jpeg"   # ICDR 4, out of focus
BORDERLINE = SHARED / "fundus-dr" / "images" / "P201_L.jpg"               # ICDR 2, p_reject 0.05


@pytest.fixture(scope="module")
def screened() -> dict[str, ScreenedEye]:
    screener = Screener(Classifier.load(GRADER, backend="onnx", threads=1), external=None)
    out = {}
    for name, path in {"urgent": REFUSED_URGENT, "borderline": BORDERLINE}.items():
        result = next(iter(screener.screen([ScreenItem(path, Eye.RIGHT)])))
        out[name] = ScreenedEye(result, display_photo(result))
    return out


def test_a_refused_photograph_with_urgent_signs_tells_the_nurse_to_act_today(qtbot, screened, tmp_path):
    card = EyeCard(Eye.RIGHT)
    qtbot.addWidget(card)
    card.resize(360, 560)
    card.show_eye(screened["urgent"], heatmap=False)
    assert screened["urgent"].result.status is Status.UNGRADABLE
    assert card.verdict.text() == f"Cannot be graded: {URGENT_SIGNS_VISIBLE}"
    assert URGENT_SIGNS_VISIBLE not in card.advice.text().lower()     # said once, in the verdict
    assert card.advice.text().startswith("What to do: Out of focus")
    assert "Grade" not in card.detail.text()
    card.show()
    card.grab().save(str(tmp_path / "urgent-signs.png"))


def test_a_borderline_photograph_is_graded_and_says_so(qtbot, screened, tmp_path):
    card = EyeCard(Eye.RIGHT)
    qtbot.addWidget(card)
    card.resize(360, 560)
    card.show_eye(screened["borderline"], heatmap=False)
    assert screened["borderline"].result.status is Status.OK
    assert "Protocol code: ICDR" in card.detail.text()    # graded (issue 24's evidence wording)
    assert card.detail.text().endswith(f"Image quality: {PHOTO_QUALITY_BORDERLINE}")   # the gate's own words
    assert card.verdict.text().startswith("Signs of")           # still graded, the evidence in words
    card.show()
    card.grab().save(str(tmp_path / "borderline.png"))
