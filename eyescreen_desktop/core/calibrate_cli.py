"""``eyescreen calibrate``: choose this clinic's operating point on its own graded photographs.

``eyescreen calibrate --data LABELS.csv [--data ...] --out OP.json [--report REPORT.pdf]
[--model PATH] [--name NAME] [--min-eyes N] [--urgent-sensitivity S]``

``eyescreen calibrate --from-database [--data-dir D | --database URL] --out OP.json``
chooses it instead from the clinic's own grader-confirmed eyes, weighed
1/P(graded) (:mod:`.site_calibration`); ``--data`` and ``--from-database`` exclude
each other.

Screens every listed photograph through the product's path (quality gate,
preprocessing, the ONNX model), chooses the thresholds by the rule in
:class:`core.calibration.Rule` (every labels file counts as a collection; the
worst one wins), writes the operating point file and the calibration report
PDF beside it, and prints the per-collection table. Use the result with
``eyescreen screen --operating-point OP.json`` or the window's Settings.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from . import calibration as C


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``eyescreen calibrate``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, action="append", metavar="LABELS.csv",
                        help="the clinic's graded photographs: a CSV with file and icdr_grade (or referable and "
                             "urgent) columns; repeat for each camera or site")
    source.add_argument("--from-database", action="store_true",
                        help="the clinic database's grader-confirmed eyes (desk grades and reading-centre imports), "
                             "each weighed 1/P(graded); needs 100 graded and 30 referable eyes")
    from .store.engine import add_database_argument

    parser.add_argument("--data-dir", type=Path, default=None,
                        help="with --from-database: EyeScreen data folder (default: the user's own)")
    add_database_argument(parser)
    parser.add_argument("--site", default="clinic", help="with --from-database: the site's name (default: clinic)")
    parser.add_argument("--user", default=None, help="with --from-database on a database without accounts: who "
                                                     "calibrates, for the audit log (with accounts: who signed in)")
    parser.add_argument("--token-file", type=Path, default=None, metavar="FILE",
                        help="with --from-database: run as the service account whose token this file holds")
    parser.add_argument("--out", type=Path, required=True, metavar="OP.json", help="operating point file to write")
    parser.add_argument("--report", type=Path, default=None, metavar="PDF",
                        help="calibration report (default: beside --out, same name with .pdf)")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--name", default=None, help="name of the operating point (default: the file's name)")
    parser.add_argument("--min-eyes", type=int, default=C.MIN_EYES,
                        help=f"refuse fewer gradable eyes than this (default {C.MIN_EYES})")
    parser.add_argument("--referable-sensitivity", type=float, default=C.Rule.referable_sensitivity,
                        help="referable sensitivity every collection must keep (default 0.90)")
    parser.add_argument("--urgent-sensitivity", type=float, default=C.Rule.urgent_sensitivity,
                        help="urgent queue target per collection (default 0.97); 1.0 = no urgent eye below "
                             "the urgent threshold. No urgent eye is ever left in annual, whatever this is")
    parser.add_argument("--backend", default="auto", choices=("auto", "keras", "onnx"))


def run_calibration(labels: Sequence[Path], model_dir: Path | None = None, name: str = "clinic",
                    rule: C.Rule = C.Rule(), min_eyes: int = C.MIN_EYES, backend: str = "auto",
                    classifier: object | None = None,
                    progress: C.Progress | None = None,
                    cancelled: Callable[[], bool] | None = None) -> C.Calibration:
    """Read, screen and calibrate: the work behind the command and the window's Settings.
    Pass a loaded ``classifier`` to reuse it (the window's worker owns one)."""
    from .classifier import Classifier
    from .paths import default_model_dir
    from .screening import Screener

    names = [C.collection_name(Path(p)) for p in labels]
    if len(set(names)) < len(names):
        raise C.CalibrationError(f"two labels files share a collection name ({', '.join(names)}): each camera or "
                                 "site needs its own folder (site-a/labels.csv) or file name (site-a.csv)")
    if not (0.0 < rule.referable_sensitivity <= 1.0 and 0.0 <= rule.urgent_sensitivity <= 1.0):
        raise C.CalibrationError("sensitivity targets must lie between 0 and 1")
    eyes = [e for path in labels for e in C.read_labels(Path(path))]
    if len(eyes) < min_eyes:
        raise C.CalibrationError(f"the labels list {len(eyes)} photographs: a calibration needs at least "
                                 f"{min_eyes} graded eyes (a few hundred is better)")
    model = classifier or Classifier.load(model_dir or default_model_dir(), backend=backend)
    screener = Screener(model, decode_workers=2, batch_size=getattr(model, "preferred_batch", 8))
    screened = C.screen_labelled(screener, eyes, progress, cancelled)
    if len(screened) < len(eyes):
        raise C.CalibrationError("calibration cancelled: nothing was written")
    card = model.card
    mac = card.operating_point.maculopathy if "maculopathy" in card.outputs else None
    return C.calibrate(screened, C.model_identity(card), C.describe_sources(labels, screened), rule,
                       name, min_eyes, maculopathy=mac)


def run_from_database(args: argparse.Namespace, progress: C.Progress | None = None) -> C.Calibration:
    """``--from-database``: the site's point from its grader-confirmed eyes, re-screened
    with the model in force; audited in the clinic database."""
    from . import signin
    from .access import require
    from .classifier import Classifier
    from .paths import data_paths, default_model_dir
    from .site_calibration import calibrate_site, check_enough, graded_eyes, record_site_calibration
    from .store import ClinicStore, StoreError
    from .store.engine import database_url, sqlite_file

    paths = data_paths(args.data_dir)
    url = database_url(args.database, paths.database)
    local = sqlite_file(url)
    if local is not None and not local.is_file():
        raise C.CalibrationError(f"no clinic database in {paths.root}: pass the right --data-dir or --database")
    rule = C.Rule(args.referable_sensitivity, args.urgent_sensitivity)
    try:
        with ClinicStore(url, paths.image_store) as store:
            signin.act_as_signed_in(store, paths, args.token_file)   # an admin, checked by require below
            who = require(store, args.user, "admin")
            check_enough(graded_eyes(store, args.site))          # before the model loads
            model = Classifier.load(args.model or default_model_dir(), backend=args.backend)
            c = calibrate_site(store, args.site, args.name or args.out.stem, model, rule, progress=progress)
            record_site_calibration(store, who, args.site, args.out, c)
            return c
    except StoreError as exc:
        raise C.CalibrationError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Calibrate, write OP.json and the report, print the table."""
    from . import signin
    from .calibration_report import write_calibration_report
    from .store import AccessRefused

    out: Path = args.out
    report = args.report or out.with_suffix(".pdf")
    rule = C.Rule(args.referable_sensitivity, args.urgent_sensitivity)
    t0 = time.time()

    tty = sys.stdout.isatty()

    def progress(done: int, total: int) -> None:
        if tty and (done % 10 == 0 or done == total):
            print(f"\r  screened {done}/{total}", end="" if done < total else "\n", flush=True)
        elif not tty and (done % 200 == 0 or done == total):
            print(f"  screened {done}/{total}", flush=True)

    try:
        if args.from_database:
            c = run_from_database(args, progress)
        else:
            c = run_calibration(args.data, args.model, args.name or out.stem, rule, args.min_eyes, args.backend,
                                progress=progress)
    except C.CalibrationError as exc:
        print(f"eyescreen calibrate: {exc}", file=sys.stderr)
        return 1 if args.from_database else 2
    except AccessRefused as exc:
        return signin.refuse("calibrate", exc)
    C.write_operating_point(c, out)
    write_calibration_report(c, report)
    print(summary_text(c))
    print(f"wrote {out} and {report} in {time.time() - t0:.0f} s; use it with "
          f"`eyescreen screen --operating-point {out}` or the window's Settings")
    return 0


def summary_text(c: C.Calibration) -> str:
    """The thresholds, the warnings and one line per collection, for the terminal."""
    lines = [f"referable threshold {c.thresholds.referable:.6f}, urgent threshold {c.thresholds.urgent:.6f}",
             f"rule: {c.rule.text()}", *[f"caution: {w}" for w in c.warnings],
             *([f"from the clinic database: {c.site['graded_eyes']} grader-confirmed eyes "
                f"({c.site['referable_eyes']} referable), each weighed 1/P(graded); expected referral rate "
                f"{c.site['expected_referral_rate']:.3f}; referable sensitivity "
                f"{c.overall.referable_sensitivity.value:.3f} ({c.overall.referable_sensitivity.low:.3f}-"
                f"{c.overall.referable_sensitivity.high:.3f}), specificity {c.overall.referable_specificity.value:.3f} "
                f"({c.overall.referable_specificity.low:.3f}-{c.overall.referable_specificity.high:.3f}); "
                f"model weights SHA-256 {c.model['weights_sha256']}"] if c.site else []),
             f"{'collection':<16} {'gradable':>8} {'ref AUC':>8} {'ref sens':>9} {'ref spec':>9} "
             f"{'urg sens':>9} {'urgent in annual':>17} {'spec cost':>10}"]
    for f in (*c.per_collection, c.overall):
        lines.append(f"{f.collection:<16} {f.photographs - f.gated:>8} {f.referable_auc[0]:>8.3f} "
                     f"{f.referable_sensitivity.value:>9.3f} {f.referable_specificity.value:>9.3f} "
                     f"{f.urgent_sensitivity.value:>9.3f} {f.urgent_in_annual:>17} "
                     + (f"{f.specificity_cost:>10.3f}" if f.collection != "all" else f"{'-':>10}"))
    return "\n".join(lines)
