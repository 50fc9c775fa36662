"""The namespaced content store: bytes shared by all namespaces, visibility and labels per namespace."""

from __future__ import annotations

import builtins
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from ctrpy import filters
from ctrpy.content.blobs import MAX_JSON, BlobStore
from ctrpy.errors import ContentNotFound, DigestMismatch, InvalidArchive
from ctrpy.metadata import namespaces
from ctrpy.metadata.db import Database, dumps, loads_map, now
from ctrpy.metadata.labels import Labelled, stored
from ctrpy.metadata.labels import merge as merge_labels
from ctrpy.metadata.labels import validate as validate_labels
from ctrpy.metadata.leases import CONTENT, Held
from ctrpy.oci import digest as _digest
from ctrpy.streams import CHUNK, RawReader


@dataclass
class Info(Labelled):
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "size": self.size, **self.labelled_json()}


def fields(info: Info) -> filters.Adaptor:
    """The field paths a filter can test on a blob (containerd's ``content.AdaptInfo``):
    ``digest`` and ``labels.<key>`` (``size`` is known but never present, as there)."""

    def field(path: Sequence[str]) -> tuple[str, bool]:
        head = path[0] if path else ""
        if head == "digest":
            return info.digest, True
        if head == "labels":
            return filters.check_map(path[1:], info.labels)
        return "", False

    return field


def parse_json(data: bytes, where: str) -> Any:
    """JSON from an archive or the store: size-capped, one clear error when invalid."""
    if len(data) > MAX_JSON:
        raise InvalidArchive(f"{where} is larger than the {MAX_JSON} byte JSON limit")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArchive(f"{where} is not valid JSON: {e}") from e
    except RecursionError:  # "[[[[..." a few MB deep: the decoder gives up, so do we
        raise InvalidArchive(f"{where} is not valid JSON: nested too deeply") from None


class VerifyingReader(RawReader):
    """Reads a blob and raises at EOF if it does not hash to its name (DigestMismatch) or
    is not as long as recorded (SizeMismatch)."""

    def __init__(self, f: BinaryIO, dgst: str, size: int):
        super().__init__()
        self._f = f
        self._digest = dgst
        self._size = size
        self._hash = hashlib.sha256()
        self._read = 0

    def read(self, n: int | None = -1) -> bytes:
        want = -1 if n is None else n
        data: bytes = self._f.read(want)
        self._hash.update(data)
        self._read += len(data)
        if not data or want < 0 or self._read == self._size:
            self._check(eof=not data or want < 0)
        return data

    def _check(self, eof: bool) -> None:
        """At the recorded size the bytes must hash to the digest; at EOF there must have
        been exactly that many.  Either way a store blob that fails is corrupt: a
        DigestMismatch (whatever reader, whatever the damage)."""
        if self._read == self._size or eof:
            actual = "sha256:" + self._hash.hexdigest()
            if actual != self._digest or self._read != self._size:
                size = f", {self._read} bytes where {self._size} are recorded" if self._read != self._size else ""
                raise DigestMismatch(self._digest, actual, text=(
                    f"content {self._digest} in the store is corrupt (its bytes hash to {actual}{size})"))

    def close(self) -> None:
        self._f.close()
        super().close()

    def __enter__(self) -> VerifyingReader:
        return self


class RawContent:
    """Read-only access to stored bytes regardless of namespace rows (used mid-import)."""

    def __init__(self, blobs: BlobStore):
        self.blobs = blobs

    def open(self, dgst: str) -> VerifyingReader:
        return VerifyingReader(self.blobs.open(dgst), dgst, self.blobs.size(dgst))

    def exists(self, dgst: str) -> bool:
        return self.blobs.exists(dgst)

    def read_json(self, dgst: str) -> Any:
        return parse_json(self.blobs.read_small(dgst), f"content {dgst}")


