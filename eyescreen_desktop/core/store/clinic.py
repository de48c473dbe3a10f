"""The clinic database as one object: :class:`ClinicStore` composes the package's parts.

Kept apart from the package's ``__init__`` so that importing ``core.store``
(for a name, an exception class, the ``--database`` option) does not import
SQLAlchemy; opening a store does.
"""

from __future__ import annotations

from pathlib import Path

from .accounts import Accounts
from .audit import AuditLog
from .base import Clock, StoreBase
from .batches import BatchLedger
from .grades import GradeStore
from .images import ImageStore
from .patients import PatientStore
from .results import ResultStore
from .workstations import SharedClinic


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
