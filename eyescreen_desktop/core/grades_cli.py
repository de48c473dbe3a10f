"""``eyescreen grades``: a reading centre's grades in, the photographs that need grading out.

``eyescreen grades import FILE.csv [--grader NAME] [--data-dir D | --database URL]``
takes one row per eye: ``patient_id, eye (R/L), icdr_grade (0-4, blank when
ungradable), maculopathy (0/1, blank = not assessed), gradable (0/1)``, and
optionally ``encounter`` or ``date``, ``grader`` and ``findings`` (names from
:data:`grading.FINDINGS`, separated by ``;``). The grader of record is the row's
``grader``, else ``--grader``; the person running the import is audited as the
importer. Imported reading-centre grades are final.

The import is one transaction: a file with any bad row changes nothing, prints
``line N: reason`` on standard error for every bad row, writes one audit entry
"import refused" and exits 1. Importing the same file again changes nothing.

``eyescreen grades export --out DIR`` writes what needs grading (every referral
and review not yet graded, the annual encounters drawn for quality assurance,
encounters waiting for arbitration): the photographs in ``DIR/photos`` and
``DIR/to-grade.csv``, which the reading centre fills in and sends back for import.
Nothing in it says what the AI found: the reading centre reads blind.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..domain.eyes import parse_eye
from .access import require
from .signin import add_token_argument
from .grading import DEFAULT_QA_RATE, FINDINGS, HumanGrade
from .paths import data_paths
from .records import Eye

if TYPE_CHECKING:
    from .store import ClinicStore

REQUIRED = ("patient_id", "eye", "icdr_grade", "maculopathy", "gradable")
OPTIONAL = ("encounter", "date", "grader", "findings")
EXPORT_COLUMNS = ("patient_id", "encounter", "date", "eye", "photo", "icdr_grade", "maculopathy", "gradable",
                  "grader", "findings")
MACULOPATHY_WORDS = {"": "not_assessed", "0": "no", "1": "yes"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``eyescreen grades import`` and ``eyescreen grades export``."""
    from .store.engine import add_database_argument

    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = actions.add_parser("import", help="import a reading centre's grades (one row per eye)")
    imp.add_argument("file", type=Path, metavar="FILE.csv")
    imp.add_argument("--grader", default=None, help="grader of record for rows without a grader column")
    exp = actions.add_parser("export", help="write the photographs that need grading and a CSV to fill in")
    exp.add_argument("--out", type=Path, required=True, metavar="DIR")
    exp.add_argument("--qa-rate", type=float, default=DEFAULT_QA_RATE,
                     help="first draw this share of the annual encounters not yet considered for quality "
                          f"assurance (default {DEFAULT_QA_RATE:.0%}; 0: no draw); the draw is recorded")
    exp.add_argument("--seed", type=int, default=None, help="seed of the quality-assurance draw (default: random, "
                                                            "recorded either way)")
    for p in (imp, exp):
        p.add_argument("--data-dir", type=Path, default=None, help="EyeScreen data folder (default: the user's own)")
        add_database_argument(p)
        add_token_argument(p)
        p.add_argument("--user", default=None, help="who runs it, for the audit log on a database without "
                                                    "accounts (default: the login name; with accounts: who signed in)")


# ---------------------------------------------------------------------- reading the file


@dataclass(frozen=True)
class ImportCheck:
    """A grades file read against the database: the grades it would record, and every bad row."""

    grades: list[HumanGrade]
    errors: list[tuple[int, str]]


