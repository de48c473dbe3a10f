"""Pieces of ``eyescreen train-gate``: patient split, synthetic frames and pictures,
the heads' fitting and the modality network's ONNX head (small real things)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from eyescreen_desktop.core.gate import ppca_distance
from eyescreen_desktop.core.imageio import read_image
from eyescreen_desktop.core.fundus import field_of_view_or_frame
from eyescreen_desktop.training import frames as F
from eyescreen_desktop.training.gate import (MEASURES_ID, Describer, Item, describe_all, fit_ppca, grader_id,
                                             hidden_layer_logistic, logistic, modality_onnx, part_of,
                                             softmax_regression)
from tests.conftest import SHARED


def test_the_split_is_by_patient_stable_and_about_70_10_20():
    parts = [part_of(f"fundus-dr:P{i:03d}") for i in range(2000)]
    assert parts == [part_of(f"fundus-dr:P{i:03d}") for i in range(2000)]
    share = {p: parts.count(p) / len(parts) for p in ("fit", "tune", "check")}
    assert 0.65 < share["fit"] < 0.75 and 0.07 < share["tune"] < 0.13 and 0.16 < share["check"] < 0.24


def test_frames_and_degradations_are_reproducible_and_keep_the_size():
    rgb = read_image(SHARED / "fundus-dr" / "images" / "P001_L.jpg", max_side=768)
    fov = field_of_view_or_frame(rgb)
    a, fa = F.camera_frame(rgb, fov, np.random.default_rng(4), side=900)
    b, fb = F.camera_frame(rgb, fov, np.random.default_rng(4), side=900)
    assert fa == fb and np.array_equal(a, b) and max(a.shape[:2]) == 900
    for kind, (fn, reason) in F.DEGRADATIONS.items():
        out = fn(a, np.random.default_rng(1))
        assert out.shape == a.shape and out.dtype == np.uint8 and not np.array_equal(out, a), kind
        assert reason in ("blurred", "dark", "overexposed", "uneven_illumination")
    assert F.colour_cast(a, "green")[..., 1].mean() > a[..., 1].mean()


def test_other_pictures_come_from_packages_and_rendering(tmp_path):
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(12):
        kind, img = F.other_picture(rng, tmp_path)
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8 and min(img.shape[:2]) >= 16
        kinds.add(kind)
    assert len(kinds) >= 4
    names = [n for n, _ in F.package_pictures()]
    assert any(n.startswith("skimage-astronaut") for n in names) and not any("retina" in n for n in names)


def test_softmax_and_logistic_heads_learn_a_separable_problem():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (60, 4)), rng.normal(2, 1, (60, 4)), rng.normal(0, 1, (60, 4)) + [0, 0, 6, 0]])
    y = np.repeat([0, 1, 2], 60)
    w, b = softmax_regression(x, y, 3, 1e-3, np.ones(len(y)))
    assert ((x @ w + b).argmax(axis=1) == y).mean() > 0.95
    wl, bl = logistic(x[:120], y[:120], 1e-3, np.ones(120))
    assert (((x[:120] @ wl + bl) > 0) == y[:120]).mean() > 0.95


def test_the_reject_head_learns_what_a_linear_head_cannot_and_is_reproducible():
    """An XOR of two measures: a logistic head stays near chance, the hidden
    layer learns it; two fits give the same weights; ``core.gate`` reads them."""
    from eyescreen_desktop.core.gate import reject_logit

    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (400, 3))
    y = ((x[:, 0] > 0) != (x[:, 1] > 0)).astype(int)
    wl, bl = logistic(x, y, 1e-3, np.ones(len(y)))
    assert (((x @ wl + bl) > 0) == y).mean() < 0.7
    head = hidden_layer_logistic(x, y, 16, 1e-3, np.ones(len(y)))
    logits = np.array([reject_logit(head, v) for v in x])
    assert ((logits > 0) == y).mean() > 0.95
    again = hidden_layer_logistic(x, y, 16, 1e-3, np.ones(len(y)))
    assert all(np.array_equal(head[k], again[k]) for k in head)


def test_frames_and_degradations_know_the_collection_they_were_made_from():
    """What ``--leave-out`` removes from fit and tune: a collection's photographs
    and every frame and degradation made from them; not other pictures."""
    import argparse

    from eyescreen_desktop.training.gate import add_arguments, collect, made_from

    p = argparse.ArgumentParser()
    add_arguments(p)
    items = collect(p.parse_args(["--per-source", "20", "--frames", "40", "--degraded", "20", "--other", "8",
                                  "--eyeq-frames", "10"]))
    by = {}
    for it in items:
        by.setdefault((made_from(it), it.source.split(":")[0]), 0)
        by[(made_from(it), it.source.split(":")[0])] += 1
    assert {("idrid", "idrid"), ("idrid", "frame"), ("eyepacs-256", "eyeq-frame")} <= set(by)
    assert all(made_from(it) == "" for it in items if it.modality != "fundus")
    assert all(made_from(it) == "" for it in items if it.source == "fundus-dr-fullres")
    assert all(made_from(it) == it.source for it in items if it.source in ("fundus-dr", "odir-384", "idrid"))


def test_familiarity_distance_grows_away_from_the_fitted_photographs():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (400, 32)) * np.linspace(3, 0.1, 32)
    heads = fit_ppca(x, 8)
    near = ppca_distance(x[0], heads)
    far = ppca_distance(x[0] + 5.0, heads)
    assert far > 3 * near


def test_the_modality_head_is_appended_to_the_base_graph(tmp_path):
    """A stand-in base (mean colour as 'features', its spread as 'quality')
    gets the softmax head; ONNX Runtime then gives the same probabilities as
    numpy, and both feature outputs pass through unchanged."""
    nodes = [helper.make_node("ReduceMean", ["image"], ["features"], axes=[1, 2], keepdims=0),
             helper.make_node("ReduceMax", ["image"], ["quality"], axes=[1, 2], keepdims=0)]
    io = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "base", [io("image", TensorProto.FLOAT, [None, 8, 8, 3])],
                              [io("features", TensorProto.FLOAT, [None, 3]), io("quality", TensorProto.FLOAT, [None, 3])])
    base = tmp_path / "base.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(base))
    w = np.array([[0.01, 0, 0], [0, 0.02, 0], [0, 0, -0.01]], np.float32)
    b = np.array([0.1, 0, -0.1], np.float32)
    modality_onnx(base, w, b, tmp_path / "m.onnx")
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["modality", "features", "quality"]
    got, features, quality = session.run(None, {"image": x})
    z = x.mean(axis=(1, 2)) @ w + b
    want = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert got.shape == (2, 3) and np.allclose(got, want, atol=1e-5)
    assert np.allclose(features, x.mean(axis=(1, 2)), atol=1e-4)   # the familiarity check reads these
    assert np.allclose(quality, x.max(axis=(1, 2)))                # and the quality head these


def test_the_exported_base_gives_early_block_statistics_that_see_blur(tmp_path):
    """The real export (Lite0, ImageNet): ``features`` unchanged, ``quality``
    the mean and spread of four early blocks; blurring a fundus photograph
    lowers the spread of the finest block, the signal the quality head reads."""
    import cv2

    from eyescreen_desktop.core.gate import modality_input
    from eyescreen_desktop.training.gate import QUALITY_LAYERS, export_base

    export_base(128, tmp_path / "base.onnx")
    session = ort.InferenceSession(str(tmp_path / "base.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert sorted(names) == ["features", "quality"]
    rgb = read_image(SHARED / "idrid" / "images" / "IDRiD_001.jpg", max_side=256)
    pictures = [rgb] + [cv2.GaussianBlur(rgb, (0, 0), sigma) for sigma in (1.5, 4)]
    out = [dict(zip(names, session.run(None, {"image": modality_input(v, 128)[None]}))) for v in pictures]
    assert out[0]["features"].shape == (1, 1280) and out[0]["quality"].shape == (1, 512)
    first = 24   # block2b: 24 channels; their spreads follow the 24 means
    spread = [float(o["quality"][0, first:2 * first].mean()) for o in out]
    assert spread[0] > spread[1] > spread[2], spread
    assert len(QUALITY_LAYERS) == 4


@pytest.mark.parametrize("fmt", ["rectangular", "clipped_width", "notched"])
def test_geometry_formats_look_like_their_cameras(fmt):
    rgb = read_image(SHARED / "idrid" / "images" / "IDRiD_001.jpg", max_side=768)
    fov = field_of_view_or_frame(rgb)
    out = F.FRAME_FORMATS[fmt](rgb, fov, np.random.default_rng(0))
    corners = np.array([out[0, 0], out[0, -1], out[-1, 0], out[-1, -1]]).max()
    if fmt == "rectangular":
        assert corners > 10                       # retina to the corners: no surround
    else:
        assert corners <= 10                      # a dark surround in the corners


def test_clock_faces_and_round_crops_are_lit_discs_without_a_retina():
    """The hard 'other' negatives of 1.1.0: round, lit, textured; reproducible."""
    rng = np.random.default_rng(0)
    coins = dict(F.package_pictures()).get("skimage-coins")
    for make in (F.clock_face, lambda r: F.round_crop(coins if coins is not None else F.texture(r), r)):
        a, b = make(np.random.default_rng(7)), make(np.random.default_rng(7))
        assert np.array_equal(a, b) and a.dtype == np.uint8 and a.ndim == 3 and min(a.shape[:2]) >= 100
        assert a.std() > 10
    kinds = {F.other_picture(rng, SHARED)[0] for _ in range(60)}
    assert {"clock_face", "round_crop"} <= kinds


def test_the_grader_cache_is_keyed_on_the_graders_runtime_hash(tmp_path):
    """A retrained grader (another model.onnx) gets its own cache file; a
    runtime file that does not match its card is refused."""
    import json
    import shutil

    grader = tmp_path / "grader"
    grader.mkdir()
    node = helper.make_node("ReduceMean", ["image"], ["pooled"], axes=[1, 2], keepdims=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 32, 32, 3])],
                              [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [None, 1, 1, 3])])
    graph.node[0].output[0] = "features"
    graph.output[0].name = "features"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(grader / "model.onnx"))
    (grader / "model_card.json").write_text(json.dumps({"input_size": 32}))
    base = tmp_path / "base.onnx"
    nodes = [helper.make_node("ReduceMean", ["image"], ["features"], axes=[1, 2], keepdims=0),
             helper.make_node("ReduceMax", ["image"], ["quality"], axes=[1, 2], keepdims=0)]
    io = helper.make_tensor_value_info
    g2 = helper.make_graph(nodes, "base", [io("image", TensorProto.FLOAT, [None, 16, 16, 3])],
                           [io("features", TensorProto.FLOAT, [None, 3]), io("quality", TensorProto.FLOAT, [None, 3])])
    onnx.save(helper.make_model(g2, opset_imports=[helper.make_opsetid("", 17)]), str(base))
    rgb = read_image(SHARED / "fundus-dr" / "images" / "P001_L.jpg", max_side=256)
    items = [Item("a", "fundus-dr", "fundus", "fit", lambda: rgb, quality="gradable", grade=True)]
    desc = describe_all(items, Describer(base, grader, 16, 1), tmp_path / "cache")
    sha = grader_id(grader)
    assert (tmp_path / "cache" / f"grader-{sha[:16]}-{MEASURES_ID}.pkl").is_file()
    assert desc["a"]["embedding"].shape == (3,) and "vessel_contrast" in desc["a"]["metrics"]
    assert desc["a"]["lite_q"].shape == (3,)      # the quality head's input, cached beside it
    other = tmp_path / "other"
    shutil.copytree(grader, other)
    with open(other / "model.onnx", "ab") as f:
        f.write(b" ")           # other bytes: another grader
    assert grader_id(other) != sha
    (other / "model_card.json").write_text(json.dumps({"input_size": 32, "runtime_sha256": sha}))
    with pytest.raises(SystemExit, match="does not match"):
        grader_id(other)
