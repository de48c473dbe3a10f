""""Calibrate on this clinic's graded photographs": the window's face of ``eyescreen calibrate``.

The nurse or clinic lead picks one or more labels CSVs (one per camera or
site), presses Calibrate, and watches the photographs go through the one
screening worker (the model is never touched from the GUI thread). The result
shows the thresholds, how each collection fares and any caution; the operating
point file and its report PDF are saved in the data folder, and "Use this
operating point" makes desk screening, folder batches and the hot folder use it.

"From this clinic's grades" runs ``eyescreen calibrate --from-database`` on the
window's own store instead (the graders' confirmed eyes, weighed 1/P(graded)):
the suggestion is shown first and nothing is written; only an admin can apply
it, which writes the operating point file and its report and audits it, and
Settings' OK records it for the clinic (``store.apply_operating_point``).
"""

from __future__ import annotations

import datetime as dt
import logging
from html import escape
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..core import calibration as C
from ..core.calibrate_cli import run_calibration
from ..core.operating_points import calibration_figures
from ..core.roles import Action, may

log = logging.getLogger(__name__)


def result_html(c: C.Calibration) -> str:
    """The calibration in the clinic's words: what the chosen point does over all the graded
    eyes, any caution, then one row per camera or site (percentages, the counts behind them)."""
    def rate(r: Any) -> str:
        return f"{r.value:.0%} <small>({r.hits}/{r.total})</small>"

    rows = "".join(
        f"<tr><td>{escape(f.collection if f is not c.overall else 'all together')}</td>"
        f"<td align='right'>{f.photographs - f.gated}</td><td align='right'>{rate(f.referable_sensitivity)}</td>"
        f"<td align='right'>{rate(f.referable_specificity)}</td><td align='right'>{rate(f.urgent_sensitivity)}</td>"
        f"<td align='right'>{f.urgent_in_annual}</td></tr>" for f in (*c.per_collection, c.overall))
    cautions = "".join(f"<li>{escape(w)}</li>" for w in c.warnings)
    rule = escape(c.rule.text().replace(">=", "\u2265"))
    return (f"<p><b>Chosen referable threshold {c.thresholds.referable:.4f}</b>, urgent threshold "
            f"{c.thresholds.urgent:.4f}: {rule}.</p>"
            f"<p>{escape(calibration_figures(c.overall).text())}</p>"
            + (f"<p><b>Caution</b></p><ul>{cautions}</ul>" if cautions else "")
            + "<table cellpadding='4' cellspacing='0' border='1' width='100%'><tr><th align='left'>Camera or site</th>"
              "<th>Eyes graded</th><th>Referable eyes found (sensitivity)</th><th>Other eyes cleared "
              "(specificity)</th><th>Urgent eyes found</th><th>Urgent eyes in annual</th></tr>"
            + rows + "</table>")


def site_suggestion_html(c: C.Calibration) -> str:
    """A point suggested from the clinic's own grades, in its words: the thresholds, how
    many graded eyes it rests on, referable sensitivity and specificity with their 95%
    intervals, the expected referral rate, and the model weights it belongs to."""
    def rate(r: Any) -> str:
        return f"<b>{r.value:.0%}</b> (95% CI {r.low:.0%} to {r.high:.0%})"

    site, o = c.site, c.overall
    cautions = "".join(f"<li>{escape(w)}</li>" for w in c.warnings)
    return (f"<p><b>Suggested from this clinic's grades</b>: referable threshold <b>{c.thresholds.referable:.4f}</b>, "
            f"urgent threshold <b>{c.thresholds.urgent:.4f}</b>.</p>"
            f"<p>It rests on <b>{site['graded_eyes']}</b> eyes your graders confirmed ({site['referable_eyes']} "
            "referable), each weighed by how rarely eyes like it are graded (an eye from a 10% quality-assurance "
            "sample counts as 10).</p><ul>"
            f"<li>Referable eyes found (sensitivity): {rate(o.referable_sensitivity)}</li>"
            f"<li>Other eyes cleared (specificity): {rate(o.referable_specificity)}</li>"
            f"<li>Expected referral rate: <b>{site['expected_referral_rate']:.0%}</b> of eyes screened</li>"
            f"<li>Urgent eyes left in annual: {o.urgent_in_annual}</li></ul>"
            + (f"<p><b>Caution</b></p><ul>{cautions}</ul>" if cautions else "")
            + f"<p>Made for the model {escape(str(c.model.get('name', '')))} {escape(str(c.model.get('version', '')))}"
              ": when a new model is installed this point is withdrawn and the clinic calibrates again.</p>")


def site_calibration_job(site: str, name: str, min_graded: int, min_referable: int) -> Any:
    """A worker job: re-screen the store's grader-confirmed eyes with the model in force and
    suggest the site's point (``calibrate --from-database``); writes nothing."""

    def job(ctx: Any) -> tuple[C.Calibration, None]:
        from ..core.site_calibration import calibrate_site

        c = calibrate_site(ctx.store, site, name, ctx.classifier, min_graded=min_graded, min_referable=min_referable,
                           progress=lambda done, total: ctx.progress(done, total, "photographs"),
                           cancelled=ctx.cancelled)
        return c, None

    return job


