"""Garbage collection (``ctrpy.gc``): what is a root, which labels are references, and what
a collection sweeps: content rows, blob files, committed and active snapshots with their
trees, snapshot directories without a row, partial writes and scratch trees of leases that
are gone, and the trash a killed collection left."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ctrpy import gc
from ctrpy.client import Client
from ctrpy.errors import StoreError
from ctrpy.formats import ImportOptions
from ctrpy.formats.docker import DockerImporter
from ctrpy.metadata.leases import CONTENT, LABEL_EXPIRE, Held, LeaseStore
from ctrpy.root import Root
from ctrpy.snapshots import Snapshotter
from ctrpy.unpack import Unpacker
from tests.builders import ANNOTATION_IMAGE_NAME, BuiltImage, OCILayout, docker_save_tar, file
from tests.helpers import blob_path, host_image, killed_when_ready, named_archive

APP = "docker.io/library/app:v1"
OTHER = "docker.io/library/other:v1"
SHARED = [file("etc/base", b"the base layer both images share\n")]
LAYERS = [SHARED, [file("app", b"app")]]
NOTHING = gc.Collected()


@pytest.fixture
def client(root: Path) -> Iterator[Client]:
    c = Client(root)
    c.leases.list()  # the store exists, as it does once anything was written
    yield c
    c.close()


def other_ns(root: Path, namespace: str = "other") -> Client:
    return Client(root, namespace)


def built(text: bytes, base: list[object] | None = None) -> BuiltImage:
    layers = [base or [file("etc/base", text)], [file("app", text * 2)]]
    return host_image(*layers).build()


def imported(client: Client, img: BuiltImage, name: str = APP) -> BuiltImage:
    client.import_archive(io.BytesIO(named_archive((img, name))), unpack=True, snapshotter="native")
    return img


def blob_names(root: Path) -> set[str]:
    d = root / "content" / "blobs" / "sha256"
    return {"sha256:" + p.name for p in d.iterdir()} if d.is_dir() else set()


def snapshot_dirs(root: Path) -> set[str]:
    d = root / "snapshots" / "native" / "snapshots"
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def native(client: Client) -> Snapshotter:
    return client.snapshotter("native")


def loose_blob(client: Client, data: bytes, held: Held | None = None) -> str:
    """Bytes in the store that no namespace lists (what a killed import leaves)."""
    with client.root.blobs.writer(lease=held) as w:
        w.write(data)
        dgst, _size = w.commit()
    return dgst


def hand_ingested(client: Client, data: bytes, labels: dict[str, str] | None = None) -> str:
    """A blob listed in the namespace but, without a gc.root label, held by nothing."""
    return client.ingest(io.BytesIO(data), labels={gc.LABEL_ROOT: "", **(labels or {})}).digest


# --------------------------------------------------------------------------- roots
def test_an_image_holds_its_content_and_snapshots(client: Client, root: Path) -> None:
    img = imported(client, built(b"app"))
    blobs, dirs = blob_names(root), snapshot_dirs(root)
    assert client.collect() == NOTHING
    assert (blob_names(root), snapshot_dirs(root)) == (blobs, dirs)
    assert client.check(APP, snapshotter="native").unpacked
    assert {img.manifest.digest, img.config.digest} <= blobs


def test_what_no_image_holds_any_more_is_swept(client: Client, root: Path) -> None:
    img = imported(client, built(b"app"))
    client.images.delete(APP)
    freed = client.collect()
    assert (freed.blobs, freed.snapshots, freed.content_rows) == (4, 2, 4)  # manifest, config, 2 layers
    assert sorted(freed.digests) == sorted([img.manifest.digest, img.config.digest, *(x.digest for x in img.layers)])
    assert freed.blob_bytes == sum(d.size for d in [img.manifest, img.config, *img.layers])
    assert freed.snapshot_bytes > 0
    assert blob_names(root) == set() and snapshot_dirs(root) == set()
    assert client.content.list() == [] and native(client).list() == []


def test_an_image_in_another_namespace_keeps_the_shared_content(client: Client, root: Path) -> None:
    img = built(b"app")
    imported(client, img)
    imported(other_ns(root), img)
    client.images.delete(APP)
    freed = client.collect()
    assert (freed.blobs, freed.content_rows) == (0, 4)  # default's rows go, the bytes stay
    assert other_ns(root).check(APP).complete
    assert client.content.list() == []


def test_a_layer_another_image_holds_stays(client: Client, root: Path) -> None:
    one, two = imported(client, built(b"one", SHARED)), imported(client, built(b"two", SHARED), OTHER)
    assert one.layers[0].digest == two.layers[0].digest
    client.images.delete(APP)
    freed = client.collect()
    assert one.layers[0].digest not in freed.digests
    assert set(freed.digests) == {one.manifest.digest, one.config.digest, one.layers[1].digest}
    assert freed.snapshots == 1  # the shared base layer's snapshot is the other image's parent
    assert client.check(OTHER, snapshotter="native").complete
    assert client.check(OTHER, snapshotter="native").unpacked


def test_a_layer_an_image_in_another_namespace_holds_stays(client: Client, root: Path) -> None:
    one = imported(client, built(b"one", SHARED))
    two = imported(other_ns(root), built(b"two", SHARED), OTHER)
    client.images.delete(APP)
    client.collect()
    assert one.layers[0].digest in blob_names(root)
    assert other_ns(root).check(OTHER).complete
    assert two.layers[0].digest == one.layers[0].digest


def test_a_live_lease_holds_its_content_until_it_is_deleted(client: Client, root: Path) -> None:
    dgst = hand_ingested(client, b"leased")
    client.leases.create("keep")
    client.leases.add("keep", CONTENT, [dgst])
    assert client.collect() == NOTHING
    client.leases.delete("keep")
    assert client.collect().digests == [dgst]


def test_a_lease_holds_bytes_no_namespace_lists(client: Client, root: Path) -> None:
    held = Held(client.leases, client.leases.create("op").id)
    dgst = loose_blob(client, b"written, not yet recorded", held)
    assert client.collect() == NOTHING
    assert dgst in blob_names(root)


def test_a_lease_holds_its_snapshots(client: Client, root: Path) -> None:
    held = Held(client.leases, client.leases.create("op").id)
    native(client).prepare("work", lease=held)
    client.collect()
    assert [s.key for s in native(client).list()] == ["work"]
    client.leases.delete("op")
    assert client.collect().snapshots == 1
    assert snapshot_dirs(root) == set()


def test_an_expired_lease_holds_nothing(client: Client, root: Path) -> None:
    dgst = hand_ingested(client, b"expired")
    client.leases.create("old", {LABEL_EXPIRE: "2000-01-01T00:00:00Z"})
    client.leases.add("old", CONTENT, [dgst])
    freed = client.collect()
    assert (freed.leases, freed.digests) == (1, [dgst])
    assert client.leases.list() == []


def test_a_killed_process_lease_holds_nothing(client: Client, root: Path, tmp_path: Path) -> None:
    """A real process takes a lease, writes a blob and a partial write under it, and is
    killed -9: the next collection knows the lease is dead and frees both at once."""
    code = (
        "import time\n"
        "from ctrpy.client import Client\n"
        f"c = Client({str(root)!r})\n"
        "with c.lease('victim') as held:\n"
        "    with c.root.blobs.writer(lease=held) as w:\n"
        "        w.write(b'written by a process about to be killed')\n"
        "        w.commit()\n"
        "    partial = c.root.blobs.writer(lease=held)\n"
        "    partial.write(b'half a blob')\n"
        "    open(READY, 'w').write(held.id)\n"
        "    time.sleep(600)\n"
    )
    lease_id = killed_when_ready(code, tmp_path / "ready")
    assert [lease.id for lease in client.leases.list()] == [lease_id]
    assert len(blob_names(root)) == 1 and len(list(client.root.blobs.ingest_dir.iterdir())) == 1
    freed = client.collect()
    assert (freed.leases, freed.blobs, freed.partial) == (1, 1, 1)
    assert client.leases.list() == [] and blob_names(root) == set()
    assert list(client.root.blobs.ingest_dir.iterdir()) == []


def test_a_gc_root_label_keeps_content_and_what_it_references(client: Client) -> None:
    child = hand_ingested(client, b"child")
    parent = client.ingest(io.BytesIO(b"parent"), labels={f"{gc.REF_CONTENT}.m.0": child}).digest
    assert client.collect() == NOTHING
    client.content.set_labels(parent, {gc.LABEL_ROOT: ""})
    assert sorted(client.collect().digests) == sorted([parent, child])


def test_a_gc_root_label_keeps_a_snapshot_and_its_parents(client: Client, root: Path) -> None:
    sn = native(client)
    sn.prepare("a")
    sn.commit("base", "a")
    sn.prepare("b", "base", {gc.LABEL_ROOT: "keep"})
    assert client.collect() == NOTHING
    assert {s.key for s in sn.list()} == {"base", "b"}


def test_a_mount_snapshot_is_a_root(client: Client) -> None:
    sn = native(client)
    sn.prepare("a")
    sn.commit("base", "a")
    sn.prepare("mount:/mnt/x", "base", kind="view")
    assert client.collect() == NOTHING
    assert {s.key for s in sn.list()} == {"base", "mount:/mnt/x"}


def test_an_image_past_its_gc_expire_label_holds_nothing(client: Client) -> None:
    img = imported(client, built(b"app"))
    client.images.set_labels(APP, {LABEL_EXPIRE: "2000-01-01T00:00:00Z"})
    assert img.manifest.digest in client.collect().digests


# --------------------------------------------------------------------------- references
def test_content_reference_labels_are_containerds() -> None:
    d = "sha256:" + "1" * 64
    labels = {
        "containerd.io/gc.ref.content": d + "0",
        "containerd.io/gc.ref.content.config": d + "1",
        "containerd.io/gc.ref.content.l.0": d + "2",
        "containerd.io/gc.ref.content/custom": d + "3",
        "containerd.io/gc.ref.contentious": d + "4",  # not a reference
        "containerd.io/gc.ref.snapshot.native": "chain",
        "containerd.io/gc.ref.snapshot.overlayfs/1": "other",
        "containerd.io/gc.ref.snapshot.": "no snapshotter",
        "containerd.io/uncompressed": d + "5",
    }
    content, snapshots = gc.references(labels)
    assert sorted(content) == [d + "0", d + "1", d + "2", d + "3"]
    assert sorted(snapshots) == [("native", "chain"), ("overlayfs", "other")]


def test_a_snapshot_reference_label_keeps_the_snapshot_and_its_parents(client: Client) -> None:
    sn = native(client)
    sn.prepare("a")
    sn.commit("base", "a")
    sn.prepare("b", "base")
    sn.commit("top", "b")
    sn.prepare("c")
    sn.commit("unrelated", "c")
    client.ingest(io.BytesIO(b"config"), labels={f"{gc.REF_SNAPSHOT}native": "top"})
    assert client.collect().snapshots == 1
    assert {s.key for s in sn.list()} == {"base", "top"}


def test_references_stay_within_their_namespace(client: Client, root: Path) -> None:
    """A label names content of its own namespace: the same digest listed elsewhere and
    held by nothing there goes (its bytes stay: a row still holds them)."""
    child_data = b"listed in both namespaces"
    child = hand_ingested(client, child_data)
    hand_ingested(other_ns(root), child_data)
    client.ingest(io.BytesIO(b"parent"), labels={f"{gc.REF_CONTENT}.m.0": child})
    freed = client.collect()
    assert (freed.content_rows, freed.blobs) == (1, 0)
    assert other_ns(root).content.list() == []


# --------------------------------------------------------------------------- the sweep
def test_a_blob_file_no_row_holds_is_removed(client: Client, root: Path) -> None:
    dgst = loose_blob(client, b"left by a killed import")
    freed = client.collect()
    assert freed.digests == [dgst]
    assert not blob_path(root, dgst).exists()


def test_an_active_snapshot_nothing_holds_goes_with_its_tree(client: Client, root: Path) -> None:
    snap = native(client).prepare("extract-left-behind")
    (native(client).fs_path(snap) / "file").write_bytes(b"x" * 100_000)
    freed = client.collect()
    assert freed.snapshots == 1 and freed.snapshot_bytes >= 100_000
    assert native(client).list() == [] and snapshot_dirs(root) == set()


def test_a_snapshot_directory_without_a_row_is_removed(client: Client, root: Path) -> None:
    imported(client, built(b"app"))
    kept = snapshot_dirs(root)
    orphan = root / "snapshots" / "native" / "snapshots" / "0123456789abcdef"
    (orphan / "fs").mkdir(parents=True)
    (orphan / "fs" / "half-applied").write_bytes(b"y" * 50_000)
    freed = client.collect()
    assert freed.snapshot_bytes >= 50_000
    assert snapshot_dirs(root) == kept


def test_partial_writes_of_a_lease_that_is_gone_are_removed(client: Client, root: Path) -> None:
    ingest = client.root.blobs.ingest_dir
    ingest.mkdir(parents=True)
    (ingest / "ctrpy-import-0000@abc").write_bytes(b"half")
    freed = client.collect()
    assert (freed.partial, freed.bytes) == (1, 4)
    assert list(ingest.iterdir()) == []


def test_partial_writes_of_a_live_lease_stay(client: Client) -> None:
    held = Held(client.leases, client.leases.create("op").id)
    writer = client.root.blobs.writer(lease=held)
    writer.write(b"in flight")
    assert client.collect().partial == 0
    assert [p.name.split("@")[0] for p in client.root.blobs.ingest_dir.iterdir()] == ["op"]
    writer.abort()


def test_a_partial_write_a_lease_names_stays(client: Client) -> None:
    held = Held(client.leases, client.leases.create("op").id)
    ingest = client.root.blobs.ingest_dir
    ingest.mkdir(parents=True)
    (ingest / "resumable").write_bytes(b"part")
    held.ingest("resumable")
    assert client.collect().partial == 0
    assert (ingest / "resumable").exists()


def test_young_partial_writes_nobody_owns_stay_for_the_grace_period(client: Client) -> None:
    ingest = client.root.blobs.ingest_dir
    ingest.mkdir(parents=True)
    young, old = ingest / "ingest-young", ingest / "ingest-old"
    young.write_bytes(b"y")
    old.write_bytes(b"o")
    os.utime(old, (time.time() - 7200,) * 2)
    assert client.collect(grace=3600).partial == 1
    assert young.exists() and not old.exists()
    assert client.collect(grace=0).partial == 1


def test_a_flatten_scratch_tree_of_a_lease_that_is_gone_is_removed(client: Client, root: Path) -> None:
    client.root.ensure()
    dead = root / "tmp" / "ctrpy-flatten-0000@flatten-x" / "rootfs"
    dead.mkdir(parents=True)
    (dead / "big").write_bytes(b"z" * 10_000)
    live = root / "tmp" / f"{client.leases.create('op').id}@flatten-y"
    live.mkdir()
    client.collect()
    assert [p.name for p in (root / "tmp").iterdir()] == [live.name]


class Stopped(BaseException):
    """The process dying where a collection removes files (SIGKILL, as far as the store sees)."""


def collection_stopped_after_first(client: Client, monkeypatch: pytest.MonkeyPatch, obj: object, name: str) -> None:
    """A collection of an image no longer named, stopped (as SIGKILL would) once ``obj.name``
    has done its work once."""
    imported(client, built(b"app"))
    client.images.delete(APP)
    real = getattr(obj, name)

    def once_then_stop(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise Stopped

    with monkeypatch.context() as m:
        m.setattr(obj, name, once_then_stop)
        with pytest.raises(Stopped):
            client.collect()


def test_a_collection_stopped_while_unlinking_blobs_leaves_no_row_naming_an_unlinked_blob(
    client: Client, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection_stopped_after_first(client, monkeypatch, type(client.root.blobs), "delete")
    assert {i.digest for i in client.content.list()} <= blob_names(root)  # every listed blob has its bytes
    assert client.verify().clean
    client.collect()
    assert blob_names(root) == set() and client.content.list() == []


def test_a_collection_stopped_while_taking_snapshot_trees_leaves_no_row_naming_a_taken_tree(
    client: Client, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection_stopped_after_first(client, monkeypatch, gc, "_move_snapshot_dirs")
    assert native(client).list() == []  # the rows went first
    assert client.verify().clean
    client.collect()
    assert snapshot_dirs(root) == set()
    assert list((root / "tmp").iterdir()) == []


def test_the_trash_of_a_killed_collection_is_removed(client: Client, root: Path) -> None:
    client.root.ensure()
    trash = root / "tmp" / "trash-0123456789ab" / "native-0123456789abcdef" / "fs"
    trash.mkdir(parents=True)
    (trash / "f").write_bytes(b"t")
    client.collect()
    assert list((root / "tmp").iterdir()) == []


def test_a_collection_of_a_root_that_does_not_exist_frees_nothing(root: Path) -> None:
    assert gc.collect(Root(root)) == NOTHING
    assert not root.exists()

# --------------------------------------------------------------------------- a collection at the same moment
# Another process's collection is simulated by a second Client on the same root (its own
# database connection), run at the one moment an operation in flight is most exposed.
def before_the_record(monkeypatch: pytest.MonkeyPatch, other: Callable[[], object]) -> None:
    """Run ``other`` (another process's command) just before an import records its images."""
    record = Client._record

    def other_first(self: Client, *args: Any, **kw: Any) -> Any:
        other()
        return record(self, *args, **kw)

    monkeypatch.setattr(Client, "_record", other_first)


def import_lacking_a_layer_namespace_a_holds(
    root: Path, monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[Client, BuiltImage], object]
) -> Client:
    """Namespace `a` imports an image; `b` imports it from an archive that lacks its first
    layer (the store has it), while ``meanwhile(a, image)`` runs just before b's record."""
    img = built(b"shared")
    layout = OCILayout()
    layout.add_manifest(img, {ANNOTATION_IMAGE_NAME: APP})
    a, b = other_ns(root, "a"), other_ns(root, "b")
    a.import_archive(io.BytesIO(layout.tar_bytes()))
    before_the_record(monkeypatch, lambda: meanwhile(a, img))
    b.import_archive(io.BytesIO(layout.tar_bytes(omit_blobs=[img.layers[0].digest])))
    return b


