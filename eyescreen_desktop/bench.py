"""``eyescreen bench``: how fast screening is, measured the way a clinic feels it.

A camp screens hundreds of patients a day on an ordinary laptop, so speed is a
clinical feature. This command measures, in one run and on the same photographs
and model, every figure the performance targets in ``docs/performance.md`` are
stated in: decoding alone, the model alone, the ideal the two allow together,
the real end-to-end pipeline (``core.batch.run_batch``), the course's naive
way for comparison, full-resolution camera files, single-photograph latency,
the desktop window's start-up and responsiveness, memory over a 1000-photograph
batch, and writing one referral slip.

Each measure runs in a fresh Python process (``python -m eyescreen_desktop.bench
MEASURE SPEC``) so one measure's imports, caches and threads cannot flatter or
penalise another; the parent only coordinates, samples memory and prints.
Throughput measures run ``--repeat`` times, interleaved, and report the median,
because the machine is usually shared.

The desktop app's start-up is timed with its own ``--smoke`` flag, which
prints ``window_shown_at=<unix time>`` just after the window's first paint,
``store_open_at=<unix time>`` once the clinic database is open (it opens after
the paint) and ``model_done_at=<unix time>`` once the model is ready, then quits.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

RESULT_TAG = "BENCH_RESULT "
BATCH_SIZES = (1, 4, 8, 16)  # the model-alone rate is the best of these
MEASURE_TIMEOUT_S = 900
WINDOW_TIMEOUT_S = 120
HEARTBEAT_MS = 10
IDLE_HEARTBEAT_S = 2.0
UNTRAINED = "untrained-lite0"

# every key of the JSON report, in table order: (key, label, unit, target text)
ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("decode_images_per_s", "decode + quality gate + preprocess (all cores)", "img/s", ""),
    ("preprocess_ms", "preprocess one decoded photograph (one core)", "ms", "<= 10"),
    ("model_images_per_s", "model alone, preprocessed batches", "img/s", ""),
    ("ideal_images_per_s", "ideal = 1/(1/decode + 1/model)", "img/s", ""),
    ("pipeline_images_per_s", "pipeline: folder -> results.csv + database", "img/s", ""),
    ("pipeline_vs_ideal", "pipeline / ideal", "x", ">= 0.85"),
    ("baseline_images_per_s", "baseline: cv2 + model.predict per image", "img/s", ""),
    ("pipeline_vs_baseline", "pipeline / baseline", "x", ">= 3"),
    ("fullres_pipeline_images_per_s", "pipeline on 3872x2592 camera files", "img/s", ""),
    ("fullres_vs_pipeline", "full-res / 1024-px pipeline", "x", ">= 0.5"),
    ("latency_ms", "one photograph, model warm, file to result", "ms", "<= 150"),
    ("window_shown_s", "launch -> window visible", "s", "<= 1"),
    ("model_ready_s", "launch -> model ready", "s", ""),
    ("max_stall_ms", "longest GUI event-loop block while screening", "ms", "<= 50"),
    ("window_shown_full_s", "launch -> window visible, full clinic database", "s", "<= 1"),
    ("max_batch_stall_ms", "longest GUI block during a folder batch, full database", "ms", "<= 30"),
    ("peak_rss_mb", "peak memory screening the big batch", "MB", "<= 1500"),
    ("rss_small_batch_mb", "peak memory screening the small batch", "MB", ""),
    ("rss_growth_mb", "big minus small batch", "MB", "flat"),
    ("slip_ms", "referral slip, fonts warm, photos read cold", "ms", "<= 150"),
    ("slip_first_ms", "first referral slip in a fresh process", "ms", ""),
)
KEYS = tuple(r[0] for r in ROWS)


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``eyescreen bench``."""
    from .core.paths import default_model_dir, shared_datasets_dir

    data = shared_datasets_dir()
    parser.add_argument("--images", type=Path, default=data / "fundus-dr" / "images",
                        help="folder of 1024-px photographs (default: %(default)s)")
    parser.add_argument("--fullres", type=Path, default=data / "fundus-dr-fullres",
                        help="folder of full-resolution camera photographs (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--model", type=Path, default=default_model_dir(),
                        help=f"model folder (default: %(default)s); '{UNTRAINED}' builds EfficientNet-Lite0 "
                             "with our head and random weights (speed does not depend on the weights)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each throughput measure N times and report the median")
    parser.add_argument("--rss-images", type=int, default=1000,
                        help="photographs in the big memory batch (the small one is a quarter)")
    parser.add_argument("--stall-images", type=int, default=200,
                        help="photographs the window screens while its event loop is watched")
    parser.add_argument("--fullres-images", type=int, default=64,
                        help="full-resolution photographs to screen (the folder is repeated)")
    parser.add_argument("--baseline-images", type=int, default=100,
                        help="photographs for the slow baseline loop")
    parser.add_argument("--encounters", type=int, default=100_000,
                        help="screened visits in the full clinic database the window is timed against")
    parser.add_argument("--timing-scale", type=float, default=1.0,
                        help="scale the least time each timed loop runs (the model alone per batch size, 1.5 s; "
                             "the idle heartbeat, 2 s): below 1 the figures are noisier (the test suite's small "
                             "run uses 0.05)")
    parser.add_argument("--only", default="",
                        help="comma-separated measures to run (default all): " + ", ".join(MEASURES))