def check_file(store: ClinicStore, path: Path, grader: str | None, importer: str) -> ImportCheck:
    """Read ``path`` and check every row against the database (nothing is written)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = [({(k or "").strip(): (v or "").strip() for k, v in r.items()}, reader.line_num) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return ImportCheck([], [(1, f"cannot read {path}: {exc}")])
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        return ImportCheck([], [(1, f"missing column(s) {', '.join(missing)}; the file needs {', '.join(REQUIRED)}")])
    grades: list[HumanGrade] = []
    errors: list[tuple[int, str]] = []
    seen: dict[tuple[str, Eye, str], int] = {}
    known = {(g.encounter_id, g.eye, g.grader): g for g in store.grades()}
    for row, line in rows:
        try:
            grade = _row_grade(store, row, grader, importer)
        except ValueError as exc:
            errors.append((line, str(exc)))
            continue
        key = (grade.encounter_id, grade.eye, grade.grader)
        if key in seen:
            errors.append((line, f"duplicate row: the same eye and grader as line {seen[key]}"))
            continue
        seen[key] = line
        old = known.get(key)
        if old is not None and not old.same_reading(grade):
            given = "ungradable" if old.icdr_grade is None else f"ICDR {old.icdr_grade}"
            errors.append((line, f"a different grade from the same grader for the same eye: {grade.grader} "
                                 f"already gave {given}"))
            continue
        grades.append(grade)
    return ImportCheck(grades, errors)


def _row_grade(store: ClinicStore, row: dict[str, str], grader: str | None, importer: str) -> HumanGrade:
    """One row as a grade; ValueError says what is wrong with it."""
    patient = row.get("patient_id", "")
    if not patient or store.get_patient(patient) is None:
        raise ValueError(f"unknown patient {patient!r}")
    eye = parse_eye(row.get("eye", ""))
    if eye is Eye.UNKNOWN:
        raise ValueError(f"unknown eye {row.get('eye', '')!r}: write R or L")
    icdr = _icdr(row.get("icdr_grade", ""))
    gradable = row.get("gradable", "")
    if gradable not in ("0", "1"):
        raise ValueError(f"gradable {gradable!r}: write 1 (gradable) or 0 (ungradable)")
    if (gradable == "1") != (icdr is not None):
        raise ValueError("gradable contradicts the grade: a gradable eye needs an ICDR grade, an ungradable one none")
    macula = row.get("maculopathy", "")
    if macula not in MACULOPATHY_WORDS:
        raise ValueError(f"maculopathy {macula!r}: write 1, 0 or leave it blank (not assessed)")
    findings = tuple(f.strip() for f in row.get("findings", "").replace("|", ";").split(";") if f.strip())
    unknown = [f for f in findings if f not in FINDINGS]
    if unknown:
        raise ValueError(f"unknown finding(s) {', '.join(unknown)}: use {', '.join(FINDINGS)}")
    who = row.get("grader", "") or (grader or "").strip()
    if not who:
        raise ValueError("no grader: give a grader column or --grader")
    encounter = _encounter(store, patient, row.get("encounter", ""), row.get("date", ""))
    if eye not in store.photographed_eyes(encounter):
        raise ValueError(f"no photograph of that eye ({eye.label}) in patient {patient}'s encounter")
    return HumanGrade(encounter, eye, who, icdr, MACULOPATHY_WORDS[macula], findings, source="import",
                      recorded_by=importer)


def _icdr(text: str) -> int | None:
    if text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"grade out of range: {text!r} is not an ICDR grade 0-4") from None
    if not 0 <= value <= 4:
        raise ValueError(f"grade out of range: {value} (ICDR grades are 0-4)")
    return value


def _encounter(store: ClinicStore, patient: str, encounter: str, date: str) -> str:
    """The encounter a row means: the one named, the one on its date, or the patient's only one."""
    visits = store.patient_encounters(patient)
    if encounter:
        if encounter not in {e for e, _ in visits}:
            raise ValueError(f"patient {patient} has no encounter {encounter!r}")
        return encounter
    if date:
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            raise ValueError(f"date {date!r}: write it as YYYY-MM-DD") from None
        on_day = [e for e, started in visits if started.date() == day]
        if not on_day:
            raise ValueError(f"no encounter on that date: patient {patient} was not screened on {day}")
        if len(on_day) > 1:
            raise ValueError(f"patient {patient} has several encounters on {day}: give the encounter column")
        return on_day[0]
    if not visits:
        raise ValueError(f"patient {patient} has no screened encounter")
    if len(visits) > 1:
        raise ValueError(f"patient {patient} has several encounters and no date: give a date or encounter column")
    return visits[0][0]


# ---------------------------------------------------------------------- the commands


