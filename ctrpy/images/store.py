"""Image records: name -> target descriptor, labels, created/updated times, per namespace."""

from __future__ import annotations

import builtins
import difflib
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ctrpy import filters
from ctrpy.errors import ImageExists, ImageNotFound, InvalidArgument
from ctrpy.metadata import namespaces
from ctrpy.metadata.db import Database, dumps, loads_map, now
from ctrpy.metadata.labels import Labelled, stored
from ctrpy.metadata.labels import merge as merge_labels
from ctrpy.metadata.labels import validate as validate_labels
from ctrpy.oci import Descriptor, digest, reference


@dataclass
class Image(Labelled):
    name: str
    target: Descriptor

    def to_json(self) -> dict[str, Any]:
        """The record as ``--json`` and ``images inspect`` show it."""
        return {"name": self.name, "target": self.target.to_json(), **self.labelled_json()}


ImageRef = str | Image  # what every operation on an image takes: a name (looked up) or the record


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


def fields(image: Image) -> filters.Adaptor:
    """The field paths a filter can test on an image (containerd's ``adaptImage``): ``name``,
    ``target.digest``, ``target.mediatype``, ``labels.<key>``, ``annotations.<key>`` (of
    the target)."""

    def field(path: Sequence[str]) -> tuple[str, bool]:
        head, rest = (path[0], path[1:]) if path else ("", ())
        if head == "name":
            return image.name, bool(image.name)
        if head == "target" and rest and rest[0] in ("digest", "mediatype"):
            value = image.target.digest if rest[0] == "digest" else image.target.media_type
            return value, bool(value)
        if head == "labels":
            return filters.check_map(rest, image.labels)
        if head == "annotations":
            return filters.check_map(rest, image.target.annotations)
        return "", False

    return field


def _forms(name: str) -> set[str]:
    """How a user might write an image's name: in full, familiar (``debian:bookworm``),
    and either without its tag; the last path component too (``app`` of ``example.com/team/app:v1``)."""
    short = reference.familiar(name)
    forms = {name, short}
    forms |= {reference.split_tag(f)[0] for f in list(forms)}
    forms |= {f.rsplit("/", 1)[-1] for f in list(forms)}
    return forms


def _row_to_image(r: sqlite3.Row) -> Image:
    target = Descriptor(r["media_type"], r["digest"], r["size"], loads_map(r["annotations"]))
    return Image(r["name"], target, **stored(r))


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
            raise ImageNotFound(name)
        return _row_to_image(rows[0])

    def resolve(self, name: str) -> Image:
        """Find an image by the name given, else by its docker-normalised form (a tag-less
        name means ``:latest``).  Not found: the error suggests the closest names."""
        for cand in reference.candidates(name):
            try:
                return self.get(cand)
            except ImageNotFound:
                pass
        raise ImageNotFound(name, self.closest(name))

    def closest(self, name: str, n: int = 3) -> builtins.list[str]:
        """The existing names most like ``name`` (for "did you mean"), best first: each is
        compared in its full, familiar and repository-only forms (``debain`` finds
        ``docker.io/library/debian:bookworm``, ``busybox`` finds ``busybox:1.36``)."""
        # the name as typed counts fully; without its tag, a little less (another tag of
        # the same repository is a good guess, not as good as a near-identical name)
        typed = [(name, 1.0), (reference.split_tag(name)[0], 0.9)]
        scored = []
        for full in self.names():
            score = max(weight * difflib.SequenceMatcher(None, t, form).ratio()
                        for t, weight in typed for form in _forms(full))
            if score >= 0.6:
                scored.append((-score, full))
        return [full for _score, full in sorted(scored)[:n]]

    def list(self, where: filters.Filter = filters.ALWAYS) -> builtins.list[Image]:
        """The images (sorted by name) that ``where`` matches (see :func:`fields`)."""
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM images WHERE namespace = ? ORDER BY name", (self.namespace,)
        )
        return [img for img in map(_row_to_image, rows) if where.match(fields(img))]

    def names(self) -> builtins.list[str]:
        return [r["name"] for r in self.db.query(
            "SELECT name FROM images WHERE namespace = ? ORDER BY name", (self.namespace,)
        )]

    # writing -------------------------------------------------------------
    def put(self, conn: sqlite3.Connection, image: Image, *, merge: Mapping[str, str] | None = None) -> Image:
        """Within a transaction: create ``image`` or update it (one upsert), keeping its
        created_at.  With ``merge``, an existing image keeps its labels and gets these
        merged in (an import); else the labels are ``image.labels``."""
        validate(image)
        namespaces.ensure(conn, self.namespace)
        t = now()
        tgt = image.target
        labels = dict(merge) if merge is not None else image.labels
        row = conn.execute(
            "INSERT INTO images (namespace, name, media_type, digest, size, annotations, labels, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (namespace, name) DO UPDATE SET media_type = excluded.media_type, "
            "digest = excluded.digest, size = excluded.size, annotations = excluded.annotations, "
            "labels = CASE WHEN ? THEN json_patch(images.labels, excluded.labels) ELSE excluded.labels END, "
            "updated_at = excluded.updated_at "
            "RETURNING labels, created_at, updated_at",
            (self.namespace, image.name, tgt.media_type, tgt.digest, tgt.size, dumps(tgt.annotations),
             dumps(labels), t, t, merge is not None),
        ).fetchone()
        merged = loads_map(row[0])
        validate_labels(merged)
        return replace(image, labels=merged, created_at=row[1], updated_at=row[2])

    def create(self, image: Image) -> Image:
        with self.db.transaction() as conn:
            if conn.execute(
                "SELECT 1 FROM images WHERE namespace = ? AND name = ?", (self.namespace, image.name)
            ).fetchone():
                raise ImageExists(image.name)
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
                    raise ImageExists(name)
                out.append(self.put(conn, Image(name, src.target, labels=dict(src.labels))))
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
