"""Fine-tuning checkpoints, so a run killed mid-way resumes where it stopped.

After every fine-tuning epoch the folder gets ``epoch-NNN/`` with everything the
next epoch depends on: every model variable (weights, BatchNorm statistics and
the dropout layers' seed-generator states, i.e. the model's RNG state), every
optimizer variable (Adam's moments and the step counter the learning-rate
schedule reads), and the validation monitor's state (best epoch, its score and
weights, the history). The data order and augmentation of an epoch are a
function of (seed, epoch) alone (``augment.make_dataset(epoch=...)``), so the
epoch number is the rest of the RNG state. A checkpoint is written under a
temporary name and renamed into place, so a kill during the write leaves the
previous one intact; only the last two are kept."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

KEEP = 2


@dataclass
class MonitorState:
    """What the validation monitor has to remember across a restart."""

    initial: float
    best: float
    best_epoch: int
    best_weights: list[np.ndarray] | None
    history: list[dict[str, float]] = field(default_factory=list)
    best_outputs: dict[str, np.ndarray] | None = None     # the best epoch's validation outputs


class Checkpoints:
    """The ``epoch-NNN`` folders of one fine-tuning run."""

    def __init__(self, folder: Path, plan: dict[str, Any] | None = None):
        """``plan``: what the run was asked to do (recipe, seed); resuming under another
        plan would silently mix two schedules, so it is refused."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.plan = json.loads(json.dumps(plan or {}, default=str))

    def latest(self) -> int:
        """The last completed epoch (0 when none was saved)."""
        done = [int(p.name.split("-")[1]) for p in self.folder.glob("epoch-*") if p.name[6:].isdigit()]
        return max(done, default=0)

    def save(self, epoch: int, model: Any, state: MonitorState) -> Path:
        """Write epoch ``epoch``'s checkpoint atomically and drop older ones."""
        final = self.folder / f"epoch-{epoch:03d}"
        tmp = self.folder / f".epoch-{epoch:03d}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        _save_arrays(tmp / "model.npz", [v.numpy() for v in model.variables])
        _save_arrays(tmp / "optimizer.npz", [v.numpy() for v in model.optimizer.variables])
        if state.best_weights is not None:
            _save_arrays(tmp / "best.npz", state.best_weights)
        if state.best_outputs is not None:
            np.savez(tmp / "best_outputs.npz", **state.best_outputs)
        (tmp / "state.json").write_text(json.dumps(
            {"epoch": epoch, "plan": self.plan, "initial": state.initial, "best": state.best, "best_epoch": state.best_epoch,
             "history": state.history}, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in sorted(self.folder.glob("epoch-*"))[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def restore(self, model: Any) -> tuple[int, MonitorState]:
        """Load the last checkpoint into ``model`` (compiled; its optimizer is built
        here if it is not yet) and return its epoch and the monitor's state."""
        epoch = self.latest()
        path = self.folder / f"epoch-{epoch:03d}"
        info = json.loads((path / "state.json").read_text())
        if info.get("plan", {}) != self.plan:
            raise ValueError(f"{self.folder} holds checkpoints of another plan ({info.get('plan')}); "
                             "delete the folder to start this run afresh, or rerun the command that wrote it")
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        _assign(model.variables, _load_arrays(path / "model.npz"), "model")
        _assign(optimizer.variables, _load_arrays(path / "optimizer.npz"), "optimizer")
        best = _load_arrays(path / "best.npz") if (path / "best.npz").exists() else None
        outputs = None
        if (path / "best_outputs.npz").exists():
            with np.load(path / "best_outputs.npz") as z:
                outputs = {k: z[k] for k in z.files}
        return epoch, MonitorState(info["initial"], info["best"], info["best_epoch"], best, info["history"],
                                   outputs)


def _save_arrays(path: Path, arrays: list[np.ndarray]) -> None:
    np.savez(path, *arrays)


def _load_arrays(path: Path) -> list[np.ndarray]:
    with np.load(path) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def _assign(variables: list[Any], arrays: list[np.ndarray], what: str) -> None:
    if len(variables) != len(arrays):
        raise ValueError(f"checkpoint holds {len(arrays)} {what} variables, the run has {len(variables)}: "
                         "it was written by another recipe or model; delete the folder to start again")
    for v, a in zip(variables, arrays):
        if tuple(v.shape) != a.shape:
            raise ValueError(f"checkpoint {what} variable {v.path} has shape {a.shape}, the run {tuple(v.shape)}")
        v.assign(a)
