"""One path from a screened photograph to the clinic database, for the desk, the camera
folder and the batch alike.

The model named on the saved row is taken from the result itself
(:meth:`Screener.model_info`: the eye-check model for a photograph of the front of the
eye, the DR grader otherwise), never from whichever classifier the caller holds: a
caller that passed its grader's identity once recorded eye-check results as DR grades.
"""

from __future__ import annotations

from typing import Any, Protocol

from .records import EyeResult, ModelInfo, OperatingPoint


class _Screener(Protocol):
    """What :func:`record` needs of a ``core.screening.Screener``."""

    protocol: Any
    operating_point: OperatingPoint | None

    def model_info(self, result: EyeResult) -> ModelInfo: ...


def record(store: Any, screener: _Screener, encounter_id: str, result: EyeResult, user: str | None = None,
           batch: tuple[str, str] | None = None) -> int:
    """Save ``result`` under ``encounter_id`` and queue its encounter, in one transaction.

    ``batch`` is ``(batch key, file name)`` for a batch or camera-folder file, which is
    then also marked done in its batch. Returns the result's row ID."""
    model = screener.model_info(result)
    if batch is None:
        return int(store.save_result(encounter_id, result, model, screener.protocol.name,
                                     screener.operating_point, user))
    key, file = batch
    return int(store.record_batch_file(key, file, encounter_id, result, model, screener.protocol.name,
                                       screener.operating_point, user))
