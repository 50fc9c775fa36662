"""``ctrpy images import`` of bad OCI archives, and names in an archive that try to be paths.

Every bad input must give one ``ctrpy: error: ...`` line, exit 1, leave what a user can see
and every existing store file as it was (verified blobs already stored may stay as
unreferenced bytes, as the README says), and leave the store usable
(``Cli.rejects_import``, on the ``populated`` store).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.builders import (
    ANNOTATION_IMAGE_NAME,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
    Blob,
    Entry,
    OCILayout,
    compress,
    file,
    symlink,
)
from tests.helpers import Cli, host_image, text_image

MIB = 1 << 20


# --------------------------------------------------------------------------- bad input
BASE = text_image(b"bad input")
NAMED = {ANNOTATION_IMAGE_NAME: "x/bad:1"}


def layout_of(img: Any = BASE, annotations: dict[str, str] | None = None, **kw: Any) -> OCILayout:
    layout = OCILayout(**kw)
    layout.add_manifest(img, NAMED if annotations is None else annotations)
    return layout


@pytest.mark.parametrize("which", ["manifest", "config", "layer"])
def test_blob_whose_content_does_not_match_its_name(populated: Cli, which: str) -> None:
    blob = {"manifest": BASE.manifest, "config": BASE.config, "layer": BASE.layers[0]}[which]
    tampered = bytearray(blob.data)
    tampered[len(tampered) // 2] ^= 0xFF
    data = layout_of().tar_bytes(tamper={blob.digest: bytes(tampered)})
    populated.rejects_import(data, match=blob.digest)


@pytest.mark.parametrize("which", ["manifest", "config", "layer"])
def test_missing_blob(populated: Cli, which: str) -> None:
    blob = {"manifest": BASE.manifest, "config": BASE.config, "layer": BASE.layers[1]}[which]
    data = layout_of().tar_bytes(omit_blobs=[blob.digest])
    populated.rejects_import(data, match=("missing", blob.digest))


def test_descriptor_size_that_does_not_match_the_blob(populated: Cli) -> None:
    layout = OCILayout()
    layout.add_manifest(BASE, NAMED, descriptor_extra={"size": BASE.manifest.size + 1})
    populated.rejects_import(layout.tar_bytes(), match=BASE.manifest.digest)


@pytest.mark.parametrize(
    "index_json",
    [
        b"{not json",
        b"",
        b"[]",
        b'"a string"',
        b'{"schemaVersion": 1, "manifests": []}',
        b'{"schemaVersion": 2}',
        b'{"schemaVersion": 2, "manifests": {}}',
        b'{"schemaVersion": 2, "manifests": [{"mediaType": "x"}]}',
        b"\xff\xfe{}",
        b"[" * 100_000,  # nested deeper than the decoder goes (was an internal RecursionError)
        b'{"a":' * 100_000,
    ],
)
def test_invalid_index_json(populated: Cli, index_json: bytes) -> None:
    populated.rejects_import(layout_of().tar_bytes(index_json_override=index_json), match="index.json")


@pytest.mark.parametrize(
    ("digest", "says"),
    [
        ("sha256:../../../../x", "invalid digest"),
        ("sha256:" + "A" * 64, "invalid digest"),
        ("sha512:" + "a" * 128, "digest algorithm sha512 is not supported"),
        ("../blobs/sha256/x", "invalid digest"),
    ],
)
def test_index_json_digest_that_is_not_a_sha256_digest(populated: Cli, digest: str, says: str) -> None:
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": MT_OCI_MANIFEST, "digest": digest, "size": 10, "annotations": NAMED}],
    }
    populated.rejects_import(layout_of().tar_bytes(index_json_override=json.dumps(index).encode()),
            match=says)


def test_an_index_json_entry_with_a_layer_media_type_is_skipped_with_a_warning(populated: Cli) -> None:
    """A layer is no index or manifest: to an index, an unknown media type, which the OCI
    image-spec says must be ignored (not an error)."""
    layer = BASE.layers[0]
    layout = OCILayout()
    layout.add_manifest(BASE, NAMED)
    layout.add_manifest(layer, {ANNOTATION_IMAGE_NAME: "x/layer:1"})  # type: ignore[arg-type]
    r = populated.ok("images", "import", populated.write(layout.tar_bytes()))
    assert f"skipping {layer.digest}: unknown media type {layer.media_type!r}" in r.stderr
    assert "x/bad:1" in populated.names()
    assert "x/layer:1" not in populated.names()


@pytest.mark.parametrize("what", ["manifest", "config", "index"])
def test_invalid_json_in_a_blob(populated: Cli, what: str) -> None:
    if what == "manifest":
        img = host_image([file("x", b"x")], manifest_raw=b'{"schemaVersion": 2, "config": ').build()
        data = layout_of(img).tar_bytes()
        bad = img.manifest.digest
    elif what == "config":
        img = host_image([file("x", b"x")], config_raw=b"{oops").build()
        data = layout_of(img).tar_bytes()
        bad = img.config.digest
    else:
        idx = Blob(MT_OCI_INDEX, b'{"schemaVersion": 2, "manifests": [')
        data = layout_of(idx).tar_bytes()
        bad = idx.digest
    populated.rejects_import(data, match=bad)


def test_a_line_break_in_an_image_name_cannot_split_the_error_line(populated: Cli) -> None:
    layout = layout_of(annotations={ANNOTATION_IMAGE_NAME: "x/y:1\nctrpy: error: fake"})
    data = layout.tar_bytes(omit_blobs=[BASE.layers[0].digest])
    populated.rejects_import(data, match=("x/y:1\\nctrpy: error: fake", BASE.layers[0].digest))


def test_a_5_kb_image_name_gives_a_short_error_line(populated: Cli) -> None:
    layout = layout_of(annotations={ANNOTATION_IMAGE_NAME: "x/y:" + "a" * 5000})
    data = layout.tar_bytes(omit_blobs=[BASE.layers[0].digest])
    populated.rejects_import(data, match=("image x/y:aaa", BASE.layers[0].digest))  # the line's length: assert_error


def test_a_5_kb_media_type_gives_a_short_warning_line(populated: Cli) -> None:
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "x" * 5000, "digest": BASE.manifest.digest, "size": BASE.manifest.size},
    ]}
    data = layout_of().tar_bytes(index_json_override=json.dumps(index).encode())
    r = populated.fails("images", "import", populated.write(data), match="names no index or manifest", warnings=True)
    (warning,) = [line for line in r.stderr.splitlines() if line.startswith("ctrpy: warning: ")]
    assert "unknown media type 'xxx" in warning and len(warning) <= 1000


def test_manifest_that_is_not_a_manifest(populated: Cli) -> None:
    img = host_image([file("x", b"x")], manifest_raw=b'{"schemaVersion": 2, "layers": "nope"}').build()
    populated.rejects_import(layout_of(img).tar_bytes(), match=img.manifest.digest)


@pytest.mark.parametrize("version", ["2.0.0", "1.0", "", "1.0.0 "])
def test_layout_version_other_than_1_0_0(populated: Cli, version: str) -> None:
    populated.rejects_import(layout_of(layout_version=version).tar_bytes(), match=("layout version", "1.0.0"))


@pytest.mark.parametrize("oci_layout", [b"{not json", b"[]", b"{}", b'{"imageLayoutVersion": 1}'])
def test_invalid_oci_layout_file(populated: Cli, oci_layout: bytes) -> None:
    populated.rejects_import(layout_of().tar_bytes(oci_layout_override=oci_layout), match="oci-layout")


def test_missing_oci_layout_is_an_unrecognised_archive(populated: Cli) -> None:
    populated.rejects_import(layout_of().tar_bytes(omit_files=["oci-layout"]), match="unrecognized image format")


def test_missing_oci_layout_with_format_oci(populated: Cli) -> None:
    populated.rejects_import(layout_of().tar_bytes(omit_files=["oci-layout"]), "--format", "oci.v1",
            match="oci-layout")


def test_missing_index_json(populated: Cli) -> None:
    populated.rejects_import(layout_of().tar_bytes(omit_files=["index.json"]), match="index.json")


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
@pytest.mark.parametrize("cut", ["30%", "60%", "end"])
def test_truncated_archive(populated: Cli, compression: str, cut: str) -> None:
    data = layout_of().tar_bytes(compression=compression)
    if cut == "end":  # inside the last member's data (tar), or the compressed stream's trailer
        keep = len(data) - 1024 - 500 if compression == "none" else len(data) - 4
    else:
        keep = len(data) * int(cut[:-1]) // 100
    populated.rejects_import(data[:keep])


def test_truncated_archive_on_stdin(populated: Cli) -> None:
    data = layout_of().tar_bytes(compression="gzip")
    populated.rejects_import(data[: len(data) // 2], stdin=True)


@pytest.mark.parametrize(
    "garbage",
    [
        bytes(range(256)) * 40,
        b"\x1f\x8b\x08" + bytes(range(256)) * 4,  # gzip magic, then nonsense
        b"\x28\xb5\x2f\xfd" + bytes(range(256)) * 4,  # zstd magic, then nonsense
        b"just some text\n",
        compress(b"gzip of something that is not a tar" * 100, "gzip"),
    ],
)
def test_non_tar_garbage(populated: Cli, garbage: bytes) -> None:
    populated.rejects_import(garbage)


def test_gzip_archive_with_trailing_garbage(populated: Cli) -> None:
    populated.rejects_import(layout_of().tar_bytes(compression="gzip") + b"trailing garbage")


@pytest.mark.parametrize("stdin", [False, True])
def test_empty_input(populated: Cli, stdin: bool) -> None:
    populated.rejects_import(b"", stdin=stdin, match="empty")


def test_tar_with_only_the_end_marker(populated: Cli) -> None:
    populated.rejects_import(b"\0" * 10240)


def test_index_json_over_20_mib(populated: Cli) -> None:
    index = layout_of().index_json()
    big = index[:-1] + b"," + b'"pad":"' + b"x" * (20 * MIB) + b'"}'
    assert len(big) > 20 * MIB and json.loads(big)
    populated.rejects_import(layout_of().tar_bytes(index_json_override=big), match=("index.json", "20971520"))


def test_manifest_over_20_mib(populated: Cli) -> None:
    manifest = json.loads(BASE.manifest.data)
    manifest["annotations"] = {"pad": "x" * (20 * MIB)}
    img = host_image([file("etc/app.txt", b"bad input")], [file("bin/app", b"bad input" * 3)],
                     manifest_raw=json.dumps(manifest).encode()).build()
    populated.rejects_import(layout_of(img).tar_bytes(), match=img.manifest.digest)


@pytest.mark.parametrize("name", ["blobs/sha256/" + "A" * 64, "blobs/sha256/short", "blobs/other"])
def test_file_under_blobs_with_an_invalid_name(populated: Cli, name: str) -> None:
    extra = [Entry(name, "file", data=b"stray", mode=0o444)]
    populated.rejects_import(layout_of().tar_bytes(extra_entries=extra), match="blob name")


def test_a_blob_of_another_digest_algorithm_no_image_needs_is_skipped_with_a_warning(populated: Cli) -> None:
    extra = [Entry("blobs/sha512/" + "a" * 128, "file", data=b"stray", mode=0o444)]
    r = populated.ok("images", "import", populated.write(layout_of().tar_bytes(extra_entries=extra)))
    assert "blobs/sha512/" in r.stderr and "digest algorithm sha512 is not supported" in r.stderr
    assert "x/bad:1" in populated.names()


@pytest.mark.parametrize("case", ["name with a leading space", "label over 4096 bytes"])
def test_invalid_name_or_label_fails_before_anything_is_unpacked(populated: Cli, case: str) -> None:
    if case == "name with a leading space":
        populated.rejects_import(layout_of(annotations={ANNOTATION_IMAGE_NAME: " x/bad:1"}).tar_bytes(),
                match="invalid image name")
    else:
        populated.rejects_import(layout_of().tar_bytes(), "--label", "k=" + "v" * 4096, match="4096")


def test_invalid_name_in_the_archive_fails_without_unpacking(populated: Cli) -> None:
    data = layout_of(annotations={ANNOTATION_IMAGE_NAME: "bad\nname"}).tar_bytes()
    before = populated.state()
    populated.fails("images", "import", "--no-unpack", populated.write(data), match="invalid image name")
    populated.assert_unchanged(before)


def test_unknown_format_lists_the_valid_formats(populated: Cli) -> None:
    before = populated.state()
    populated.fails(
        "images", "import", "--format", "nope.v9", populated.write(layout_of().tar_bytes()),
        match=("unknown import format 'nope.v9'", "auto", "oci.v1"),
    )
    populated.assert_unchanged(before)


def test_missing_input_file(populated: Cli, tmp_path: Path) -> None:
    before = populated.state()
    populated.fails("images", "import", str(tmp_path / "no-such.tar"), match="no-such.tar")
    populated.assert_unchanged(before)


def test_directory_as_input(populated: Cli, tmp_path: Path) -> None:
    before = populated.state()
    populated.fails("images", "import", str(tmp_path), match=str(tmp_path))
    populated.assert_unchanged(before)


def test_missing_input_argument_is_a_usage_error(run: Cli) -> None:
    run.usage_error("images", "import")


# --------------------------------------------------------------------------- paths from the archive
def tree(top: Path) -> set[str]:
    return {str(p.relative_to(top)) for p in top.rglob("*")}


def outside_root(tmp_path: Path) -> set[str]:
    return {p for p in tree(tmp_path) if p != "root" and not p.startswith("root/")}


@pytest.mark.parametrize("prefix", ["../", "../../", "/", "./../", "blobs/../../"])
def test_member_names_never_become_paths(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    cwd = tmp_path / "cwd" / "deeper"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    marker = f"ctrpy-escape-{uuid.uuid4().hex}"
    payload = b"must not be written outside the root"
    extra = [
        Entry(prefix + marker, "file", data=payload, mode=0o644),
        Entry(prefix + "tmp/" + marker, "file", data=payload, mode=0o644),
    ]
    path = run.write(layout_of().tar_bytes(extra_entries=extra))
    before = outside_root(tmp_path)
    run.ok("images", "import", "--no-unpack", path)  # stray members are only names: imported
    assert run.names() == ["x/bad:1"]
    assert outside_root(tmp_path) == before
    assert not any(marker in p for p in tree(tmp_path))
    assert not Path("/" + marker).exists()
    assert not Path("/tmp/" + marker).exists()


def test_symlink_members_never_read_outside_the_archive(populated: Cli, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"imageLayoutVersion": "1.0.0"}')
    layout = layout_of()
    data = layout.tar_bytes(omit_files=["oci-layout"], extra_entries=[symlink("oci-layout", str(secret))])
    populated.rejects_import(data)


def test_symlink_loop_member(populated: Cli) -> None:
    loop = [symlink("index.json", "loop.json"), symlink("loop.json", "index.json")]
    populated.rejects_import(layout_of().tar_bytes(omit_files=["index.json"], extra_entries=loop), match="links")


def test_hardlink_member_to_a_path_outside_the_archive(populated: Cli) -> None:
    entry = Entry("index.json", "hardlink", linkname="/etc/hostname")
    populated.rejects_import(layout_of().tar_bytes(omit_files=["index.json"], extra_entries=[entry]))


