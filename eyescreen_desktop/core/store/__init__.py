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
sessions; every guarded service calls ``require(action)``), ``grades`` (human grades, arbitration, QA draws)
and ``rows`` (rows <-> records); :class:`ClinicStore` itself lives in ``clinic``, ``names`` holds what
names the database without opening it.

Importing this package costs nothing: each name below loads its module (and
SQLAlchemy with it) when it is first used, so the window is painted before the
database driver is imported (``gui.app`` opens the store after the first paint).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module of this package that defines it (loaded on first use)
_HOMES: dict[str, str] = {
    "AuditEntry": "audit", "AuditLog": "audit",
    "BUSY_TIMEOUT_MS": "engine", "StoreError": "names",
    "Clock": "base", "FixedClock": "base", "StoreBase": "base", "SystemClock": "base", "default_user": "names",
    "fold_text": "base", "search_text": "base",
    "BatchFileRow": "batches", "BatchLedger": "batches", "InterruptedBatch": "batches",
    "AccessRefused": "refusals", "Accounts": "accounts", "NotSignedIn": "refusals", "PasswordRefused": "refusals",
    "Person": "accounts", "RoleRefused": "refusals", "SignInRefused": "refusals",
    "EncounterGrading": "grades", "GradeConflict": "grades", "GradeStore": "grades", "QaDraw": "grades",
    "ClinicStore": "clinic",
    "ENV_VAR": "names", "IMAGE_STORE_VAR": "names", "PAGE_ROWS": "names", "add_database_argument": "names",
    "database_url": "names",
    "ImageStore": "images",
    "SOURCES": "patients", "PatientStore": "patients",
    "QueueViews": "queue_views",
    "QueueConflict": "workstations", "SharedClinic": "workstations", "claimant": "workstations",
    "workstation": "workstations",
    "STATES": "results", "ResultStore": "results",
    "HEATMAP_SIDE": "rows", "decode_heatmap": "rows", "encode_heatmap": "rows",
    "MIGRATIONS": "schema", "SCHEMA_VERSION": "schema",
}

__all__ = [   # every name of _HOMES
    "AccessRefused",
    "Accounts",
    "EncounterGrading",
    "GradeConflict",
    "GradeStore",
    "InterruptedBatch",
    "NotSignedIn",
    "PasswordRefused",
    "Person",
    "QaDraw",
    "RoleRefused",
    "SignInRefused",
    "BUSY_TIMEOUT_MS",
    "ENV_VAR",
    "HEATMAP_SIDE",
    "IMAGE_STORE_VAR",
    "MIGRATIONS",
    "PAGE_ROWS",
    "SCHEMA_VERSION",
    "SOURCES",
    "STATES",
    "AuditEntry",
    "AuditLog",
    "BatchFileRow",
    "BatchLedger",
    "ClinicStore",
    "Clock",
    "FixedClock",
    "ImageStore",
    "PatientStore",
    "QueueConflict",
    "QueueViews",
    "ResultStore",
    "SharedClinic",
    "StoreBase",
    "StoreError",
    "SystemClock",
    "add_database_argument",
    "claimant",
    "database_url",
    "decode_heatmap",
    "default_user",
    "encode_heatmap",
    "fold_text",
    "search_text",
    "workstation",
]


def __getattr__(name: str) -> Any:
    """Load the module that defines ``name`` on first use (PEP 562), and keep it."""
    home = _HOMES.get(name)
    try:
        value = getattr(importlib.import_module(f".{home}", __name__), name) if home else \
            importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if home or exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


if TYPE_CHECKING:  # what type checkers see: the same names, imported eagerly
    from .accounts import Accounts, Person
    from .refusals import AccessRefused, NotSignedIn, PasswordRefused, RoleRefused, SignInRefused
    from .audit import AuditEntry, AuditLog
    from .base import Clock, FixedClock, StoreBase, SystemClock, fold_text, search_text
    from .batches import BatchFileRow, BatchLedger, InterruptedBatch
    from .clinic import ClinicStore
    from .engine import BUSY_TIMEOUT_MS
    from .names import StoreError
    from .grades import EncounterGrading, GradeConflict, GradeStore, QaDraw
    from .images import ImageStore
    from .names import (
        ENV_VAR,
        IMAGE_STORE_VAR,
        PAGE_ROWS,
        add_database_argument,
        database_url,
        default_user,
    )
    from .patients import SOURCES, PatientStore
    from .queue_views import QueueViews
    from .results import STATES, ResultStore
    from .rows import HEATMAP_SIDE, decode_heatmap, encode_heatmap
    from .schema import MIGRATIONS, SCHEMA_VERSION
    from .workstations import QueueConflict, SharedClinic, claimant, workstation
