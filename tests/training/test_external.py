"""Training the external-eye check: near-duplicate grouping, the split, the
multi-class-to-binary rule, held-out metrics, and one tiny end-to-end run on
real pictures from ../shared/datasets/external-eye."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from eyescreen_desktop.core.classifier import read_card, sha256_file
from eyescreen_desktop.core.imageio import read_image
from eyescreen_desktop.training import external as E
from tests.conftest import SHARED

EXTERNAL = SHARED / "external-eye"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    if not (EXTERNAL / "labels.csv").is_file():
        pytest.fail(f"{EXTERNAL} is missing: tests need ../shared beside the checkout")
    with open(EXTERNAL / "labels.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _picture(rows, label: str, k: int = 0) -> np.ndarray:
    row = [r for r in rows if r["label"] == label][k]
    return read_image(EXTERNAL / "images" / row["file"])


def test_a_resized_recompressed_or_mirrored_copy_joins_its_original(rows):
    rgb = _picture(rows, "cataract")
    small = cv2.resize(rgb, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    ok, jpg = cv2.imencode(".jpg", small[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 60])
    recompressed = cv2.imdecode(jpg, cv2.IMREAD_COLOR)[..., ::-1]
    mirrored = rgb[:, ::-1]
    other = _picture(rows, "normal", 3)
    pics = [rgb, recompressed, mirrored, other]
    groups = E.duplicate_groups([E.dhash(p) for p in pics], [E.dhash(p[:, ::-1]) for p in pics])
    assert groups[0] == groups[1] == groups[2]
    assert groups[3] != groups[0]


def test_split_never_puts_a_group_on_two_sides():
    photos = [E.EyePhoto(Path(f"{i}.jpg"), label, "x", group=i // 3)
              for i, label in enumerate(["normal"] * 60 + ["cataract"] * 45 + ["conjunctivitis"] * 15 + ["glaucoma"] * 9)]
    parts = E.group_split(photos, seed=3)
    side = {}
    for part, ps in parts.items():
        for p in ps:
            assert side.setdefault(p.group, part) == part
    assert sum(len(v) for v in parts.values()) == len(photos)
    for part in parts.values():
        assert {p.label for p in part} >= {"normal", "cataract"}


def test_p_checkup_is_one_minus_p_normal_and_glaucoma_is_another_finding():
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.05, 0.05, 0.9, 0.0]])
    assert np.allclose(E.p_checkup(probs), [0.3, 0.95])
    assert E.CLASSES[E.EyePhoto(Path("x"), "glaucoma", "").cls] == "other"


def test_held_out_metrics_of_a_perfect_and_a_useless_network():
    y = np.array([0, 0, 1, 2, 3, 0, 1, 1])
    perfect = np.eye(4)[y] * 0.9 + 0.025
    m = E.held_out_metrics(perfect, y, list(range(len(y))), threshold=0.5, n_boot=50)
    assert m["auc_checkup"] == 1.0 and m["accuracy_4class"] == 1.0
    assert np.trace(np.array(m["confusion"]["rows_true_columns_predicted"])) == len(y)
    flat = np.full((len(y), 4), 0.25)
    assert E.held_out_metrics(flat, y, list(range(len(y))), threshold=0.5, n_boot=50)["auc_checkup"] == 0.5


def test_unknown_labels_are_refused(tmp_path):
    (tmp_path / "labels.csv").write_text("file,label,source\na.jpg,stye,web\n")
    with pytest.raises(ValueError, match="stye"):
        E.read_labels(tmp_path / "labels.csv")


def test_tiny_run_writes_a_model_folder_with_card_hash_and_split(rows, tmp_path):
    """Both networks on 24 real pictures (random base, 32 px, one epoch): the
    pipeline, not the accuracy."""
    picked = [r for lab in ("normal", "cataract", "conjunctivitis", "glaucoma")
              for r in [x for x in rows if x["label"] == lab][:6]]
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    for r in picked:
        (data / "images" / r["file"]).symlink_to(EXTERNAL / "images" / r["file"])
    with open(data / "labels.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["file", "label", "source", "original_name"])
        w.writeheader()
        w.writerows(picked)
    recipe = E.ExternalRecipe(input_size=32, fine_tune_epochs=1, head_epochs=3)
    out = tmp_path / "model"
    summary = E.train_external(data / "labels.csv", out, recipe, cache=tmp_path / "cache", onnx=False,
                               imagenet=False)
    card = read_card(out)
    assert card.raw["modality"] == "external_eye" and card.outputs == ("finding",)
    assert sha256_file(out / card.weights_file) == card.weights_sha256
    assert "web labels" in card.raw["intended_use"].lower()
    assert "research and demonstration" in (out / "model_card.md").read_text().lower()
    assert set(summary["comparison"]) == {"network1", "network2"}
    assert card.operating_point.urgent == 1.0
    with open(out / "split.csv", newline="") as f:
        split = list(csv.DictReader(f))
    assert len(split) == len(picked)
    assert json.loads((out / "training.json").read_text())["shipped"] in ("network1", "network2")
