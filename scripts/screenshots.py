"""Render the main states of the EyeScreen window into PNG files.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py [OUT_DIR] [--model DIR]

Writes ``window-empty.png``, ``window-result.png``, ``window-heatmap.png``,
``window-one-eye.png`` (the other eye still needed), ``window-camera-failed.png``
(a camera that stopped sending after the right eye), ``window-side-unknown.png``
(a camera-named photograph waiting for right/left), ``window-ungradable.png``,
``window-queues.png`` and ``window-document.png`` (the result letter an annual
patient leaves with) into OUT_DIR (default
``docs/images``; a folder named ``docs`` means its ``images`` sub-folder). A
throw-away ``--data-dir`` in a temporary folder is used, and the shipped model
``models/eyescreen-dr`` when present, else a tiny untrained test model (its
grades are arbitrary: the pictures show the window, not the model). Real
photographs come from ../shared/datasets; the "ungradable" one is a real
photograph blurred out of focus. A few older visits are added straight to the
database so the queue view shows every queue, overdue rows included.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402 - imported after the sys.path / environment set-up above
from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402 - imported after the sys.path / environment set-up above

from eyescreen_desktop.core.paths import default_model_dir, shared_datasets_dir  # noqa: E402 - imported after the sys.path / environment set-up above
from eyescreen_desktop.core.protocol import get_protocol  # noqa: E402 - imported after the sys.path / environment set-up above
from eyescreen_desktop.core.records import (  # noqa: E402 - imported after the sys.path / environment set-up above
    Eye, ModelInfo, OperatingPoint, Patient, Prediction, QualityReport, Status,
)
from eyescreen_desktop.core.screening import decide  # noqa: E402 - imported after the sys.path / environment set-up above
from eyescreen_desktop.gui.app import build_window, make_application  # noqa: E402 - imported after the sys.path / environment set-up above

PHOTOS = shared_datasets_dir() / "fundus-dr" / "images"
SIZE = tuple(int(v) for v in os.environ.get("EYESCREEN_SHOT_SIZE", "1440x900").split("x"))
WAIT_MS = 120_000


def wait_for(signal, timeout_ms: int = WAIT_MS) -> tuple:
    """Run the event loop until ``signal`` fires; its arguments."""
    loop, got = QEventLoop(), []
    signal.connect(lambda *args: (got.append(args), loop.quit()))
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    if not got:
        raise TimeoutError(f"no {signal} within {timeout_ms} ms")
    return got[0]


def settle(ms: int = 50) -> None:
    """Let pending paint and layout events run."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def tiny_model(folder: Path) -> Path:
    """An untrained tiny model in the shipped format (as in tests/conftest.py)."""
    import keras

    from eyescreen_desktop.training.export import save_model

    keras.utils.set_random_seed(1)
    inputs = keras.Input((64, 64, 3), name="image")
    x = keras.layers.Rescaling(1 / 128.0, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="top_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, {"grade": keras.layers.Dense(5, activation="softmax", name="grade")(x)})
    save_model(model, folder, {
        "name": "tiny-test-model", "version": "0.0.1", "input_size": 64, "preprocessing": "fov-crop-v1",
        "outputs": ["grade"], "operating_points": {"default": {"referable": 0.5, "urgent": 0.3}},
        "heatmap": {"feature_layer": "top_conv", "dense_layer": "grade"}, "intended_use": "screenshots only",
    })
    return folder


def add_past_visits(store) -> None:
    """Older visits in every queue (two overdue) so the queue view is realistic."""
    protocol = get_protocol("icdr-ada")
    op = OperatingPoint("default", 0.5, 0.3)
    model = ModelInfo("tiny-test-model", "0.0.1", "0" * 64)
    ok = QualityReport(Status.OK, (), "", {})
    visits = [("P014", "Grace Hopper", 30, (0.0, 0.02, 0.08, 0.3, 0.6)),
              ("P022", "Alan Turing", 100, (0.05, 0.1, 0.7, 0.1, 0.05)),
              ("P031", "Mary Somerville", 3, (0.1, 0.1, 0.6, 0.15, 0.05)),
              ("P047", "Srinivasa Ramanujan", 20, (0.9, 0.08, 0.02, 0.0, 0.0)),
              ("P052", "Hedy Lamarr", 1, None)]
    for pid, name, days_ago, probs in visits:
        store.upsert_patient(Patient(pid, name, dt.date(1960, 5, 17), "female" if pid != "P022" else "male",
                                     "type 2", 12))
        started = dt.datetime.now() - dt.timedelta(days=days_ago)
        eid = store.start_encounter(pid, started_at=started)
        eyes = []
        for eye in (Eye.RIGHT, Eye.LEFT):
            path = str(PHOTOS / f"P001_{eye.value}.jpg")
            if probs is None:
                quality = QualityReport(Status.UNGRADABLE, ("blurred",), "Refocus and retake the photograph.", {})
                result = decide(path, eye, quality, None, protocol, op)
            else:
                pred = Prediction(probs, sum(probs[2:]), sum(probs[3:]))
                result = decide(path, eye, ok, pred, protocol, op)
            store.save_result(eid, result, model, protocol.name, op, copy=False)
            eyes.append(result)
        queue = min((e.queue for e in eyes), key=lambda q: q.priority)
        store.finish_encounter(eid, queue, protocol.due_date(queue, started.date()))


def grab(window, path: Path) -> None:
    settle()
    window.grab().save(str(path))
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.out / "images" if args.out.name == "docs" else args.out
    out.mkdir(parents=True, exist_ok=True)
    app = make_application()
    with tempfile.TemporaryDirectory(prefix="eyescreen-shots-") as tmp:
        tmp_path = Path(tmp)
        model = args.model or (default_model_dir() if (default_model_dir() / "model_card.json").is_file()
                               else tiny_model(tmp_path / "model"))
        window, store = build_window(tmp_path / "data", dialogs=False)
        try:
            shoot(window, store, model, tmp_path, out)
        finally:
            window.close()
            store.close()
    app.processEvents()
    return 0


def shoot(window, store, model: Path, tmp: Path, out: Path) -> None:
    window.resize(*SIZE)
    window.show()
    window.start(model)
    grab(window, out / "window-empty.png")
    wait_for(window.engine.modelReady)
    panel = window.patient_panel
    panel.set_patient(Patient("P001", "Ada Lovelace", dt.date(1958, 12, 10), "female", "type 2", 9))
    window.screen_paths([PHOTOS / "P001_R.jpg", PHOTOS / "P001_L.jpg"])
    wait_for(window.engine.encounterSaved)
    grab(window, out / "window-result.png")
    window.result_view.set_heatmap(True)
    grab(window, out / "window-heatmap.png")
    window.result_view.set_heatmap(False)
    first = window.encounter_id
    window.start_next_patient()
    # a photograph named for the patient: another patient's ID in the name stops at the photograph check
    panel.set_patient(Patient("P006", "Mary Somerville", dt.date(1962, 4, 1), "female", "type 2", 4))
    window.screen_paths([PHOTOS / "P006_L.jpg"])
    wait_for(window.engine.encounterSaved)
    grab(window, out / "window-one-eye.png")
    window.start_next_patient()
    shoot_camera_failure(window, tmp, out)
    window.start_next_patient()
    unknown = tmp / "IMG_0042.jpg"
    unknown.write_bytes((PHOTOS / "P004_R.jpg").read_bytes())
    panel.set_patient(Patient("P004", "Ibn al-Haytham", dt.date(1955, 7, 1), "male", "type 2", 15))
    window.screen_paths([PHOTOS / "P004_L.jpg", unknown])
    wait_for(window.engine.encounterSaved)
    grab(window, out / "window-side-unknown.png")
    window.start_next_patient()
    blurred = tmp / "P003_R.jpg"
    cv2.imwrite(str(blurred), cv2.GaussianBlur(cv2.imread(str(PHOTOS / "P003_R.jpg")), (0, 0), 8))
    panel.set_patient(Patient("P003", "Charles Babbage", dt.date(1949, 3, 2), "male", "type 1", 23))
    window.screen_paths([blurred])
    wait_for(window.engine.encounterSaved)
    grab(window, out / "window-ungradable.png")
    add_past_visits(store)
    window.queues.refresh()
    window.tabs.setCurrentWidget(window.queues)
    grab(window, out / "window-queues.png")
    window.open_slip(first)
    wait_for(window.slip_dialog.ready)
    window.slip_dialog.resize(900, 860)
    grab(window.slip_dialog, out / "window-document.png")
    window.slip_dialog.close()


def shoot_camera_failure(window, tmp: Path, out: Path) -> None:
    """A video file as the camera that stops sending after the right eye: F5 and F6
    are greyed out with the buttons, and the banner asks for the left eye."""
    frame = cv2.resize(cv2.imread(str(PHOTOS / "P007_R.jpg")), (800, 535))
    video = tmp / "fundus-camera.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (800, 535))
    for i in range(20):
        writer.write(cv2.convertScaleAbs(frame, alpha=1.0, beta=i % 3))
    writer.release()
    window.patient_panel.set_patient(Patient("P007", "Ahmed Khan", dt.date(1966, 9, 9), "male", "type 2", 6))
    panel = window.capture_panel
    panel.loop_files = False
    panel.open_source(str(video))
    wait_for(panel.liveChanged)
    window.actions["right"].trigger()
    wait_for(window.engine.encounterSaved)
    if panel.thread is not None:
        wait_for(panel.cameraFailed)
    grab(window, out / "window-camera-failed.png")
    panel.loop_files = True
    panel.open_source("")


if __name__ == "__main__":
    raise SystemExit(main())
