"""Image records: name -> target descriptor, labels, created/updated times, per namespace."""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ctrpy.errors import AlreadyExists, InvalidArgument, NotFound
from ctrpy.metadata import namespaces
from ctrpy.metadata.db import Database, dumps, loads_map, now
from ctrpy.metadata.labels import merge as merge_labels
from ctrpy.metadata.labels import validate as validate_labels
from ctrpy.oci import Descriptor, digest, reference


@dataclass
class Image:
    name: str
    target: Descriptor
    labels: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""


def validate(image: Image) -> None:
    """containerd's checks: a name, and a target with media type, valid digest, size > 0."""
    if not image.name or image.name != image.name.strip() or "\n" in image.name:
        raise InvalidArgument(f"invalid image name {image.name!r}")
    t = image.target
    if not t.media_type:
        raise InvalidArgument(f"image {image.name}: target media type must not be empty")
    if not digest.is_valid(t.digest):
        raise InvalidArgument(f"image {image.name}: invalid target digest {t.digest!r}")
    if t.size <= 0:
        raise InvalidArgument(f"image {image.name}: target size must be greater than 0")
    validate_labels(image.labels)


def _row_to_image(r: sqlite3.Row) -> Image:
    target = Descriptor(r["media_type"], r["digest"], r["size"], loads_map(r["annotations"]))
    return Image(r["name"], target, loads_map(r["labels"]), r["created_at"], r["updated_at"])


_COLUMNS = "name, media_type, digest, size, annotations, labels, created_at, updated_at"


class ImageStore:
    def __init__(self, db: Database, namespace: str):
        self.db = db
        self.namespace = namespace

    def get(self, name: str) -> Image:
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM images WHERE namespace = ? AND name = ?",
            (self.namespace, name),
        )
        if not rows:
            raise NotFound(f"image {name!r} not found")
        return _row_to_image(rows[0])

    def resolve(self, name: str) -> Image:
        """Find an image by the name given, else by its docker-normalised form."""
        for cand in reference.candidates(name):
            try:
                return self.get(cand)
            except NotFound:
                pass
        raise NotFound(f"image {name!r} not found")

    def list(self) -> builtins.list[Image]:
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM images WHERE namespace = ? ORDER BY name", (self.namespace,)
        )
        return [_row_to_image(r) for r in rows]

    def names(self) -> builtins.list[str]:
        return [r["name"] for r in self.db.query(
            "SELECT name FROM images WHERE namespace = ? ORDER BY name", (self.namespace,)
        )]

    # writing -------------------------------------------------------------
    def put(self, conn: sqlite3.Connection, image: Image) -> Image:
        """Within a transaction: create ``image`` or update it, keeping created_at."""
        validate(image)
        namespaces.ensure(conn, self.namespace)
        t = now()
        row = conn.execute(
            "SELECT created_at FROM images WHERE namespace = ? AND name = ?",
            (self.namespace, image.name),
        ).fetchone()
        created = row[0] if row else t
        self._write(conn, replace(image, created_at=created, updated_at=t), exists=row is not None)
        return replace(image, created_at=created, updated_at=t)

    def _write(self, conn: sqlite3.Connection, image: Image, *, exists: bool) -> None:
        tgt = image.target
        args = (
            tgt.media_type, tgt.digest, tgt.size, dumps(tgt.annotations), dumps(image.labels),
            image.created_at, image.updated_at, self.namespace, image.name,
        )
        if exists:
            conn.execute(
                "UPDATE images SET media_type = ?, digest = ?, size = ?, annotations = ?, "
                "labels = ?, created_at = ?, updated_at = ? WHERE namespace = ? AND name = ?",
                args,
            )
        else:
            conn.execute(
                "INSERT INTO images (media_type, digest, size, annotations, labels, created_at, "
                "updated_at, namespace, name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                args,
            )

    def create(self, image: Image) -> Image:
        with self.db.transaction() as conn:
            if conn.execute(
                "SELECT 1 FROM images WHERE namespace = ? AND name = ?", (self.namespace, image.name)
            ).fetchone():
                raise AlreadyExists(f"image {image.name!r} already exists")
            return self.put(conn, image)

    def put_all(self, images: Iterable[Image]) -> builtins.list[Image]:
        with self.db.transaction() as conn:
            return [self.put(conn, img) for img in images]

    def tag(self, source: str, targets: builtins.list[str], *, force: bool = False) -> builtins.list[Image]:
        """Create (or with ``force`` replace) each of ``targets`` pointing where ``source`` does."""
        src = self.resolve(source)
        out = []
        with self.db.transaction() as conn:
            for name in targets:
                exists = conn.execute(
                    "SELECT 1 FROM images WHERE namespace = ? AND name = ?", (self.namespace, name)
                ).fetchone()
                if exists and not force:
                    raise AlreadyExists(f"image {name!r} already exists (use --force to replace it)")
                out.append(self.put(conn, Image(name, src.target, dict(src.labels))))
        return out

    def set_labels(self, name: str, labels: dict[str, str]) -> Image:
        img = self.resolve(name)
        merged = merge_labels(img.labels, labels)
        with self.db.transaction() as conn:
            return self.put(conn, replace(img, labels=merged))

    def delete(self, name: str) -> Image:
        img = self.resolve(name)
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM images WHERE namespace = ? AND name = ?", (self.namespace, img.name)
            )
        return img
