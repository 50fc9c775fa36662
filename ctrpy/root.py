"""The root directory: where it is, and the stores inside it.

``ROOT`` comes from ``--root``, else ``$CTRPY_ROOT``, else ``/var/lib/ctrpy`` for root and
``$XDG_DATA_HOME/ctrpy`` (``~/.local/share/ctrpy``) for everyone else.
"""

from __future__ import annotations

import os
from pathlib import Path

from ctrpy.content.blobs import BlobStore
from ctrpy.errors import StoreError
from ctrpy.metadata.db import Database


def default_root() -> Path:
    env = os.environ.get("CTRPY_ROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/ctrpy")
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "ctrpy"


class Root:
    """Lazily created: nothing is written until a store is first used."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        # the default root's parents are created (XDG says so); a --root's parent must exist
        self.create_parents = path is None
        self.path = Path(path) if path is not None else default_root()
        self.path = Path(os.path.abspath(self.path))
        self._db: Database | None = None
        self.blobs = BlobStore(self.path / "content", before_write=self.ensure)

    def ensure(self) -> None:
        if self.path.is_dir():
            if not os.access(self.path, os.R_OK | os.X_OK):
                raise StoreError(f"root {self.path} is not readable")
            return
        if self.path.exists():
            raise StoreError(f"root {self.path} exists and is not a directory")
        if self.create_parents:
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create {self.path.parent}: {e.strerror}") from e
        if not self.path.parent.is_dir():
            raise StoreError(f"cannot create root {self.path}: parent directory {self.path.parent} does not exist")
        try:
            self.path.mkdir(mode=0o711)
        except FileExistsError:
            if not self.path.is_dir():  # another process made it meanwhile: use it
                raise StoreError(f"root {self.path} exists and is not a directory") from None
        except OSError as e:
            raise StoreError(f"cannot create root {self.path}: {e.strerror}") from e

    @property
    def has_db(self) -> bool:
        """Has anything been written here yet (the metadata database exists)?"""
        return (self.path / "metadata.db").exists()

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.path / "metadata.db", before_open=self.ensure, after_open=self._upgrade)
        return self._db

    def _upgrade(self, db: Database) -> None:
        """One-time steps a migration noted (they need the blobs, which the database
        layer does not know): gc reference labels for a root made before ctrpy wrote them."""
        if not db.read_only and db.todo("gc-labels"):
            from ctrpy.gc import backfill_labels

            backfill_labels(self)

    def snapshot_dir(self, snapshotter: str) -> Path:
        return self.path / "snapshots" / snapshotter

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