def import_grades(store: ClinicStore, path: Path, grader: str | None, person: str | None) -> ImportCheck:
    """Check and record a grades file in ONE transaction; a file with any bad row
    records nothing and writes one audit entry "import refused"."""
    importer = require(store, person, "grade")
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    with store.transaction():
        check = check_file(store, path, grader, importer)
        if not check.errors:
            changed = store.record_grades(check.grades, user=importer)
            if changed:
                store._audit(store._db, importer, "grades imported", f"file:{path.name}",
                             {"file": str(path), "sha256": digest, "rows": len(check.grades),
                              "encounters": sorted(changed)})
    if check.errors:
        with store._tx() as db:
            store._audit(db, importer, "import refused", f"file:{path.name}",
                         {"file": str(path), "sha256": digest, "bad_rows": len(check.errors),
                          "lines": [line for line, _ in check.errors]})
    return check


def export_to_grade(store: ClinicStore, out: Path, qa_rate: float, seed: int | None, person: str | None
                    ) -> list[dict[str, str]]:
    """Draw the quality-assurance sample (when ``qa_rate`` > 0), then write every
    photograph that needs grading into ``out/photos`` and ``out/to-grade.csv``."""
    who = require(store, person, "export")   # photographs and names leave the clinic: coordinators
    if qa_rate > 0:
        store.draw_qa_sample(qa_rate, seed, user=who)
    photos = out / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    for summary in store.encounter_summaries(store.to_grade()):
        day = summary.started_at.date().isoformat()
        for eye in summary.eyes:
            if eye.eye is Eye.UNKNOWN:
                continue
            source = Path(eye.path) if eye.path and Path(eye.path).is_file() else store.image_file(eye.sha256)
            if source is None:
                continue
            name = f"{summary.patient.patient_id}_{day}_{summary.encounter_id[:8]}_{eye.eye.value}{source.suffix}"
            shutil.copyfile(source, photos / name)
            rows.append({"patient_id": summary.patient.patient_id, "encounter": summary.encounter_id, "date": day,
                         "eye": eye.eye.value, "photo": f"photos/{name}", "icdr_grade": "", "maculopathy": "",
                         "gradable": "", "grader": "", "findings": ""})
    with open(out / "to-grade.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, EXPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def run(args: argparse.Namespace) -> int:
    """Entry point of ``eyescreen grades``."""
    from .store import ClinicStore, StoreError
    from .store.engine import database_url

    from . import signin
    from .roles import Action
    from .store import AccessRefused

    paths = data_paths(args.data_dir)
    try:
        with ClinicStore(database_url(args.database, paths.database), paths.image_store) as store:
            # as the signed-in person: a grader imports grades; exporting identifiable photographs is a coordinator's
            signin.act_as_signed_in(store, paths, args.token_file,
                                    Action.GRADE if args.action == "import" else Action.EXPORT)
            if args.action == "import":
                return _run_import(store, args)
            rows = export_to_grade(store, args.out, args.qa_rate, args.seed, args.user)
    except AccessRefused as exc:
        return signin.refuse("grades", exc)
    except StoreError as exc:
        print(f"eyescreen grades: {exc}", file=sys.stderr)
        return 4
    except OSError as exc:
        print(f"eyescreen grades: {exc}", file=sys.stderr)
        return 1
    print(f"{len(rows)} eye(s) to grade written to {args.out / 'to-grade.csv'} (photographs in {args.out / 'photos'}); "
          "fill in icdr_grade, maculopathy, gradable and grader, then: eyescreen grades import FILE.csv")
    return 0


def _run_import(store: Any, args: argparse.Namespace) -> int:
    if not args.file.is_file():
        print(f"eyescreen grades import: {args.file}: no such file", file=sys.stderr)
        return 2
    check = import_grades(store, args.file, args.grader, args.user)
    if check.errors:
        for line, reason in check.errors:
            print(f"line {line}: {reason}", file=sys.stderr)
        print(f"eyescreen grades import: {len(check.errors)} bad row(s); nothing was imported: correct the file "
              "and import it again", file=sys.stderr)
        return 1
    print(f"{len(check.grades)} eye grade(s) read from {args.file}; the encounters' queues follow the grades")
    return 0
