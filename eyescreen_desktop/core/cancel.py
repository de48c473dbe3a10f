"""The one "batch cancelled" signal shared by the command-line batch and the
window's worker, in a module of its own so the window can catch it without
importing the batch (which would slow its start); and the one check that raises it
between the steps of every phase of a batch (screening, queueing, results.csv, PDFs)."""

from __future__ import annotations

from typing import Callable


class BatchCancelled(Exception):
    """The batch was cancelled (Cancel pressed, or ``cancelled()`` said so), raised at
    the next file or step: what was screened stays saved and queued, and a rerun of
    the same batch finishes the rest."""


def _check(cancelled: Callable[[], bool] | None) -> None:
    """Raise BatchCancelled when asked to stop: called between steps of every phase."""
    if cancelled is not None and cancelled():
        raise BatchCancelled("batch cancelled: what was screened is saved and queued")