def test_a_stored_blob_an_import_relies_on_survives_a_collection_before_the_record(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`a` removes its image (and collects) while `b` is about to record: b's lease holds the layer."""
    b = import_lacking_a_layer_namespace_a_holds(root, monkeypatch, lambda a, img: a.remove_images([APP]))
    assert b.check(APP).complete


def test_a_compressed_layer_a_docker_import_reuses_survives_a_collection(
    client: Client, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--compress-blobs reuses the gzip layer namespace `a` made; `a` removes its image
    right after the reuse was decided."""
    archive = docker_save_tar([(host_image(*LAYERS).build(compression="none"), ["app:v1"])])
    options = ImportOptions(compress_blobs=True)
    a, b = other_ns(root, "a"), other_ns(root, "b")
    a.import_archive(io.BytesIO(archive), options=options)
    reuse = DockerImporter._reuse

    def rm_in_a_after(self: DockerImporter, diff_id: str) -> object:
        found = reuse(self, diff_id)
        a.remove_images([APP])
        return found

    monkeypatch.setattr(DockerImporter, "_reuse", rm_in_a_after)
    b.import_archive(io.BytesIO(archive), options=options)
    assert b.check(APP).complete


def test_a_blob_an_import_relies_on_survives_content_rm_in_another_namespace(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def content_rm(a: Client, img: BuiltImage) -> None:
        a.images.delete(APP)
        a.remove_content([img.layers[0].digest])

    b = import_lacking_a_layer_namespace_a_holds(root, monkeypatch, content_rm)
    assert b.check(APP).complete


def test_a_snapshot_an_unpack_builds_on_survives_a_collection(
    client: Client, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import of `other` finds the shared base layer unpacked (by `app`) and skips it;
    `app` is removed before the next layer is prepared on top of that base."""
    imported(client, built(b"one", SHARED))
    prepare = Unpacker._prepare
    others = [Client(root)]

    def rm_app_first(self: Unpacker, chain_id: str, parent: str) -> str:
        while others:
            others.pop().remove_images([APP])
        return prepare(self, chain_id, parent)

    monkeypatch.setattr(Unpacker, "_prepare", rm_app_first)
    imported(client, built(b"two", SHARED), OTHER)
    assert client.check(OTHER, snapshotter="native").unpacked
    assert client.collect() == NOTHING


def test_a_scratch_tree_made_right_after_a_collection_commits_is_kept(
    client: Client, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flatten that starts while a collection deletes its trash is not that collection's
    to remove: only leases gone when it looked are."""
    late: list[Path] = []
    remove_tree = gc.remove_tree

    def a_flatten_starts(path: Path, **kw: bool) -> None:
        if not late:
            lease = Client(root).leases.create()
            late.append(root / "tmp" / f"{lease.id}@flatten-z")
            late[0].mkdir(parents=True)
        remove_tree(path, **kw)

    monkeypatch.setattr(gc, "remove_tree", a_flatten_starts)
    client.collect()
    assert late[0].is_dir()


def test_a_lease_its_process_could_not_delete_holds_nothing_for_that_process(
    client: Client, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operation's lease whose deletion failed (the database could not be written: a
    full disk) is over: a long-running program's own next collection frees what it held."""
    def full_disk(self: LeaseStore, lease_id: str) -> None:
        raise StoreError("cannot write metadata database: database or disk is full")

    with client.lease("import") as held:
        dgst = loose_blob(client, b"written by an operation that failed", held)
        monkeypatch.setattr(LeaseStore, "delete", full_disk)
    monkeypatch.undo()
    freed = client.collect()
    assert (freed.leases, freed.digests) == (1, [dgst])
