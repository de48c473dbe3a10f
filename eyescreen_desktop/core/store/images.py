"""The managed image store: a copy of every photograph, named by its SHA-256."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

from ..roles import Action
from ..records import Eye
from .engine import Db
from .base import StoreBase
from .rows import _file_size

log = logging.getLogger(__name__)


class ImageStore(StoreBase):
    """Photographs: one row and one stored copy per content hash, linked to encounters."""

    def add_image(self, encounter_id: str, path: Path | str, sha256: str, eye: Eye = Eye.UNKNOWN,
                  user: str | None = None, copy: bool = True) -> int:
        """Attach a photograph to an encounter; returns its image ID.

        The image is recognised by ``sha256``: a photograph seen before reuses its
        row and stored copy, and attaching it twice to one encounter is a no-op.
        ``copy`` puts a copy in the managed image store (named by the hash) so the
        record survives the camera card being wiped. A file that could not be read
        at all (``sha256`` empty) still gets a row, so its error is on record.
        """
        self.require(Action.SCREEN)
        stored = self._copy_into_store(Path(path), sha256) if (copy and sha256) else None
        return self._link_image(encounter_id, str(path), sha256, Eye(eye), user, stored)[0]

    def _link_image(self, encounter_id: str, path: str, sha256: str, eye: Eye, user: str | None,
                    stored: str | None) -> tuple[int, int]:
        """(image_id, encounter_image_id), creating what is missing."""
        with self._tx() as db:
            image_id = self._image_row(db, path, sha256, stored, user)
            link = db.execute("SELECT encounter_image_id FROM encounter_images WHERE encounter_id = ? "
                              "AND image_id = ?", (encounter_id, image_id)).fetchone()
            if link is not None:
                return image_id, int(link[0])
            link_id = int(db.execute(
                "INSERT INTO encounter_images (encounter_id, image_id, eye, original_path, added_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING encounter_image_id",
                (encounter_id, image_id, eye.value, path, self._now())).fetchone()[0])
            self._audit(db, user, "image added", f"encounter:{encounter_id}",
                        {"image_id": image_id, "eye": eye.value, "path": path})
            return image_id, link_id

    def _image_row(self, db: Db, path: str, sha256: str, stored: str | None,
                   user: str | None) -> int:
        if sha256:
            row = db.execute("SELECT image_id, stored_name FROM images WHERE sha256 = ?", (sha256,)).fetchone()
            if row is not None:
                if stored and not row["stored_name"]:
                    db.execute("UPDATE images SET stored_name = ? WHERE image_id = ?", (stored, row["image_id"]))
                return int(row["image_id"])
        size = _file_size(Path(path))
        image_id = int(db.execute("INSERT INTO images (sha256, original_path, stored_name, size_bytes, added_at) "
                                  "VALUES (?, ?, ?, ?, ?) RETURNING image_id",
                                  (sha256 or None, path, stored, size, self._now())).fetchone()[0])
        self._audit(db, user, "image stored", f"image:{image_id}",
                    {"sha256": sha256, "path": path, "stored_name": stored})
        return image_id

    def _copy_into_store(self, source: Path, sha256: str) -> str | None:
        """Copy the file into the image store as ``ab/<sha256><suffix>`` (atomic; the
        bytes are checked against the hash so the store never holds a wrong copy)."""
        name = f"{sha256[:2]}/{sha256}{source.suffix.lower()}"
        dest = self.image_store / name
        if dest.is_file():
            return name
        try:
            data = source.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha256:
                log.warning("%s changed while being screened; not copied into the image store", source)
                return None
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, dest)
            return name
        except OSError as exc:
            log.warning("could not copy %s into the image store: %s", source, exc)
            return None

    def image_file(self, sha256: str) -> Path | None:
        """The managed copy of a photograph, or None when there is none."""
        rows = self._query("SELECT stored_name FROM images WHERE sha256 = ?", (sha256,))
        if not rows or not rows[0]["stored_name"]:
            return None
        path = self.image_store / rows[0]["stored_name"]
        return path if path.is_file() else None
