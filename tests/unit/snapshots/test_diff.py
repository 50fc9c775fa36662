"""``ctrpy.snapshots.diff``: the changes of one tree against another as a layer tar.

Trees are made by applying layers built in code; the diff of a changed copy against the
original, applied back onto the original, must give the changed copy (compared with
``tests.treecmp``); the tar itself is read with Python's ``tarfile``.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest

from ctrpy.client import Client
from ctrpy.errors import FailedPrecondition, UnsupportedFormat
from ctrpy.snapshots.diff import View, snapshot_view, write_diff
from tests.builders import directory, file, layer_tar, opaque, symlink, whiteout
from tests.helpers import Sandbox, apply_bytes, is_root, needs_root, raises_naming
from tests.treecmp import diff, feature_layers, tree


# --------------------------------------------------------------------------- helpers
def built(path: Path, *layers: list[object]) -> Path:
    """A complete tree (as a native snapshot holds it): ``layers`` applied in order."""
    path.mkdir()
    for entries in layers:
        apply_bytes(path, layer_tar(entries))  # type: ignore[arg-type]
    return path


def copy(src: Path, dst: Path) -> Path:
    """``cp -a`` to a new ``dst``, as the native snapshotter prepares a child."""
    subprocess.run(["cp", "-a", "--", str(src), str(dst)], check=True)
    return dst


def diff_of(upper: Path | list[Path], lower: Path | list[Path] | None, *, overlay: bool = False) -> bytes:
    ups = upper if isinstance(upper, list) else [upper]
    lows = [] if lower is None else lower if isinstance(lower, list) else [lower]
    out = io.BytesIO()
    write_diff(View(ups, overlay=overlay), View(lows, overlay=overlay), out)
    return out.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return list(tf)


def names(data: bytes) -> list[str]:
    return [m.name for m in members(data)]


def assert_round_trip(lower: Path, upper: Path, data: bytes, scratch: Path) -> None:
    """The diff applied on a copy of ``lower`` gives ``upper``'s tree."""
    result = copy(lower, scratch)
    apply_bytes(result, data)
    want, got = tree(upper), tree(result)
    assert got == want, diff(want, got, ("upper", "applied"))


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return built(
        tmp_path / "lower",
        [directory("etc"), file("etc/hosts", b"127.0.0.1\n"), file("etc/gone", b"x"),
         directory("var"), directory("var/cache"), file("var/cache/a", b"a"), file("var/cache/b", b"b"),
         symlink("lib", "usr/lib"), directory("usr"), directory("usr/lib"), file("usr/lib/libc", b"c" * 100)],
    )


@pytest.fixture
def work(base: Path, tmp_path: Path) -> Path:
    return copy(base, tmp_path / "upper")


# --------------------------------------------------------------------------- what a diff holds
def test_an_unchanged_copy_gives_a_tar_without_entries(base: Path, work: Path) -> None:
    assert names(diff_of(work, base)) == []


def test_an_added_file_comes_after_its_parent_directory(base: Path, work: Path) -> None:
    (work / "etc" / "new").write_bytes(b"new")
    assert names(diff_of(work, base)) == ["etc", "etc/new"]


def test_a_deleted_file_is_a_whiteout_beside_it(base: Path, work: Path, tmp_path: Path) -> None:
    (work / "etc" / "gone").unlink()
    data = diff_of(work, base)
    assert names(data) == ["etc", "etc/.wh.gone"]
    (wh,) = [m for m in members(data) if m.name.endswith(".wh.gone")]
    assert (wh.isreg(), wh.size, wh.mode, wh.mtime) == (True, 0, 0, 0)
    assert_round_trip(base, work, data, tmp_path / "applied")


def test_a_deleted_directory_is_one_whiteout(base: Path, work: Path) -> None:
    subprocess.run(["rm", "-r", str(work / "var" / "cache")], check=True)
    assert names(diff_of(work, base)) == ["var", "var/.wh.cache"]


def test_a_modified_file_is_written_whole(base: Path, work: Path) -> None:
    (work / "etc" / "hosts").write_bytes(b"10.0.0.1\n")
    data = diff_of(work, base)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        f = tf.extractfile("etc/hosts")
        assert f is not None and f.read() == b"10.0.0.1\n"


