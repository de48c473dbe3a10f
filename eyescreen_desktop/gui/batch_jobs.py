"""The work the batch panel hands to the screening worker thread.

Both jobs take the worker's :class:`~eyescreen_desktop.gui.worker.BatchContext`
(the loaded model, the clinic store, progress and the cancel flag) and use only
the Qt-free engine, so they never touch a widget:

* :func:`folder_job` screens a chosen folder with ``core.batch.run_batch``, the
  very code behind ``eyescreen screen`` (results.csv, documents, summary,
  resumable). Cancelling is checked in every phase (screening, queueing, CSV,
  each PDF); every result screened was saved and queued in one transaction, so
  what was done shows in the queues, and screening the same folder again
  resumes where it stopped.
* :func:`hot_folder_job` screens the files a fundus camera wrote into a watched
  folder. All files of one folder, protocol and model on one day form one
  batch, so a patient's right and left eye photographed a minute apart land in
  the same encounter, while the same patient next year gets a new one. What is
  still to do comes from the database (:func:`pending_hot_files`), never from
  memory: a file is done only once its result is committed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

from ..core.cancel import BatchCancelled
from ..core.photo_fit import noted_result
from ..core.protocol import Protocol, get_protocol
from ..core.records import Eye, EyeResult, ModelInfo, OperatingPoint
from ..core.recording import record
from ..core.screening import Screener, ScreenItem, site_gate
from .worker import BatchContext

Job = Callable[[BatchContext], Any]


@dataclass(frozen=True)
class HotFolderOutcome:
    """What one hot-folder job screened: per file, its patient and result."""

    files: tuple[tuple[str, str, EyeResult], ...]   # (file relative to the folder, patient ID, result)
    encounter_ids: tuple[str, ...]


def queue_encounters(store: Any, encounter_ids: Sequence[str], protocol: Protocol | None = None,
                     user: str | None = None) -> None:
    """Queue encounters by the one rule (``core.batch.queue_batch_encounters``:
    current photograph per eye, never annual without both eyes or a recorded
    reason). ``protocol`` is ignored: each encounter keeps its own."""
    from ..core.batch import queue_batch_encounters   # core.batch opens stores: imported after the first paint

    queue_batch_encounters(store, encounter_ids, user)


def folder_job(folder: Path, out_dir: Path, protocol: str = "icdr-ada", pdf: bool = True,
               user: str | None = None, operating_point: OperatingPoint | str | None = None) -> Job:
    """A job screening ``folder`` into the store and ``out_dir`` (a BatchReport back), at the
    clinic's chosen ``operating_point`` (None: the model card's default)."""

    def job(ctx: BatchContext) -> Any:
        from ..core.batch import batch_key, resolve_inputs, run_batch

        try:
            return run_batch([folder], out_dir, model=ctx.classifier, protocol=protocol, pdf=pdf,
                             progress=ctx.progress_or_stop, store=ctx.store, user=user, decode_workers=1,
                             cancelled=ctx.cancelled, operating_point=operating_point)
        except BatchCancelled:
            key = batch_key(resolve_inputs([folder]), protocol, ctx.classifier.info.sha256,
                            operating_point if isinstance(operating_point, OperatingPoint) else None)
            queue_encounters(ctx.store, ctx.store.batch_encounters(key), None, user)
            raise BatchCancelled() from None

    return job


def hot_batch_key(folder: Path, protocol: str, model: ModelInfo, day: dt.date) -> str:
    """One batch per watched folder, protocol, model and day."""
    blob = json.dumps({"hot_folder": str(Path(folder).resolve()), "protocol": protocol,
                       "model": model.sha256, "day": day.isoformat()}, sort_keys=True)
    return "hot-" + hashlib.sha256(blob.encode()).hexdigest()[:28]


def file_patient(folder: Path, path: Path) -> tuple[str, str, Eye]:
    """(name relative to the folder, patient ID, eye) by the batch command's rules:
    ``<patient>_<L|R|OD|OS>.jpg``, else a per-patient sub-folder, else the group
    "no patient ID in the file name" (never a patient named after the file)."""
    from ..core.batch import file_patient_and_eye

    rel = PurePosixPath(Path(path).relative_to(folder).as_posix())
    return (rel.as_posix(), *file_patient_and_eye(rel, None))


def folder_identity(folder: Path) -> str:
    """How the store names a watched folder (its resolved path)."""
    return str(Path(folder).resolve())


def pending_hot_files(store: Any, folder: Path, candidates: Sequence[Path]) -> list[Path]:
    """Those of ``candidates`` (complete files in the watched ``folder``) that have no
    result on record in any of the folder's camera batches: asked of the database,
    so a failed job is retried, a stop loses nothing, and a photograph that arrived
    while EyeScreen was closed is screened at the next start."""
    names = {file_patient(folder, p)[0]: p for p in candidates}
    done = store.hot_folder_done(folder_identity(folder), list(names))
    return sorted(p for name, p in names.items() if name not in done)


def hot_folder_job(folder: Path, files: Sequence[Path], protocol: str = "icdr-ada",
                   operating_point: OperatingPoint | str | None = None, user: str | None = None,
                   today: Callable[[], dt.date] = dt.date.today) -> Job:
    """A job screening new ``files`` of the watched ``folder`` (a HotFolderOutcome back).
    Files already on record (screened by an earlier job) are skipped; each result is
    saved, queued and marked done in one transaction."""

    def job(ctx: BatchContext) -> HotFolderOutcome:
        store, proto = ctx.store, get_protocol(protocol)
        screener = Screener(ctx.classifier, proto, operating_point or None, decode_workers=1, batch_size=4,
                            gate=site_gate(store.applied_quality_threshold()))
        info = ctx.classifier.info
        key = hot_batch_key(folder, proto.name, info, today())
        if store.batch_started_at(key) is None:
            store.begin_batch(key, proto.name, info.sha256, [folder_identity(folder)], user)
        todo = pending_hot_files(store, folder, files)
        planned = [(p, *file_patient(folder, p)) for p in todo]
        screened: list[tuple[str, str, EyeResult]] = []
        encounters: dict[str, str] = {}
        stream = screener.screen(ScreenItem(path, eye) for path, _rel, _pid, eye in planned)
        try:
            for n, ((path, rel, pid, _eye), result) in enumerate(zip(planned, stream), 1):
                result = noted_result(result, path, pid, rel)   # other eye / patient: noted in results, not asked
                store.ensure_patient(pid, user)
                eid = encounters.get(pid) or store.batch_encounter(key, pid, proto.name, None, user)
                encounters[pid] = eid
                record(store, screener, eid, result, user, batch=(key, rel))
                screened.append((rel, pid, result))
                ctx.result(result)
                ctx.progress_or_stop(n, len(planned), rel)
        finally:
            stream.close()
        return HotFolderOutcome(tuple(screened), tuple(dict.fromkeys(encounters.values())))

    return job
