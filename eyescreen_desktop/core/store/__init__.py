"""The clinic database: patients, encounters, images, results, queues and the audit log.

One SQLite file in the user's data folder (``DataPaths.database``), or a clinic's
PostgreSQL server shared by several workstations (``--database URL``,
``EYESCREEN_DATABASE_URL``; :mod:`.engine`), plus a managed image store
(``DataPaths.image_store`` or ``EYESCREEN_IMAGE_STORE``) holding a copy of every
photograph, named by the SHA-256 of its bytes. Why it looks the way it does:

* **Recognise, never duplicate.** An image row is unique by content hash; the
  same photograph screened twice links to the one image row (and its one stored
  copy), and a result already computed for it with the same model and protocol
  can be reused (:meth:`ClinicStore.result_for`).
* **Crash-safe.** WAL journal, ``synchronous=FULL`` and one transaction per
  image result: a process killed mid-batch (``kill -9``) leaves every finished
  image committed and nothing half-written, so running the batch again finishes
  it (see ``batch.py``: batches and ``batch_files``).
* **Traceable.** Every change writes an audit row (who, when, action, entity,
  details, workstation) in the same transaction as the change, chained to the
  one before (:mod:`.chain`). Who: the signed-in person on a database with
  accounts, else ``user`` or the operating-system user name.
* **Upgradable.** Alembic migrations (:mod:`.migrate`, ``migrations/``) create
  and upgrade the schema on both engines; a SQLite file from before them is
  brought up by the hand-written ``schema.MIGRATIONS`` list (after a backup copy)
  and stamped. A database from a newer EyeScreen is refused with a clear message.

Threads: one connection opened with ``check_same_thread=False`` and every
method serialised by one re-entrant lock, so the GUI thread and the screening
worker may share a ``ClinicStore``; each call is short (milliseconds). Other
processes (a CLI batch while the window is open) can read concurrently thanks
to WAL; writers wait up to ``BUSY_TIMEOUT_MS``.

The package, one module per responsibility, composed by :class:`ClinicStore`:
``base`` (connection, transactions, migrations, audit rows), ``schema``,
``patients`` (patients and encounters), ``images`` (the image store),
``results`` (results and queues), ``queue_views`` (queue views page by page), ``batches`` (the batch ledger), ``audit``
(reading, verifying and exporting the log), ``chain`` (its hash chain), ``accounts`` (people, roles, sign-in,
sessions; every guarded service calls ``require(action)``) and ``rows`` (rows <-> records).
"""

from __future__ import annotations

from pathlib import Path

from .accounts import (AccessRefused, Accounts, NotSignedIn, PasswordRefused, Person, RoleRefused,
                       SignInRefused)
from .audit import AuditEntry, AuditLog
from .base import (
    BUSY_TIMEOUT_MS,
    Clock,
    FixedClock,
    StoreBase,
    StoreError,
    SystemClock,
    default_user,
    fold_text,
    search_text,
)
from .batches import BatchFileRow, BatchLedger, InterruptedBatch
from .grades import EncounterGrading, GradeConflict, GradeStore, QaDraw
from .engine import ENV_VAR, add_database_argument, database_url
from .images import ImageStore
from .patients import SOURCES, PatientStore
from .queue_views import PAGE_ROWS
from .workstations import QueueConflict, SharedClinic, claimant, workstation
from .results import STATES, ResultStore
from .rows import HEATMAP_SIDE, decode_heatmap, encode_heatmap
from .schema import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "AccessRefused", "NotSignedIn", "PasswordRefused", "Person", "RoleRefused", "SignInRefused",
    "AuditEntry", "BUSY_TIMEOUT_MS", "BatchFileRow", "ClinicStore", "Clock", "FixedClock", "InterruptedBatch",
    "SystemClock", "ENV_VAR", "QueueConflict", "claimant", "workstation", "add_database_argument", "database_url",
    "HEATMAP_SIDE", "MIGRATIONS", "PAGE_ROWS",
    "EncounterGrading", "GradeConflict", "QaDraw",
    "SCHEMA_VERSION", "SOURCES", "STATES", "StoreError", "decode_heatmap", "default_user", "encode_heatmap",
    "fold_text", "search_text",
]


class ClinicStore(GradeStore, BatchLedger, SharedClinic, ResultStore, PatientStore, ImageStore, Accounts, AuditLog,
                  StoreBase):
    """The clinic database. Pass it to whoever needs it (GUI, worker, batch,
    reports); use as a context manager or call :meth:`close`."""

    def __init__(self, path: Path | str, image_store: Path | str | None = None, repair: bool = True,
                 clock: Clock | None = None):
        """Open (creating or upgrading) the database at ``path``; ``repair`` queues
        encounters left with results and no queue entry (:meth:`repair_queues`);
        ``clock`` gives every timestamp and "today" (the system clock)."""
        super().__init__(path, image_store, clock)
        if repair:
            self.repair_queues()
