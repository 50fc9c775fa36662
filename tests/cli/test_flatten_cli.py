"""``ctrpy images flatten``: one tar of exactly the tree ``images extract`` builds."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.builders import directory, file, hardlink, opaque, sha256_digest, symlink, whiteout
from tests.helpers import APP, Cli, app_image, blob_path, host_image, lying_image
from tests.treecmp import diff, feature_layers, tar_tree, tree


# --------------------------------------------------------------------------- flatten
def need_root_for_trees() -> None:
    if os.geteuid() != 0:
        pytest.skip("extracting owners and device nodes needs root")


def test_flatten_to_a_file_holds_the_extracted_tree(run: Cli, tmp_path: Path) -> None:
    need_root_for_trees()
    run.imported(host_image(*feature_layers(replace_hardlinked_file=False)).build(), APP, "--no-unpack")
    run.ok("images", "extract", APP, str(tmp_path / "rootfs"))
    run.ok("images", "flatten", APP, str(tmp_path / "flat.tar"))
    expected, got = tree(tmp_path / "rootfs"), tar_tree((tmp_path / "flat.tar").read_bytes())
    assert got == expected, diff(got, expected, ("flatten", "extract"))


def test_flatten_to_stdout_holds_the_extracted_tree(run: Cli, tmp_path: Path) -> None:
    need_root_for_trees()
    run.imported(host_image(*feature_layers(replace_hardlinked_file=False)).build(), APP, "--no-unpack")
    run.ok("images", "extract", APP, str(tmp_path / "rootfs"))
    out = run.ok("images", "flatten", APP, "-")
    expected, got = tree(tmp_path / "rootfs"), tar_tree(out.stdout_bytes)
    assert got == expected, diff(got, expected, ("flatten -", "extract"))


def test_flatten_applies_whiteouts_opaque_dirs_hardlinks_and_symlinks(run: Cli) -> None:
    lower = [
        directory("etc"),
        file("etc/gone", b"x"),
        file("etc/kept", b"kept"),
        directory("opt"),
        file("opt/old", b"old"),
        directory("opt/sub"),
        file("opt/sub/deeper", b"d"),
        file("bin-a", b"binary", 0o755),
    ]
    upper = [
        whiteout("etc/gone"),
        opaque("opt"),
        file("opt/new", b"new"),
        hardlink("bin-b", "bin-a", 0o755),
        symlink("etc/abs", "/bin-a"),
        symlink("etc/rel", "../bin-a"),
    ]
    run.imported(host_image(lower, upper).build(), APP, "--no-unpack")
    t = tar_tree(run.ok("images", "flatten", APP, "-").stdout_bytes)
    assert sorted(t) == ["bin-a", "bin-b", "etc", "etc/abs", "etc/kept", "etc/rel", "opt", "opt/new"]
    assert t["bin-b"].hardlink == t["bin-a"].hardlink == "bin-a"
    assert t["bin-b"].sha256 == t["bin-a"].sha256
    assert (t["etc/abs"].linkname, t["etc/rel"].linkname) == ("/bin-a", "../bin-a")


def test_flatten_keeps_a_lower_hardlink_to_a_file_an_upper_layer_replaced(run: Cli) -> None:
    lower = [file("a", b"old"), hardlink("b", "a")]
    upper = [file("a", b"new")]
    run.imported(host_image(lower, upper).build(), APP, "--no-unpack")
    t = tar_tree(run.ok("images", "flatten", APP, "-").stdout_bytes)
    assert t["b"].sha256 == sha256_digest(b"old").split(":")[1]
    assert t["a"].hardlink is None


def test_a_failed_flatten_leaves_no_partial_output_file(run: Cli, tmp_path: Path) -> None:
    run.imported(lying_image(), APP, "--no-unpack")
    before = sorted(os.listdir(tmp_path))
    run.fails("images", "flatten", APP, str(tmp_path / "flat.tar"), match="config says diffID")
    assert sorted(os.listdir(tmp_path)) == before  # no flat.tar, no temporary file either


def test_flatten_detects_a_corrupted_layer_blob(run: Cli, tmp_path: Path) -> None:
    img = run.imported(app_image(), APP, "--no-unpack")
    path = blob_path(run.root, img.layers[0].digest)
    data = bytearray(path.read_bytes())
    data[4:8] = b"\x01\x02\x03\x04"  # gzip header MTIME: the tar inside is unchanged
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    run.fails("images", "flatten", APP, str(tmp_path / "flat.tar"), match="corrupt")
    assert not (tmp_path / "flat.tar").exists()




# The first, streamed flatten merged layers by names: names through symlinks, hardlinks to
# lower layers and entry order made it wrong, once unsafe to extract. Flatten now extracts
# safely and tars the result; these pin that.
def flatten(run: Cli, name: str, layers: list[list[Any]]) -> bytes:
    run.imported(host_image(*layers).build(), name, "--no-unpack")
    return run.ok("images", "flatten", name, "-").stdout_bytes


def gnu_tar_extract(data: bytes, dest: Path) -> subprocess.CompletedProcess[bytes]:
    dest.mkdir()
    return subprocess.run(["tar", "-x", "-C", str(dest)], input=data, capture_output=True)


def test_extracting_a_flattened_hardlink_through_a_symlink_leaves_the_host_file_alone(
    run: Cli, tmp_path: Path
) -> None:
    # the host file an attacker wants linked into (and chmod'ed by) the extracted rootfs
    host = tmp_path / "host"
    host.mkdir()
    secret = host / "secret"
    secret.write_bytes(b"HOST\n")
    secret.chmod(0o600)
    inner = str(host).lstrip("/")
    data = flatten(run, "docker.io/library/esc:v1", [[
        file(f"{inner}/secret", b"image\n"),  # makes the hardlink valid inside the image root
        symlink("a", str(host)),               # absolute: apply clamps it into the root
        hardlink("x", "a/secret"),             # apply: links ROOT/<host>/secret, fine
    ]])
    out = tmp_path / "out"
    out.mkdir()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        links = {m.name: m.linkname for m in tf if m.islnk()}
        tf.extractall(out, filter="fully_trusted")  # what Python 3.11's extractall() does by default
    st = secret.stat()
    # a tar naming the hardlink's target through the symlink "a" ({"x": "a/secret"}) would
    # hardlink the host's file into the rootfs and chmod it 0644 on extraction
    assert st.st_nlink == 1 and (st.st_mode & 0o777) == 0o600, (links, oct(st.st_mode), st.st_nlink)


def test_flatten_keeps_a_file_written_through_a_symlink(run: Cli, tmp_path: Path) -> None:
    name = "docker.io/library/thru:v1"
    data = flatten(run, name, [[directory("etc"), symlink("a", "etc"), file("a/passwd", b"through-link\n")]])
    run.ok("images", "extract", name, str(tmp_path / "ex"))
    assert (tmp_path / "ex/etc/passwd").read_bytes() == b"through-link\n"  # what extract builds
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        contents = {m.name: tf.extractfile(m).read() for m in tf if m.isreg()}  # type: ignore[union-attr]
    assert b"through-link\n" in contents.values(), sorted(contents)


def test_a_flattened_hardlink_to_a_lower_layers_file_extracts_with_gnu_tar(run: Cli, tmp_path: Path) -> None:
    data = flatten(run, "docker.io/library/hl:v1", [[file("f", b"data\n")], [hardlink("g", "f")]])
    r = gnu_tar_extract(data, tmp_path / "gx")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "gx/g").read_bytes() == b"data\n"


def test_an_upper_file_under_a_lower_symlink_flattens_as_extract_writes_it(run: Cli, tmp_path: Path) -> None:
    name = "docker.io/library/lsym:v1"
    data = flatten(run, name, [[directory("etc"), symlink("a", "etc")], [file("a/passwd", b"upper\n")]])
    run.ok("images", "extract", name, str(tmp_path / "ex"))
    assert (tmp_path / "ex/etc/passwd").read_bytes() == b"upper\n"
    assert os.path.islink(tmp_path / "ex/a")
    r = gnu_tar_extract(data, tmp_path / "gx")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "gx/etc/passwd").read_bytes() == b"upper\n"
    assert os.path.islink(tmp_path / "gx/a")


# --------------------------------------------------------------------------- what OUT is
def test_flatten_through_a_symlink_writes_its_target_and_keeps_the_link(run: Cli, tmp_path: Path) -> None:
    run.imported(app_image(), APP, "--no-unpack")
    real, link = tmp_path / "real.tar", tmp_path / "link.tar"
    link.symlink_to(real)
    run.ok("images", "flatten", APP, str(link))
    assert link.is_symlink()
    assert real.read_bytes() == run.ok("images", "flatten", APP, "-").stdout_bytes
