"""The one "batch cancelled" signal shared by the command-line batch and the
window's worker, in a module of its own so the window can catch it without
importing the batch (which would slow its start)."""

from __future__ import annotations


class BatchCancelled(Exception):
    """The batch was cancelled (Cancel pressed, or ``cancelled()`` said so), raised at
    the next file or step: what was screened stays saved and queued, and a rerun of
    the same batch finishes the rest."""
