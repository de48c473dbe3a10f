"""Issue 24: after a relaunch the window offers an interrupted folder batch again;
the batch ledger says which batches started and never finished, on SQLite and on
PostgreSQL."""

from __future__ import annotations

from eyescreen_desktop.core.paths import DataPaths
from eyescreen_desktop.core.store import ClinicStore


def test_unfinished_folder_batches_are_listed_and_finished_or_camera_ones_are_not(tmp_path, database_url):
    with ClinicStore.open(DataPaths(tmp_path / "data"), database_url) as store:
        assert store.interrupted_batches() == []
        store.begin_batch("k-stopped", "icdr-ada", "a" * 64, ["/clinic/monday"])
        store.begin_batch("k-done", "icdr-ada", "a" * 64, ["/clinic/tuesday"])
        store.finish_batch("k-done")
        store.begin_batch("hot-camera", "icdr-ada", "a" * 64, ["/clinic/camera"])
        found = store.interrupted_batches()
        assert [(b.batch_key, b.inputs, b.protocol, b.files_done) for b in found] == [
            ("k-stopped", ("/clinic/monday",), "icdr-ada", 0)]
        store.finish_batch("k-stopped")            # resumed and finished: no longer offered
        assert store.interrupted_batches() == []
