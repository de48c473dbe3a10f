"""The train-test resolution fix (recipe ``resfix-512``): a trained model rebuilt at a
larger input size keeps its weights, is fine-tuned on exactly its own split, and a
run killed mid-epoch resumes from its checkpoints to the same next epoch."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from tests.training.conftest import tiny_base

SHIPPED = 64     # the tiny "shipped" model's input size
LARGER = 96      # what the resolution fix rebuilds it at


@pytest.fixture(scope="module")
def shipped(small_manifests, tmp_path_factory) -> Path:
    """A tiny trained model folder (head on frozen features: seconds), standing in for 2.0.0."""
    from eyescreen_desktop.training.train import RECIPES, TrainConfig, train

    recipe = dataclasses.replace(RECIPES["feature"], input_size=SHIPPED, head_epochs=3, head_batch=16)
    out = tmp_path_factory.mktemp("shipped") / "tiny-dr"
    train(TrainConfig(data=small_manifests, out=out, base="tiny", recipe=recipe, seed=5, val_fraction=0.34,
                      name="tiny-dr"), base_factory=tiny_base)
    return out


def _images(n: int, size: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 255, (n, size, size, 3)).astype(np.float32)


def test_rebuilt_model_keeps_every_weight_and_matches_a_direct_build(shipped):
    import keras

    from eyescreen_desktop.training.model import build_model, rebuild_at_size
    from eyescreen_desktop.training.selection import export_view

    saved = keras.models.load_model(shipped / "model.keras", compile=False)
    same, _ = rebuild_at_size(shipped, SHIPPED, tiny_base)
    x = _images(3, SHIPPED)
    for k, v in saved.predict_on_batch(x).items():        # at its own size: the saved model exactly
        np.testing.assert_allclose(same.predict_on_batch(x)[k], v, atol=1e-6)

    larger, _ = rebuild_at_size(shipped, LARGER, tiny_base)
    assert larger.input_shape == (None, LARGER, LARGER, 3)
    outputs = {k: "head" if k in saved.output else "grade" for k in ("referable", "urgent", "maculopathy")}
    direct = export_view(build_model(tiny_base(LARGER), 0.3), outputs)
    direct.set_weights(saved.get_weights())                 # positional copy: another route than by name
    y = _images(3, LARGER)
    got, want = larger.predict_on_batch(y), direct.predict_on_batch(y)
    assert set(got) == set(want) == set(saved.output)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-6)
    assert not np.allclose(got["grade"], same.predict_on_batch(_images(3, SHIPPED))["grade"])  # new input, new answer


def _config(shipped: Path, small_manifests, out: Path):
    from eyescreen_desktop.training.train import RECIPES, TrainConfig

    recipe = dataclasses.replace(RECIPES["resfix-512"], input_size=LARGER, start_from=str(shipped),
                                 fine_tune_epochs=2, fine_tune_batch=8, epoch_photographs=16)
    return TrainConfig(data=small_manifests, out=out, base="tiny", recipe=recipe, seed=7, name="tiny-resfix",
                       checkpoints=out.parent / f"{out.name}-checkpoints")


def test_resumed_run_draws_the_same_next_epoch_as_an_uninterrupted_one(shipped, small_manifests, tmp_path,
                                                                       monkeypatch):
    import keras

    from eyescreen_desktop.training import phases
    from eyescreen_desktop.training.train import train

    whole = _config(shipped, small_manifests, tmp_path / "whole")
    train(whole, base_factory=tiny_base)

    killed = _config(shipped, small_manifests, tmp_path / "killed")
    real = phases.make_dataset

    def dies_in_epoch_two(*args, **kwargs):
        ds = real(*args, **kwargs)
        if kwargs["epoch"] == 1:
            import tensorflow as tf

            def explode(*_batch):
                tf.debugging.assert_equal(0, 1, message="killed mid-epoch")
                return _batch
            return ds.take(1).concatenate(ds.skip(1).map(explode))
        return ds

    monkeypatch.setattr(phases, "make_dataset", dies_in_epoch_two)
    with pytest.raises(Exception, match="killed mid-epoch"):
        train(killed, base_factory=tiny_base)
    assert sorted(p.name for p in killed.checkpoints.iterdir()) == ["epoch-001"]
    monkeypatch.setattr(phases, "make_dataset", real)
    keras.utils.set_random_seed(123)       # a fresh process would not share the first run's global RNG
    train(killed, base_factory=tiny_base)  # the same command again: resumes after epoch 1

    for name in ("model.npz", "optimizer.npz"):
        with np.load(whole.checkpoints / "epoch-002" / name) as a, np.load(killed.checkpoints / "epoch-002" / name) as b:
            assert a.files == b.files
            for f in a.files:
                np.testing.assert_allclose(a[f], b[f], rtol=1e-5, atol=1e-7, err_msg=f"{name} {f}")
    history = [json.loads((c.checkpoints / "epoch-002" / "state.json").read_text())["history"] for c in (whole, killed)]
    assert [h["loss"] for h in history[0]] == pytest.approx([h["loss"] for h in history[1]], rel=1e-5)

    other_plan = dataclasses.replace(killed, recipe=dataclasses.replace(killed.recipe, fine_tune_lr=1e-3))
    with pytest.raises(ValueError, match="another plan"):   # never resume one schedule under another
        train(other_plan, base_factory=tiny_base)

    split = {r["key"]: r["part"] for r in csv.DictReader(open(shipped / "split.csv"))}
    kept = {r["key"]: r["part"] for r in csv.DictReader(open(killed.out / "split.csv"))}
    assert kept == {k: p for k, p in split.items() if k in kept} and set(kept.values()) == {"train", "val"}
    card = json.loads((killed.out / "model_card.json").read_text())
    assert card["input_size"] == LARGER and card["recipe"]["start_from"] == str(shipped)
    assert card["outputs"] == json.loads((shipped / "model_card.json").read_text())["outputs"]


# --------------------------------------------------------------------------- paired scorings


def test_paired_auc_difference_sees_a_better_scoring_and_none_between_equals():
    from eyescreen_desktop.core.metrics import paired_auc_difference

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 150)
    groups = [f"p{i // 2}" for i in range(len(y))]          # two eyes per patient
    weak = y * 0.5 + rng.normal(0, 1, len(y))
    strong = y * 1.5 + rng.normal(0, 1, len(y))
    diff, lo, hi = paired_auc_difference(y, weak, strong, groups, n_boot=500)
    assert 0 < lo < diff < hi
    assert paired_auc_difference(y, weak, weak, groups, n_boot=200) == (0.0, 0.0, 0.0)


def test_paired_scorings_average_mirrors_and_models_and_reuse_saved_scores(shipped, small_manifests, tmp_path,
                                                                          monkeypatch):
    from eyescreen_desktop.core.classifier import Classifier
    from eyescreen_desktop.training import data as D
    from eyescreen_desktop.training import paired as P

    samples = P.validation_photographs(small_manifests, shipped / "split.csv", SHIPPED)
    split = D.read_split(shipped / "split.csv")
    assert samples and all(split[s.key] == "val" and s.quality != "reject" for s in samples)
    scorings = [P.parse_scoring(f"base={shipped}"), P.parse_scoring(f"flip={shipped}+flip"),
                P.parse_scoring(f"large={shipped}@{LARGER}")]
    assert scorings[1].flip and scorings[2].size == LARGER
    twice = P.parse_ensemble("twice=base,base")
    result = P.run_all(scorings, [twice], samples, tmp_path, "base", [], n_boot=50, backend="keras",
                       base_factory=tiny_base)

    clf = Classifier.load(shipped, backend="keras")
    x = np.stack([D.ImageCache(SHIPPED).get(s.path).image for s in samples]).astype(np.float32)
    want = (clf.raw_outputs(x)["grade"] + clf.raw_outputs(np.ascontiguousarray(x[:, :, ::-1]))["grade"]) / 2
    with np.load(tmp_path / "scores" / "flip.npz") as z:
        np.testing.assert_allclose(z["grade"], want, atol=1e-5)
    assert result["differences"]["twice - base"]["all"] == [0.0, 0.0, 0.0]   # an ensemble of one model is that model
    assert set(result["scorings"]) == {"base", "flip", "large", "twice"}
    assert "| base | all |" in P.markdown(result)

    monkeypatch.setattr(P, "score", lambda *a, **k: pytest.fail("saved scores were not reused"))
    again = P.run_all(scorings, [twice], samples, tmp_path, "base", [], n_boot=50, backend="keras")
    assert again["differences"] == result["differences"]


def test_cli_names_the_model_to_start_from_and_the_checkpoint_folder():
    import argparse

    from eyescreen_desktop.training import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    config = train.config_from_args(parser.parse_args(
        ["--data", "a.csv", "--out", "runs/fix", "--recipe", "resfix-512", "--checkpoints", ".cache/ck",
         "--epoch-photographs", "50", "--start-from", "runs/other"]))
    assert config.recipe.input_size == 512 and config.recipe.fine_tune
    assert config.recipe.start_from == "runs/other" and config.recipe.epoch_photographs == 50
    assert config.checkpoints == Path(".cache/ck")
    default = train.config_from_args(parser.parse_args(["--data", "a.csv", "--out", "x", "--recipe", "resfix-512"]))
    assert default.recipe.start_from == ".cache/eyescreen-dr-2.0.0" and default.checkpoints is None
