"""`images flatten` writes exactly the tree `images extract` builds.

Found in review against a first, streamed flatten that merged layers by names: names through
symlinks, hardlinks to lower layers and entry order made it wrong, once unsafe to extract.
Flatten now extracts safely and tars the result; these cases pin that.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

from tests.builders import dir, file, hardlink, symlink
from tests.review._helpers import Run, archive


def _flatten(run: Run, tmp_path: Path, name: str, layers: list[list[object]]) -> bytes:
    path = tmp_path / "in.tar"
    path.write_bytes(archive(name, layers))
    run.ok("images", "import", "--no-unpack", str(path))
    return run.ok("images", "flatten", name, "-").stdout_bytes


def test_flatten_hardlink_through_symlink_escapes_on_extract(run: Run, tmp_path: Path) -> None:
    # the host file an attacker wants linked into (and chmod'ed by) the extracted rootfs
    host = tmp_path / "host"
    host.mkdir()
    secret = host / "secret"
    secret.write_bytes(b"HOST\n")
    secret.chmod(0o600)
    inner = str(host).lstrip("/")
    layers = [[
        file(f"{inner}/secret", b"image\n"),  # makes the hardlink valid inside the image root
        symlink("a", str(host)),               # absolute: apply clamps it into the root
        hardlink("x", "a/secret"),             # apply: links ROOT/<host>/secret, fine
    ]]
    data = _flatten(run, tmp_path, "docker.io/library/esc:v1", layers)
    out = tmp_path / "out"
    out.mkdir()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        links = {m.name: m.linkname for m in tf if m.islnk()}
        tf.extractall(out, filter="fully_trusted")  # what Python 3.11's extractall() does by default
    st = secret.stat()
    # extracting the flattened tar hardlinks the host's file into the rootfs and chmods it 0644,
    # because the hardlink's target is named through the symlink "a" (links == {"x": "a/secret"})
    assert st.st_nlink == 1 and (st.st_mode & 0o777) == 0o600, (links, oct(st.st_mode), st.st_nlink)


def test_flatten_keeps_file_written_through_symlink(run: Run, tmp_path: Path) -> None:
    layers = [[dir("etc"), symlink("a", "etc"), file("a/passwd", b"through-link\n")]]
    name = "docker.io/library/thru:v1"
    data = _flatten(run, tmp_path, name, layers)
    run.ok("images", "extract", name, str(tmp_path / "ex"))
    assert (tmp_path / "ex/etc/passwd").read_bytes() == b"through-link\n"  # what extract builds
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        contents = {m.name: tf.extractfile(m).read() for m in tf if m.isreg()}  # type: ignore[union-attr]
    assert b"through-link\n" in contents.values(), sorted(contents)


def _gnu_tar_extract(data: bytes, dest: Path) -> subprocess.CompletedProcess[bytes]:
    dest.mkdir()
    return subprocess.run(["tar", "-x", "-C", str(dest)], input=data, capture_output=True)


def test_flatten_hardlink_to_lower_layer_extracts(run: Run, tmp_path: Path) -> None:
    layers = [[file("f", b"data\n")], [hardlink("g", "f")]]
    data = _flatten(run, tmp_path, "docker.io/library/hl:v1", layers)
    r = _gnu_tar_extract(data, tmp_path / "gx")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "gx/g").read_bytes() == b"data\n"


def test_flatten_upper_file_under_lower_symlink(run: Run, tmp_path: Path) -> None:
    layers = [[dir("etc"), symlink("a", "etc")], [file("a/passwd", b"upper\n")]]
    name = "docker.io/library/lsym:v1"
    data = _flatten(run, tmp_path, name, layers)
    run.ok("images", "extract", name, str(tmp_path / "ex"))
    assert (tmp_path / "ex/etc/passwd").read_bytes() == b"upper\n"
    assert os.path.islink(tmp_path / "ex/a")
    r = _gnu_tar_extract(data, tmp_path / "gx")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "gx/etc/passwd").read_bytes() == b"upper\n"
    assert os.path.islink(tmp_path / "gx/a")
