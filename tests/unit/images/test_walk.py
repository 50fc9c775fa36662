"""The one image walk (ctrpy.images.walk): its handlers, what an image needs, ctr's size
and platforms, resolving a platform's manifest, artifacts, and the documents' checks.

Documents live in a dict (digest -> bytes); the walker reads them through ``read_json`` and
asks ``exists`` before reading, as it does over the real stores.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from ctrpy.errors import ContentNotFound, InvalidArchive, PlatformNotFound
from ctrpy.images.walk import Walker, filter_platforms, limit_manifests, walk
from ctrpy.oci import Descriptor, Matcher, Platform
from tests.builders import MT_OCI_INDEX, MT_OCI_MANIFEST, Blob, BuiltImage, Image, file, go_json, index_of
from tests.helpers import raises_naming

EMPTY = Blob("application/vnd.oci.empty.v1+json", b"{}")
AMD64 = Matcher([Platform("linux", "amd64")])
ARM64 = Matcher([Platform("linux", "arm64")])
EVERY = Matcher(all_platforms=True)


class Store:
    """Blobs by digest, and the walker over them; ``reads`` counts JSON reads."""

    def __init__(self, blobs: Iterable[Any] = ()) -> None:
        self.data: dict[str, bytes] = {}
        self.reads: list[str] = []
        self.unknown: list[tuple[str, str]] = []
        for b in blobs:
            self.add(b)

    def add(self, *blobs: Any) -> None:
        for b in blobs:
            self.data[b.digest] = b.data

    def drop(self, digest: str) -> None:
        del self.data[digest]

    def read_json(self, digest: str) -> Any:
        self.reads.append(digest)
        return json.loads(self.data[digest])

    def walker(self) -> Walker:
        return Walker(self.read_json, lambda d: d in self.data,
                      lambda desc, where: self.unknown.append((desc.digest, where)))


def d(blob: Any, **kw: Any) -> Descriptor:
    """The Descriptor of a built blob (``platform=`` a Platform)."""
    return Descriptor(blob.media_type, blob.digest, blob.size, **kw)


def img(arch: str = "amd64", *layers: bytes) -> BuiltImage:
    contents = layers or (arch.encode(),)
    return Image([[file(f"f{i}", c)] for i, c in enumerate(contents)], architecture=arch).build()


def index(entries: list[dict[str, Any]]) -> Blob:
    return Blob(MT_OCI_INDEX, go_json({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": entries}))


def entry(blob: Any, **extra: Any) -> dict[str, Any]:
    out = {"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size}
    out.update(extra)
    return out


def artifact(*payloads: bytes) -> tuple[Blob, list[Blob]]:
    layers = [Blob("application/vnd.example+type", p) for p in payloads]
    doc = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST, "artifactType": "application/vnd.example+type",
           "config": entry(EMPTY), "layers": [entry(layer) for layer in layers]}
    return Blob(MT_OCI_MANIFEST, go_json(doc)), [EMPTY, *layers]


# --------------------------------------------------------------------------- walk and handlers
def test_walk_visits_parents_before_children_and_children_in_order() -> None:
    a, b, c = (Descriptor("x/y", f"sha256:{i:064x}", 1) for i in range(3))
    seen: list[str] = []
    tree = {a.digest: [b, c], b.digest: [], c.digest: []}
    walk([a], lambda desc: (seen.append(desc.digest), tree[desc.digest])[1])
    assert seen == [a.digest, b.digest, c.digest]


def test_walk_is_iterative_so_depth_has_no_limit() -> None:
    chain = [Descriptor("x/y", f"sha256:{i:064x}", 1) for i in range(20_000)]
    seen = 0

    def handler(desc: Descriptor) -> list[Descriptor]:
        nonlocal seen
        seen += 1
        i = int(desc.digest[7:], 16)
        return [chain[i + 1]] if i + 1 < len(chain) else []

    walk([chain[0]], handler)
    assert seen == 20_000


def test_walk_visits_a_digest_once_unless_told_otherwise() -> None:
    leaf = Descriptor("x/y", "sha256:" + "1" * 64, 1)
    root = Descriptor("x/y", "sha256:" + "0" * 64, 1)
    for once, count in ((True, 1), (False, 3)):
        seen: list[str] = []
        walk([root], lambda desc, s=seen: (s.append(desc.digest), [leaf, leaf, leaf] if desc is root else [])[1],
             once=once)
        assert seen.count(leaf.digest) == count


def test_filter_platforms_drops_index_entries_for_other_platforms_and_keeps_those_without() -> None:
    amd, arm = img("amd64"), img("arm64")
    nameless = index([entry(amd.manifest)])
    ix = index([entry(amd.manifest, platform=amd.platform), entry(arm.manifest, platform=arm.platform),
                entry(nameless)])
    store = Store([ix, nameless])
    kids = filter_platforms(store.walker().children, AMD64)(d(ix))
    assert [k.digest for k in kids] == [amd.manifest.digest, nameless.digest]


def test_limit_manifests_keeps_the_first_with_a_platform_before_those_without() -> None:
    amd = img("amd64")
    nameless = index([])
    ix = index([entry(nameless), entry(amd.manifest, platform=amd.platform)])
    kids = limit_manifests(Store([ix]).walker().children, 1)(d(ix))
    assert [k.digest for k in kids] == [amd.manifest.digest]


# --------------------------------------------------------------------------- content
def test_content_of_an_index_is_the_index_its_platform_manifest_config_and_layers() -> None:
    amd, arm = img("amd64", b"1", b"2"), img("arm64")
    ix = index_of([amd, arm])
    store = Store(ix.blobs())
    got = [c.descriptor.digest for c in store.walker().content(d(ix), AMD64)]
    assert got == [ix.digest, amd.manifest.digest, amd.config.digest, *(layer.digest for layer in amd.layers)]


def test_content_lists_an_absent_manifest_without_reading_it() -> None:
    amd = img("amd64")
    ix = index_of([amd])
    store = Store([ix])
    items = store.walker().content(d(ix), AMD64)
    assert [i.descriptor.digest for i in items] == [ix.digest, amd.manifest.digest]
    assert store.reads == [ix.digest]


def test_an_unknown_index_entry_is_optional_content_and_reported() -> None:
    amd = img("amd64")
    xml = Blob("application/xml", b"<x/>")
    ix = index([entry(amd.manifest, platform=amd.platform), entry(xml)])
    store = Store([ix, *amd.blobs()])
    items = {i.descriptor.digest: i for i in store.walker().content(d(ix), AMD64)}
    assert items[xml.digest].optional and not items[amd.manifest.digest].optional
    assert items[xml.digest].parent is not None and items[xml.digest].parent.digest == ix.digest
    assert store.unknown == [(xml.digest, f"index {ix.digest}")]


def test_an_unknown_media_type_among_a_manifests_layers_is_required_content() -> None:
    art, blobs = artifact(b"payload")
    store = Store([art, *blobs])
    assert not any(i.optional for i in store.walker().content(d(art), AMD64))


# --------------------------------------------------------------------------- size and platforms
def test_size_is_ctrs_the_first_platform_manifest_and_layers_as_often_as_listed() -> None:
    twice = Image([[file("a", b"same")], [file("a", b"same")]]).build()
    assert twice.layers[0].digest == twice.layers[1].digest
    ix = index_of([twice, img("arm64")])
    store = Store(ix.blobs())
    expected = ix.size + twice.manifest.size + twice.config.size + 2 * twice.layers[0].size
    assert store.walker().size(d(ix), AMD64) == expected


def test_platforms_are_the_index_entries_and_skip_unknown_ones() -> None:
    amd, arm = img("amd64"), img("arm64")
    att, _blobs = artifact(b"{}")
    ix = index([entry(amd.manifest, platform=amd.platform), entry(arm.manifest, platform=arm.platform),
                entry(att, platform={"architecture": "unknown", "os": "unknown"})])
    store = Store([ix])
    assert [str(p) for p in store.walker().platforms(d(ix))] == ["linux/amd64", "linux/arm64"]


def test_the_platform_of_a_lone_manifest_comes_from_its_config_as_os_and_architecture() -> None:
    arm = Image([[file("a", b"1")]], architecture="arm64", variant="v8").build()
    store = Store(arm.blobs())
    assert [str(p) for p in store.walker().platforms(d(arm.manifest))] == ["linux/arm64"]


# --------------------------------------------------------------------------- resolve
def test_resolve_picks_the_image_manifest_of_the_platform() -> None:
    amd, arm = img("amd64"), img("arm64")
    ix = index_of([amd, arm])
    sel = Store(ix.blobs()).walker().resolve(d(ix), ARM64)
    assert sel.descriptor.digest == arm.manifest.digest
    assert sel.config is not None and sel.config.platform == Platform("linux", "arm64")


def test_resolve_checks_a_lone_manifest_against_its_config() -> None:
    amd = img("amd64")
    with raises_naming(PlatformNotFound, "x:1", "linux/arm64"):
        Store(amd.blobs()).walker().resolve(d(amd.manifest), ARM64, "x:1")


def test_resolve_of_an_artifact_is_its_manifest_without_a_config() -> None:
    art, blobs = artifact(b"payload")
    store = Store([art, *blobs])
    sel = store.walker().resolve(d(art), ARM64)
    assert sel.is_artifact and sel.descriptor.digest == art.digest
    assert EMPTY.digest not in store.reads  # a config an implementation does not know is never parsed


def test_resolve_skips_an_artifact_beside_the_image_of_the_platform() -> None:
    amd = img("amd64")
    art, blobs = artifact(b"sbom")
    ix = index([entry(art), entry(amd.manifest, platform=amd.platform)])
    sel = Store([ix, art, *blobs, *amd.blobs()]).walker().resolve(d(ix), AMD64)
    assert not sel.is_artifact and sel.descriptor.digest == amd.manifest.digest


def test_resolve_of_an_index_of_only_artifacts_is_its_first_artifact() -> None:
    a, a_blobs = artifact(b"1")
    b, b_blobs = artifact(b"2")
    ix = index([entry(a), entry(b)])
    sel = Store([ix, a, b, *a_blobs, *b_blobs]).walker().resolve(d(ix), ARM64)
    assert sel.is_artifact and sel.descriptor.digest == a.digest


def test_resolve_refuses_an_image_index_whose_only_match_is_an_artifact() -> None:
    arm = img("arm64")
    art, blobs = artifact(b"sbom")
    ix = index([entry(arm.manifest, platform=arm.platform), entry(art)])
    with raises_naming(PlatformNotFound, "linux/amd64"):
        Store([ix, art, *blobs, *arm.blobs()]).walker().resolve(d(ix), AMD64)


@pytest.mark.parametrize(
    "needs",
    [
        pytest.param(lambda walker, ix: walker.size(ix, AMD64), id="size"),
        pytest.param(lambda walker, ix: walker.resolve(ix, AMD64), id="resolve"),
    ],
)
def test_size_and_resolve_say_which_manifest_of_the_platform_is_absent(
    needs: Callable[[Walker, Descriptor], object],
) -> None:
    amd = img("amd64")
    ix = index_of([amd])
    with raises_naming(ContentNotFound, amd.manifest.digest):
        needs(Store([ix]).walker(), d(ix))


def test_offers_is_false_only_for_a_missing_platform() -> None:
    amd = img("amd64")
    ix = index_of([amd])
    walker = Store(ix.blobs()).walker()
    assert walker.offers(d(ix), AMD64) and not walker.offers(d(ix), ARM64)


def test_each_document_is_read_once_per_walker() -> None:
    amd = img("amd64")
    ix = index_of([amd])
    store = Store(ix.blobs())
    walker = store.walker()
    for _ in range(3):
        walker.resolve(d(ix), AMD64)
        walker.content(d(ix), AMD64)
    assert sorted(store.reads) == sorted({ix.digest, amd.manifest.digest, amd.config.digest})


# --------------------------------------------------------------------------- reference labels
def test_reference_labels_are_ctrs_gc_references() -> None:
    amd = img("amd64", b"1", b"2")
    ix = index_of([amd])
    walker = Store(ix.blobs()).walker()
    assert walker.reference_labels(d(ix)) == {"containerd.io/gc.ref.content.m.0": amd.manifest.digest}
    assert walker.reference_labels(d(amd.manifest)) == {
        "containerd.io/gc.ref.content.config": amd.config.digest,
        "containerd.io/gc.ref.content.l.0": amd.layers[0].digest,
        "containerd.io/gc.ref.content.l.1": amd.layers[1].digest,
    }
    assert walker.reference_labels(d(amd.config)) == {}


# --------------------------------------------------------------------------- the documents' checks
def _doc(media_type: str, obj: dict[str, Any]) -> Blob:
    return Blob(media_type, go_json(obj))


@pytest.mark.parametrize(
    ("media_type", "obj", "says"),
    [
        (MT_OCI_MANIFEST, {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "config": {}, "layers": []}, "disagrees"),
        (MT_OCI_MANIFEST, {"schemaVersion": 2, "manifests": []}, "it is an index"),
        (MT_OCI_INDEX, {"schemaVersion": 2, "manifests": [], "layers": []}, "it is a manifest"),
        (MT_OCI_MANIFEST, {"schemaVersion": 1, "fsLayers": []}, "schema 1"),
        (MT_OCI_INDEX, {"schemaVersion": 3, "manifests": []}, "schemaVersion must be 2"),
        (MT_OCI_INDEX, {"schemaVersion": 2}, "no manifests list"),
    ],
    ids=["media-type-mismatch", "manifest-with-manifests", "index-with-layers", "schema-1", "version-3", "no-list"],
)
def test_an_ambiguous_or_malformed_document_is_refused_naming_it(media_type: str, obj: dict[str, Any], says: str) -> None:
    doc = _doc(media_type, obj)
    walker = Store([doc]).walker()
    with raises_naming(InvalidArchive, doc.digest, says):
        walker.children(d(doc))


def test_an_image_config_needs_os_architecture_and_diff_ids() -> None:
    amd = Image([[file("a", b"1")]], config_extra={"os": None}).build()
    walker = Store(amd.blobs()).walker()
    with raises_naming(InvalidArchive, amd.config.digest, "os and architecture"):
        walker.resolve(d(amd.manifest), EVERY)
