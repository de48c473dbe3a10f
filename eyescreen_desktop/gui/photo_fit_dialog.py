"""Before a photograph is filed: is it this eye, and this patient's? Ask when it looks not.

The window (desk: opened or dropped files, and camera captures F5/F6) runs
:func:`core.photo_fit.check_photo` on each photograph before it is stored. A
photograph whose optic disc confidently says the other eye, or whose file name
carries another patient's ID, is held and a window-modal question is asked:

* **Store as the <filed> eye anyway** (the nurse knows better: e.g. an inverted camera),
* **Store as the <other> eye** (only when the disc disagrees),
* **Do not store** (the file or the patient was wrong).

The answer is recorded in the audit log (``ClinicStore.record_photo_check``)
with the check's numbers, then the photograph is screened under the chosen eye
or dropped. Photographs with nothing to say go straight on, as before.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QAbstractButton, QMessageBox, QWidget

from ..core.imageio import ImageReadError, read_image
from ..core.photo_fit import PhotoFit, check_photo, prepare_checks
from ..core.records import Eye
from ..core.screening import ScreenItem
from .worker import run_in_background

log = logging.getLogger(__name__)

CHECK_SIDE = 512        # decode size for the check (the disc is found on a 128 px square)
STORE_ANYWAY, CHANGE_EYE, CANCEL = "store anyway", "change eye", "cancel"


class PhotoFitDialog(QMessageBox):
    """The question for one photograph; ``answer`` / ``eye`` once a button was pressed."""

    def __init__(self, fit: PhotoFit, parent: QWidget | None = None):
        super().__init__(QMessageBox.Icon.Warning, "Check this photograph before it is stored",
                         "\n\n".join(fit.sentences()), QMessageBox.StandardButton.NoButton, parent)
        self.setObjectName("photoFitDialog")
        self.fit = fit
        self.answer, self.eye = "", fit.filed_eye
        filed = fit.filed_eye.label if fit.filed_eye is not Eye.UNKNOWN else "photograph"
        self.setInformativeText(f"Store it as the {filed} of patient {fit.patient_id} anyway, "
                                + ("store it as the other eye, " if fit.other_eye else "")
                                + "or do not store it. Your answer is recorded.")
        self.anyway_button = self.addButton(f"Store as the {filed} anyway", QMessageBox.ButtonRole.AcceptRole)
        self.change_button: QAbstractButton | None = None
        if fit.other_eye:
            self.change_button = self.addButton(f"Store as the {fit.suggested_eye.label}",
                                                QMessageBox.ButtonRole.AcceptRole)
        self.cancel_button = self.addButton("Do not store", QMessageBox.ButtonRole.RejectRole)
        # Enter never files it wrongly: the disc's side when only the side is in doubt, else "do not store"
        self.setDefaultButton(self.cancel_button if fit.other_patient or self.change_button is None
                              else self.change_button)
        self.setEscapeButton(self.cancel_button)
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.buttonClicked.connect(self._clicked)

    def _clicked(self, button: QAbstractButton) -> None:
        if button is self.anyway_button:
            self.answer = STORE_ANYWAY
        elif button is self.change_button:
            self.answer, self.eye = CHANGE_EYE, self.fit.suggested_eye
        else:
            self.answer = CANCEL


CHECKED_AT_ONCE = 2
"""Photographs checked on the GUI thread when opened together (a patient's two eyes,
about 30 ms). Of a larger drop only the first is checked there (one check, 15-35 ms,
so the screening starts at once) and the rest on the background helper."""


class PhotoFitGuard(QObject):
    """Checks the window's photographs before they are filed and asks about the doubtful
    ones, one question at a time. ``store`` records the answers; ``dialog`` is the
    question on show (None when none is)."""

    def __init__(self, store: Any, parent: QWidget):
        super().__init__(parent)
        self.store, self._parent = store, parent
        self.dialog: PhotoFitDialog | None = None
        self._waiting: deque[tuple[PhotoFit, Callable[[Eye], None]]] = deque()
        self._later: dict[int, Callable[[list[ScreenItem]], Any]] = {}   # background checks not yet answered
        self._ticket = 0

    def files(self, items: Sequence[ScreenItem], patient_id: str,
              screen: Callable[[list[ScreenItem]], Any]) -> list[ScreenItem]:
        """The items to screen now; the others are asked about, and ``screen([item])``
        runs for each once the answer says to store it.

        Each check decodes its photograph (about 14 ms for a 1024-px one), so a patient's
        two eyes (:data:`CHECKED_AT_ONCE`) are checked here, on the GUI thread, but of a
        larger drop only the first is; the rest are checked on the background helper and
        ``screen(items)`` runs for those that pass when the answer comes back (the
        doubtful ones are asked about as usual), so the window never freezes."""
        at_once = len(items) if len(items) <= CHECKED_AT_ONCE else 1
        first, rest = list(items[:at_once]), list(items[at_once:])
        # the first ones before the rest's checks start: on two cores they would share the CPU
        checked = [(item, _checked(_decoded(item.path), item.eye, patient_id, item.path.name)) for item in first]
        if rest:
            self._ticket += 1
            self._later[self._ticket] = screen
            ticket = self._ticket

            def check_rest() -> tuple[int, list[tuple[ScreenItem, PhotoFit | None]]]:
                return ticket, [(item, _checked(_decoded(item.path), item.eye, patient_id, item.path.name))
                                for item in rest]

            run_in_background(check_rest, self._rest_checked, lambda message: self._rest_failed(ticket, rest, message))
        return self._sorted(checked, screen)

    def prepare(self) -> None:
        """Read the laterality card and warm the checks on the background helper (the
        window calls it as it starts): else the first drop's check would pay ~200 ms of
        first-time work on the GUI thread. A card that cannot be read is said then, by
        the first check (``_checked``), as before."""
        run_in_background(prepare_checks, lambda _model: None,
                          lambda message: log.warning("photograph checks not prepared: %s", message))

    @property
    def checking(self) -> bool:
        """Photographs of a large drop are still being checked in the background."""
        return bool(self._later)

    def _sorted(self, checked: list[tuple[ScreenItem, PhotoFit | None]],
                screen: Callable[[list[ScreenItem]], Any]) -> list[ScreenItem]:
        """The checked items that may be screened now; the doubtful ones are asked about."""
        now = []
        for item, fit in checked:
            if fit is None or not fit.warnings:
                now.append(item)
            else:
                self._ask(fit, lambda eye, path=item.path: screen([ScreenItem(path, eye)]))
        return now

    def _rest_checked(self, result: tuple[int, list[tuple[ScreenItem, PhotoFit | None]]]) -> None:
        ticket, checked = result
        screen = self._later.pop(ticket, None)
        if screen is not None and (now := self._sorted(checked, screen)):
            screen(now)

    def _rest_failed(self, ticket: int, rest: list[ScreenItem], message: str) -> None:
        """A check that cannot run lets the photographs through, as ``_checked`` does: screened, not lost."""
        log.error("photograph checks failed in the background (%s): screening them unchecked", message)
        screen = self._later.pop(ticket, None)
        if screen is not None:
            screen(rest)

    def frame(self, rgb: np.ndarray, eye: Eye, patient_id: str, screen: Callable[[np.ndarray, Eye], Any]) -> bool:
        """True when the camera frame may be screened now; else it is asked about and
        ``screen(rgb, eye)`` runs once the answer says to store it."""
        fit = _checked(rgb, eye, patient_id, "")
        if fit is None or not fit.warnings:
            return True
        self._ask(fit, lambda chosen: screen(rgb, chosen))
        return False

    def clear(self) -> None:
        """Next patient: questions not yet asked are dropped (nothing of them is stored)."""
        self._waiting.clear()

    def _ask(self, fit: PhotoFit, then: Callable[[Eye], None]) -> None:
        log.warning("photograph check for %s: %s", fit.patient_id, fit.note())
        self._waiting.append((fit, then))
        if self.dialog is None:
            self._next()

    def _next(self) -> None:
        if not self._waiting:
            self.dialog = None
            return
        fit, then = self._waiting.popleft()
        dialog = PhotoFitDialog(fit, self._parent)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.finished.connect(lambda _result: self._answered(dialog, then))
        self.dialog = dialog
        dialog.open()

    def _answered(self, dialog: PhotoFitDialog, then: Callable[[Eye], None]) -> None:
        answer = dialog.answer or CANCEL
        details = dialog.fit.details(answer)
        details["stored_as"] = "" if answer == CANCEL else dialog.eye.value
        try:
            self.store.record_photo_check(dialog.fit.patient_id, details)
        except Exception:       # the question was answered: a failed audit write must not lose the photograph
            log.exception("could not record the photograph check's answer")
        if answer != CANCEL:
            then(dialog.eye)
        self._next()


def _checked(rgb: np.ndarray | None, eye: Eye, patient_id: str, name: str) -> PhotoFit | None:
    """The checks, or None (logged) when they cannot run (no laterality card: a damaged
    install): the photograph is then screened as before rather than lost."""
    try:
        return check_photo(rgb, eye, patient_id, name)
    except (OSError, ValueError, KeyError):
        log.exception("photograph check skipped for %s", name or "a camera capture")
        return None


def _decoded(path: Any) -> np.ndarray | None:
    """The photograph for the check, or None when it cannot be read (the screening
    that follows says why, naming the file)."""
    try:
        return read_image(path, max_side=CHECK_SIDE)
    except (ImageReadError, OSError, ValueError):
        return None