@dataclass
class BenchConfig:
    """Everything a run needs, passed to each child process as JSON."""

    images: list[str]
    fullres: list[str]
    model: str
    workdir: str
    images_dir: str = ""
    repeat: int = 1
    rss_images: int = 1000
    stall_images: int = 200
    fullres_images: int = 64
    baseline_images: int = 100
    only: list[str] = field(default_factory=list)
    encounters: int = 100_000
    timing_scale: float = 1.0


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table, write the JSON."""
    from .core import imageio

    images = [str(p) for p in imageio.discover([args.images])]
    fullres = [str(p) for p in imageio.discover([args.fullres])] if args.fullres.exists() else []
    if not images:
        print(f"no photographs in {args.images}: pass --images DIR", file=sys.stderr)
        return 2
    if str(args.model) == UNTRAINED:
        args.model = untrained_lite0()
    if not (Path(args.model) / "model_card.json").is_file():
        print(f"no model at {args.model}: train one (make model), pass --model DIR, or --model {UNTRAINED} "
              "to time the EfficientNet-Lite0 network with random weights", file=sys.stderr)
        return 2
    only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = set(only) - set(MEASURES)
    if unknown:
        print(f"unknown measures {sorted(unknown)}; choose from {', '.join(MEASURES)}", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="eyescreen-bench-")
    try:
        cfg = BenchConfig(images, fullres, str(Path(args.model).resolve()), workdir, str(args.images),
                          max(1, args.repeat), args.rss_images, args.stall_images, args.fullres_images,
                          args.baseline_images, only, max(1, args.encounters), max(0.0, args.timing_scale))
        report = run_bench(cfg)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(format_table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


# --------------------------------------------------------------------------- a model to time before one is trained


def untrained_lite0() -> Path:
    """A model folder with the shipped architecture (EfficientNet-Lite0 at 224 px,
    ``train.build_model``'s head) and random weights, exported to ONNX; built
    once in a separate process and cached in the platform's cache folder."""
    from .core.paths import default_cache_dir

    folder = default_cache_dir() / "bench-lite0-untrained"
    if not (folder / "model_card.json").is_file():
        print(f"building {folder} (once) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "eyescreen_desktop.bench", "--build-untrained", str(folder)],
                       check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return folder


def build_untrained_lite0(folder: Path) -> None:
    """Write the untrained EfficientNet-Lite0 model folder with its ONNX runtime."""
    from .core.preprocess import PREPROCESSING_ID
    from .training import efficientnet_lite, train
    from .training.export import save_model
    from .training.onnx_export import add_onnx_runtime

    net = efficientnet_lite.build_efficientnet_lite0((224, 224, 3), weights=None)
    base = train.Base("efficientnet-lite0", net, (), "top_activation")
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(train.build_model(base, 0.2), tmp, {
        "name": UNTRAINED, "version": "0", "input_size": 224, "preprocessing": PREPROCESSING_ID,
        "outputs": ["grade", "referable", "urgent"],
        "operating_points": {"default": {"referable": 0.5, "urgent": 0.3}},
        "heatmap": {"feature_layer": "top_activation", "dense_layer": "grade"},
        "intended_use": "speed benchmark only: random weights, grades mean nothing"})
    add_onnx_runtime(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


# --------------------------------------------------------------------------- coordination


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Run every chosen measure in its own process and derive the ratios."""
    report: dict[str, Any] = {k: None for k in KEYS}
    report["notes"] = []
    report["machine"] = machine_description()
    report["images"] = len(cfg.images)
    chosen = [m for m in MEASURES if not cfg.only or m in cfg.only]
    throughput = [m for m in chosen if m in REPEATED]
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in chosen}
    for _ in range(cfg.repeat):  # interleaved, so drifting load hits every measure alike
        for name in throughput:
            runs[name].append(_measure(name, cfg, report["notes"]))
    for name in chosen:
        if name not in REPEATED:
            runs[name].append(_measure(name, cfg, report["notes"]))
    for results in runs.values():
        report.update(_median_of(results))
    derive_ratios(report)
    if cfg.repeat > 1:
        _ratios_per_round(report, [runs[m] for m in throughput])
    return report


RATIOS = ("ideal_images_per_s", "pipeline_vs_ideal", "pipeline_vs_baseline", "fullres_vs_pipeline")


def _ratios_per_round(report: dict[str, Any], per_measure: list[list[dict[str, Any]]]) -> None:
    """With --repeat, each ratio is the median of the ratios of each round (its
    measures ran back to back, under the same load), not a ratio of medians
    taken at different times; every round's figures are kept under ``runs``."""
    rounds: list[dict[str, Any]] = []
    for i in range(len(per_measure[0]) if per_measure else 0):
        one: dict[str, Any] = {}
        for results in per_measure:
            one.update({k: v for k, v in results[i].items() if k.endswith("_per_s")})
        derive_ratios(one)
        rounds.append(one)
    report["runs"] = {k: [r.get(k) for r in rounds] for k in rounds[0]} if rounds else {}
    for key in RATIOS:
        values = [r[key] for r in rounds if r.get(key) is not None]
        if values:
            report[key] = round(statistics.median(values), 3)


def _measure(name: str, cfg: BenchConfig, notes: list[str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        result = run_child(name, asdict(cfg))
    except BenchError as exc:
        notes.append(f"{name}: {exc}")
        result = {}
    result[f"{name}_measure_s"] = round(time.perf_counter() - t0, 1)
    return result


def _median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median of the numeric results (other values from the last run)."""
    merged: dict[str, Any] = {}
    for key in {k for r in results for k in r}:
        values = [r[key] for r in results if key in r]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        merged[key] = statistics.median(numbers) if len(numbers) == len(values) and numbers else values[-1]
    return merged


def derive_ratios(report: dict[str, Any]) -> None:
    """ideal, pipeline/ideal, pipeline/baseline, full-res/1024 px, memory growth."""
    def ratio(a: str, b: str) -> float | None:
        x, y = report.get(a), report.get(b)
        return round(x / y, 3) if x and y else None

    d, m = report.get("decode_images_per_s"), report.get("model_images_per_s")
    if d and m:
        report["ideal_images_per_s"] = round(1.0 / (1.0 / d + 1.0 / m), 1)
    report["pipeline_vs_ideal"] = ratio("pipeline_images_per_s", "ideal_images_per_s")
    report["pipeline_vs_baseline"] = ratio("pipeline_images_per_s", "baseline_images_per_s")
    report["fullres_vs_pipeline"] = ratio("fullres_pipeline_images_per_s", "pipeline_images_per_s")
    big, small = report.get("peak_rss_mb"), report.get("rss_small_batch_mb")
    if big and small:
        report["rss_growth_mb"] = round(big - small, 1)
        report["memory_flat"] = bool(big - small <= max(100.0, 0.1 * small))


class BenchError(Exception):
    """A measure that could not be taken; the message says why."""


def run_child(name: str, spec: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one measure in a fresh interpreter; returns its result dict. The
    child's memory (with its own children) is sampled from outside."""
    cmd = [sys.executable, "-m", "eyescreen_desktop.bench", name, json.dumps(spec)]
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    sampler = RssSampler(proc.pid)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=MEASURE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BenchError(f"took longer than {MEASURE_TIMEOUT_S} s") from None
    finally:
        sampler.stop()
    lines = [ln for ln in out.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        tail = (err.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"failed (exit {proc.returncode}): {tail}")
    result = json.loads(lines[-1][len(RESULT_TAG):])
    if result.pop("_report_tree_rss", False) and sampler.peak_mb:
        result[result.pop("_rss_key")] = round(sampler.peak_mb, 1)
    return result


class RssSampler:
    """Peak resident memory of a process and all its descendants (decode
    workers included), sampled every 50 ms from /proc. Linux only; elsewhere
    ``peak_mb`` stays 0 and the child reports its own peak instead."""

    def __init__(self, pid: int, period_s: float = 0.05):
        self.pid, self.period_s, self.peak_mb = pid, period_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        if Path("/proc/self/status").exists():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))


def tree_rss_mb(root: int) -> float:
    """Resident memory (MB) of ``root`` and its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == pid and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(_rss_kb(p) for p in tree) / 1024.0


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine_description() -> str:
    """CPU count, model and load, for the record next to the figures."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average %.1f at start" % os.getloadavg()[0]
    return f"{os.cpu_count()} logical CPUs, {cpu}, {platform.system()} {platform.release()}{load}"


def format_table(report: dict[str, Any]) -> str:
    """The figures as a fixed-width table for the terminal."""
    lines = [f"{'measure':<50} {'value':>10}  {'unit':<6} target", "-" * 80]
    for key, label, unit, target in ROWS:
        value = report.get(key)
        text = "n/a" if value is None else (f"{value:.3g}" if unit == "x" else f"{value:.1f}")
        lines.append(f"{label:<50} {text:>10}  {unit:<6} {target}")
    if report.get("memory_flat") is not None:
        lines.append(f"memory flat with batch size: {'yes' if report['memory_flat'] else 'NO'}")
    lines += [f"machine: {report.get('machine', '')}"] + [f"note: {n}" for n in report.get("notes", [])]
    return "\n".join(lines)


# --------------------------------------------------------------------------- child helpers


def _result(values: dict[str, Any]) -> None:
    print(RESULT_TAG + json.dumps(values), flush=True)


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


def distinct_copies(sources: list[str], n: int, dest: Path) -> list[Path]:
    """``n`` files cycling through ``sources``, each with unique bytes (a JPEG
    comment segment after the start marker) so the clinic database's
    content-hash dedup does not skip the repeats. Pass ``r`` of ``P001_L.jpg``
    is named ``R000r_P001_L.jpg``: a patient's two eyes stay one patient (one
    encounter), as in the original folder."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        src = Path(sources[i % len(sources)])
        data = src.read_bytes()
        tag = f"eyescreen-bench copy {i}".encode()
        if data[:2] == b"\xff\xd8":
            data = data[:2] + b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big") + tag + data[2:]
        else:
            data = data + tag
        target = dest / f"R{i // len(sources):04d}_{src.name}"
        target.write_bytes(data)
        out.append(target)
    return out


def _model_input_size(model: str) -> int:
    from .core.classifier import read_card

    return read_card(Path(model)).input_size


def _preprocessed(files: list[str], size: int, n: int) -> "Any":
    import numpy as np

    from .core import imageio
    from .core.preprocess import preprocess

    return np.stack([preprocess(imageio.read_image(Path(f)), size) for f in files[:n]])


# --------------------------------------------------------------------------- the measures (children)


def measure_decode(spec: dict[str, Any]) -> dict[str, Any]:
    """Decode + quality gate + preprocessing of every photograph exactly as the
    pipeline prepares them (``screening.prepare``), on all cores: one process
    per core, so neither the GIL nor the model limits it."""
    from concurrent.futures import ProcessPoolExecutor

    size = _model_input_size(spec["model"])
    files = spec["images"]
    workers = os.cpu_count() or 1
    with ProcessPoolExecutor(workers, initializer=_single_threaded_worker) as pool:
        list(pool.map(_prepare_one, [(f, size) for f in files[:workers * 2]]))  # start workers
        t0 = time.perf_counter()
        list(pool.map(_prepare_one, [(f, size) for f in files], chunksize=4))
        seconds = time.perf_counter() - t0
    return {"decode_images_per_s": _rate(len(files), seconds), "decode_workers": workers,
            "preprocess_ms": _preprocess_ms(files[0], size)}


def _preprocess_ms(file: str, size: int, runs: int = 7) -> float:
    """``core.preprocess.preprocess`` alone on one decoded photograph at the model's
    input size, one core (median of ``runs`` after a warm-up): the part of preparing
    a photograph that EyeScreen's own code, not the JPEG decoder, decides."""
    import cv2

    from .core import imageio
    from .core.preprocess import preprocess

    cv2.setNumThreads(1)
    rgb = imageio.read_image(Path(file))
    preprocess(rgb, size)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        preprocess(rgb, size)
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def _single_threaded_worker() -> None:
    """One core per worker: OpenCV's own thread pool would oversubscribe."""
    import cv2

    cv2.setNumThreads(1)


def _prepare_one(item: tuple[str, int]) -> None:
    from .core import screening

    screening.prepare(screening.ScreenItem(Path(item[0])), item[1])


def measure_model(spec: dict[str, Any]) -> dict[str, Any]:
    """The model alone on preprocessed batches (post-processing included), all
    cores, at the batch size where it is fastest (every size tried is kept)."""
    from .core.classifier import Classifier

    clf = Classifier.load(Path(spec["model"]))
    batch = _preprocessed(spec["images"], clf.input_size, max(BATCH_SIZES))
    while len(batch) < max(BATCH_SIZES):
        batch = batch.repeat(2, axis=0)[:max(BATCH_SIZES)]
    rates = {}
    for size in BATCH_SIZES:
        clf.predict(batch[:size])
        n, t0 = 0, time.perf_counter()
        while n < 3 * size or time.perf_counter() - t0 < 1.5 * spec.get("timing_scale", 1.0):
            clf.predict(batch[:size])
            n += size
        rates[size] = _rate(n, time.perf_counter() - t0)
    best = max(rates, key=lambda k: rates[k])
    return {"model_images_per_s": rates[best], "backend": clf.backend_name,
            "model_name": f"{clf.info.name} {clf.info.version}", "model_input_size": clf.input_size,
            "batch_size": best, "model_images_per_s_by_batch": {str(k): v for k, v in rates.items()}}


def measure_baseline(spec: dict[str, Any]) -> dict[str, Any]:
    """The course's way on the same photographs and model: a plain loop of
    cv2 decode + resize + Keras ``model.predict`` per image."""
    import cv2
    import keras
    import numpy as np

    from .core.classifier import read_card

    card = read_card(Path(spec["model"]))
    model = keras.saving.load_model(Path(spec["model"]) / card.weights_file, compile=False)
    s = card.input_size
    files = spec["images"][: spec["baseline_images"]]

    def one(path: str) -> Any:
        rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        x = cv2.resize(rgb, (s, s)).astype(np.float32)[None]
        return model.predict(x, verbose=0)

    one(files[0])  # the model is loaded and warm before the clock starts, as for the pipeline
    t0 = time.perf_counter()
    for f in files:
        one(f)
    return {"baseline_images_per_s": _rate(len(files), time.perf_counter() - t0), "baseline_images": len(files)}


def _timed_batch(folder: Path, spec: dict[str, Any], out: Path) -> tuple[float, int]:
    """Run ``core.batch.run_batch`` on ``folder`` exactly as ``eyescreen screen
    --no-pdf`` does, with the model already loaded (the other measures exclude
    loading too); seconds and results.csv rows."""
    from .core import batch

    classifier = batch.load_for_batch(Path(spec["model"]))  # as `eyescreen screen` loads it
    t0 = time.perf_counter()
    report = batch.run_batch([folder], out, model=classifier, data_dir=out / "data", pdf=False)
    seconds = time.perf_counter() - t0
    rows = _csv_rows(report.results_csv)
    if rows != report.files:
        raise BenchError(f"results.csv has {rows} rows for {report.files} files")
    return seconds, rows


def _csv_rows(csv_path: Path) -> int:
    if not csv_path.is_file():
        raise BenchError(f"the pipeline wrote no {csv_path.name}")
    with open(csv_path, encoding="utf-8") as f:
        return max(0, sum(1 for _ in f) - 1)


def measure_pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    """End to end: the --images folder in, results.csv and database rows out, no PDFs."""
    work = Path(tempfile.mkdtemp(dir=spec["workdir"]))
    seconds, rows = _timed_batch(Path(spec["images_dir"]), spec, work / "out")
    return {"pipeline_images_per_s": _rate(rows, seconds), "pipeline_rows": rows}


def measure_fullres(spec: dict[str, Any]) -> dict[str, Any]:
    """The pipeline on full-resolution camera files (the folder repeated)."""
    if not spec["fullres"]:
        raise BenchError("no full-resolution photographs")
    work = Path(tempfile.mkdtemp(dir=spec["workdir"]))
    distinct_copies(spec["fullres"], spec["fullres_images"], work / "in")
    seconds, rows = _timed_batch(work / "in", spec, work / "out")
    return {"fullres_pipeline_images_per_s": _rate(rows, seconds), "fullres_rows": rows}


def _rss_measure(spec: dict[str, Any], n: int, key: str) -> dict[str, Any]:
    import resource

    work = Path(tempfile.mkdtemp(dir=spec["workdir"]))
    distinct_copies(spec["images"], n, work / "in")
    seconds, rows = _timed_batch(work / "in", spec, work / "out")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024.0 if sys.platform != "darwin" else 2**20)
    return {key: round(own, 1), "_report_tree_rss": True, "_rss_key": key, f"{key}_images": rows}


def measure_rss_big(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak memory (process + decode workers) while screening the big batch."""
    return _rss_measure(spec, spec["rss_images"], "peak_rss_mb")


def measure_rss_small(spec: dict[str, Any]) -> dict[str, Any]:
    """The same at a quarter of the size: the difference shows growth with batch size."""
    return _rss_measure(spec, max(1, spec["rss_images"] // 4), "rss_small_batch_mb")


def measure_latency(spec: dict[str, Any]) -> dict[str, Any]:
    """One photograph, model warm, file to result (median of several photographs)."""
    from .core import screening
    from .core.classifier import Classifier

    clf = Classifier.load(Path(spec["model"]))
    screener = screening.Screener(clf)
    items = [screening.ScreenItem(Path(f)) for f in spec["images"][:12]]
    list(screener.screen(items[:2]))  # warm
    times = []
    for item in items[2:] or items:
        t0 = time.perf_counter()
        (result,) = screener.screen([item])
        times.append((time.perf_counter() - t0) * 1000)
    return {"latency_ms": round(statistics.median(times), 1), "latency_max_ms": round(max(times), 1)}


def measure_slip(spec: dict[str, Any]) -> dict[str, Any]:
    """Write referral slips for a screened patient: first (fonts loaded) and warm (fonts
    registered, the photographs read cold each time, as for each new patient)."""
    from .core import reports

    summary = _one_encounter(spec)
    out = Path(tempfile.mkdtemp(dir=spec["workdir"]))
    times = []
    for i in range(6):
        reports._thumbnail_cached.cache_clear()   # each patient's photographs are new to the slip writer
        t0 = time.perf_counter()
        reports.write_referral_slip(summary, out / f"slip{i}.pdf")
        times.append((time.perf_counter() - t0) * 1000)
    return {"slip_first_ms": round(times[0], 1), "slip_ms": round(statistics.median(times[1:]), 1)}


def _one_encounter(spec: dict[str, Any]) -> Any:
    """An encounter summary for one patient's two eyes, screened for real."""
    from .core import batch

    work = Path(tempfile.mkdtemp(dir=spec["workdir"]))
    for f in spec["images"][:2]:
        shutil.copy(f, work / f"SLIP_{'L' if f == spec['images'][0] else 'R'}{Path(f).suffix}")
    report = batch.run_batch([work], work.parent / (work.name + "-out"), model=Path(spec["model"]),
                             data_dir=work.parent / (work.name + "-data"), pdf=False)
    return report.encounters[0]


def _launch_smoke(spec: dict[str, Any], data: Path, **env_extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``eyescreen gui --smoke`` over ``data`` (offscreen unless told otherwise,
    settings kept inside ``data``); returns the finished process and when it was launched."""
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
           "XDG_CONFIG_HOME": str(data / "config"), **env_extra}
    cmd = [sys.executable, "-m", "eyescreen_desktop", "gui", "--data-dir", str(data), "--model", spec["model"],
           "--smoke"]
    t0 = time.time()
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=WINDOW_TIMEOUT_S), t0
    except subprocess.TimeoutExpired:
        raise BenchError(f"the app did not report within {WINDOW_TIMEOUT_S} s") from None


def measure_window(spec: dict[str, Any]) -> dict[str, Any]:
    """Launch the desktop app as a user would (``eyescreen gui --smoke``, offscreen)
    and read the times it prints when the window is painted and the model ready."""
    data = Path(tempfile.mkdtemp(dir=spec["workdir"]))
    done, t0 = _launch_smoke(spec, data, EYESCREEN_DATA_DIR=str(data))
    marks = dict(re.findall(r"(window_shown_at|model_done_at|store_open_at)=([0-9.]+)", done.stdout))
    status = re.search(r"status=(.*)", done.stdout)
    if "window_shown_at" not in marks or "model_done_at" not in marks:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"the app printed no start-up times (exit {done.returncode}): {tail}")
    return {"window_shown_s": round(float(marks["window_shown_at"]) - t0, 3),
            "model_ready_s": round(float(marks["model_done_at"]) - t0, 3),
            "window_store_open_s": round(float(marks["store_open_at"]) - t0, 3) if "store_open_at" in marks else None,
            "window_model_status": status.group(1).strip() if status else "",
            "window_tensorflow_loaded": "tensorflow_loaded=True" in done.stdout,
            "window_store_imported_at_paint": "sqlalchemy_loaded=True" in done.stdout}


def measure_stall(spec: dict[str, Any]) -> dict[str, Any]:
    """The longest the window's event loop is blocked while it screens
    ``stall_images`` photographs for one patient (the drag-and-drop path:
    worker thread, heat maps, result view, database): a 10 ms precise QTimer
    heartbeat records every gap; the stall is the longest gap minus 10 ms."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, Qt, QTimer

    from .core.records import Patient
    from .gui import app as gui_app

    work = Path(tempfile.mkdtemp(dir=spec["workdir"]))
    files = _filed_for(distinct_copies(spec["images"], spec["stall_images"], work / "in"), "BENCH-STALL")
    gui_app.make_application(["eyescreen-bench"])
    window, store = gui_app.build_window(work / "data", dialogs=False)
    try:
        window.show()
        _wait_for_model(window, Path(spec["model"]))
        window.patient_panel.set_patient(Patient("BENCH-STALL"))
        idle = _idle_gaps(IDLE_HEARTBEAT_S * spec.get("timing_scale", 1.0), QEventLoop, QTimer, Qt)
        gaps, seconds = _heartbeat_while(window, lambda: window.screen_paths(files), QEventLoop, QTimer, Qt)
    finally:
        window.shutdown()
        store.close()
    worst_ms, worst_at = max(gaps)
    ordered = sorted(g for g, _ in gaps)
    return {"max_stall_ms": round(max(0.0, worst_ms - HEARTBEAT_MS), 1), "stall_at_s": round(worst_at, 2),
            "stall_p99_gap_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
            "stall_idle_max_gap_ms": round(max(idle), 1),
            "stall_images": len(files), "stall_screen_s": round(seconds, 2)}


def _filed_for(files: list[Path], patient_id: str) -> list[Path]:
    """The copies renamed ``<patient>_<side>.jpg`` (one folder each), so the desk's photograph
    check (another patient's ID in the name) lets them through as it would a clinic's own."""
    out = []
    for i, f in enumerate(files):
        target = f.parent / f"{i:04d}" / f"{patient_id}_{f.stem.rsplit('_', 1)[-1]}{f.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        out.append(f.rename(target))
    return out


def _idle_gaps(seconds: float, QEventLoop: Any, QTimer: Any, Qt: Any) -> list[float]:
    """Heartbeat gaps (ms) while the window idles: what the machine's other load
    alone does to the event loop, to read the stall figure against."""
    loop, gaps, last = QEventLoop(), [], [time.perf_counter()]

    def beat() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000.0)
        last[0] = now

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(HEARTBEAT_MS)
    timer.timeout.connect(beat)
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    timer.start()
    last[0] = time.perf_counter()
    loop.exec()
    timer.stop()
    return gaps or [0.0]


def _wait_for_model(window: Any, model: Path) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop, outcome = QEventLoop(), []
    window.engine.modelReady.connect(lambda _card: (outcome.append(""), loop.quit()))
    window.engine.modelFailed.connect(lambda msg: (outcome.append(msg or "failed"), loop.quit()))
    QTimer.singleShot(WINDOW_TIMEOUT_S * 1000, loop.quit)
    window.start(model)
    loop.exec()
    if outcome != [""]:
        raise BenchError(f"the window's model did not load: {outcome or 'timed out'}")


def _heartbeat_while(window: Any, start: Callable[[], Any], QEventLoop: Any, QTimer: Any,
                     Qt: Any) -> tuple[list[tuple[float, float]], float]:
    """(gap ms, seconds since start) between 10 ms heartbeats from ``start()``
    until its request is done."""
    loop, gaps = QEventLoop(), []
    t0 = time.perf_counter()
    last = [t0]

    def beat() -> None:
        now = time.perf_counter()
        gaps.append(((now - last[0]) * 1000.0, now - t0))
        last[0] = now

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(HEARTBEAT_MS)
    timer.timeout.connect(beat)
    def finished(_rid: int, _cancelled: bool) -> None:
        # the desk checks a large drop's photographs in the background and screens them in
        # a second request: the measure ends when nothing the window asked for is left
        guard = getattr(window, "photo_guard", None)
        if not getattr(window, "_requests", None) and not (guard is not None and guard.checking):
            loop.quit()

    window.engine.requestDone.connect(finished)
    QTimer.singleShot(MEASURE_TIMEOUT_S * 1000, loop.quit)
    timer.start()
    last[0] = t0 = time.perf_counter()
    if start() is None:
        raise BenchError("the window refused to screen the photographs")
    loop.exec()
    timer.stop()
    beat()
    return gaps, time.perf_counter() - t0


# --------------------------------------------------------------------------- a full clinic database


def fill_clinic(store: Any, encounters: int, today: Any = None, seed: int = 12) -> None:
    """Put ``encounters`` screened visits (one patient each, both eyes graded, queued
    by the real protocol, one in five already referred or closed) into an empty
    ``ClinicStore``: years of a busy clinic, written with ``executemany`` in one
    transaction (100,000 visits in seconds), to time the window against."""
    import datetime as dt

    from .core.store.base import _iso
    import random

    from .core.protocol import get_protocol
    from .core.records import Queue

    rng, protocol = random.Random(seed), get_protocol("icdr-ada")
    today = today or dt.date.today()
    queue_of = {0: Queue.ANNUAL, 1: Queue.ANNUAL, 2: Queue.ROUTINE, 3: Queue.URGENT, 4: Queue.URGENT}
    patients, visits, images, links, results, queued = [], [], [], [], [], []
    now = _iso(dt.datetime.now(dt.timezone.utc))
    for n in range(encounters):
        pid, eid = f"B{n:06d}", f"{n:032x}"
        started = dt.datetime.combine(today - dt.timedelta(days=rng.randrange(0, 1500)), dt.time(9, n % 60))
        patients.append((pid, f"Patient {n}", "1960-01-01", now, now))
        visits.append((eid, pid, _iso(started), protocol.name, "batch", "bench"))
        grades = [rng.choice((0, 0, 0, 1, 1, 2, 3, 4)) for _ in range(2)]
        for side, grade in zip(("R", "L"), grades):
            image_id = len(images) + 1
            images.append((image_id, f"{n:060x}{side}", f"/camera/{pid}_{side}.jpg", now))
            links.append((image_id, eid, image_id, side, f"/camera/{pid}_{side}.jpg", now))
            probs = [0.02] * 5
            probs[grade] = 0.92
            queue = queue_of[grade]
            results.append((image_id, eid, image_id, image_id, "bench", "1", "b" * 64, protocol.name, "ok", grade,
                            json.dumps(probs), queue.value, f"R{min(grade, 3)}", f"ICDR grade {grade}", now))
        queue = min((queue_of[g] for g in grades), key=(Queue.URGENT, Queue.ROUTINE, Queue.ANNUAL).index)
        state = rng.choice(("open", "open", "open", "open", "referred", "closed"))
        queued.append((eid, queue.value, protocol.due_date(queue, started.date()).isoformat(), state, now))
    with store._tx() as db:
        db.executemany("INSERT INTO patients (patient_id, name, birth_date, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?, ?)", patients)
        db.executemany("INSERT INTO encounters (encounter_id, patient_id, started_at, protocol, source, created_by) "
                       "VALUES (?, ?, ?, ?, ?, ?)", visits)
        db.executemany("INSERT INTO images (image_id, sha256, original_path, added_at) VALUES (?, ?, ?, ?)", images)
        db.executemany("INSERT INTO encounter_images (encounter_image_id, encounter_id, image_id, eye, "
                       "original_path, added_at) VALUES (?, ?, ?, ?, ?, ?)", links)
        db.executemany("INSERT INTO results (result_id, encounter_id, encounter_image_id, image_id, model_name, "
                       "model_version, model_sha, protocol, status, grade, probabilities, queue, code, finding, "
                       "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'bench')",
                       results)
        db.executemany("INSERT INTO queue_state (encounter_id, queue, due_date, state, updated_at) "
                       "VALUES (?, ?, ?, ?, ?)", queued)


def _full_clinic(spec: dict[str, Any]) -> Path:
    """A data folder holding a clinic database of ``encounters`` visits; returns it."""
    from .core.paths import data_paths
    from .core.store import ClinicStore

    data = Path(tempfile.mkdtemp(dir=spec["workdir"]))
    with ClinicStore.open(data_paths(data).ensure()) as store:
        fill_clinic(store, int(spec["encounters"]))
    return data


def measure_window_full(spec: dict[str, Any]) -> dict[str, Any]:
    """``eyescreen gui --smoke`` over a full clinic database: how long until the
    window is on screen (it must not grow with the database). Launched twice:
    the figure is the second launch, the first (which builds the queue views'
    index, once per database) is kept as ``window_shown_full_first_s``."""
    t0 = time.perf_counter()
    data = _full_clinic(spec)
    filled = time.perf_counter() - t0
    first = _smoke_shown_s(spec, data)     # the first launch of this version also builds the queue index
    return {"window_shown_full_s": _smoke_shown_s(spec, data), "window_shown_full_first_s": first,
            "full_encounters": int(spec["encounters"]), "full_fill_s": round(filled, 1)}


def _smoke_shown_s(spec: dict[str, Any], data: Path) -> float:
    """Seconds from launching ``eyescreen gui --smoke`` over ``data`` to the window on screen."""
    done, t0 = _launch_smoke(spec, data)
    shown = re.search(r"window_shown_at=([0-9.]+)", done.stdout)
    if not shown:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"the app printed no start-up time (exit {done.returncode}): {tail}")
    return round(float(shown.group(1)) - t0, 3)


def measure_batch_stall(spec: dict[str, Any]) -> dict[str, Any]:
    """The longest the window's event loop is blocked while the batch panel screens
    a folder of ``stall_images`` photographs into a full clinic database (worker
    thread, progress, queue refresh at the end): 10 ms heartbeat, as for max_stall_ms."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, Qt, QTimer

    from .gui import app as gui_app

    data = _full_clinic(spec)
    folder = data.parent / (data.name + "-in")
    distinct_copies(spec["images"], spec["stall_images"], folder)
    gui_app.make_application(["eyescreen-bench"])
    window, store = gui_app.build_window(data, dialogs=False)
    try:
        window.show()
        window.tabs.setCurrentWidget(window.batch_panel)
        _wait_for_model(window, Path(spec["model"]))
        idle = _idle_gaps(IDLE_HEARTBEAT_S * spec.get("timing_scale", 1.0), QEventLoop, QTimer, Qt)
        gaps, seconds = _heartbeat_while(window, lambda: window.batch_panel.screen_folder(folder),
                                         QEventLoop, QTimer, Qt)
    finally:
        window.shutdown()
        store.close()
    worst_ms, worst_at = max(gaps)
    ordered = sorted(g for g, _ in gaps)
    return {"max_batch_stall_ms": round(max(0.0, worst_ms - HEARTBEAT_MS), 1),
            "batch_stall_at_s": round(worst_at, 2), "batch_stall_screen_s": round(seconds, 2),
            "batch_stall_p99_gap_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
            "batch_stall_idle_max_gap_ms": round(max(idle), 1), "batch_stall_images": spec["stall_images"]}


MEASURES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "decode": measure_decode,
    "model": measure_model,
    "pipeline": measure_pipeline,
    "baseline": measure_baseline,
    "fullres": measure_fullres,
    "latency": measure_latency,
    "window": measure_window,
    "stall": measure_stall,
    "window_full": measure_window_full,
    "batch_stall": measure_batch_stall,
    "rss_small": measure_rss_small,
    "rss_big": measure_rss_big,
    "slip": measure_slip,
}
REPEATED = ("decode", "model", "pipeline", "baseline", "fullres")


def child_main(argv: list[str]) -> int:
    """Entry point of one measure's process: ``python -m eyescreen_desktop.bench NAME SPEC``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if argv[0] == "--build-untrained":
        build_untrained_lite0(Path(argv[1]))
        return 0
    name, spec = argv[0], json.loads(argv[1])
    try:
        _result(MEASURES[name](spec))
    except BenchError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    # The figures are out; skip interpreter finalisation, which can crash in
    # PySide6's teardown after a window was built (bool_dealloc at exit).
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1:]))
