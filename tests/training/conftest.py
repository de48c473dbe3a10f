"""Fixtures for training and evaluation tests: a throw-away cache, small real
manifests made from ../shared photographs, and a tiny base network."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from tests.conftest import EYEPACS, FUNDUS_DR, read_labels

# Patients chosen to cover every triage class in both collections.
FUNDUS_PATIENTS = ("P001", "P003", "P011", "P017", "P031", "P037", "P097", "P206", "P284")
EYEPACS_PER_GRADE = 2


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Preprocessed arrays and features go to a fresh folder, never the user's cache
    (session-wide, so module-scoped training fixtures are covered too)."""
    old = os.environ.get("EYESCREEN_CACHE_DIR")
    os.environ["EYESCREEN_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("EYESCREEN_CACHE_DIR", None)
    else:
        os.environ["EYESCREEN_CACHE_DIR"] = old


def small_manifest(folder: Path, source: Path, rows: list[dict[str, str]]) -> Path:
    """A labels.csv with ``rows`` whose images/ links to the real photographs (never copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    os.symlink(source / "images", folder / "images")
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return folder / "labels.csv"


@pytest.fixture(scope="session")
def small_manifests(tmp_path_factory) -> list[Path]:
    """Two manifests named like the real collections: 18 fundus-dr photographs
    (9 patients) and both eyes of two eyepacs-256 patients per grade (16 photographs,
    some patients being found for two grades)."""
    root = tmp_path_factory.mktemp("manifests")
    fundus = [r for r in read_labels(FUNDUS_DR) if r["patient"] in FUNDUS_PATIENTS]
    by_grade: dict[str, list[str]] = {}
    eyepacs_rows = [r for r in read_labels(EYEPACS) if r["quality"] != "reject"]
    for r in eyepacs_rows:
        patients = by_grade.setdefault(r["icdr_grade"], [])
        if r["patient"] not in patients and len(patients) < EYEPACS_PER_GRADE:
            patients.append(r["patient"])
    chosen = {p for ps in by_grade.values() for p in ps}
    eyepacs = [r for r in eyepacs_rows if r["patient"] in chosen]
    return [small_manifest(root / "fundus-dr", FUNDUS_DR, fundus),
            small_manifest(root / "eyepacs-256", EYEPACS, eyepacs)]


def tiny_base(input_size: int):
    """A few convolutions named like EfficientNet's last blocks, so the recipes,
    fine-tuning prefixes and heat-map layer work exactly as with the real base."""
    import keras

    from eyescreen_desktop.training.train import Base

    keras.utils.set_random_seed(3)
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = keras.layers.Rescaling(1 / 128.0, offset=-127 / 128.0, name="rescale")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=4, padding="same", name="stem_conv")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(6.0, name="stem_activation")(x)
    x = keras.layers.Conv2D(12, 3, strides=2, padding="same", name="block6a_conv")(x)
    x = keras.layers.BatchNormalization(name="block6a_bn")(x)
    x = keras.layers.ReLU(6.0, name="block6a_activation")(x)
    x = keras.layers.Conv2D(16, 1, name="top_conv")(x)
    x = keras.layers.BatchNormalization(name="top_bn")(x)
    x = keras.layers.ReLU(6.0, name="top_activation")(x)
    return Base("tiny", keras.Model(inputs, x), ("block6", "top_"), "top_activation", "test network")