@dataclass(eq=False)
class ContentStore:
    """The blobs of one namespace: the shared bytes of ``blobs``, this namespace's rows
    (visibility, labels) in ``db``."""

    blobs: BlobStore
    db: Database
    namespace: str

    # reading -------------------------------------------------------------
    def info(self, dgst: str) -> Info:
        _digest.validate(dgst)
        rows = self.db.query(
            "SELECT digest, size, labels, created_at, updated_at FROM content "
            "WHERE namespace = ? AND digest = ?",
            (self.namespace, dgst),
        )
        if not rows or not self.blobs.exists(dgst):
            raise ContentNotFound(dgst)
        r = rows[0]
        return Info(r["digest"], r["size"], **stored(r))

    def exists(self, dgst: str) -> bool:
        try:
            self.info(dgst)
            return True
        except ContentNotFound:
            return False

    def list(self, where: filters.Filter = filters.ALWAYS) -> builtins.list[Info]:
        """The blobs of this namespace (sorted by digest) that ``where`` matches (see :func:`fields`)."""
        rows = self.db.query(
            "SELECT digest, size, labels, created_at, updated_at FROM content "
            "WHERE namespace = ? ORDER BY digest",
            (self.namespace,),
        )
        infos = (Info(r["digest"], r["size"], **stored(r)) for r in rows)
        return [i for i in infos if self.blobs.exists(i.digest) and where.match(fields(i))]

    def open(self, dgst: str) -> VerifyingReader:
        info = self.info(dgst)
        return VerifyingReader(self.blobs.open(dgst), dgst, info.size)

    def read_all(self, dgst: str, limit: int = MAX_JSON) -> bytes:
        """The whole blob, verified, refusing blobs larger than ``limit``."""
        self.info(dgst)
        return self.blobs.read_small(dgst, limit)

    def read_json(self, dgst: str) -> Any:
        return parse_json(self.read_all(dgst), f"content {dgst}")

    # writing -------------------------------------------------------------
    def ingest(
        self,
        stream: BinaryIO,
        *,
        expected: str | None = None,
        expected_size: int | None = None,
        labels: dict[str, str] | None = None,
        lease: Held | None = None,
    ) -> Info:
        """Stream bytes in, verify, and make them visible in this namespace."""
        with self.blobs.writer(expected, expected_size, lease) as w:
            while chunk := stream.read(CHUNK):
                w.write(chunk)
            dgst, size = w.commit()
        with self.db.transaction() as conn:
            self.record(conn, [(dgst, size)], labels or {})
        return self.info(dgst)

    def record(
        self,
        conn: sqlite3.Connection,
        blobs: Iterable[tuple[str, int]],
        labels: dict[str, str] | None = None,
    ) -> None:
        """Within a transaction: make committed blobs visible in this namespace."""
        namespaces.ensure(conn, self.namespace)
        t = now()
        for dgst, size in blobs:
            conn.execute(
                "INSERT INTO content (namespace, digest, size, labels, created_at, updated_at) "
                "VALUES (?, ?, ?, '{}', ?, ?) ON CONFLICT (namespace, digest) DO NOTHING",
                (self.namespace, dgst, size, t, t),
            )
            if labels:
                self._merge_labels(conn, dgst, labels)

    def _merge_labels(self, conn: sqlite3.Connection, dgst: str, labels: dict[str, str]) -> dict[str, str]:
        row = conn.execute(
            "SELECT labels FROM content WHERE namespace = ? AND digest = ?", (self.namespace, dgst)
        ).fetchone()
        if row is None:
            raise ContentNotFound(dgst)
        merged = merge_labels(loads_map(row[0]), labels)
        conn.execute(
            "UPDATE content SET labels = ?, updated_at = ? WHERE namespace = ? AND digest = ?",
            (dumps(merged), now(), self.namespace, dgst),
        )
        return merged

    def label_all(self, labels: dict[str, dict[str, str]]) -> None:
        """Merge labels into several blobs' rows (those this namespace holds), in one
        transaction."""
        with self.db.transaction() as conn:
            for dgst, extra in labels.items():
                self._merge_labels_if_present(conn, dgst, extra)

    def _merge_labels_if_present(self, conn: sqlite3.Connection, dgst: str, labels: dict[str, str]) -> None:
        if conn.execute(
            "SELECT 1 FROM content WHERE namespace = ? AND digest = ?", (self.namespace, dgst)
        ).fetchone():
            self._merge_labels(conn, dgst, labels)

    def set_labels(self, dgst: str, labels: dict[str, str]) -> dict[str, str]:
        """Merge labels (an empty value removes that label); returns the result."""
        _digest.validate(dgst)
        validate_labels({k: v for k, v in labels.items() if v})
        self.info(dgst)
        with self.db.transaction() as conn:
            return self._merge_labels(conn, dgst, labels)

    def delete(self, dgst: str) -> None:
        """Hide the blob in this namespace; its bytes go when no namespace and no lease
        holds them any more (decided and done inside the transaction, so an operation in
        flight that holds them on its lease meanwhile keeps them)."""
        _digest.validate(dgst)
        with self.db.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM content WHERE namespace = ? AND digest = ?", (self.namespace, dgst)
            )
            if cur.rowcount == 0:
                raise ContentNotFound(dgst)
            held = conn.execute(
                "SELECT 1 FROM content WHERE digest = ? UNION ALL "
                "SELECT 1 FROM lease_resources WHERE kind = ? AND key = ? LIMIT 1",
                (dgst, CONTENT, dgst),
            ).fetchone()
            if held is None:
                self.blobs.delete(dgst)

    def find_labelled(self, key: str, value: str) -> builtins.list[str]:
        """Digests of blobs labelled ``key=value`` in ANY namespace (an importer looking for
        bytes it may reuse: it verifies them before it trusts the label)."""
        rows = self.db.query(
            "SELECT DISTINCT content.digest FROM content, json_each(content.labels) AS l "
            "WHERE l.key = ? AND l.value = ? ORDER BY content.digest",
            (key, value),
        )
        return [r["digest"] for r in rows]


def listed_anywhere(db: Database) -> set[str]:
    """The digests some namespace lists (whether or not their bytes are still there)."""
    return {row["digest"] for row in db.query("SELECT DISTINCT digest FROM content")}