def calibration_job(labels: list[Path], out: Path, min_eyes: int) -> Any:
    """A worker job: screen, calibrate, write OP.json and its report; returns (Calibration, OP path)."""

    def job(ctx: Any) -> tuple[C.Calibration, Path]:
        from ..core.calibration_report import write_calibration_report

        c = run_calibration(labels, name=out.stem, min_eyes=min_eyes, classifier=ctx.classifier,
                            progress=lambda done, total: ctx.progress(done, total, "photographs"),
                            cancelled=ctx.cancelled)
        C.write_operating_point(c, out)
        write_calibration_report(c, out.with_suffix(".pdf"))
        return c, out

    return job


class CalibrationDialog(QDialog):
    """Choose labels CSVs, calibrate on the worker, show and keep the result.
    ``chosen(path)`` is emitted when the clinic decides to use the new point."""

    chosen = Signal(str)

    def __init__(self, engine: Any, folder: Path, parent: QWidget | None = None, min_eyes: int = C.MIN_EYES,
                 store: Any = None, site: str = "clinic"):
        super().__init__(parent)
        self.engine, self.folder, self.store, self.site = engine, Path(folder), store, site
        self.rid: int | None = None
        self.result_path: Path | None = None
        self.suggestion: C.Calibration | None = None   # from the clinic's grades, not yet written
        from ..core.site_calibration import MIN_GRADED_EYES, MIN_REFERABLE_EYES

        self.min_graded, self.min_referable = MIN_GRADED_EYES, MIN_REFERABLE_EYES
        self.setWindowTitle("Calibrate on this clinic's graded photographs")
        self.setMinimumSize(720, 520)
        self.labels = QListWidget()
        self.min_eyes = QSpinBox()
        self.min_eyes.setRange(10, 100_000)
        self.min_eyes.setValue(min_eyes)
        self.progress = QProgressBar(visible=False)
        self.status = QLabel("Add the labels file(s) of photographs your graders have graded (columns: file and "
                             "icdr_grade, or referable and urgent). One file per camera or site: the thresholds "
                             "must hold on each.", wordWrap=True)
        self.result = QTextBrowser()   # words and a table, not a wrapped monospace dump
        self.add_button, self.remove_button = QPushButton("Add labels file…"), QPushButton("Remove")
        self.run_button, self.use_button = QPushButton("Calibrate"), QPushButton("Use this operating point")
        self.from_database = QPushButton("From this clinic's grades")
        self.from_database.setToolTip("Re-screen the eyes your graders confirmed in this clinic's database and "
                                      "suggest thresholds (needs 100 graded eyes, 30 of them referable)")
        self.from_database.setEnabled(store is not None)
        self.close_button = QPushButton("Close")
        self.report_button = QPushButton("Open the report")
        self.use_button.setEnabled(False)
        self.report_button.setEnabled(False)
        self._wire()
        self._layout()

    def _wire(self) -> None:
        self.add_button.clicked.connect(self._add)
        self.remove_button.clicked.connect(lambda: [self.labels.takeItem(self.labels.row(i))
                                                    for i in self.labels.selectedItems()])
        self.run_button.clicked.connect(self.start)
        self.from_database.clicked.connect(self.start_from_database)
        self.use_button.clicked.connect(self._use)
        self.report_button.clicked.connect(self._open_report)
        self.close_button.clicked.connect(self.reject)
        self.engine.progress.connect(self._progress)
        self.engine.batchDone.connect(self._done)
        self.engine.failed.connect(self._failed)

    def _layout(self) -> None:
        box = QVBoxLayout(self)
        box.addWidget(self.status)
        row = QHBoxLayout()
        row.addWidget(self.labels, 1)
        side = QVBoxLayout()
        for w in (self.add_button, self.remove_button):
            side.addWidget(w)
        side.addWidget(QLabel("Fewest eyes:"))
        side.addWidget(self.min_eyes)
        side.addStretch(1)
        row.addLayout(side)
        box.addLayout(row)
        box.addWidget(self.progress)
        box.addWidget(self.result, 2)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.from_database)
        buttons.addStretch(1)
        buttons.addWidget(self.report_button)
        buttons.addWidget(self.use_button)
        buttons.addWidget(self.close_button)
        box.addLayout(buttons)

    def _add(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Choose labels files", "", "Labels (*.csv)")
        self.add_labels([Path(p) for p in paths])

    def add_labels(self, paths: list[Path]) -> None:
        """Add labels files (the Add button's work; tests call it directly)."""
        present = {self.labels.item(i).text() for i in range(self.labels.count())}
        for p in paths:
            if str(p) not in present:
                self.labels.addItem(str(p))

    def label_files(self) -> list[Path]:
        return [Path(self.labels.item(i).text()) for i in range(self.labels.count())]

    def start(self) -> int | None:
        """Send the calibration to the worker; returns its request ID (None: nothing to do)."""
        files = self.label_files()
        if not files or self.rid is not None:
            return None
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = self.folder / f"clinic-{stamp}.json"
        self.rid = self.engine.run_batch(calibration_job(files, out, self.min_eyes.value()))
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.status.setText("Screening the graded photographs…" if self.engine.ready else
                            "Waiting for the model to finish loading…")
        self._started()
        return self.rid

    def _started(self) -> None:
        self.result.clear()
        self.suggestion = None
        self.use_button.setText("Use this operating point")
        self.use_button.setEnabled(False)
        self._busy(True)

    def start_from_database(self) -> int | None:
        """Send the site calibration from the store's grades to the worker; returns its request ID."""
        if self.store is None or self.rid is not None:
            return None
        self.rid = self.engine.run_batch(site_calibration_job(self.site, self.site, self.min_graded,
                                                                self.min_referable))
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.status.setText("Screening again the photographs of the eyes your graders confirmed…"
                            if self.engine.ready else "Waiting for the model to finish loading…")
        self._started()
        return self.rid

    def may_apply(self) -> bool:
        """Whether the signed-in person may apply an operating point (anyone, without accounts)."""
        person = getattr(self.store, "person", None)
        return person is None or may(person.roles, Action.OPERATING_POINT)

    def _busy(self, on: bool) -> None:
        for w in (self.run_button, self.add_button, self.remove_button, self.min_eyes):
            w.setEnabled(not on)
        self.from_database.setEnabled(not on and self.store is not None)
        self.close_button.setText("Cancel" if on else "Close")

    @Slot(int, int, int, str)
    def _progress(self, rid: int, done: int, total: int, _what: str) -> None:
        if rid == self.rid and total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.status.setText(f"Screened {done} of {total} graded photographs…")

    def _ended(self, rid: int) -> bool:
        """True (and the dialog idle again) when ``rid`` is this dialog's calibration."""
        if rid != self.rid:
            return False
        self.rid = None
        self._busy(False)
        self.progress.setVisible(False)
        return True

    @Slot(int, object)
    def _done(self, rid: int, outcome: Any) -> None:
        if not self._ended(rid):
            return
        if outcome is None:
            self.status.setText("Calibration cancelled: nothing was saved.")
            return
        calibration, path = outcome
        if path is None:
            self._suggested(calibration)
            return
        self.result_path = Path(path)
        self.result.setHtml(result_html(calibration))
        self.status.setText(f"Saved {path.name} and its report {path.with_suffix('.pdf').name} in {path.parent}. "
                            "Read the report, then press \u201cUse this operating point\u201d to screen with it.")
        self.use_button.setEnabled(True)
        self.report_button.setEnabled(True)

    def _suggested(self, c: C.Calibration) -> None:
        self.suggestion = c
        self.result.setHtml(site_suggestion_html(c))
        self.use_button.setText("Apply for the clinic")
        self.use_button.setEnabled(self.may_apply())
        self.status.setText("A suggestion: nothing is written until it is applied. " +
                            ("Apply saves the file and its report; Settings' OK then makes it the clinic's "
                             "point (audited)." if self.may_apply() else "Only an admin can apply it."))

    @Slot(int, str)
    def _failed(self, rid: int, message: str) -> None:
        if self._ended(rid):
            self.status.setText(f"Calibration not made: {message}")

    def _open_report(self) -> None:
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        if self.result_path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.result_path.with_suffix(".pdf"))))

    def _use(self) -> None:
        if self.suggestion is not None:
            self.apply_suggestion()
            return
        if self.result_path is not None:
            self.chosen.emit(str(self.result_path))
            self.accept()

    def apply_suggestion(self) -> Path | None:
        """An admin applies the suggestion: OP.json and its report written as by ``calibrate
        --from-database``, the calibration audited, the point chosen; anyone else is refused
        and nothing is written. Returns the file written."""
        from ..core.calibration_report import write_calibration_report
        from ..core.site_calibration import record_site_calibration
        from ..core.store import AccessRefused

        c = self.suggestion
        if c is None:
            return None
        try:
            self.store.require(Action.OPERATING_POINT)
        except AccessRefused as exc:
            self.use_button.setEnabled(False)
            self.status.setText(f"Not applied: {exc}. Only an admin can apply an operating point.")
            return None
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = self.folder / f"{self.site}-grades-{stamp}.json"
        C.write_operating_point(c, out)
        write_calibration_report(c, out.with_suffix(".pdf"))
        record_site_calibration(self.store, None, self.site, out, c)
        self.result_path, self.suggestion = out, None
        self.chosen.emit(str(out))
        self.accept()
        return out

    def reject(self) -> None:
        """Close, or cancel a calibration in progress (nothing is saved then)."""
        if self.rid is not None:
            self.engine.cancel(self.rid)
            self.status.setText("Cancelling…")
            return
        super().reject()

    def done(self, result: int) -> None:  # noqa: D401 - Qt's name
        """Disconnect from the engine when the dialog closes."""
        for signal, slot in ((self.engine.progress, self._progress), (self.engine.batchDone, self._done),
                             (self.engine.failed, self._failed)):
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):
                pass
        super().done(result)

