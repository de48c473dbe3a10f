"""Stop an ``eyescreen`` subprocess at an exact point of a batch, instead of racing it.

A ``sitecustomize`` module on the subprocess's PYTHONPATH wraps
``BatchLedger.record_batch_file`` (the commit of one screened photograph): after
the ``after``-th commit the process either kills itself with SIGKILL (a power cut
at a known moment) or pauses until the test creates a ``go`` file (so the test can
restart the database server under it). The tests then know exactly how many
photographs were committed; nothing depends on timing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

HOOK = '''
import os, signal, time
from pathlib import Path
from eyescreen_desktop.core.store import batches

_AFTER, _ACTION, _DIR = {after!r}, {action!r}, Path({folder!r})
_record = batches.BatchLedger.record_batch_file
_done = [0]


def record_batch_file(self, *args, **kwargs):
    out = _record(self, *args, **kwargs)
    _done[0] += 1
    if _done[0] == _AFTER:
        if _ACTION == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        (_DIR / "paused").touch()
        while not (_DIR / "go").exists():
            time.sleep(0.05)
    return out


batches.BatchLedger.record_batch_file = record_batch_file
'''


def stopping_env(env: dict[str, str], folder: Path, after: int, action: str) -> dict[str, str]:
    """``env`` for a subprocess that kills itself (``action="kill"``) or pauses
    (``"pause"``) right after committing its ``after``-th photograph."""
    assert action in ("kill", "pause")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(HOOK.format(after=after, action=action, folder=str(folder)),
                                             encoding="utf-8")
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH", "")]))}


def wait_paused(proc: subprocess.Popen, folder: Path, log: Path) -> None:
    """Until the paused subprocess says so (or has ended, which fails with its log)."""
    while not (folder / "paused").exists():
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass


def resume(folder: Path) -> None:
    (folder / "go").touch()
