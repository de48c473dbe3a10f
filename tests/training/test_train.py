"""Training: manifests, the patient split, weights, augmentation, and a tiny
end-to-end run on real photographs saved and reloaded through the Classifier."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from eyescreen_desktop.training import data as D
from tests.conftest import EYEPACS, FUNDUS_DR
from tests.training.conftest import tiny_base

TINY = 64


# --------------------------------------------------------------------------- data


def test_manifests_read_both_collections_with_their_own_referable_rule():
    samples, dropped = D.load_samples([FUNDUS_DR / "labels.csv", EYEPACS / "labels.csv"])
    by = Counter(s.collection for s in samples)
    assert by["fundus-dr"] == 448 and by["eyepacs-256"] == 3616 - 454  # EyeQ rejects left out
    assert dropped == {"eyepacs-256": 454}
    mild_mac = [s for s in samples if s.collection == "fundus-dr" and s.grade == 1 and s.maculopathy == 1]
    assert mild_mac and all(s.referable == 1 for s in mild_mac)  # fundus-dr: mild + maculopathy is referable
    assert all(s.maculopathy == -1 for s in samples if s.collection == "eyepacs-256")
    assert all(s.patient.startswith(s.collection + ":") for s in samples)


def test_patient_split_keeps_both_eyes_together_and_spreads_grades():
    samples, _ = D.load_samples([FUNDUS_DR / "labels.csv", EYEPACS / "labels.csv"], drop_quality=())
    parts = D.patient_split(samples, val_fraction=0.2, seed=42)
    train, val = {s.patient for s in parts["train"]}, {s.patient for s in parts["val"]}
    assert not train & val
    assert len(parts["train"]) + len(parts["val"]) == len(samples)
    assert abs(len(val) / (len(train) + len(val)) - 0.2) < 0.01
    for coll in ("fundus-dr", "eyepacs-256"):
        for grade in range(5):
            n_val = sum(1 for s in parts["val"] if s.collection == coll and s.grade == grade)
            n_all = sum(1 for s in samples if s.collection == coll and s.grade == grade)
            assert 0.1 < n_val / n_all < 0.3, (coll, grade, n_val, n_all)
    again = D.patient_split(samples, val_fraction=0.2, seed=42)
    assert [s.key for s in again["val"]] == [s.key for s in parts["val"]]
    other = D.patient_split(samples, val_fraction=0.2, seed=7)
    assert [s.key for s in other["val"]] != [s.key for s in parts["val"]]


def test_class_folder_tree_maps_names_to_grades_and_eyes_to_patients(tmp_path):
    for folder, files in (("0", ["10009_left.jpeg", "10009_right.jpeg"]), ("severe", ["17_left.jpeg"])):
        (tmp_path / "course" / folder).mkdir(parents=True)
        for f in files:
            os.symlink(EYEPACS / "images" / "10009_left.jpeg", tmp_path / "course" / folder / f)
    samples = D.read_class_tree(tmp_path / "course")
    assert [(s.grade, s.patient, s.eye, s.referable) for s in samples] == [
        (0, "course:10009", "L", 0), (0, "course:10009", "R", 0), (3, "course:17", "L", 1)]
    (tmp_path / "course" / "weird").mkdir()
    with pytest.raises(D.DataError, match="weird"):
        D.read_class_tree(tmp_path / "course")


def test_sample_weights_are_square_root_balanced():
    from eyescreen_desktop.training.train import sample_weights

    samples = [D.Sample(Path(f"{i}.jpg"), f"c:{i}", "L", g, int(g >= 2), "c") for i, g in enumerate([0, 0, 0, 3])]
    w = sample_weights(samples)
    # urgent: 3 negatives, 1 positive -> raw sqrt(4/6), sqrt(4/2); normalised to mean 1
    raw = np.array([np.sqrt(4 / 6)] * 3 + [np.sqrt(2)])
    np.testing.assert_allclose(w["urgent"], raw / raw.mean(), rtol=1e-6)
    assert w["urgent"][3] / w["urgent"][0] == pytest.approx(np.sqrt(3))


def test_maculopathy_loss_is_masked_where_a_collection_does_not_grade_it():
    from eyescreen_desktop.training.train import sample_weights, training_targets

    samples = [D.Sample(Path(f"{i}.jpg"), f"c:{i}", "L", g, int(g >= 2), c, maculopathy=m)
               for i, (g, c, m) in enumerate([(0, "a", 0), (2, "a", 1), (0, "a", 0), (0, "b", -1), (3, "b", -1)])]
    w = sample_weights(samples)
    t = training_targets(samples)
    assert list(w["maculopathy"][3:]) == [0.0, 0.0]           # not graded: no loss at all
    assert (w["maculopathy"][:3] > 0).all() and w["maculopathy"][:3].mean() == pytest.approx(1.0)
    assert w["maculopathy"][1] > w["maculopathy"][0]           # the rarer class weighs more
    assert t["maculopathy"].ravel().tolist() == [0, 1, 0, 0, 0]  # a finite target where the weight is 0
    assert (w["referable"] > 0).all()


def test_default_point_holds_on_every_collection_and_no_urgent_eye_waits_a_year():
    from eyescreen_desktop.training.train import operating_points

    rng = np.random.default_rng(1)
    samples, ref, urg, mac = [], [], [], []
    for coll, shift in (("high", 0.3), ("low", -0.25)):        # one camera's probabilities run low
        for i in range(120):
            grade = [0, 0, 0, 1, 2, 2, 3, 4][i % 8]
            m = (i % 5 == 0) if coll == "high" else -1
            samples.append(D.Sample(Path(f"{coll}{i}.jpg"), f"{coll}:{i // 2}", "LR"[i % 2], grade,
                                    int(grade >= 2 or m == 1), coll, maculopathy=int(m)))
            base = 0.15 + 0.15 * grade + shift + rng.normal(0, 0.08)
            ref.append(np.clip(base, 0.001, 0.999))
            urg.append(np.clip(base - 0.3 + 0.1 * (grade >= 3), 0.001, 0.999))
            mac.append(np.clip(0.2 + 0.5 * (m == 1) + rng.normal(0, 0.1), 0.001, 0.999))
    urg[-1] = 0.001                                            # an urgent eye the urgent head misses
    grade_p = np.full((len(samples), 5), 0.2)
    outputs = {"grade": grade_p, "referable": np.array(ref)[:, None], "urgent": np.array(urg)[:, None],
               "maculopathy": np.array(mac)[:, None]}
    ops, metrics = operating_points(outputs, samples)
    assert metrics["default_chosen_on"] == "every collection (worst camera)"
    for coll, m in metrics["per_collection"].items():
        assert m["referable_sensitivity"] >= 0.90, coll
        assert m["urgent_in_annual"] == 0, coll
    assert metrics["urgent_in_annual"] == 0
    assert ops["default"]["referable"] <= min(ops["high"]["referable"], ops["low"]["referable"])
    assert 0 < ops["default"]["maculopathy"] < 1 and metrics["maculopathy_auc"] > 0.9
    assert metrics["per_collection"]["low"]["maculopathy_auc"] is None   # not graded there
    # the round-1 rule (one collection chooses) is still there, and misses the other camera
    ops1, m1 = operating_points(outputs, samples, threshold_collections=("high",))
    assert m1["per_collection"]["low"]["referable_sensitivity"] < 0.90


def test_every_point_on_the_card_keeps_urgent_eyes_out_of_annual():
    """One threshold rule for the whole model card (issue 20): a collection's own point
    once came from another rule, which left an urgent eye its heads miss in annual
    when catching it cost more specificity than a budget allowed."""
    from eyescreen_desktop.domain.grades import referred_array
    from eyescreen_desktop.training.train import operating_points

    rng = np.random.default_rng(2)
    grades = np.array([[0, 0, 0, 1, 2, 2, 3, 4][i % 8] for i in range(160)])
    samples = [D.Sample(Path(f"c{i}.jpg"), f"cam:{i // 2}", "LR"[i % 2], int(g), int(g >= 2), "cam")
               for i, g in enumerate(grades)]
    p_ref = np.clip(0.15 + 0.18 * grades + rng.normal(0, 0.05, len(grades)), 0.02, 0.999)
    p_urg = np.clip(p_ref - 0.25 + 0.1 * (grades >= 3), 0.002, 0.999)
    p_ref[-2], p_urg[-2] = 0.01, 0.001                # grade 3 (urgent): both heads miss it
    outputs = {"grade": np.full((len(samples), 5), 0.2), "referable": p_ref[:, None], "urgent": p_urg[:, None]}
    ops, _ = operating_points(outputs, samples)
    urgent = grades >= 3
    for name, op in ops.items():
        assert referred_array(p_ref, p_urg, op["referable"], op["urgent"])[urgent].all(), name


def test_augmentation_is_deterministic_and_keeps_the_surround_black():
    import tensorflow as tf

    from eyescreen_desktop.core.preprocess import disc_mask
    from eyescreen_desktop.training.train import AUGMENT, CAMERA_AUGMENT, augment_batch

    rng = np.random.default_rng(0)
    img = (rng.integers(40, 200, (4, TINY, TINY, 3)) * disc_mask(TINY)[None, :, :, None]).astype(np.uint8)
    seed = tf.constant([1, 2], tf.int64)
    a = augment_batch(tf.constant(img), seed, AUGMENT).numpy()
    b = augment_batch(tf.constant(img), seed, AUGMENT).numpy()
    c = augment_batch(tf.constant(img), tf.constant([1, 3], tf.int64), AUGMENT).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == img.shape and 0 <= a.min() and a.max() <= 255
    corners = a[:, :4, :4].max()
    assert corners == 0  # rotated/zoomed photographs still have a black surround
    g = augment_batch(tf.constant(img), seed, CAMERA_AUGMENT).numpy()   # the same draws plus a gamma
    assert not np.array_equal(a, g) and g[:, :4, :4].max() == 0


def test_each_epoch_draws_a_photograph_or_its_camera_copy():
    from eyescreen_desktop.training.train import make_dataset

    n = 32
    images = np.zeros((n, 8, 8, 3), np.uint8)
    copies = np.full((n, 8, 8, 3), 200, np.uint8)
    used = np.ones(n, bool)
    used[:4] = False                                           # the gate refused these copies
    targets = {"referable": np.arange(n, dtype=np.float32)[:, None]}
    ds = make_dataset(images, targets, {"referable": np.ones(n, np.float32)}, 8, seed=1,
                      augment={"rotation": 0, "shift": 0, "zoom": 0, "brightness": 0, "contrast": 0},
                      alternates=copies, alternate_used=used)
    seen = []
    for _ in range(3):                                         # three epochs
        for x, y, _w in ds:
            ids = y["referable"].numpy().ravel().astype(int)
            is_copy = x.numpy().reshape(len(ids), -1).max(axis=1) > 0
            seen += list(zip(ids, is_copy))
    assert not any(c for i, c in seen if i < 4)                # refused copies never used
    share = np.mean([c for i, c in seen if i >= 4])
    assert 0.3 < share < 0.7                                   # about half the time the copy


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def trained(small_manifests, tmp_path_factory):
    """A complete tiny run of the shipped recipe: camera copies, head on cached features,
    then fine-tuning."""
    from eyescreen_desktop.training.train import RECIPES, TrainConfig, train

    recipe = dataclasses.replace(RECIPES["final"], input_size=TINY, head_epochs=4, fine_tune_epochs=2,
                                 fine_tune_batch=8, head_batch=16)
    assert recipe.camera_copies and recipe.fine_tune   # the shipped recipe, camera copies included
    out = tmp_path_factory.mktemp("run") / "tiny-dr"
    config = TrainConfig(data=small_manifests, out=out, base="tiny", recipe=recipe, seed=5,
                         val_fraction=0.34, threads=2, name="tiny-dr")
    result = train(config, base_factory=tiny_base)
    return out, result


def test_tiny_run_writes_a_model_folder_with_card_log_and_split(trained):
    out, result = trained
    card = json.loads((out / "model_card.json").read_text())
    assert card["format"] == "eyescreen-model-card/1" and card["input_size"] == TINY
    assert card["heatmap"] == {"feature_layer": "top_activation", "dense_layer": "grade"}
    op = card["operating_points"]["default"]
    assert 0 <= op["referable"] <= 1 and 0 <= op["urgent"] <= 1
    assert "not for clinical use" in card["intended_use"]
    assert set(card["data_sources"]) == {"fundus-dr", "eyepacs-256"}
    assert "Rahim" in card["data_sources"]["fundus-dr"]
    assert card["outputs"][0] == "grade" and card["training_time_minutes"] >= 0
    md = (out / "model_card.md").read_text()
    assert md.startswith("# Model card: tiny-dr")
    assert "| operating point | referable >= | urgent >= |" in md and "| referable | " in md  # tables, not JSON
    with open(out / "training_log.csv") as f:
        phases = Counter(row["phase"] for row in csv.DictReader(f))
    assert phases["head"] > 0 and phases["fine-tune"] > 0
    with open(out / "split.csv") as f:
        rows = list(csv.DictReader(f))
    sides: dict[str, set[str]] = {}
    for row in rows:
        sides.setdefault(row["patient"], set()).add(row["part"])
    assert all(len(s) == 1 for s in sides.values())  # no patient on both sides
    assert {r["part"] for r in rows} == {"train", "val"}
    assert set(card["operating_points"]) == {"default", "all-validation", "fundus-dr", "eyepacs-256"}
    # fundus-dr grades maculopathy: the output ships and every point carries its threshold
    assert "maculopathy" in card["outputs"]
    assert all(0 < p["maculopathy"] <= 1 for p in card["operating_points"].values())
    assert card["recipe"]["camera_copies"] is True
    assert card["validation"]["per_collection"]["fundus-dr"]["maculopathy_auc"] is not None
    report = (out / "validation" / "report.md").read_text()  # written through the Classifier
    assert "on its validation patients" in report and (out / "validation" / "roc.png").exists()


def test_saved_model_reloads_through_the_classifier_with_hash_check(trained, fundus_rows):
    from eyescreen_desktop.core.classifier import Classifier, ModelError, read_card
    from eyescreen_desktop.core.imageio import read_image
    from eyescreen_desktop.core.preprocess import preprocess

    out, _ = trained
    clf = Classifier.load(out, backend="keras")
    img = preprocess(read_image(FUNDUS_DR / "images" / fundus_rows[0]["file"], max_side=512), TINY)
    preds, heat = clf.predict_with_heatmaps(np.stack([img, img[:, ::-1]]))
    assert len(preds) == 2 and heat.shape == (2, TINY, TINY)
    assert sum(preds[0].grade_probs) == pytest.approx(1.0, abs=1e-5)
    card = read_card(out)
    if "referable" not in card.outputs:  # derived from the grade softmax
        assert preds[0].p_referable == pytest.approx(sum(preds[0].grade_probs[2:]), abs=1e-6)
    tampered = out.parent / "tampered"
    tampered.mkdir()
    for f in out.iterdir():
        if f.is_file():
            (tampered / f.name).write_bytes(f.read_bytes())
    data = bytearray((tampered / "model.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tampered / "model.keras").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="do not match"):
        Classifier.load(tampered, backend="keras")


def test_fine_tuning_unfreezes_only_the_named_blocks_and_never_batchnorm():
    import keras

    from eyescreen_desktop.training.train import build_model, set_fine_tunable

    model = build_model(tiny_base(TINY), dropout=0.2)
    set_fine_tunable(model, ("block6", "top_"))
    trainable = {layer.name for layer in model.layers if layer.trainable and layer.weights}
    assert trainable == {"block6a_conv", "top_conv", "grade", "referable", "urgent", "maculopathy"}
    assert not any(layer.trainable for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))


def test_cli_arguments_make_a_config():
    import argparse

    from eyescreen_desktop.training import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    args = parser.parse_args(["--data", "a.csv", "--data", "b.csv", "--out", "models/x", "--recipe", "feature",
                              "--input-size", "224", "--seed", "3"])
    config = train.config_from_args(args)
    assert config.recipe.name == "feature" and not config.recipe.fine_tune
    assert config.recipe.input_size == 224 and config.seed == 3 and config.name == "x"
    assert config.data == [Path("a.csv"), Path("b.csv")] and config.drop_quality == ("reject",)
