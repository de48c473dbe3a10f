"""``eyescreen train``: transfer learning from an ImageNet base, the course's two recipes.

Recipes (``--recipe``):

* ``feature`` - feature extraction. The base is frozen; its pooled features are
  computed once per photograph (and for its mirror images, a cheap
  augmentation) and cached, then a new head (dropout + dense outputs) is
  trained on them in seconds.
* ``finetune`` - the ``feature`` head, then the last blocks of the base
  (``BaseSpec.fine_tune_prefixes``, e.g. ``block6``, ``block7``, ``top_``) are
  unfrozen at a low learning rate, BatchNormalization layers kept frozen in
  inference mode (a few hundred photographs cannot re-estimate their
  statistics), with augmentation in the tf.data pipeline.
* ``final`` - what validation chose (docs/training.md): fine-tuning with the
  settings below.

The network's head is global average pooling -> dropout -> ``Dense`` layers
named ``grade`` (5-way softmax, categorical cross-entropy), ``referable`` and
``urgent`` (sigmoids, binary cross-entropy), all reading the pooled features
directly, so class-activation heat maps work from the ``grade`` weights.
Whether the exported ``referable``/``urgent`` come from their own heads or are
summed from the grade probabilities is decided on the validation patients.

Class imbalance is handled with per-output sample weights (square-root
inverse frequency): rare grades and urgent eyes count more without the extreme
weights that make a few noisy labels dominate. Probabilities are then biased
upwards, which is harmless because operating points are chosen on validation
patients, not at 0.5.

The run's steps live one job per module; this one holds the command and the
run that strings them together (and re-exports the steps for loco, external,
bench and the tests): ``recipes`` (recipes, configuration, progress log),
``train_data`` (split, preprocessing, targets, sample weights), ``augment`` (the
tf.data pipeline), ``model`` (base, head, losses), ``phases`` (head on cached
features, fine-tuning), ``selection`` (shipped outputs, operating points) and
``card`` (model card, ``training.json``).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import data as D
from .augment import (
    augment_batch,
    make_dataset,
)
from .card import (
    machine_description,
    model_card,
    write_run_json,
)
from .model import (
    Base,
    BaseFactory,
    _tensorflow,
    build_model,
    head_model,
    load_base,
    predict_outputs,
    rebuild_at_size,
)
from .phases import (
    FeatureCache,
    fine_tune,
    fit_head_on_features,
    set_fine_tunable,
)
from .recipes import (
    AUGMENT,
    CAMERA_AUGMENT,
    HEADS,
    RECIPES,
    Progress,
    Recipe,
    TrainConfig,
)
from .selection import (
    choose_outputs,
    export_view,
    maculopathy_auc,
    maculopathy_threshold,
    operating_points,
)
from .train_data import (
    TrainingData,
    prepare_data,
    sample_weights,
    training_targets,
)

log = logging.getLogger(__name__)

# the command (add_arguments, run) and what loco, external, bench and the tests import from
# here: one import for the training run, wherever each step lives
__all__ = [
    "add_arguments", "config_from_args", "run", "train", "validation_report", "Base", "BaseFactory",
    "load_base", "build_model", "head_model", "FeatureCache", "sample_weights", "training_targets", "RECIPES",
    "Recipe", "TrainConfig", "AUGMENT", "CAMERA_AUGMENT", "HEADS", "_tensorflow", "set_fine_tunable",
    "make_dataset", "augment_batch", "machine_description", "operating_points", "choose_outputs",
    "maculopathy_threshold", "maculopathy_auc", "model_card", "Progress", "TrainingData", "prepare_data",
    "fit_head_on_features", "fine_tune", "predict_outputs",
]

# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``eyescreen train``."""
    parser.add_argument("--data", type=Path, action="append", required=True,
                        help="labels.csv manifest or folder of class folders (0-4 or by label); repeatable")
    parser.add_argument("--out", type=Path, required=True, help="model folder to write (e.g. models/my-model)")
    parser.add_argument("--base", default="efficientnet-lite0",
                        help="ImageNet base: efficientnet-lite0 (default), efficientnet-lite1, efficientnet-lite2, "
                             "mobilenetv2, vgg16")
    parser.add_argument("--recipe", default="final", choices=sorted(RECIPES),
                        help="feature = frozen base; finetune = then unfreeze the last blocks; final = chosen setting "
                             "(= camera: four collections' recipe with camera copies); final-1 = round 1's")
    parser.add_argument("--input-size", type=int, default=None, help="model input in pixels (default: the recipe's)")
    parser.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: the recipe's)")
    parser.add_argument("--head-epochs", type=int, default=None, help="most epochs for the head on cached features")
    parser.add_argument("--seed", type=int, default=42, help="fixes the split, initial weights and augmentation")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of patients kept for validation")
    parser.add_argument("--keep-quality", action="store_true",
                        help="also train on photographs the collection graded quality=reject")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for TensorFlow")
    parser.add_argument("--thresholds-on", action="append", default=[], metavar="COLLECTION",
                        help="choose the default operating point on the validation photographs of this "
                             "collection (repeatable; default: all)")
    parser.add_argument("--name", default="", help="model name in the card (default: the folder's name)")
    parser.add_argument("--version", default="1.0.0", help="model version in the card")
    parser.add_argument("--start-from", type=Path, default=None, metavar="MODEL_FOLDER",
                        help="fine-tune this trained model's weights, rebuilt at the input size, on its own "
                             "split.csv (default: the recipe's; resfix-512 starts from 2.0.0 as `make model` trains it)")
    parser.add_argument("--epoch-photographs", type=int, default=None,
                        help="photographs drawn anew for each fine-tuning epoch (default: the recipe's; 0 = all)")
    parser.add_argument("--checkpoints", type=Path, default=None, metavar="FOLDER",
                        help="save fine-tuning after every epoch here; the same command resumes after a kill")
    parser.add_argument("--no-onnx", action="store_true",
                        help="skip the ONNX Runtime twin the clinic grades with (it then falls back to Keras)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Turn parsed arguments into a TrainConfig (the recipe with any overrides)."""
    recipe = RECIPES[args.recipe]
    overrides: dict[str, Any] = {}
    if args.input_size:
        overrides["input_size"] = args.input_size
    if args.epochs is not None:
        overrides["fine_tune_epochs"] = args.epochs
    if args.head_epochs is not None:
        overrides["head_epochs"] = args.head_epochs
    if args.start_from is not None:
        overrides["start_from"] = str(args.start_from)
    if args.epoch_photographs is not None:
        overrides["epoch_photographs"] = args.epoch_photographs
    return TrainConfig(data=list(args.data), out=args.out, base=args.base, recipe=replace(recipe, **overrides),
                       seed=args.seed, val_fraction=args.val_fraction,
                       drop_quality=() if args.keep_quality else D.DEFAULT_DROP_QUALITY,
                       threads=args.threads, name=args.name or Path(args.out).name, version=args.version,
                       threshold_collections=tuple(args.thresholds_on),
                       checkpoints=args.checkpoints)


def run(args: argparse.Namespace) -> int:
    """Train, choose operating points, save the model folder; print where it is."""
    try:
        result = train(config_from_args(args))
    except D.DataError as exc:
        print(f"error: {exc}")
        return 2
    if not args.no_onnx:
        from .onnx_export import add_onnx_runtime

        card = add_onnx_runtime(Path(result["out"]))
        print(f"ONNX runtime {card.runtime_file} added (max |ONNX - Keras| "
              f"{card.raw['runtime_check']['max_abs_diff_vs_keras']:.1e})")
    v = result["validation"]
    print(f"saved {result['out']} in {result['minutes']:.1f} min: validation referable AUC "
          f"{v['referable_auc']:.3f}, urgent AUC {v['urgent_auc']:.3f}")
    return 0


# --------------------------------------------------------------------------- the run


def train(config: TrainConfig, base_factory: BaseFactory | None = None) -> dict[str, Any]:
    """The whole run: data, split, recipe, outputs and operating points, saved model folder.

    ``base_factory(input_size) -> Base`` replaces the named base (tests pass a
    tiny one so a run takes seconds)."""
    _, keras = _tensorflow(config.threads)
    keras.utils.set_random_seed(config.seed)
    out = Path(config.out)
    progress = Progress(out, append=config.checkpoints is not None)
    recipe = config.recipe
    data = prepare_data(config, progress)
    if recipe.start_from:
        # the train-test resolution fix: a trained model's own network and outputs at the recipe's size
        exported, base = rebuild_at_size(Path(recipe.start_from), recipe.input_size, base_factory)
        progress.say(f"{recipe.start_from} rebuilt at {recipe.input_size} px, recipe {recipe.name}")
        val_pred = fine_tune(exported, base, data, recipe, progress, seed=config.seed,
                             checkpoints=config.checkpoints)
        outputs = {k: ("head" if k in exported.output else "grade") for k in ("referable", "urgent")}
        outputs.update({"maculopathy": "head"} if "maculopathy" in exported.output else {})
    else:
        base = base_factory(recipe.input_size) if base_factory else load_base(config.base, recipe.input_size)
        progress.say(f"base {base.name} at {recipe.input_size} px, recipe {recipe.name}")
        model = build_model(base, recipe.dropout)
        val_pred = fit_head_on_features(model, base, data, recipe, progress, seed=config.seed)
        if recipe.fine_tune:
            val_pred = fine_tune(model, base, data, recipe, progress, seed=config.seed,
                                 checkpoints=config.checkpoints)
        outputs = choose_outputs(val_pred, data.val_targets)
        exported = export_view(model, outputs)
    # the fine-tuned model is the exported one: its kept epoch's validation outputs are final
    final_pred = val_pred if recipe.start_from else predict_outputs(exported, data.val_images)
    ops, val_metrics = operating_points(final_pred, data.val_samples, config.threshold_collections)
    minutes = progress.elapsed / 60
    card = model_card(config, base, data, outputs, ops, val_metrics, minutes)
    from .export import save_model

    save_model(exported, out, card)
    D.write_split(out / "split.csv", data.split)
    write_run_json(out, config, outputs, ops, val_metrics, minutes, progress)
    if not recipe.start_from:   # a fine-tuned model's report is training.paired's, beside the model it started from
        validation_report(out, data)
    progress.say(f"saved {out}")
    return {"out": str(out), "minutes": minutes, "validation": val_metrics, "operating_point": ops["default"],
            "outputs": outputs}


def validation_report(out: Path, data: "TrainingData") -> Path:
    """Reload the saved folder through the clinic's Classifier (hash check included)
    and write the evaluation report of the validation patients into ``validation/``."""
    from ..core.classifier import Classifier
    from .evaluate import evaluate, write_report

    classifier = Classifier.load(out, backend="keras")
    result = evaluate(classifier, data.val_samples, cache=D.ImageCache(classifier.input_size))
    return write_report(result, out / "validation", title=f"{classifier.card.name} {classifier.card.version} "
                        "on its validation patients")
