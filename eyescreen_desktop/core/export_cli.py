"""The ``eyescreen report`` command: slips, the queues (CSV) or FHIR from the clinic database.

A coordinator runs it to hand work on: the referral slips and a summary of
everything screened since Monday, the urgent queue as a spreadsheet, or FHIR
bundles for the hospital's record system. It only reads the database (apart
from ``--mark-printed``) and writes into ``--out``:

* ``--format pdf``: every selected patient's document, named
  ``<patient>_<encounter>.pdf``: the referral slip (urgent, routine) in
  ``referrals/``, the review slip in ``review/``, the result letter (annual) in
  ``letters/``, and ``summary.pdf`` over the whole selection;
* ``--format csv``: ``queues.csv``;
* ``--format fhir``: ``fhir/<patient>_<encounter>.json``, one Bundle per encounter;
* ``--format all``: all three;
* ``--format qa``: the agreement report of the AI against the clinic's graders,
  ``qa-report.pdf`` and ``qa-eyes.csv`` (:mod:`.qa`); not part of ``all``: it is
  for the clinic lead, not for handing patients on.

Photographs are taken from the original path when it still exists, otherwise
from the database's managed image store, so slips printed weeks later still
show them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .paths import data_paths
from . import report_names
from .protocol import rejected
from .records import EncounterSummary, EyeResult, Queue
from .store import STATES

if TYPE_CHECKING:  # pragma: no cover - typing only; both are imported when the command runs
    from .reports import SlipSettings
    from .store import ClinicStore

log = logging.getLogger(__name__)

FORMATS = ("pdf", "csv", "fhir", "all", "qa")


def _date(text: str) -> dt.date:
    """argparse type for ``--since``: an ISO date."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: write it as YYYY-MM-DD, e.g. 2025-03-12") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``eyescreen report``."""
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="EyeScreen data folder holding the clinic database (default: the user's own)")
    from .store.engine import add_database_argument

    add_database_argument(parser)
    from .signin import add_token_argument

    add_token_argument(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the exports into")
    parser.add_argument("--since", type=_date, metavar="DATE",
                        help="only encounters screened on or after DATE (YYYY-MM-DD)")
    parser.add_argument("--queue", choices=[q.value for q in Queue], help="only this queue")
    parser.add_argument("--state", choices=STATES, help="only encounters in this state (default: every state)")
    parser.add_argument("--format", choices=FORMATS, default="pdf",
                        help="pdf: slips + summary.pdf; csv: queues.csv; fhir: one JSON bundle per encounter; "
                             "all: those three; qa: qa-report.pdf + qa-eyes.csv, the AI against the graders")
    parser.add_argument("--site", default="", help="site name in the quality-assurance report (default: the "
                                                   "clinic name, else 'clinic')")
    parser.add_argument("--page-size", choices=("A4", "Letter"), default="A4", help="paper size of the PDFs")
    parser.add_argument("--clinic-name", default="", help="clinic name printed at the top of the PDFs")
    parser.add_argument("--clinic-address", default="", help="clinic address printed under the name")
    parser.add_argument("--logo", type=Path, default=None, help="logo image for the PDFs (default: EyeScreen's)")
    parser.add_argument("--mark-printed", action="store_true",
                        help="record in the database that each exported slip was printed")


@dataclass
class ExportResult:
    """What one run wrote, for the closing message and for tests."""

    encounters: int = 0
    slips: list[Path] = field(default_factory=list)
    summary_pdf: Path | None = None
    csv: Path | None = None
    fhir: list[Path] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def safe_name(text: str, limit: int = 60) -> str:
    """Text usable as a file name on every platform (``report_names.safe_name``)."""
    return report_names.safe_name(text, limit)


def export_name(summary: EncounterSummary, names: report_names.ReportNames) -> str:
    """``<patient>_<encounter>`` (encounter shortened), unique within one run,
    case-insensitively (``report_names``)."""
    return names.stem(summary.patient.patient_id, summary.encounter_id)


def wants_slip(summary: EncounterSummary, queue_filter: Queue | None = None) -> bool:
    """Every screened patient leaves with a document: a referral slip, a review slip
    or a result letter (``reports.patient_document``). Kept for callers of old."""
    return True


def rejected_files(encounters: Sequence[EncounterSummary]) -> list[EyeResult]:
    """Every photograph of the encounters that was not graded (``protocol.rejected``:
    unreadable, not a fundus photograph or ungradable), retaken ones included, as
    the batch summary counts them."""
    return [e for s in encounters for e in s.all_photos if rejected(e)]


def export(store: "ClinicStore", encounters: Sequence[EncounterSummary], out: Path, fmt: str,
           settings: "SlipSettings", queue_filter: Queue | None = None, mark_printed: bool = False) -> ExportResult:
    """Write the chosen exports of ``encounters`` into ``out``; one failed file is
    recorded and the others still written."""
    from . import reports
    from .roles import Action

    store.require(Action.EXPORT)   # identifiable data: coordinators only, on a database with accounts
    out.mkdir(parents=True, exist_ok=True)
    result = ExportResult(encounters=len(encounters))
    names = report_names.ReportNames()
    file_names = {s.encounter_id: export_name(s, names) for s in encounters}
    if fmt in ("pdf", "all"):
        for s in encounters:  # every patient's document: referral slip, review slip or result letter
            path = _attempt(result, s, lambda s=s: reports.write_patient_document(s, out, settings, names))
            if path is not None:
                result.slips.append(path)
                if mark_printed:
                    store.mark_slip_printed(s.encounter_id)
        result.summary_pdf = _attempt(result, None, lambda: reports.write_batch_summary(
            encounters, rejected_files(encounters), out / "summary.pdf", settings))
    if fmt in ("csv", "all"):
        result.csv = _attempt(result, None, lambda: reports.queues_csv(encounters, out / "queues.csv"))
    if fmt in ("fhir", "all"):
        for s in encounters:
            path = _attempt(result, s, lambda s=s: reports.write_fhir(
                s, out / "fhir" / f"{file_names[s.encounter_id]}.json", settings))
            if path is not None:
                result.fhir.append(path)
    return result


def _attempt(result: ExportResult, summary: EncounterSummary | None, write: Callable[[], Path]) -> Path | None:
    """Run one write; a failure is logged and noted, never fatal to the others."""
    try:
        return Path(write())
    except Exception as exc:  # noqa: BLE001 - one bad export must not cost the rest
        who = f"patient {summary.patient.patient_id}" if summary else "export"
        log.exception("%s failed", who)
        result.failures.append(f"{who}: {exc}")
        return None


def _settings(args: argparse.Namespace) -> "SlipSettings":
    """Slip settings from the command line."""
    from .reports import SlipSettings

    kwargs = {"page_size": args.page_size, "clinic_address": args.clinic_address, "logo_path": args.logo}
    if args.clinic_name:
        kwargs["clinic_name"] = args.clinic_name
    return SlipSettings(**kwargs)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``eyescreen report``."""
    from . import reports
    from . import signin
    from .roles import Action
    from .store import AccessRefused, ClinicStore, StoreError
    from .store.engine import database_url, sqlite_file

    paths = data_paths(args.data_dir)
    url = database_url(args.database, paths.database)
    local = sqlite_file(url)
    if local is not None and not local.is_file():
        print(f"eyescreen report: no clinic database in {paths.root}: screen photographs first "
              "(eyescreen screen ...) or pass the right --data-dir", file=sys.stderr)
        return 2
    if args.logo is not None and not args.logo.is_file():
        print(f"eyescreen report: logo {args.logo} not found", file=sys.stderr)
        return 2
    queue = Queue(args.queue) if args.queue else None
    try:
        with ClinicStore(url, paths.image_store) as store:
            signin.act_as_signed_in(store, paths, args.token_file, Action.EXPORT)
            if args.format == "qa":
                return _export_qa(store, args)
            found = store.encounters(queue=queue, state=args.state, since=args.since,
                                     heatmaps=args.format in ("pdf", "all"))
            encounters = [reports.resolve_images(s, store.image_file) for s in found]
            result = export(store, encounters, args.out, args.format, _settings(args), queue, args.mark_printed)
    except AccessRefused as exc:
        return signin.refuse("report", exc)
    except StoreError as exc:
        print(f"eyescreen report: {exc}", file=sys.stderr)
        return signin.DATABASE
    except OSError as exc:
        print(f"eyescreen report: could not write to {args.out}: {exc}", file=sys.stderr)
        return 1
    print(_closing_message(result, args.out))
    return 1 if result.failures else 0


def _export_qa(store: "ClinicStore", args: argparse.Namespace) -> int:
    """``--format qa``: the agreement report and its per-eye CSV, and the summary line."""
    from .qa_report import export_qa

    if not store.grades():
        print("eyescreen report: no human grades yet: grade at the desk or import a reading centre's grades "
              "(eyescreen grades import FILE.csv) first", file=sys.stderr)
        return 2
    site = args.site or args.clinic_name or "clinic"
    pdf, csv_path, summary = export_qa(store, args.out, site, _settings(args))
    print(f"{summary}\nwrote {pdf} and {csv_path}")
    return 0


def _closing_message(result: ExportResult, out: Path) -> str:
    """One screen saying what was written where, and what failed."""
    lines = [f"{result.encounters} encounter(s) selected; written to {out}:"]
    if result.slips or result.summary_pdf:
        lines.append(f"  {len(result.slips)} patient document(s) (referrals/, review/, letters/), summary.pdf")
    if result.csv:
        lines.append(f"  {result.csv.name}")
    if result.fhir:
        lines.append(f"  {len(result.fhir)} FHIR bundle(s) in fhir/")
    for failure in result.failures[:10]:
        lines.append(f"  FAILED {failure}")
    return "\n".join(lines)
