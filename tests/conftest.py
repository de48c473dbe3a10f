"""Shared fixtures: isolated data folders, real photographs from ../shared, a tiny real model."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
FUNDUS_DR = SHARED / "fundus-dr"
EYEPACS = SHARED / "eyepacs-256"
FULLRES = SHARED / "fundus-dr-fullres"

TINY_SIZE = 64


def read_labels(folder: Path) -> list[dict[str, str]]:
    """Rows of a dataset's labels.csv."""
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(autouse=True)
def _isolated_data(tmp_path_factory, monkeypatch):
    """No test ever touches a real user's data folder or settings."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("EYESCREEN_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.delenv("EYESCREEN_DATABASE_URL", raising=False)
    monkeypatch.delenv("EYESCREEN_IMAGE_STORE", raising=False)


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server started for this test run (tests/pg_server.py);
    skipped when the binaries are absent, except under CI, where that fails."""
    from tests.pg_server import PostgresServer, find_bin

    bin_dir = find_bin()
    if bin_dir is None:
        message = "PostgreSQL binaries (initdb, pg_ctl) not found: make system-deps installs Debian's postgresql"
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(bin_dir).start()
    yield server
    server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """The clinic database a store test runs against: a SQLite file, and an empty
    database on the test run's own PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'clinic.sqlite3'}"
    return request.getfixturevalue("pg_server").new_database()


@pytest.fixture(scope="session")
def fundus_rows() -> list[dict[str, str]]:
    if not FUNDUS_DR.is_dir():
        pytest.fail(f"{FUNDUS_DR} is missing: tests need ../shared beside the checkout")
    return read_labels(FUNDUS_DR)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny but real Keras model in the shipped model's folder format: a few
    convolutions, global pooling and a dense softmax over ICDR grades, with a
    heat-map layer named like the real one. Untrained (random but fixed weights)."""
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((TINY_SIZE, TINY_SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 128.0, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="top_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    grade = keras.layers.Dense(5, activation="softmax", name="grade")(x)
    model = keras.Model(inputs, {"grade": grade})
    from eyescreen_desktop.training.export import save_model

    out = tmp_path_factory.mktemp("tiny_model")
    save_model(model, out, {
        "name": "tiny-test-model", "version": "0.0.1", "input_size": TINY_SIZE,
        "preprocessing": "fov-crop-v1", "outputs": ["grade"],
        "operating_points": {"default": {"referable": 0.5, "urgent": 0.3}},
        "heatmap": {"feature_layer": "top_conv", "dense_layer": "grade"},
        "intended_use": "tests only",
    })
    return out


@pytest.fixture(scope="session")
def tiny_onnx_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model as a clinic install has it, with its ONNX runtime beside the
    Keras file: a process that screens with it never imports TensorFlow, which
    spares each subprocess test seconds. Tests of the Keras path keep
    ``tiny_model_dir``."""
    from eyescreen_desktop.training.onnx_export import add_onnx_runtime

    folder = tmp_path_factory.mktemp("tiny_onnx_model") / "model"
    shutil.copytree(tiny_model_dir, folder)
    add_onnx_runtime(folder)
    return folder


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing():
    """In this test process, passwords are hashed with argon2id at its lowest cost:
    at the production cost (64 MiB, 3 passes, ~0.2 s of CPU a hash) the account,
    grading and calibration tests spent a minute of the suite hashing. The
    production cost keeps its own test (test_accounts); subprocesses (the CLI run
    as a clinic runs it) hash at the real cost."""
    from argon2 import PasswordHasher, Type

    from eyescreen_desktop.core.store import accounts

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts, "_hasher", lambda: PasswordHasher(time_cost=1, memory_cost=8, parallelism=1,
                                                                  type=Type.ID))
        yield


def pytest_collection_modifyitems(config, items):
    """The costly test files first (tests/file_costs.py says why), so that with
    ``-n 2 --dist loadfile --no-loadscope-reorder`` no one-minute file starts last."""
    from tests.file_costs import costly_files_first, read_costs

    costly_files_first(items, read_costs())