def test_new_bytes_under_the_same_whole_second_mtime_are_a_change(base: Path, work: Path) -> None:
    """Times taken from a tar have no nanoseconds: then the contents decide (containerd's rule)."""
    hosts = work / "etc" / "hosts"
    st = hosts.stat()
    hosts.write_bytes(b"127.0.0.2\n")  # same size
    os.utime(hosts, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "etc/hosts" in names(diff_of(work, base))


def test_the_same_bytes_under_the_same_mtime_are_no_change(base: Path, work: Path) -> None:
    hosts = work / "etc" / "hosts"
    st = hosts.stat()
    hosts.write_bytes(b"127.0.0.1\n")
    os.utime(hosts, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert names(diff_of(work, base)) == []


@pytest.mark.parametrize("change", ["mode", "xattr"] + (["owner"] if is_root else []))
def test_metadata_alone_is_a_change(base: Path, work: Path, change: str) -> None:
    hosts = work / "etc" / "hosts"
    st = hosts.stat()
    if change == "mode":
        hosts.chmod(0o600)
    elif change == "owner":
        os.chown(hosts, 1000, 1000)
    else:
        os.setxattr(hosts, "user.note", b"hello")
    os.utime(hosts, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "etc/hosts" in names(diff_of(work, base))


def test_a_directory_replaced_by_a_file_is_the_file_alone(base: Path, work: Path, tmp_path: Path) -> None:
    subprocess.run(["rm", "-r", str(work / "var" / "cache")], check=True)
    (work / "var" / "cache").write_bytes(b"now a file")
    data = diff_of(work, base)
    assert names(data) == ["var", "var/cache"]
    assert_round_trip(base, work, data, tmp_path / "applied")


def test_a_file_replaced_by_a_directory_brings_its_children(base: Path, work: Path, tmp_path: Path) -> None:
    (work / "etc" / "gone").unlink()
    (work / "etc" / "gone").mkdir()
    (work / "etc" / "gone" / "inside").write_bytes(b"i")
    data = diff_of(work, base)
    assert names(data) == ["etc", "etc/gone", "etc/gone/inside"]
    assert_round_trip(base, work, data, tmp_path / "applied")


def test_a_retargeted_symlink_is_a_change(base: Path, work: Path) -> None:
    (work / "lib").unlink()
    (work / "lib").symlink_to("usr/lib64")
    (m,) = [m for m in members(diff_of(work, base)) if m.name == "lib"]
    assert m.issym() and m.linkname == "usr/lib64"


def test_a_parent_that_was_a_symlink_below_is_written_as_a_directory_first(tmp_path: Path) -> None:
    """Lower: ``lib -> /etc`` (out of the tree on a host).  Upper: ``lib/`` a directory with a
    file.  The tar names ``lib/`` (a directory) before ``lib/x``: applied on the lower tree,
    nothing can reach through the symlink."""
    lower = built(tmp_path / "lower", [symlink("lib", "/outside"), symlink("etc", "../outside")])
    upper = built(tmp_path / "upper", [directory("lib"), file("lib/x", b"x"), directory("etc"), file("etc/y", b"y")])
    data = diff_of(upper, lower)
    (tmp_path / "box").mkdir()
    box = Sandbox(tmp_path / "box")
    order = names(data)
    assert order.index("lib") < order.index("lib/x") and order.index("etc") < order.index("etc/y")
    assert all(m.isdir() for m in members(data) if m.name in ("lib", "etc"))
    apply_bytes(box.root, layer_tar([symlink("lib", "/outside"), symlink("etc", "../outside")]))
    box.apply(data)
    box.assert_outside_unchanged()
    assert (box.root / "lib" / "x").read_bytes() == b"x"


def test_every_entry_follows_all_of_its_parent_directories(tmp_path: Path) -> None:
    lower_layer, upper_layer = feature_layers()
    lower = built(tmp_path / "lower", lower_layer)
    upper = built(tmp_path / "upper", lower_layer, upper_layer)
    seen: set[str] = set()
    for m in members(diff_of(upper, lower)):
        parts = m.name.split("/")
        for i in range(1, len(parts)):
            assert "/".join(parts[:i]) in seen, f"{m.name} before its parent {'/'.join(parts[:i])}"
        seen.add(m.name)


def test_the_feature_layers_round_trip(tmp_path: Path) -> None:
    lower_layer, upper_layer = feature_layers()
    lower = built(tmp_path / "lower", lower_layer)
    upper = built(tmp_path / "upper", lower_layer, upper_layer)
    assert_round_trip(lower, upper, diff_of(upper, lower), tmp_path / "applied")


def test_a_diff_against_nothing_is_the_whole_tree(tmp_path: Path) -> None:
    lower_layer, _ = feature_layers()
    upper = built(tmp_path / "upper", lower_layer)
    data = diff_of(upper, None)
    assert not [n for n in names(data) if ".wh." in n]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_round_trip(empty, upper, data, tmp_path / "applied")


def test_the_same_trees_give_the_same_bytes(base: Path, work: Path) -> None:
    (work / "etc" / "new").write_bytes(b"new")
    (work / "etc" / "gone").unlink()
    assert diff_of(work, base) == diff_of(work, base)


# --------------------------------------------------------------------------- hardlinks, odd names
def test_new_names_of_one_inode_are_hardlinks_to_the_first(base: Path, work: Path, tmp_path: Path) -> None:
    (work / "etc" / "one").write_bytes(b"shared")
    os.link(work / "etc" / "one", work / "etc" / "two")
    data = diff_of(work, base)
    two = [m for m in members(data) if m.name == "etc/two"]
    assert len(two) == 1 and two[0].islnk() and two[0].linkname == "etc/one"
    assert_round_trip(base, work, data, tmp_path / "applied")


def test_an_unchanged_name_linked_to_a_new_name_stays_linked(base: Path, work: Path, tmp_path: Path) -> None:
    """``usr/lib/libc`` is unchanged; a new hardlink to it is written whole and the old name
    follows as a link to it (containerd's change writer does the same)."""
    os.link(work / "usr" / "lib" / "libc", work / "usr" / "lib" / "libc.so")
    data = diff_of(work, base)
    by_name = {m.name: m for m in members(data)}
    assert by_name["usr/lib/libc.so"].isreg()
    assert by_name["usr/lib/libc"].islnk() and by_name["usr/lib/libc"].linkname == "usr/lib/libc.so"
    assert_round_trip(base, work, data, tmp_path / "applied")


@pytest.mark.parametrize("where", ["added", "deleted"])
def test_a_name_starting_with_wh_cannot_be_in_a_layer(tmp_path: Path, where: str) -> None:
    plain = built(tmp_path / "plain", [directory("d")])
    odd = copy(plain, tmp_path / "odd")
    (odd / "d" / ".wh.x").write_bytes(b"")
    upper, lower = (odd, plain) if where == "added" else (plain, odd)
    with raises_naming(UnsupportedFormat, "d/.wh.x"):
        diff_of(upper, lower)


def test_sockets_are_left_out(base: Path, work: Path) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(work / "etc" / "sock"))
        assert names(diff_of(work, base)) == []


# --------------------------------------------------------------------------- overlay stacks
def overlay_layer(path: Path, entries: list[object]) -> Path:
    path.mkdir()
    apply_bytes(path, layer_tar(entries), whiteouts="overlay")  # type: ignore[arg-type]
    return path


@needs_root
def test_an_overlay_whiteout_is_a_deletion(tmp_path: Path) -> None:
    low = overlay_layer(tmp_path / "l0", [directory("etc"), file("etc/a", b"a"), file("etc/b", b"b")])
    up = overlay_layer(tmp_path / "l1", [whiteout("etc/a")])
    assert names(diff_of([up, low], [low], overlay=True)) == ["etc", "etc/.wh.a"]


@needs_root
def test_an_opaque_overlay_directory_hides_what_is_below(tmp_path: Path) -> None:
    low = overlay_layer(tmp_path / "l0", [directory("d"), file("d/old", b"o")])
    up = overlay_layer(tmp_path / "l1", [directory("d"), opaque("d"), file("d/new", b"n")])
    assert sorted(names(diff_of([up, low], [low], overlay=True))) == ["d", "d/.wh.old", "d/new"]


@needs_root
def test_an_overlay_stack_diff_applied_natively_gives_the_native_tree(tmp_path: Path) -> None:
    lower_layer, upper_layer = feature_layers()
    l0 = overlay_layer(tmp_path / "l0", lower_layer)
    l1 = overlay_layer(tmp_path / "l1", upper_layer)
    native_lower = built(tmp_path / "native-lower", lower_layer)
    native_upper = built(tmp_path / "native-upper", lower_layer, upper_layer)
    assert_round_trip(native_lower, native_upper, diff_of([l1, l0], [l0], overlay=True), tmp_path / "applied")


@needs_root
def test_an_overlay_redirect_is_refused(tmp_path: Path) -> None:
    low = overlay_layer(tmp_path / "l0", [directory("a"), file("a/x", b"x")])
    up = overlay_layer(tmp_path / "l1", [directory("b")])
    os.setxattr(up / "b", "trusted.overlay.redirect", b"/a")
    with raises_naming(UnsupportedFormat, "trusted.overlay.redirect"):
        diff_of([up, low], [low], overlay=True)


# --------------------------------------------------------------------------- snapshot views
def test_a_view_is_its_parents_tree(client: Client) -> None:
    sn = client.snapshotter("native")
    active = sn.prepare("a")
    (sn.fs_path(active) / "f").write_bytes(b"f")
    sn.commit("base", "a")
    sn.prepare("look", "base", kind="view")
    view = snapshot_view(sn, "look")
    assert view.layers == [os.fsencode(sn.fs_path(sn.stat("base")))]


def test_a_snapshot_whose_tree_is_gone_is_named(client: Client) -> None:
    sn = client.snapshotter("native")
    active = sn.prepare("work")
    sn.fs_path(active).rmdir()
    with raises_naming(FailedPrecondition, "'work'"):
        snapshot_view(sn, "work")
