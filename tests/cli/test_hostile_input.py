"""``ctrpy images import`` of the inputs attackers make, each once.

Each gets the right result, or one ``ctrpy: error:`` line (exit 1, no internal error, at
most 1,000 characters: ``assert_error``), and then the store is as it was and still works
(``Cli.rejects_import``).  Big inputs are generated in code and streamed to disk: a gzip
bomb of a few MB that inflates to 4 GiB, indexes nested 2,000 deep, an index of 20,000
entries, a layer of 100,000 empty files.  (The same kinds, at random, are in tests/fuzz/.)
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    MT_OCI_INDEX,
    BombLayer,
    BuiltImage,
    Entry,
    IndexBlob,
    Layer,
    OCILayout,
    archive_bytes,
    chain_ids,
    chardev,
    compress,
    digest_hex,
    docker_save_tar,
    empty_files_layer,
    file,
    go_json,
    index_of,
    layer_tar,
    pax_header,
    raw_header,
    symlink,
)
from tests.helpers import (
    DEEP_DIRS,
    OTHER_ARCH,
    Cli,
    arch_image,
    blob_path,
    host_image,
    named_archive,
    parse_table,
    removed_after,
    run_measured,
    text_image,
)
from tests.peers import Ctrpy

NAME = "docker.io/hostile/app:1"


def layer_archive(*entries: Entry, name: str = NAME) -> bytes:
    """An OCI archive of a host image whose one layer is ``entries``."""
    return named_archive((host_image(list(entries)).build(), name))


def rejects_layer(run: Cli, data: bytes, *args: str, match: str | tuple[str, ...]) -> None:
    """The import of ``data`` fails unpacking a layer: ``rejects_import``, whatever the
    ``unpacking NAME (DIGEST)...`` line said before the error."""
    run.rejects_import(data, *args, match=match, stdout=None)


# --------------------------------------------------------------------------- truncation
def member_data_end(plain: bytes) -> int:
    """Where the last member's data ends in an uncompressed tar (the end-of-archive blocks
    after it can go missing: the reader takes a clean end there, as Go's archive/tar does)."""
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:") as tf:
        return max(m.offset_data + m.size for m in tf.getmembers())


def inflated(data: bytes, compression: str) -> bytes:
    """What a decoder gets out of (possibly cut) compressed bytes."""
    if compression == "gzip":
        return zlib.decompressobj(31).decompress(data)
    return data


ARCHIVES = {
    "oci": lambda: named_archive((text_image(b"cut"), NAME)),
    "oci-gzip": lambda: named_archive((text_image(b"cut"), NAME), compression="gzip"),
    "docker": lambda: docker_save_tar([(host_image([file("etc/x", b"cut")], [file("y", b"y")]), ["cut:1"])],
                                      variant="podman"),
}


