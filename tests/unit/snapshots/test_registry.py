"""Choosing a snapshotter: by name (with the valid names in the error), from
CTRPY_SNAPSHOTTER, and the default (overlayfs where root can mount it, else native)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ctrpy import snapshots
from ctrpy.client import Client
from ctrpy.errors import InvalidArgument, MountError
from ctrpy.snapshots import overlay as overlay_mod
from tests.helpers import SNAPSHOTTERS, raises_naming, usable

pytestmark = pytest.mark.usefixtures("no_env_snapshotter")


# --------------------------------------------------------------------------- choosing one
def test_the_default_is_overlayfs_as_root_where_it_can_be_mounted(tmp_path: Path) -> None:
    if not usable("overlayfs", tmp_path):
        pytest.skip("needs root and a mountable overlay filesystem")
    assert snapshots.default_name(tmp_path / "snapshots") == "overlayfs"


def test_the_default_is_native_where_overlay_cannot_be_mounted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise MountError("cannot mount overlay: Operation not permitted")

    monkeypatch.setattr(overlay_mod, "mount", refuse)
    assert snapshots.default_name(tmp_path / "fresh-snapshots") == "native"


def test_the_default_is_native_for_a_non_root_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert snapshots.default_name(tmp_path / "fresh-snapshots") == "native"


@pytest.mark.parametrize("name", SNAPSHOTTERS)
def test_ctrpy_snapshotter_overrides_the_default(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTRPY_SNAPSHOTTER", name)
    assert snapshots.default_name(tmp_path / "snapshots") == name


def test_the_client_uses_ctrpy_snapshotter(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTRPY_SNAPSHOTTER", "native")
    assert client.snapshotter().name == "native"


def test_an_unknown_snapshotter_names_the_valid_ones(client: Client) -> None:
    with raises_naming(InvalidArgument, "zfs", "native", "overlayfs"):
        client.snapshotter("zfs")


def test_an_unknown_snapshotter_from_the_environment_names_the_valid_ones(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTRPY_SNAPSHOTTER", "btrfs")
    with raises_naming(InvalidArgument, "btrfs", "native", "overlayfs"):
        client.snapshotter()


def test_overlay_is_an_alias_of_overlayfs(client: Client, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("overlayfs needs root")
    assert client.snapshotter("overlay").name == "overlayfs"


def test_overlayfs_for_a_non_root_user_is_a_clear_error(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with raises_naming(InvalidArgument, "overlayfs", "root"):
        client.snapshotter("overlayfs")