@pytest.mark.parametrize("kind", sorted(ARCHIVES))
def test_an_archive_cut_at_any_of_60_points_is_refused(populated: Cli, kind: str) -> None:
    data = ARCHIVES[kind]()
    compression = "gzip" if kind.endswith("gzip") else "none"
    end = member_data_end(inflated(data, compression))
    cuts = sorted({1 + i * (len(data) - 2) // 59 for i in range(60)})
    cuts = [c for c in cuts if len(inflated(data[:c], compression)) < end]  # a cut that loses member bytes
    assert len(cuts) >= 50
    before = populated.state()
    for cut in cuts:
        populated.fails("images", "import", populated.write(data[:cut]))
        populated.assert_unchanged(before)
    populated.assert_store_works()


def test_a_layer_cut_short_fails_its_unpack_and_leaves_no_snapshot(populated: Cli) -> None:
    tar = layer_tar([file(f"f{i}", bytes([i]) * 2000) for i in range(20)])
    blob = compress(tar, "gzip")
    for cut in (10, len(blob) // 2, len(blob) - 5):
        img = host_image(Layer(tar, blob=blob[:cut])).build()  # the blob is what the digest says: a cut gzip
        rejects_layer(populated, named_archive((img, NAME)), match=("layer 0", "gzip stream"))


# --------------------------------------------------------------------------- the gzip bomb
BOMB_SIZE = 4 << 30  # what the few MB inflate to
RSS_LIMIT = 200 << 20


def bomb_archive(tmp: Path, layer: BombLayer) -> tuple[Path, str]:
    """The bomb as the one layer of a host image in an OCI archive on disk; (path, layer digest)."""
    img = host_image(layer).build()
    layout = OCILayout()
    layout.add_manifest(img, {ANNOTATION_IMAGE_NAME: NAME})
    path = tmp / "bomb.tar"
    layout.write_tar(path)
    assert path.stat().st_size < 8 << 20
    return path, img.layers[0].digest


def test_a_gzip_bomb_with_a_wrong_diff_id_fails_in_bounded_memory_and_leaves_no_bytes(
    populated: Cli, tmp_path: Path
) -> None:
    archive, layer = bomb_archive(tmp_path, BombLayer(BOMB_SIZE, file_size=1 << 30, diff_id="sha256:" + "0" * 64))
    before = populated.state()
    ctrpy = Ctrpy(populated.root)
    result = run_measured(ctrpy.command("images", "import", archive), ctrpy.env(), tmp_path)
    assert result.exit_code == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("ctrpy: error: ") and "digest mismatch" in line and layer in line
    assert result.peak_rss < RSS_LIMIT, f"peak RSS {result.peak_rss >> 20} MiB"
    populated.assert_unchanged(before)  # no snapshot, no image; only verified blobs may stay...
    populated.ok("content", "prune", "--older-than", "0s")
    assert not blob_path(populated.root, layer).exists()  # ... and the collection takes them
    assert populated.state().files == before.files
    populated.assert_store_works()


def test_the_memory_measure_counts_the_measured_process_not_the_test_process(tmp_path: Path) -> None:
    ballast = bytearray(RSS_LIMIT + (64 << 20))  # the test process holds more than the limit
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1  # touched: resident
    result = run_measured([sys.executable, "-S", "-c", "pass"], dict(os.environ), tmp_path)
    assert result.exit_code == 0, result.stderr
    assert result.peak_rss < RSS_LIMIT // 2, f"peak RSS {result.peak_rss >> 20} MiB"
    del ballast


def test_a_gzip_bomb_with_an_honest_diff_id_imports_in_bounded_memory(run: Cli, tmp_path: Path) -> None:
    archive, _layer = bomb_archive(tmp_path, BombLayer(BOMB_SIZE, file_size=16 << 20))
    ctrpy = Ctrpy(run.root)
    result = run_measured(ctrpy.command("images", "import", archive), ctrpy.env(), tmp_path)
    assert result.exit_code == 0, result.stderr
    assert result.peak_rss < RSS_LIMIT, f"peak RSS {result.peak_rss >> 20} MiB"
    (row,) = parse_table(run.ok("images", "check").stdout)
    assert row["STATUS"] == "complete (2/2)" and row["UNPACKED"] == "true"


# --------------------------------------------------------------------------- big graphs
def test_an_image_under_indexes_nested_2000_deep_is_imported_and_unpacked(run: Cli) -> None:
    item: Any = text_image(b"deep")
    for _ in range(2000):
        item = index_of([item])
    layout = OCILayout()
    layout.add_manifest(item, {ANNOTATION_IMAGE_NAME: NAME})
    r = run.ok("images", "import", run.write(layout.tar_bytes()))
    assert f"unpacking {NAME} ({item.digest})...done" in r.stdout
    (row,) = parse_table(run.ok("images", "check").stdout)
    assert row["STATUS"] == "complete (3/3)" and row["UNPACKED"] == "true"


def test_an_index_of_20000_entries_imports_the_host_platform_only(run: Cli) -> None:
    host, other = text_image(b"many"), arch_image(OTHER_ARCH)
    entries = [platform_entry(other)] * 19_999 + [platform_entry(host)]
    index = index_of([host, other])
    big = IndexBlob(MT_OCI_INDEX, go_json({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": entries}),
                    index.descendants, index.images)
    layout = OCILayout()
    layout.add_manifest(big, {ANNOTATION_IMAGE_NAME: NAME})
    run.ok("images", "import", run.write(layout.tar_bytes()))
    (row,) = parse_table(run.ok("images", "check").stdout)
    assert row["STATUS"] == "complete (3/3)" and row["UNPACKED"] == "true"
    assert sorted(run.snapshot_keys()) == sorted(chain_ids(list(host.diff_ids)))


def platform_entry(img: BuiltImage) -> dict[str, Any]:
    return img.manifest.descriptor(platform=img.platform)


def test_a_layer_of_100000_empty_files_is_unpacked(run: Cli, tmp_path: Path) -> None:
    img = host_image(empty_files_layer(100_000, workdir=tmp_path))
    layout = OCILayout()
    layout.add_manifest(img, {ANNOTATION_IMAGE_NAME: NAME})
    layout.write_tar(tmp_path / "many.tar")
    run.ok("images", "import", str(tmp_path / "many.tar"))
    (row,) = parse_table(run.ok("snapshots", "usage").stdout)
    assert int(row["INODES"]) == 1 + 100 + 100_000  # the root, the directories, the files


# --------------------------------------------------------------------------- long names
def test_a_300_byte_path_component_fails_naming_the_entry(populated: Cli) -> None:
    data = layer_archive(file("ok/" + "n" * 300, b"x"))
    rejects_layer(populated, data, match=('layer entry "ok/nnn', "nnn\"", "File name too long"))


def test_a_4_kb_path_of_short_components_is_unpacked_and_extracted(run: Cli, tmp_path: Path) -> None:
    with removed_after(run.root), removed_after(tmp_path / "rootfs"):
        run.ok("images", "import", run.write(layer_archive(file(f"{DEEP_DIRS}/file", b"deep"))))
        run.ok("images", "extract", NAME, str(tmp_path / "rootfs"))
        assert (tmp_path / "rootfs" / "d" / "d").is_dir()


def test_a_symlink_to_a_4_kb_target_is_unpacked(run: Cli) -> None:
    target = "../" * 1300 + "x"  # 3,901 bytes: under PATH_MAX, the longest a symlink holds
    run.ok("images", "import", run.write(layer_archive(symlink("link", target))))


def test_a_symlink_to_a_target_longer_than_path_max_is_refused(populated: Cli) -> None:
    rejects_layer(populated, layer_archive(symlink("link", "../" * 2000 + "x")),
                  match=('layer entry "link"', "File name too long"))


def test_a_4_kb_archive_member_name_fails_on_a_short_line(populated: Cli) -> None:
    layout = OCILayout()
    layout.add_manifest(text_image(), {ANNOTATION_IMAGE_NAME: NAME})
    data = layout.tar_bytes(extra_entries=[Entry("blobs/sha256/" + "x" * 4096, data=b"y")])
    populated.rejects_import(data, match=("archive member 'blobs/sha256/xxx", "not a valid blob name"))


# --------------------------------------------------------------------------- numbers out of range
@pytest.mark.parametrize(
    ("entry", "says"),
    [
        (file("big-uid", b"x", uid=2**32), "uid/gid 4294967296:0 out of range"),
        (file("big-gid", b"x", gid=2**40), "out of range"),
        (file("negative-uid", b"x", pax={"uid": "-1"}), "uid/gid -1:0 out of range"),
        (chardev("major", 4096, 0), "device number 4096:0 out of range"),
        (chardev("minor", 1, 1 << 20), "device number 1:1048576 out of range"),
    ],
    ids=["uid-2^32", "gid-2^40", "uid-minus-1", "major-4096", "minor-2^20"],
)
def test_an_owner_or_device_number_out_of_range_is_refused(populated: Cli, entry: Entry, says: str) -> None:
    rejects_layer(populated, layer_archive(entry), match=(f'"{entry.name}"', says))


def test_a_base_256_uid_beyond_any_system_is_refused(populated: Cli) -> None:
    """GNU base-256 numbers go far beyond what any system stores."""
    header = raw_header(b"huge", uid=b"\x80" + b"\xff" * 7, size=0)
    data = named_archive((host_image(header + bytes(1024)).build(), NAME))
    rejects_layer(populated, data, match='"huge"')


# --------------------------------------------------------------------------- links
def test_a_symlink_loop_alone_is_unpacked(run: Cli) -> None:
    run.ok("images", "import", run.write(layer_archive(symlink("a", "b"), symlink("b", "a"), symlink("c", "c"))))


def test_a_path_through_a_symlink_loop_is_refused(populated: Cli) -> None:
    data = layer_archive(symlink("a", "b"), symlink("b", "a"), file("a/x", b"x"))
    rejects_layer(populated, data, match='layer entry "a/x"')


def docker_archive_whose_layer_is(member: Entry) -> bytes:
    """A podman-style docker archive (tag ``x:1``) whose manifest.json names ``member`` as
    the image's one layer."""
    img = host_image([file("x", b"x")]).build()
    listing = [{"Config": img.config.hex + ".json", "RepoTags": ["x:1"], "Layers": [member.name]}]
    return docker_save_tar([(img, ["x:1"])], variant="podman", manifest_json_override=json.dumps(listing).encode(),
                           extra_members=[member])


def test_a_docker_layer_member_that_is_a_symlink_loop_is_refused(populated: Cli) -> None:
    data = docker_archive_whose_layer_is(Entry("loop.tar", "symlink", linkname="loop.tar"))
    populated.rejects_import(data, match=("loop.tar", "too many levels of links"))


def test_a_hardlink_to_a_missing_file_in_a_layer_is_refused(populated: Cli, snapshotter: str) -> None:
    data = layer_archive(Entry("link", "hardlink", linkname="no/such/file"))
    rejects_layer(populated, data, "--snapshotter", snapshotter, match=('layer entry "link"', '"no/such/file"'))


def test_a_docker_layer_member_that_is_a_hardlink_to_a_missing_member_is_refused(populated: Cli) -> None:
    data = docker_archive_whose_layer_is(Entry("hard.tar", "hardlink", linkname="missing.tar"))
    populated.rejects_import(data, match=("missing layer 'hard.tar'", "x:1"))


# --------------------------------------------------------------------------- duplicate members
@pytest.mark.parametrize("which", ["second", "first"])
def test_a_blob_member_twice_with_different_bytes_is_refused(populated: Cli, which: str) -> None:
    img = text_image(b"twice")
    name = "blobs/sha256/" + digest_hex(img.layers[0].digest)
    wrong = Entry(name, data=b"other bytes")
    layout = OCILayout()
    layout.add_manifest(img, {ANNOTATION_IMAGE_NAME: NAME})
    entries = layout.entries()
    at = next(i for i, e in enumerate(entries) if e.name == name)
    entries.insert(at + (1 if which == "second" else 0), wrong)
    populated.rejects_import(archive_bytes(entries), match=(name, "digest mismatch"))


def test_index_json_twice_is_read_as_tar_extracts_it_the_last_one_counts(run: Cli) -> None:
    first, last = text_image(b"first"), text_image(b"last")
    layout = OCILayout()
    layout.add_manifest(first, {ANNOTATION_IMAGE_NAME: "docker.io/hostile/first:1"})
    layout.add_blob(last.manifest)
    for blob in last.blobs():
        layout.add_blob(blob)
    index = {"schemaVersion": 2, "manifests": [last.manifest.descriptor({ANNOTATION_IMAGE_NAME: NAME})]}
    data = layout.tar_bytes(extra_entries=[Entry("index.json", data=json.dumps(index).encode())])
    run.ok("images", "import", run.write(data))
    assert run.names() == [NAME]


def test_a_layer_entry_twice_with_different_bytes_keeps_the_last(run: Cli, tmp_path: Path) -> None:
    run.ok("images", "import", run.write(layer_archive(file("etc/x", b"first"), file("etc/x", b"last"))))
    run.ok("images", "extract", NAME, str(tmp_path / "rootfs"))
    assert (tmp_path / "rootfs" / "etc" / "x").read_bytes() == b"last"


def test_a_pax_header_promising_a_4_kb_path_is_one_line(populated: Cli) -> None:
    entry = pax_header({"path": "p/" * 2048 + "x"}) + raw_header(b"short", kind=b"1", linkname=b"missing")
    rejects_layer(populated, named_archive((host_image(entry + bytes(1024)).build(), NAME)),
                  match=('layer entry "p/p/', '"missing"'))
